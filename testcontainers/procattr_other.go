//go:build !linux

package testcontainers

import "syscall"

// serverProcAttr: other systems (macOS, where `syncd demo` and the tests
// also run) have no Pdeathsig: a server whose starter is killed outright
// (kill -9, a test that panics) keeps running, and keeps its directory,
// until stopped by hand; Close and Ctrl-C still stop it.
func serverProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
