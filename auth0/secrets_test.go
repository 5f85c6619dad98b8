package auth0_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
)

// Everything the client logs (at Debug) and every error it returns, over a
// run that takes every path — success, retries, 401, 429, lost answers, token
// failures, bad passwords — holds no secret, token or password.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const secret = "emulator-s3cret-that-must-not-leak"
	f := setup(t, emulator.Options{ClientSecret: secret, TokenTTL: time.Second, RetryAfter: true}, func(c *auth0.Config) {
		c.MaxAttempts = 3
	})
	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	const weak = "weak-pw"
	const strong = "Str0ng-And-Secret-Passw0rd"
	u, err := f.c.CreateUser(ctx, auth0.CreateUserRequest{Connection: f.connection(), Email: "s@example.com", Password: strong})
	require.NoError(t, err)
	_, err = f.c.CreateUser(ctx, auth0.CreateUserRequest{Connection: f.connection(), Email: "w@example.com", Password: weak})
	require.ErrorIs(t, err, auth0.ErrBadRequest)
	keep(err)
	_, err = f.c.CreateUser(ctx, auth0.CreateUserRequest{Connection: f.connection(), Email: "s@example.com", Password: strong})
	require.ErrorIs(t, err, auth0.ErrConflict)
	keep(err)

	f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{
		{Endpoint: "GET /api/v2/users/{id}", Status: 401},
		{Endpoint: "GET /api/v2/users/{id}", Status: 429},
		{Endpoint: "GET /api/v2/users/{id}", Status: 503},
		{Endpoint: "GET /api/v2/users/{id}", Drop: true},
		{Endpoint: "POST /api/v2/users", LoseAnswer: true},
		{Endpoint: "POST /api/v2/users", Status: 500},
	}})
	_, err = f.c.GetUser(ctx, u.UserID)
	keep(err)
	_, err = f.c.GetUser(ctx, u.UserID)
	keep(err)
	_, err = f.c.CreateUser(ctx, auth0.CreateUserRequest{Connection: f.connection(), Email: "l@example.com", Password: strong})
	require.ErrorIs(t, err, auth0.ErrOutcomeUnknown)
	keep(err)
	_, err = f.c.CreateUser(ctx, auth0.CreateUserRequest{Connection: f.connection(), Email: "m@example.com", Password: strong})
	require.ErrorIs(t, err, auth0.ErrOutcomeUnknown)
	keep(err)

	time.Sleep(1100 * time.Millisecond) // the token expires and is renewed
	_, err = f.c.UsersByEmail(ctx, u.Email)
	require.NoError(t, err)

	bad := f.newClient(func(c *auth0.Config) { c.ClientSecret = secret + "-wrong" })
	keep(bad.Token(ctx))
	_, err = bad.GetUser(ctx, u.UserID)
	keep(err)
	f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: emulator.EndpointToken, Drop: true, Times: 10}}})
	keep(f.newClient(func(*auth0.Config) {}).Token(ctx))

	logs := f.logs.String()
	require.Contains(t, logs, "auth0 call", "the logs were captured")
	tokens := f.wire.seenTokens()
	require.GreaterOrEqual(t, len(tokens), 2, "several tokens were used")
	require.GreaterOrEqual(t, len(errs), 6)
	forbidden := append([]string{secret, weak, strong}, tokens...)
	for _, s := range forbidden {
		require.NotContains(t, logs, s)
		for _, err := range errs {
			require.NotContains(t, err.Error(), s)
		}
	}
	// Parts of the token (its signature) are not there either.
	for _, tok := range tokens {
		sig := tok[strings.LastIndex(tok, ".")+1:]
		require.NotContains(t, logs, sig)
	}
}

func TestObserver(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := setup(t, emulator.Options{}, nil)
	u := f.createUser(ctx, nil)
	f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{
		{Endpoint: "GET /api/v2/users/{id}", Status: 503},
		{Endpoint: "GET /api/v2/users/{id}", Drop: true},
	}})
	_, err := f.c.GetUser(ctx, u.UserID)
	require.NoError(t, err)
	_, err = f.c.GetUser(ctx, "auth0|000000000000000000000000")
	require.ErrorIs(t, err, auth0.ErrNotFound)

	require.Equal(t, 1, f.obs.count("POST /api/v2/users", 201))
	require.Equal(t, 1, f.obs.count("GET /api/v2/users/{id}", 503))
	// The dropped GET went unseen: net/http itself sends an idempotent
	// request again when a reused connection turns out to be closed.
	require.EqualValues(t, 1, f.calls("GET /api/v2/users/{id}", 0))
	require.Equal(t, 1, f.obs.count("GET /api/v2/users/{id}", 200))
	require.Equal(t, 1, f.obs.count("GET /api/v2/users/{id}", 404))
	require.Equal(t, []error{nil}, f.obs.tokenRefreshes())
	require.Zero(t, f.obs.waited())
}
