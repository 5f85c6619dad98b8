package auth0_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
)

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	good := func() auth0.Config {
		u, err := auth0.ParseDomain("tenant.example.auth0.com")
		require.NoError(t, err)
		return auth0.Config{BaseURL: u, ClientID: "id", ClientSecret: "s3cret-value"}
	}
	tests := []struct {
		name   string
		change func(*auth0.Config)
		field  string
	}{
		{"no base URL", func(c *auth0.Config) { c.BaseURL = nil }, "BaseURL"},
		{"http to the network", func(c *auth0.Config) { c.BaseURL = &url.URL{Scheme: "http", Host: "tenant.example.com"} }, "BaseURL"},
		{"ftp", func(c *auth0.Config) { c.BaseURL = &url.URL{Scheme: "ftp", Host: "127.0.0.1"} }, "BaseURL"},
		{"path", func(c *auth0.Config) { c.BaseURL = &url.URL{Scheme: "https", Host: "t.example.com", Path: "/api"} }, "BaseURL"},
		{"no client id", func(c *auth0.Config) { c.ClientID = "" }, "ClientID"},
		{"no secret", func(c *auth0.Config) { c.ClientSecret = "" }, "ClientSecret"},
		{"negative rate", func(c *auth0.Config) { c.Rate = -1 }, "Rate"},
		{"negative burst", func(c *auth0.Config) { c.Burst = -1 }, "Burst"},
		{"negative attempts", func(c *auth0.Config) { c.MaxAttempts = -1 }, "MaxAttempts"},
		{"negative elapsed", func(c *auth0.Config) { c.MaxElapsed = -time.Second }, "MaxElapsed"},
		{"negative timeout", func(c *auth0.Config) { c.RequestTimeout = -time.Second }, "RequestTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := good()
			tt.change(&cfg)
			_, err := auth0.New(cfg)
			var ce *auth0.ConfigError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tt.field, ce.Field)
			require.NotContains(t, err.Error(), "s3cret-value")
		})
	}
	for _, base := range []string{"https://tenant.example.com", "http://127.0.0.1:8089", "http://localhost:1", "http://[::1]:2"} {
		u, err := url.Parse(base)
		require.NoError(t, err)
		cfg := good()
		cfg.BaseURL = u
		_, err = auth0.New(cfg)
		require.NoError(t, err, base)
	}
}

