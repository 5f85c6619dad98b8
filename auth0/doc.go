// Package auth0 is syncd's client for the Auth0 Management API v2: the
// client-credentials token, a client-side rate limiter that also obeys Auth0's
// X-RateLimit-* headers, bounded retries of requests that are safe to repeat,
// typed errors with sentinels for errors.Is, and one method per endpoint.
//
// It imports no other syncd package. The emulator in auth0/emulator is its
// counterpart and deliberately shares no types with it.
package auth0
