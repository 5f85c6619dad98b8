package auth0_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
)

// An export job that never completes fails the export after JobTimeout
// instead of polling forever.
func TestExportJobThatNeverCompletes(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{ExportDelay: 24 * time.Hour}, nil)
	// The deadline is only a backstop, far beyond JobTimeout: without the
	// bound the test fails on it instead of hanging.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err := f.c.ExportUsers(ctx, auth0.ExportRequest{PollInterval: 10 * time.Millisecond, JobTimeout: 100 * time.Millisecond},
		func(auth0.ExportedUser) error { return nil })
	require.Error(t, err)
	require.NoError(t, ctx.Err(), "ended by JobTimeout, not by the caller's deadline")
	require.ErrorContains(t, err, "still processing after 100ms")
}

// Token repeats a failure for TokenFailureTTL instead of asking again, so a
// readiness probe polled in a loop makes one token request; a success ends it.
func TestTokenFailureIsCachedBriefly(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := setup(t, emulator.Options{}, nil)
	bad := f.newClient(func(c *auth0.Config) { c.ClientSecret = "wrong"; c.TokenFailureTTL = time.Hour })
	for range 50 {
		require.ErrorIs(t, bad.Token(ctx), auth0.ErrUnauthorized)
	}
	require.EqualValues(t, 1, f.e.CallCount(emulator.EndpointToken))

	// API calls do not use it: they have their own retries.
	_, err := bad.GetUser(ctx, "auth0|000000000000000000000000")
	require.ErrorIs(t, err, auth0.ErrUnauthorized)
	require.EqualValues(t, 2, f.e.CallCount(emulator.EndpointToken))

	// A TTL of zero is the default (5s), not "never cache".
	f.e.ResetCalls()
	f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: emulator.EndpointToken, Status: 503}}})
	require.Error(t, f.c.Token(ctx))
	require.Error(t, f.c.Token(ctx))
	require.EqualValues(t, 1, f.e.CallCount(emulator.EndpointToken))
}
