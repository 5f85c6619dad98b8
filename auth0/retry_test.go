package auth0_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
)

func TestTokenIsCachedAndShared(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := setup(t, emulator.Options{}, nil)
	u := f.createUser(ctx, nil)

	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Go(func() {
			_, err := f.c.GetUser(ctx, u.UserID)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, f.c.Token(ctx))
	require.EqualValues(t, 1, f.e.CallCount(emulator.EndpointToken), "one token for every call")
	require.Len(t, f.obs.tokenRefreshes(), 1)
}

func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := setup(t, emulator.Options{TokenTTL: time.Second}, nil)
	require.NoError(t, f.c.Token(ctx))
	require.NoError(t, f.c.Token(ctx))
	require.EqualValues(t, 1, f.e.CallCount(emulator.EndpointToken))

	time.Sleep(1100 * time.Millisecond) // past the refresh point (90 % of 1 s)
	_, err := f.c.UsersByEmail(ctx, "x@example.com")
	require.NoError(t, err)
	require.EqualValues(t, 2, f.e.CallCount(emulator.EndpointToken), "renewed before use")
	require.Zero(t, f.calls("GET /api/v2/users-by-email", 401), "never sent an expired token")
}

func TestUnauthorizedRefreshesTokenOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	t.Run("refused token", func(t *testing.T) {
		t.Parallel()
		f := setup(t, emulator.Options{}, nil)
		u := f.createUser(ctx, nil)
		f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "GET /api/v2/users/{id}", Status: 401}}})
		got, err := f.c.GetUser(ctx, u.UserID)
		require.NoError(t, err)
		require.Equal(t, u.UserID, got.UserID)
		require.EqualValues(t, 2, f.e.CallCount(emulator.EndpointToken))
		require.EqualValues(t, 1, f.calls("GET /api/v2/users/{id}", 401))
		require.EqualValues(t, 1, f.calls("GET /api/v2/users/{id}", 200))
	})

	t.Run("expired on the server's clock", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		skew := time.Duration(0)
		now := func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(skew) }
		f := setup(t, emulator.Options{Now: now}, nil)
		u := f.createUser(ctx, nil)
		mu.Lock()
		skew = 25 * time.Hour // the server thinks the 24 h token is gone
		mu.Unlock()
		_, err := f.c.GetUser(ctx, u.UserID)
		require.NoError(t, err)
		require.EqualValues(t, 2, f.e.CallCount(emulator.EndpointToken))
		require.EqualValues(t, 1, f.calls("GET /api/v2/users/{id}", 401))
	})

	t.Run("a create refused with 401 is made again", func(t *testing.T) {
		t.Parallel()
		f := setup(t, emulator.Options{}, nil)
		f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/users", Status: 401}}})
		u := f.createUser(ctx, nil)
		require.NotEmpty(t, u.UserID)
		require.EqualValues(t, 2, f.e.CallCount("POST /api/v2/users"))
	})

	t.Run("twice is final", func(t *testing.T) {
		t.Parallel()
		f := setup(t, emulator.Options{}, nil)
		f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "GET /api/v2/users/{id}", Status: 401, Times: 3}}})
		_, err := f.c.GetUser(ctx, "auth0|000000000000000000000000")
		require.ErrorIs(t, err, auth0.ErrUnauthorized)
		require.EqualValues(t, 2, f.e.CallCount("GET /api/v2/users/{id}"))
		require.EqualValues(t, 2, f.e.CallCount(emulator.EndpointToken))
	})
}