func TestUserLifecycle(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := setup(t, emulator.Options{}, nil)

	created, err := f.c.CreateUser(ctx, auth0.CreateUserRequest{
		Connection:   f.connection(),
		Email:        "Ada.Lovelace@Example.com",
		Name:         "Ada Lovelace",
		Password:     testPassword,
		AppMetadata:  map[string]any{"employee_id": "42", "department": "ops"},
		UserMetadata: map[string]any{"timezone": "America/Chicago"},
	})
	require.NoError(t, err)
	require.Regexp(t, `^auth0\|[0-9a-f]{24}$`, created.UserID)
	require.Equal(t, "ada.lovelace@example.com", created.Email)
	require.Equal(t, "Ada Lovelace", created.Name)
	require.True(t, created.InConnection(f.connection()))
	require.Equal(t, "42", created.AppMetadata["employee_id"])
	require.False(t, created.CreatedAt.IsZero())

	got, err := f.c.GetUser(ctx, created.UserID)
	require.NoError(t, err)
	require.Equal(t, created.UserID, got.UserID)
	require.Equal(t, "America/Chicago", got.UserMetadata["timezone"])

	// A nil value deletes the key; the others are merged at the first level.
	name := "Ada King"
	blocked := true
	updated, err := f.c.UpdateUser(ctx, created.UserID, auth0.UpdateUserRequest{
		Name:        &name,
		Blocked:     &blocked,
		AppMetadata: map[string]any{"department": nil, "role_code": "lead"},
	})
	require.NoError(t, err)
	require.Equal(t, "Ada King", updated.Name)
	require.True(t, updated.Blocked)
	require.Equal(t, map[string]any{"employee_id": "42", "role_code": "lead"}, updated.AppMetadata)
	require.Equal(t, map[string]any{"employee_id": "42", "role_code": "lead"}, f.e.User(created.UserID)["app_metadata"])

	// An empty update reads instead of writing.
	writes := f.e.WriteCount()
	same, err := f.c.UpdateUser(ctx, created.UserID, auth0.UpdateUserRequest{})
	require.NoError(t, err)
	require.Equal(t, updated.Name, same.Name)
	require.Equal(t, writes, f.e.WriteCount())

	// users-by-email lower-cases what it is given.
	byEmail, err := f.c.UsersByEmail(ctx, "  ADA.LOVELACE@example.COM ")
	require.NoError(t, err)
	require.Len(t, byEmail, 1)
	require.Equal(t, created.UserID, byEmail[0].UserID)
	none, err := f.c.UsersByEmail(ctx, "nobody@example.com")
	require.NoError(t, err)
	require.Empty(t, none)

	require.NoError(t, f.c.DeleteUser(ctx, created.UserID))
	_, err = f.c.GetUser(ctx, created.UserID)
	require.ErrorIs(t, err, auth0.ErrNotFound)
	var ae *auth0.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "inexistent_user", ae.ErrorCode)
	require.Equal(t, "The user does not exist.", ae.Message)
	require.NoError(t, f.c.DeleteUser(ctx, created.UserID), "DELETE is idempotent")

	for _, err := range []error{
		func() error { _, err := f.c.GetUser(ctx, ""); return err }(),
		func() error { _, err := f.c.UpdateUser(ctx, "", auth0.UpdateUserRequest{Name: &name}); return err }(),
		f.c.DeleteUser(ctx, ""),
		func() error { _, err := f.c.UsersByEmail(ctx, " "); return err }(),
		func() error { _, err := f.c.ListUserRoles(ctx, ""); return err }(),
		f.c.ListRoleUsers(ctx, "", func([]auth0.RoleMember) error { return nil }),
	} {
		require.Error(t, err)
	}
	require.Zero(t, f.e.CallCount("GET /api/v2/users"), "empty ids never reach the list endpoint")
}

