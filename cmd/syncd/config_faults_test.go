package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// Faults that are the operator's — a connection that does not exist, a
// mapped role the tenant lacks, a scope not granted — hold all work instead
// of failing rows: the rows stay pending, the log says the cause once with
// its fix, /readyz and `syncd status` name it, and once it is fixed every
// row converges with no operator action.

// holdLines counts the log lines that announce a configuration fault
// containing text.
func (x *e2e) holdLines(text string) int {
	n := 0
	for _, l := range strings.Split(x.logs.String(), "\n") {
		if strings.Contains(l, `"msg":"configuration fault: `) && strings.Contains(l, text) {
			n++
		}
	}
	return n
}

// waitHeld waits until /readyz is 503 with the breaker naming text.
func (x *e2e) waitHeld(text string) map[string]string {
	x.t.Helper()
	var checks map[string]string
	ok := assertEventually(func() bool {
		var code int
		code, checks = x.readyz()
		return code == 503 && strings.Contains(checks["breaker"], text)
	}, 60*time.Second)
	require.True(x.t, ok, "/readyz does not name %q: %v", text, checks)
	return checks
}

// statusOut is `syncd status`'s output.
func (x *e2e) statusOut() string {
	x.t.Helper()
	code, out, errOut := runCLI(x.t, map[string]string{"DATABASE_URL": x.dbURL}, "status")
	require.Equal(x.t, 0, code, errOut)
	return out
}

func (x *e2e) requireNoneFailed() {
	x.t.Helper()
	require.Zero(x.t, x.countStatus("failed"), "a configuration fault marked rows failed")
	require.Zero(x.t, x.countStatus("synced"))
}

func TestConnectionTypoHoldsWorkAndRecoversOnRestart(t *testing.T) {
	t.Parallel()
	// Without read:connections the start cannot check the connection: the
	// first create reveals it, as with a real tenant that grants only the
	// scopes the README lists.
	scopes := slices.DeleteFunc(emulator.AllScopes(), func(s string) bool { return s == "read:connections" })
	x := newE2E(t, emulator.Options{Scopes: scopes})
	x.exec(`INSERT INTO employees (name, email) SELECT 'E' || g, 'e' || g || '@example.com' FROM generate_series(1, 10) g`)
	// Three rows an older syncd marked failed for the same typo: their work
	// was handled (no outbox row), so only a configuration change retries them.
	x.exec(`DELETE FROM auth0_outbox WHERE employee_id <= 3`)
	x.exec(`UPDATE employees SET auth0_sync_status = 'failed', auth0_sync_attempts = 1,
		auth0_sync_error = 'create auth0 user: auth0: 400 Bad Request: Connection does not exist.' WHERE id <= 3`)

	fault := `the connection \"Nope-Connection\" does not exist in the tenant: fix --connection (AUTH0_CONNECTION)`
	d := x.start("notify", emulator.DefaultClientSecret, "--connection", "Nope-Connection", "--resync-interval", "1h")
	x.waitHeld(`the connection "Nope-Connection" does not exist in the tenant: fix --connection`)
	require.Contains(t, x.logs.String(), "not checked at start: connection")
	// Let the probe try the revealing row again at least twice.
	require.True(t, assertEventually(func() bool { return countStatus(x.emu.Emulator, "POST /api/v2/users", 400) >= 3 }, 60*time.Second))
	require.True(t, assertEventually(func() bool { return x.metric("syncd_reconciles_running") == 0 }, 30*time.Second))
	x.requireNoneFailed()
	require.Equal(t, 1, x.holdLines(fault), "said once")
	var said int
	require.NoError(t, x.pool.QueryRow(x.ctx, `SELECT count(*) FROM employees WHERE auth0_sync_status = 'pending'
		AND auth0_sync_error LIKE '%the connection "Nope-Connection" does not exist%'`).Scan(&said))
	require.Positive(t, said, "a row that met the fault says why it waits")
	out := x.statusOut()
	require.Contains(t, out, "HOLDING ALL WORK")
	require.Contains(t, out, `the connection "Nope-Connection" does not exist in the tenant: fix --connection (AUTH0_CONNECTION)`)
	d.stop(t)
	require.NotContains(t, x.statusOut(), "HOLDING ALL WORK", "the hold is cleared at shutdown")

	// The fixed setting: every row converges, the three failed ones too.
	d = x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h")
	require.True(t, assertEventually(func() bool { return x.countStatus("synced") == 10 }, 60*time.Second),
		"synced %d, failed %d, pending %d", x.countStatus("synced"), x.countStatus("failed"), x.countStatus("pending"))
	code, _ := x.readyz()
	require.Equal(t, 200, code)
	d.stop(t)
	require.Equal(t, 1, x.holdLines(fault))
}