func TestServerErrorsAreRetried(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := setup(t, emulator.Options{}, func(c *auth0.Config) { c.MaxAttempts = 4 })
	u := f.createUser(ctx, nil)

	// Every method that is safe to repeat goes again after a 503 and after a
	// dropped connection.
	name := "Renamed"
	steps := []struct {
		endpoint string
		call     func() error
	}{
		{"GET /api/v2/users/{id}", func() error { _, err := f.c.GetUser(ctx, u.UserID); return err }},
		{"PATCH /api/v2/users/{id}", func() error {
			_, err := f.c.UpdateUser(ctx, u.UserID, auth0.UpdateUserRequest{Name: &name})
			return err
		}},
		{"GET /api/v2/users-by-email", func() error { _, err := f.c.UsersByEmail(ctx, u.Email); return err }},
		{"GET /api/v2/users", func() error { _, err := f.c.SearchUsers(ctx, auth0.SearchUsersRequest{}); return err }},
		{"GET /api/v2/roles", func() error { _, err := f.c.ListRoles(ctx, ""); return err }},
		{"POST /api/v2/users/{id}/roles", func() error {
			return f.c.AssignUserRoles(ctx, u.UserID, []string{f.e.RoleID(emulator.DefaultRole)})
		}},
		{"GET /api/v2/users/{id}/roles", func() error { _, err := f.c.ListUserRoles(ctx, u.UserID); return err }},
		{"DELETE /api/v2/users/{id}/roles", func() error {
			return f.c.RemoveUserRoles(ctx, u.UserID, []string{f.e.RoleID(emulator.DefaultRole)})
		}},
		{"GET /api/v2/roles/{id}/users", func() error {
			return f.c.ListRoleUsers(ctx, f.e.RoleID(emulator.DefaultRole), func([]auth0.RoleMember) error { return nil })
		}},
		{"DELETE /api/v2/users/{id}", func() error { return f.c.DeleteUser(ctx, u.UserID) }},
	}
	for _, s := range steps {
		f.e.ResetCalls()
		f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{
			{Endpoint: s.endpoint, Status: 503},
			{Endpoint: s.endpoint, Drop: true},
		}})
		require.NoError(t, s.call(), s.endpoint)
		require.EqualValues(t, 1, f.calls(s.endpoint, 503), s.endpoint)
		require.EqualValues(t, 1, f.calls(s.endpoint, 0), s.endpoint)
		require.GreaterOrEqual(t, f.e.CallCount(s.endpoint), int64(3), s.endpoint)
	}
	require.Nil(t, f.e.User(u.UserID), "deleted in the end")

	// Attempts are bounded; the last error is kept.
	f.e.ResetCalls()
	f.e.SetFaults(emulator.Faults{ErrorRate: 1})
	_, err := f.c.GetUser(ctx, u.UserID)
	var ae *auth0.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, 503, ae.StatusCode)
	require.True(t, auth0.Temporary(err))
	require.EqualValues(t, 4, f.e.CallCount("GET /api/v2/users/{id}"))
}

func TestLostCreateIsNotRetried(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	faults := map[string]emulator.ScriptedFault{
		"answer lost after apply": {Endpoint: "POST /api/v2/users", LoseAnswer: true},
		"503":                     {Endpoint: "POST /api/v2/users", Status: 503},
		"connection dropped":      {Endpoint: "POST /api/v2/users", Drop: true},
	}
	for name, fault := range faults {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, emulator.Options{}, nil)
			f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{fault}})
			_, err := f.c.CreateUser(ctx, auth0.CreateUserRequest{Connection: f.connection(), Email: "lost@example.com", Password: testPassword})
			require.ErrorIs(t, err, auth0.ErrOutcomeUnknown)
			require.NotErrorIs(t, err, auth0.ErrConflict)
			require.EqualValues(t, 1, f.e.CallCount("POST /api/v2/users"), "exactly one POST")
			if fault.Status != 0 {
				var ae *auth0.APIError
				require.ErrorAs(t, err, &ae, "the cause is kept")
				require.Equal(t, fault.Status, ae.StatusCode)
			}
			found, err := f.c.UsersByEmail(ctx, "lost@example.com")
			require.NoError(t, err)
			require.Len(t, found, map[bool]int{true: 1, false: 0}[fault.LoseAnswer], "applied only when the answer was lost after the write")
		})
	}

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		f := setup(t, emulator.Options{Faults: emulator.Faults{Latency: 300 * time.Millisecond}}, func(c *auth0.Config) {
			c.RequestTimeout = 50 * time.Millisecond
		})
		require.NoError(t, f.c.Token(ctx))
		_, err := f.c.CreateUser(ctx, auth0.CreateUserRequest{Connection: f.connection(), Email: "slow@example.com", Password: testPassword})
		require.ErrorIs(t, err, auth0.ErrOutcomeUnknown)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		// The emulator counts the request when it is done with it, after
		// the client has given up; the client has returned, so no other
		// POST can follow.
		require.Eventually(t, func() bool { return f.e.CallCount("POST /api/v2/users") == 1 }, 5*time.Second, 10*time.Millisecond)
		require.Equal(t, 1, f.obs.count("POST /api/v2/users", 0))

		// A read that times out is retried until attempts run out.
		_, err = f.c.GetUser(ctx, "auth0|000000000000000000000000")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NotErrorIs(t, err, auth0.ErrOutcomeUnknown)
		require.Eventually(t, func() bool { return f.e.CallCount("GET /api/v2/users/{id}") == auth0.DefaultMaxAttempts }, 5*time.Second, 10*time.Millisecond)
	})

	t.Run("429 is retried", func(t *testing.T) {
		t.Parallel()
		f := setup(t, emulator.Options{}, nil)
		f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/users", Status: 429}}})
		u := f.createUser(ctx, nil)
		require.NotEmpty(t, u.UserID)
		require.EqualValues(t, 2, f.e.CallCount("POST /api/v2/users"))
		require.Len(t, f.e.Users(), 1)
	})

	t.Run("connection refused is retried and not unknown", func(t *testing.T) {
		t.Parallel()
		f := setup(t, emulator.Options{}, func(c *auth0.Config) { c.MaxAttempts = 2 })
		require.NoError(t, f.c.Token(ctx))
		f.stop() // nothing listens any more
		_, err := f.c.CreateUser(ctx, auth0.CreateUserRequest{Connection: f.connection(), Email: "x@example.com", Password: testPassword})
		require.Error(t, err)
		require.NotErrorIs(t, err, auth0.ErrOutcomeUnknown)
		require.Equal(t, 2, f.obs.count("POST /api/v2/users", 0))
	})
}