func TestSentinels(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := setup(t, emulator.Options{Scopes: []string{"read:users", "create:users", "update:users", "read:roles"}}, func(c *auth0.Config) {
		c.MaxAttempts = 1
	})
	u := f.createUser(ctx, nil)

	apiErr := func(t *testing.T, err error, sentinel error, status int, code string) {
		t.Helper()
		require.ErrorIs(t, err, sentinel)
		var ae *auth0.APIError
		require.ErrorAs(t, err, &ae)
		require.Equal(t, status, ae.StatusCode)
		if code != "" {
			require.Equal(t, code, ae.ErrorCode)
		}
		for _, other := range []error{auth0.ErrNotFound, auth0.ErrConflict, auth0.ErrRateLimited, auth0.ErrUnauthorized, auth0.ErrForbidden, auth0.ErrBadRequest, auth0.ErrOutcomeUnknown} {
			if other != sentinel {
				require.NotErrorIs(t, err, other)
			}
		}
	}

	t.Run("not found", func(t *testing.T) {
		_, err := f.c.GetUser(ctx, "auth0|000000000000000000000000")
		apiErr(t, err, auth0.ErrNotFound, 404, "inexistent_user")
		_, err = f.c.ListUserRoles(ctx, "auth0|000000000000000000000000")
		apiErr(t, err, auth0.ErrNotFound, 404, "")
	})
	t.Run("conflict", func(t *testing.T) {
		_, err := f.c.CreateUser(ctx, auth0.CreateUserRequest{Connection: f.connection(), Email: strings.ToUpper(u.Email), Password: testPassword})
		apiErr(t, err, auth0.ErrConflict, 409, "auth0_idp_error")
		require.Contains(t, err.Error(), "The user already exists.")
	})
	t.Run("bad request", func(t *testing.T) {
		const weak = "weakpw"
		_, err := f.c.CreateUser(ctx, auth0.CreateUserRequest{Connection: f.connection(), Email: "weak@example.com", Password: weak})
		apiErr(t, err, auth0.ErrBadRequest, 400, "")
		require.NotContains(t, err.Error(), weak)
		_, err = f.c.SearchUsers(ctx, auth0.SearchUsersRequest{Page: 10, PerPage: 100})
		apiErr(t, err, auth0.ErrBadRequest, 400, "invalid_paging")
	})
	t.Run("forbidden", func(t *testing.T) {
		err := f.c.DeleteUser(ctx, u.UserID) // no delete:users scope
		apiErr(t, err, auth0.ErrForbidden, 403, "insufficient_scope")
		require.Contains(t, err.Error(), "Insufficient scope")
	})
	t.Run("unauthorized", func(t *testing.T) {
		f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "GET /api/v2/users/{id}", Status: 401, Times: 2}}})
		_, err := f.c.GetUser(ctx, u.UserID)
		apiErr(t, err, auth0.ErrUnauthorized, 401, "")
	})
	t.Run("rate limited", func(t *testing.T) {
		f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "GET /api/v2/users/{id}", Status: 429}}})
		_, err := f.c.GetUser(ctx, u.UserID) // MaxAttempts 1
		apiErr(t, err, auth0.ErrRateLimited, 429, "too_many_requests")
		require.True(t, auth0.Temporary(err))
		var ae *auth0.APIError
		require.ErrorAs(t, err, &ae)
		require.Positive(t, ae.RetryAfter)
	})
	t.Run("outcome unknown", func(t *testing.T) {
		f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/users", LoseAnswer: true}}})
		_, err := f.c.CreateUser(ctx, auth0.CreateUserRequest{Connection: f.connection(), Email: "lost@example.com", Password: testPassword})
		require.ErrorIs(t, err, auth0.ErrOutcomeUnknown)
		require.True(t, auth0.Temporary(err))
	})
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := setup(t, emulator.Options{}, nil)

	const wrong = "not-the-secret-at-all"
	bad := f.newClient(func(c *auth0.Config) { c.ClientSecret = wrong })
	err := bad.Token(ctx)
	require.ErrorIs(t, err, auth0.ErrUnauthorized)
	var ae *auth0.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "invalid_client", ae.ErrorCode)
	require.NotContains(t, err.Error(), wrong)
	require.NotContains(t, err.Error(), f.cfg.ClientSecret)

	// Wrong credentials are final: one token request per call, no retries.
	f.e.ResetCalls()
	_, err = bad.GetUser(ctx, "auth0|000000000000000000000000")
	require.ErrorIs(t, err, auth0.ErrUnauthorized)
	require.EqualValues(t, 1, f.e.CallCount(emulator.EndpointToken))
	require.Zero(t, f.e.CallCount(""))

	// Token makes one attempt; an API call retries a token endpoint that
	// fails for a moment.
	n := len(f.obs.tokenRefreshes())
	f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: emulator.EndpointToken, Status: 503}}})
	err = f.c.Token(ctx)
	require.ErrorAs(t, err, &ae)
	require.Equal(t, 503, ae.StatusCode)
	require.True(t, auth0.Temporary(err))
	f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: emulator.EndpointToken, Status: 503}}})
	f.e.ResetCalls()
	_, err = f.c.GetUser(ctx, "auth0|000000000000000000000000")
	require.ErrorIs(t, err, auth0.ErrNotFound)
	require.EqualValues(t, 1, f.calls(emulator.EndpointToken, 503))
	require.EqualValues(t, 1, f.calls(emulator.EndpointToken, 200))
	refreshes := f.obs.tokenRefreshes()[n:]
	require.Len(t, refreshes, 3)
	require.Error(t, refreshes[0])
	require.Error(t, refreshes[1])
	require.NoError(t, refreshes[2])

	// An audience the tenant does not know: 403 access_denied.
	other := setup(t, emulator.Options{Domain: "tenant.example.com"}, nil)
	err = other.c.Token(ctx)
	require.ErrorIs(t, err, auth0.ErrForbidden)
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "access_denied", ae.ErrorCode)
}
