package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// offboard syncs 20 employees, gives the first one a login, sets it
// inactive and waits until its row is deprovisioned; it returns its account.
func (x *e2e) offboard() string {
	x.t.Helper()
	x.exec(`INSERT INTO employees (name, email) SELECT 'E' || g, 'e' || g || '@example.com' FROM generate_series(1, 20) g`)
	require.True(x.t, assertEventually(func() bool { return x.countStatus("synced") == 20 }, 60*time.Second))
	var id int64
	var uid string
	require.NoError(x.t, x.pool.QueryRow(x.ctx, `SELECT id, auth0_user_id FROM employees ORDER BY id LIMIT 1`).Scan(&id, &uid))
	require.True(x.t, x.emu.Emulator.Login(uid))
	x.exec(`UPDATE employees SET active = false WHERE id = $1`, id)
	x.waitStatus(id, "deprovisioned")
	require.Equal(x.t, true, x.user(uid)["blocked"])
	return uid
}

// A leaver's sessions and refresh tokens are revoked after the block; one
// leaver goes through the guard's fast path (it never waits to settle).
func TestOffboardingEndToEnd(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	d := x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h")
	defer d.stop(t)
	uid := x.offboard()
	acc := x.emu.Emulator.Access(uid)
	require.Zero(t, acc.Sessions+acc.RefreshTokens)
	require.Len(t, acc.Revoked, 1)
	require.Len(t, acc.TokensRevoked, 1)
	require.Zero(t, strings.Count(x.logs.String(), "deprovision waits for the mass-deprovision guard"), "no settling for one leaver")
	_, checks := x.readyz()
	require.Equal(t, "ok", checks["session_revocation"])
	require.Equal(t, 1.0, x.metric("syncd_session_revocation_available"))
	_, metrics := x.get("/metrics")
	require.Contains(t, metrics, `syncd_access_revocations_total{kind="revoke_sessions",result="success"} 1`)
	require.Contains(t, metrics, `syncd_access_revocations_total{kind="revoke_refresh_tokens",result="success"} 1`)
}

// A tenant whose plan lacks the endpoints: the leaver is deprovisioned (the
// block counts), syncd says so once, /readyz says so and stays ready.
func TestOffboardingOnAPlanWithoutRevocation(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{Plan: emulator.PlanProfessional, Rate: 1000, Burst: 1000})
	d := x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h")
	defer d.stop(t)
	uid := x.offboard()
	require.Equal(t, 1, x.emu.Emulator.Access(uid).Sessions, "the tenant cannot end it")
	code, checks := x.readyz()
	require.Equal(t, 200, code, "information, not unready")
	require.True(t, strings.HasPrefix(checks["session_revocation"], "unavailable: "), checks["session_revocation"])
	require.Contains(t, checks["session_revocation"], "Enterprise")
	require.Equal(t, 1, strings.Count(x.logs.String(), "revocation is not available on this Auth0 tenant"))
	require.Equal(t, 0.0, x.metric("syncd_session_revocation_available"))
}

func TestOffboardingTurnedOff(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	d := x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h", "--revoke-sessions=false")
	defer d.stop(t)
	uid := x.offboard()
	require.Zero(t, x.emu.Emulator.CallCount("DELETE /api/v2/users/{id}/sessions"))
	require.Equal(t, 1, x.emu.Emulator.Access(uid).Sessions)
	_, checks := x.readyz()
	require.Contains(t, checks["session_revocation"], "off (--revoke-sessions=false)")
}