func TestMissingRoleHoldsWorkUntilTheRoleExists(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{Roles: []string{"production_associate"}})
	x.exec(`INSERT INTO employees (name, email, role_code) SELECT 'E' || g, 'e' || g || '@example.com',
		CASE WHEN g % 2 = 0 THEN 'lead' ELSE 'associate' END FROM generate_series(1, 10) g`)

	fault := `the role \"production_lead\" (mapped in --roles (SYNCD_ROLES)) does not exist in the tenant: create the role in the tenant, or fix --roles (SYNCD_ROLES)`
	d := x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h")
	checks := x.waitHeld(`the role "production_lead"`)
	require.Contains(t, checks["breaker"], "create the role in the tenant")
	// The probe looks at the roles again (with growing pauses) and finds it still missing.
	require.True(t, assertEventually(func() bool { return countStatus(x.emu.Emulator, "GET /api/v2/roles", 200) >= 3 }, 60*time.Second))
	x.requireNoneFailed()
	require.Equal(t, 1, x.holdLines(fault), "said once")
	require.Contains(t, x.statusOut(), `the role "production_lead"`)

	// Fixed in the tenant, no restart: everything converges by itself.
	x.emu.Emulator.AddRole("production_lead")
	require.True(t, assertEventually(func() bool { return x.countStatus("synced") == 10 }, 90*time.Second),
		"synced %d, pending %d", x.countStatus("synced"), x.countStatus("pending"))
	code, _ := x.readyz()
	require.Equal(t, 200, code)
	require.True(t, assertEventually(func() bool { return !strings.Contains(x.statusOut(), "HOLDING") }, 30*time.Second))
	d.stop(t)
	require.Equal(t, 1, x.holdLines(fault))
	require.Contains(t, x.logs.String(), "breaker closed")
}

func TestMissingScopeHoldsWorkUntilGranted(t *testing.T) {
	t.Parallel()
	scopes := slices.DeleteFunc(emulator.AllScopes(), func(s string) bool { return s == "create:users" })
	x := newE2E(t, emulator.Options{Scopes: scopes})
	x.exec(`INSERT INTO employees (name, email) SELECT 'E' || g, 'e' || g || '@example.com' FROM generate_series(1, 10) g`)

	fault := `syncd's Auth0 application lacks the scope create:users`
	d := x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h")
	checks := x.waitHeld(fault)
	require.Contains(t, checks["breaker"], "grant it in the Auth0 dashboard")
	// The probe asks for new tokens (a grant shows only in a new one).
	require.True(t, assertEventually(func() bool { return countStatus(x.emu.Emulator, emulator.EndpointToken, 200) >= 3 }, 60*time.Second))
	x.requireNoneFailed()
	require.Equal(t, 1, x.holdLines(fault), "said once")
	require.Contains(t, x.statusOut(), fault)

	x.emu.Emulator.SetScopes(emulator.AllScopes())
	require.True(t, assertEventually(func() bool { return x.countStatus("synced") == 10 }, 90*time.Second),
		"synced %d, pending %d", x.countStatus("synced"), x.countStatus("pending"))
	d.stop(t)
	require.Equal(t, 1, x.holdLines(fault))
}

// A connection that requires usernames while syncd sends none is a setting
// only a restart can fix: found at start, it is one line and exit status 2.
func TestUsernamesTheConnectionRequiresExit2(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{RequiresUsername: true})
	x.exec(`INSERT INTO employees (name, email) VALUES ('E', 'e@example.com')`)
	code, _, stderr := runCLI(t, map[string]string{"DATABASE_URL": x.dbURL, "AUTH0_DOMAIN": x.emu.URL, "AUTH0_CLIENT_ID": emulator.DefaultClientID,
		"AUTH0_CLIENT_SECRET": emulator.DefaultClientSecret, "LOG_FORMAT": "json", "METRICS_ADDR": ""}, "run")
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, `syncd: the connection "Username-Password-Authentication" requires usernames and syncd sends none: set --username (SYNCD_USERNAME) to local-part`+"\n")
	require.Equal(t, 1, x.countStatus("pending"))
}

// A wrong client secret reads as what it is, first, in plan, run and status
// (issue 19, item 10) — not as a role problem.
func TestWrongSecretLeadsWithTheCause(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	x.exec(`INSERT INTO employees (name, email) VALUES ('E', 'e@example.com')`)
	want := "Auth0 refused the client credentials (401 invalid_client): check AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET"
	environ := map[string]string{"DATABASE_URL": x.dbURL, "AUTH0_DOMAIN": x.emu.URL, "AUTH0_CLIENT_ID": emulator.DefaultClientID,
		"AUTH0_CLIENT_SECRET": "wrong-secret", "LOG_FORMAT": "json"}
	code, _, stderr := runCLI(t, environ, "plan")
	require.Equal(t, 1, code)
	require.Equal(t, "syncd: "+want+"\n", stderr)

	d := x.start("notify", "wrong-secret", "--resync-interval", "1h")
	checks := x.waitHeld(want)
	require.Contains(t, checks["auth0_token"], want)
	require.True(t, assertEventually(func() bool { return strings.Contains(x.statusOut(), want) }, 30*time.Second), "syncd status says it")
	require.True(t, assertEventually(func() bool { return countStatus(x.emu.Emulator, emulator.EndpointToken, 401) >= 3 }, 60*time.Second), "the probe asks again")
	require.Equal(t, 1, strings.Count(x.logs.String(), `"msg":"breaker open: `+want), "said once, leading with the cause")
	d.stop(t)
}
