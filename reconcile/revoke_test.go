package reconcile_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/reconcile"
)

const (
	epBlock    = "PATCH /api/v2/users/{id}"
	epSessions = "DELETE /api/v2/users/{id}/sessions"
	epTokens   = "DELETE /api/v2/users/{id}/refresh-tokens"
)

// loggedIn is a synced employee with two logins (two sessions, two refresh
// tokens) and no calls counted yet.
func (b *bundle) loggedIn(name, email string) (string, string) {
	b.t.Helper()
	id := b.insert(name, email)
	require.Equal(b.t, "synced", b.reconcile(id).Status)
	uid := b.row(id).UserID
	require.True(b.t, b.emu.Login(uid))
	require.True(b.t, b.emu.Login(uid))
	b.emu.ResetCalls()
	return id, uid
}

func (b *bundle) actions(id string) []string {
	b.t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT action || ':' || status FROM auth0_sync_logs WHERE employee_id = $1 ORDER BY id`, id)
	require.NoError(b.t, err)
	var out []string
	for rows.Next() {
		var s string
		require.NoError(b.t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(b.t, rows.Err())
	return out
}

func TestLeaverLosesSessionsAndRefreshTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id, uid := b.loggedIn("Ada Lovelace", "ada@example.com")
	require.Equal(t, emulator.Access{Sessions: 2, RefreshTokens: 2}, b.emu.Access(uid))

	b.exec(`UPDATE employees SET active = false WHERE id = $1`, id)
	out := b.reconcile(id)
	require.Equal(t, reconcile.ResultDone, out.Result, "%v", out.Err)
	require.Equal(t, "deprovisioned", b.row(id).Status)
	require.Equal(t, true, b.user(uid)["blocked"])
	acc := b.emu.Access(uid)
	require.Zero(t, acc.Sessions)
	require.Zero(t, acc.RefreshTokens)
	require.Len(t, acc.Revoked, 1)
	require.Len(t, acc.TokensRevoked, 1)
	require.EqualValues(t, 3, b.emu.CallCount(""), "block + 2: %v", b.emu.Calls())
	require.EqualValues(t, 1, b.emu.CallCount(epBlock))
	require.Contains(t, b.actions(id), "revoke_sessions:success")
	require.Contains(t, b.actions(id), "revoke_refresh_tokens:success")
	require.Equal(t, []reconcile.ActionKind{reconcile.ActionUpdate, reconcile.ActionBlock, reconcile.ActionRevokeSessions, reconcile.ActionRevokeRefreshTokens},
		kinds(out.Applied))

	// A second reconcile of the leaver (a redelivery, a resync) revokes nothing again.
	b.emu.ResetCalls()
	require.Equal(t, "deprovisioned", b.reconcile(id).Status)
	_, err := reconcile.Requeue(b.ctx, b.pool, []string{id}, false) // clears the last-applied record: Auth0 is read
	require.NoError(t, err)
	require.Equal(t, "deprovisioned", b.reconcile(id).Status)
	require.Zero(t, b.emu.CallCount(epSessions)+b.emu.CallCount(epTokens), "%v", b.emu.Calls())

	// Back, logs in, leaves again: revoked afresh.
	b.exec(`UPDATE employees SET active = true WHERE id = $1`, id)
	require.Equal(t, "synced", b.reconcile(id).Status)
	require.True(t, b.emu.Login(uid))
	b.exec(`UPDATE employees SET active = false WHERE id = $1`, id)
	require.Equal(t, "deprovisioned", b.reconcile(id).Status)
	acc = b.emu.Access(uid)
	require.Zero(t, acc.Sessions+acc.RefreshTokens)
	require.Len(t, acc.Revoked, 2)
	require.Len(t, acc.TokensRevoked, 2)
}

func kinds(p reconcile.Plan) []reconcile.ActionKind {
	var out []reconcile.ActionKind
	for _, a := range p {
		out = append(out, a.Kind)
	}
	return out
}

// A revocation that fails is retried like any transient failure; the row is
// not deprovisioned until it is done, and the retry revokes only what remains.
func TestRevocationFailureIsRetriedAndNotRepeated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id, uid := b.loggedIn("Ada Lovelace", "ada@example.com")
	b.emu.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: epTokens, Status: 503, Times: 3}}})
	b.exec(`UPDATE employees SET active = false WHERE id = $1`, id)
	out := b.reconcile(id)
	require.Equal(t, reconcile.ResultRetry, out.Result)
	r := b.row(id)
	require.Equal(t, "retrying", r.Status)
	require.Contains(t, r.Error, "the account is blocked, but revoke_refresh_tokens failed")
	require.Equal(t, true, b.user(uid)["blocked"], "the block is done")
	acc := b.emu.Access(uid)
	require.Zero(t, acc.Sessions)
	require.Equal(t, 2, acc.RefreshTokens)

	b.emu.ResetCalls()
	out = b.reconcile(id)
	require.Equal(t, reconcile.ResultDone, out.Result, "%v", out.Err)
	require.Equal(t, "deprovisioned", b.row(id).Status)
	require.Zero(t, b.emu.CallCount(epBlock), "blocked already: %v", b.emu.Calls())
	require.Zero(t, b.emu.CallCount(epSessions), "sessions were revoked and recorded: not again")
	require.EqualValues(t, 1, b.emu.CallCount(epTokens))
	acc = b.emu.Access(uid)
	require.Zero(t, acc.Sessions+acc.RefreshTokens)
	require.Len(t, acc.Revoked, 1)
}

// A process that died after the block (the answer of the PATCH reached it,
// nothing was recorded) leaves the revocation owed: the next attempt, which
// finds the account blocked, revokes.
func TestCrashAfterBlockStillRevokes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id, uid := b.loggedIn("Ada Lovelace", "ada@example.com")
	// What the dead worker did: the account is blocked in Auth0, the row
	// says nothing of it and its lease is held.
	blocked := true
	_, err := b.api.UpdateUser(b.ctx, uid, auth0.UpdateUserRequest{Blocked: &blocked})
	require.NoError(t, err)
	b.exec(`UPDATE employees SET active = false, auth0_synced_state = NULL WHERE id = $1`, id)
	b.exec(`UPDATE employees SET auth0_sync_status = 'syncing', auth0_locked_until = now() + interval '1 hour', auth0_locked_by = 'dead' WHERE id = $1`, id)
	b.expireLease(id)
	b.emu.ResetCalls()
	require.Equal(t, "deprovisioned", b.reconcile(id).Status)
	acc := b.emu.Access(uid)
	require.Zero(t, acc.Sessions+acc.RefreshTokens)
	require.Len(t, acc.Revoked, 1)
	require.Len(t, acc.TokensRevoked, 1)
}

// A tenant whose plan lacks the endpoints: the block counts as done, syncd
// says so once and stops calling them.
func TestRevocationUnavailableOnPlan(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	b := setup(t, func(c *reconcile.Config, _ *emulator.Options) { c.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
	one, uid := b.loggedIn("Ada Lovelace", "ada@example.com")
	two, uid2 := b.loggedIn("Alan Turing", "alan@example.com")
	require.NoError(t, b.emu.SetRate(emulator.PlanProfessional, 1000, 1000)) // the plan's rules, a generous rate
	b.emu.ResetCalls()

	b.exec(`UPDATE employees SET active = false WHERE id = ANY($1)`, []string{one, two})
	out := b.reconcile(one)
	require.Equal(t, reconcile.ResultDone, out.Result, "%v", out.Err)
	require.Equal(t, "deprovisioned", b.row(one).Status)
	require.Contains(t, b.rec.RevocationUnavailable(), "operation_not_supported")
	require.Contains(t, b.actions(one), "revoke_sessions:unavailable")
	require.Equal(t, true, b.user(uid)["blocked"])

	require.Equal(t, "deprovisioned", b.reconcile(two).Status)
	require.Equal(t, true, b.user(uid2)["blocked"])
	require.EqualValues(t, 2, b.emu.CallCount(epSessions)+b.emu.CallCount(epTokens), "the first leaver's two calls, none after: %v", b.emu.Calls())
	require.Equal(t, 1, logs.count("revocation is not available on this Auth0 tenant"), "said once")
	require.Equal(t, 2, b.emu.Access(uid2).Sessions, "not ended: the tenant cannot")
}

func TestKeepSessionsRevokesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *reconcile.Config, _ *emulator.Options) { c.KeepSessions = true })
	id, uid := b.loggedIn("Ada Lovelace", "ada@example.com")
	b.exec(`UPDATE employees SET active = false WHERE id = $1`, id)
	require.Equal(t, "deprovisioned", b.reconcile(id).Status)
	require.EqualValues(t, 1, b.emu.CallCount(""), "%v", b.emu.Calls())
	require.Equal(t, 2, b.emu.Access(uid).Sessions)
}

// Every kind of deprovision revokes: a deleted row (its outbox row carries
// the account) and an orphan account the drift scan blocks.
func TestDeletedRowAndOrphanRevoke(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id, uid := b.loggedIn("Ada Lovelace", "ada@example.com")
	b.exec(`DELETE FROM employees WHERE id = $1`, id)
	out := b.reconcile(id)
	require.Equal(t, reconcile.ResultDone, out.Result, "%v", out.Err)
	require.Equal(t, true, b.user(uid)["blocked"])
	require.Zero(t, b.emu.Access(uid).Sessions+b.emu.Access(uid).RefreshTokens)
	require.EqualValues(t, 1, b.emu.CallCount(epSessions))

	oid, ouid := b.loggedIn("Grace Hopper", "grace@example.com")
	b.exec(`UPDATE employees SET auth0_user_id = NULL WHERE id = $1`, oid) // the account is nobody's now
	require.Equal(t, reconcile.Plan{{Kind: reconcile.ActionBlock, UserID: ouid}, {Kind: reconcile.ActionRevokeSessions}, {Kind: reconcile.ActionRevokeRefreshTokens}},
		b.rec.OrphanPlan(reconcile.Orphan{UserID: ouid}), "the plan shows the revocations")
	out, err := b.rec.DeprovisionOrphan(b.ctx, reconcile.Orphan{UserID: ouid, EmployeeID: oid})
	require.NoError(t, err)
	require.Equal(t, reconcile.ResultDone, out.Result)
	require.Equal(t, true, b.user(ouid)["blocked"])
	acc := b.emu.Access(ouid)
	require.Zero(t, acc.Sessions+acc.RefreshTokens)
	require.Len(t, acc.Revoked, 1)
}

// In delete mode the revocations come first: once the account is deleted its
// id names nothing to revoke.
func TestDeleteModeRevokesFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *reconcile.Config, _ *emulator.Options) { c.Deprovision = reconcile.DeprovisionDelete })
	id, uid := b.loggedIn("Ada Lovelace", "ada@example.com")
	b.exec(`UPDATE employees SET active = false WHERE id = $1`, id)
	p, _, err := b.rec.PlanFor(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, []reconcile.ActionKind{reconcile.ActionRevokeSessions, reconcile.ActionRevokeRefreshTokens, reconcile.ActionDelete}, kinds(p))
	out := b.reconcile(id)
	require.Equal(t, reconcile.ResultDone, out.Result, "%v", out.Err)
	require.Equal(t, kinds(p), kinds(out.Applied))
	acc := b.emu.Access(uid)
	require.Len(t, acc.Revoked, 1)
	require.Len(t, acc.TokensRevoked, 1)
	require.Zero(t, b.accounts("ada@example.com"))
}

// Through the daemon's guard (fast path on): one leaver is blocked and
// revoked in the reconcile that sees it; a mass change is held whole, its
// revocations with it, at no Auth0 cost.
func TestRevocationGoesThroughTheGuard(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := newClock()
	g := reconcile.NewGuard(b.pool, reconcile.GuardConfig{Limit: reconcile.Limit{Percent: 20}, Settle: 10 * time.Second, Now: c.Now, Fast: true})
	cfg := b.cfg
	cfg.Guard = g
	rec, err := reconcile.New(b.pool, b.api, cfg)
	require.NoError(t, err)
	ids := b.syncEmployees(10) // limit 2 of 10; 1 at once
	var uids []string
	for _, id := range ids {
		uid := b.row(id).UserID
		require.True(t, b.emu.Login(uid))
		uids = append(uids, uid)
	}
	b.emu.ResetCalls()

	b.exec(`UPDATE employees SET active = false WHERE id = $1`, ids[0])
	out, err := b.handle(rec, ids[0])
	require.NoError(t, err)
	require.Equal(t, reconcile.ResultDone, out.Result, "%v", out.Err)
	require.Equal(t, "deprovisioned", b.row(ids[0]).Status)
	require.Zero(t, b.emu.Access(uids[0]).Sessions)
	require.EqualValues(t, 3, b.emu.CallCount(""))

	b.emu.ResetCalls()
	b.exec(`UPDATE employees SET active = false WHERE id = ANY($1)`, ids[1:5])
	b.handleAll(rec)
	c.Advance(11 * time.Second)
	require.NoError(t, g.Step(b.ctx))
	b.cycle(rec, g, ids[1:5])
	require.Zero(t, b.emu.CallCount(""), "held: no Auth0 call, no revocation: %v", b.emu.Calls())
	for _, uid := range uids[1:5] {
		require.Equal(t, 1, b.emu.Access(uid).Sessions)
	}
	require.Equal(t, 4, b.count(`SELECT count(*) FROM syncd_deprovisions WHERE state = 'held'`))
}
