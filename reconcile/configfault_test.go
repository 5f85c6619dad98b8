package reconcile_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/reconcile"
)

func TestConfigFaultClassifies(t *testing.T) {
	t.Parallel()
	cfg := reconcile.Config{Connection: "Nope", Settings: map[string]string{"Connection": "--connection", "Username": "--username"}}.WithDefaults()
	api := func(status int, code, msg string) error {
		return fmt.Errorf("create auth0 user: %w", &auth0.APIError{StatusCode: status, ErrorCode: code, Message: msg})
	}
	for _, tt := range []struct {
		err  error
		want string // "" = not the configuration's
	}{
		{api(400, "", "Connection does not exist."), `the connection "Nope" does not exist in the tenant: fix --connection, or create the connection in the tenant`},
		{api(400, "", "Connection is disabled."), `the connection "Nope" is disabled for syncd's application`},
		{api(400, "invalid_body", "Payload validation error: 'Missing required property: username'."), `the connection "Nope" requires usernames and syncd sends none: set --username to local-part`},
		{api(400, "", "Cannot set username for connection without requires_username."), `the connection "Nope" does not accept usernames: set --username to off`},
		{api(403, "insufficient_scope", "Insufficient scope, expected any of: create:users"), `syncd's Auth0 application lacks the scope create:users (403 insufficient_scope): grant it`},
		// The row's data, or passing: not the configuration's.
		{api(400, "invalid_body", "Payload validation error: 'Object didn't pass validation for format email: x'."), ""},
		{api(403, "", "Forbidden"), ""},
		{api(503, "", "down"), ""},
		{api(409, "auth0_idp_error", "The user already exists."), ""},
		{&auth0.TokenError{Err: &auth0.APIError{StatusCode: 401, ErrorCode: "invalid_client"}}, ""},
		{errors.New("timeout"), ""},
		{nil, ""},
	} {
		ce := cfg.ConfigFault(tt.err)
		if tt.want == "" {
			require.Nil(t, ce, "%v", tt.err)
			continue
		}
		require.NotNil(t, ce, "%v", tt.err)
		require.Contains(t, ce.Error(), tt.want)
	}
}

func TestFingerprintFollowsTheSettings(t *testing.T) {
	t.Parallel()
	a := reconcile.Config{}.WithDefaults()
	require.Equal(t, a.Fingerprint(), reconcile.Config{}.WithDefaults().Fingerprint())
	b := reconcile.Config{Connection: "Other"}.WithDefaults()
	require.NotEqual(t, a.Fingerprint(), b.Fingerprint())
	c := reconcile.Config{Roles: map[string]string{"associate": "production_associate", "lead": "x"}}.WithDefaults()
	require.NotEqual(t, a.Fingerprint(), c.Fingerprint())
}

// A reconcile that meets a configuration fault marks nothing: the row stays
// pending, says why, and converges once the configuration is right. A row
// failed for its data records the configuration; a failure decided under
// another is retried by RetryFailedUnderOtherConfig, one under the same is not.
func TestConfigFaultLeavesTheRowPending(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *reconcile.Config, _ *emulator.Options) { c.Connection = "Nope-Connection" })
	id := b.insert("Ann", "ann@example.com")
	out := b.reconcile(id)
	require.Equal(t, reconcile.ResultConfig, out.Result, "%v", out.Err)
	var ce *reconcile.ConfigError
	require.ErrorAs(t, out.Err, &ce)
	require.Equal(t, "Connection", ce.Field)
	r := b.row(id)
	require.Equal(t, "pending", r.Status)
	require.Contains(t, r.Error, `the connection "Nope-Connection" does not exist`)
	require.Nil(t, r.NextAttempt)

	bad := b.insert("Bad", "not-an-email@")
	require.Equal(t, "failed", b.reconcile(bad).Status)
	same, err := b.rec.RetryFailedUnderOtherConfig(b.ctx)
	require.NoError(t, err)
	require.Zero(t, same, "decided under this configuration: not retried")

	b.cfg.Connection = "" // the default, which exists
	fixed := b.reconciler(b.api)
	n, err := fixed.RetryFailedUnderOtherConfig(b.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Equal(t, "pending", b.row(bad).Status)
	out, err = fixed.Reconcile(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, "synced", out.Status, "%v", out.Err)
}

func TestCheckTenant(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *reconcile.Config, o *emulator.Options) {
		c.Connection = "Nope-Connection"
		c.Roles = map[string]string{"associate": "production_associate", "boss": "big_boss"}
		o.Scopes = slices.DeleteFunc(emulator.AllScopes(), func(s string) bool { return s == "create:role_members" })
	})
	tc, err := b.rec.CheckTenant(b.ctx, b.api)
	require.NoError(t, err)
	var msgs []string
	for _, f := range tc.Faults {
		msgs = append(msgs, f.Error())
	}
	require.Len(t, msgs, 3, "%q", msgs)
	require.Contains(t, msgs[0], "lacks the scope create:role_members")
	require.Contains(t, msgs[1], `the role "big_boss"`)
	require.Contains(t, msgs[2], `the connection "Nope-Connection" does not exist`)
	require.Empty(t, tc.Unchecked)

	// Without read:connections, it says what it could not check, and how the fault would show.
	b2 := setup(t, func(_ *reconcile.Config, o *emulator.Options) {
		o.Scopes = slices.DeleteFunc(emulator.AllScopes(), func(s string) bool { return s == "read:connections" })
	})
	tc, err = b2.rec.CheckTenant(b2.ctx, b2.api)
	require.NoError(t, err)
	require.Empty(t, tc.Faults)
	require.Len(t, tc.Unchecked, 1)
	require.Contains(t, tc.Unchecked[0], "the first account created reveals")
}
