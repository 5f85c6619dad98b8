package testcontainers

import "github.com/syncd/syncd/auth0/emulator"

// StartEmulator starts the Auth0 emulator with opts on a free loopback port;
// its URL is the AUTH0_DOMAIN to give syncd (http://127.0.0.1:PORT) and
// emulator.DefaultClientID / DefaultClientSecret its credentials unless opts
// say otherwise. Close the server when done.
func StartEmulator(opts emulator.Options) (*emulator.Server, error) {
	return emulator.Listen("127.0.0.1:0", opts)
}