func TestRateLimitHeadersAreObeyed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	t.Run("scripted 429 waits for the reset", func(t *testing.T) {
		t.Parallel()
		for _, retryAfter := range []bool{false, true} {
			f := setup(t, emulator.Options{RetryAfter: retryAfter}, nil)
			u := f.createUser(ctx, nil)
			f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "GET /api/v2/users/{id}", Status: 429}}})
			got, err := f.c.GetUser(ctx, u.UserID)
			require.NoError(t, err)
			require.Equal(t, u.UserID, got.UserID)
			require.EqualValues(t, 1, f.calls("GET /api/v2/users/{id}", 429))
			require.EqualValues(t, 1, f.calls("GET /api/v2/users/{id}", 200))
			require.GreaterOrEqual(t, f.obs.waited(), 900*time.Millisecond, "waited for the reset (1 s floor)")
		}
	})

	t.Run("remaining 0 holds requests until the reset", func(t *testing.T) {
		t.Parallel()
		// The server allows 2 at once and 2 per second; the client has no
		// limiter of its own, so only the headers keep it from 429s.
		f := setup(t, emulator.Options{Plan: emulator.PlanFree}, nil)
		u := f.createUser(ctx, nil)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 2 {
					_, err := f.c.GetUser(ctx, u.UserID)
					require.NoError(t, err)
				}
			})
		}
		wg.Wait()
		require.EqualValues(t, 8, f.calls("GET /api/v2/users/{id}", 200))
		require.Positive(t, f.obs.waited())
	})

	t.Run("wait beyond the call's budget", func(t *testing.T) {
		t.Parallel()
		f := setup(t, emulator.Options{}, func(c *auth0.Config) { c.MaxElapsed = 200 * time.Millisecond })
		u := f.createUser(ctx, nil)
		f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "GET /api/v2/users/{id}", Status: 429}}})
		_, err := f.c.GetUser(ctx, u.UserID)
		require.ErrorIs(t, err, auth0.ErrRateLimited)
		require.EqualValues(t, 1, f.e.CallCount("GET /api/v2/users/{id}"))
	})
}

func TestContextCancelledWhileWaiting(t *testing.T) {
	t.Parallel()

	returnsPromptly := func(t *testing.T, call func(context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- call(ctx) }()
		time.Sleep(50 * time.Millisecond) // let it start waiting
		cancel()
		select {
		case err := <-done:
			require.ErrorIs(t, err, context.Canceled)
			require.True(t, errors.Is(err, ctx.Err()))
		case <-time.After(30 * time.Second): // the wait it was in lasts an hour
			t.Fatal("the call did not return after its context was cancelled")
		}
	}

	t.Run("client-side limiter", func(t *testing.T) {
		t.Parallel()
		f := setup(t, emulator.Options{}, func(c *auth0.Config) {
			c.Rate = 1.0 / 3600 // one request an hour
			c.Burst = 1
			c.MaxElapsed = 2 * time.Hour
		})
		_, err := f.c.UsersByEmail(t.Context(), "a@example.com") // takes the only token
		require.NoError(t, err)
		returnsPromptly(t, func(ctx context.Context) error { _, err := f.c.UsersByEmail(ctx, "a@example.com"); return err })
		require.EqualValues(t, 1, f.e.CallCount("GET /api/v2/users-by-email"))
		// The reservation was given back: the limiter is not an hour further.
		returnsPromptly(t, func(ctx context.Context) error { _, err := f.c.UsersByEmail(ctx, "a@example.com"); return err })
	})

	t.Run("server reset", func(t *testing.T) {
		t.Parallel()
		// One request an hour on the server: the first answer says
		// Remaining 0 and a reset an hour away.
		f := setup(t, emulator.Options{Rate: 1.0 / 3600, Burst: 1}, func(c *auth0.Config) { c.MaxElapsed = 2 * time.Hour })
		u := f.createUser(t.Context(), nil)
		returnsPromptly(t, func(ctx context.Context) error { _, err := f.c.GetUser(ctx, u.UserID); return err })
		require.Zero(t, f.e.CallCount("GET /api/v2/users/{id}"), "held back by the headers, not by a 429")
	})

	t.Run("backoff", func(t *testing.T) {
		t.Parallel()
		f := setup(t, emulator.Options{Faults: emulator.Faults{ErrorRate: 1}}, func(c *auth0.Config) {
			c.BackoffBase = time.Hour
			c.BackoffMax = time.Hour
			c.MaxElapsed = 3 * time.Hour
		})
		returnsPromptly(t, func(ctx context.Context) error { _, err := f.c.UsersByEmail(ctx, "a@example.com"); return err })
	})
}
