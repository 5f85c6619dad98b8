package reconcile_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/reconcile"
)

// guarded gives the bundle a guard (settling 10s on a hand-moved clock) and
// a reconciler that asks it.
func (b *bundle) guarded(limit reconcile.Limit, c *clock) (*reconcile.Guard, *reconcile.Reconciler) {
	b.t.Helper()
	g := reconcile.NewGuard(b.pool, reconcile.GuardConfig{Limit: limit, Settle: 10 * time.Second, Now: c.Now})
	cfg := b.cfg
	cfg.Guard = g
	rec, err := reconcile.New(b.pool, b.api, cfg)
	require.NoError(b.t, err)
	return g, rec
}

// handle is what the work queue and a change source do with a key: reconcile
// it and, when that succeeds, delete its outbox rows (the source's ack). A
// key whose reconcile fails keeps its rows and is tried again.
func (b *bundle) handle(rec *reconcile.Reconciler, id string) (reconcile.Outcome, error) {
	b.t.Helper()
	var max int64
	require.NoError(b.t, b.pool.QueryRow(b.ctx, `SELECT coalesce(max(id), 0) FROM auth0_outbox WHERE employee_id = $1`, id).Scan(&max))
	out, err := rec.Reconcile(b.ctx, id)
	if err == nil {
		b.exec(`DELETE FROM auth0_outbox WHERE employee_id = $1 AND id <= $2`, id, max)
	}
	return out, err
}

// handleAll handles every key with outbox rows, as the sources would.
func (b *bundle) handleAll(rec *reconcile.Reconciler) {
	b.t.Helper()
	for _, id := range b.ids(`SELECT DISTINCT employee_id::text FROM auth0_outbox ORDER BY 1`) {
		_, err := b.handle(rec, id)
		require.NoError(b.t, err, "employee %d: the key is handled", id)
	}
}

func (b *bundle) count(sql string, args ...any) int {
	b.t.Helper()
	var n int
	require.NoError(b.t, b.pool.QueryRow(b.ctx, sql, args...).Scan(&n))
	return n
}

// cycle is everything that could make syncd look at a held deprovision
// again: the key handed over once more (a redelivery, a requeue of the
// outbox), the retry timer's query, and a guard step.
func (b *bundle) cycle(rec *reconcile.Reconciler, g *reconcile.Guard, ids []string) {
	b.t.Helper()
	for _, id := range ids {
		_, err := b.handle(rec, id)
		require.NoError(b.t, err)
	}
	require.Zero(b.t, b.count(`SELECT count(*) FROM employees WHERE auth0_sync_status = 'retrying'`), "nothing for the retry timer")
	require.NoError(b.t, g.Step(b.ctx))
	b.handleAll(rec)
}

func (b *bundle) blocked() int {
	n := 0
	for _, u := range b.emu.Users() {
		if u["blocked"] == true {
			n++
		}
	}
	return n
}

func (b *bundle) syncEmployees(n int) []string {
	b.t.Helper()
	var ids []string
	for i := range n {
		id := b.insert(fmt.Sprintf("E%d", i), fmt.Sprintf("e%d@example.com", i))
		require.Equal(b.t, "synced", b.reconcile(id).Status)
		ids = append(ids, id)
	}
	b.exec(`DELETE FROM auth0_outbox`)
	return ids
}

func TestMassChangeHeldCostsNothing(t *testing.T) {
	t.Parallel()
	for _, change := range []string{"DELETE FROM employees WHERE id = ANY($1)", "UPDATE employees SET active = false WHERE id = ANY($1)"} {
		t.Run(change, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ids := b.syncEmployees(10)[:8] // two stay
			c := newClock()
			g, rec := b.guarded(reconcile.Limit{Count: 2}, c)

			b.exec(change, ids)
			for _, id := range ids {
				out, err := b.handle(rec, id)
				require.NoError(t, err, "a deprovision the guard keeps is handled: the outbox row goes, the slot advances")
				require.Equal(t, reconcile.ResultHeld, out.Result)
			}
			require.Zero(t, b.count(`SELECT count(*) FROM auth0_outbox`))
			c.Advance(11 * time.Second)
			require.NoError(t, g.Step(b.ctx))
			require.Equal(t, 0, b.blocked(), "the batch (8 > 2) is held whole: no account blocked")
			require.Contains(t, g.Tripped(), "8 deprovisions within 1h0m0s would exceed --max-deprovision=2")
			require.Equal(t, 8, b.count(`SELECT count(*) FROM auth0_sync_logs WHERE status = 'held' AND action = 'guard_hold'`),
				"one audit row per held deprovision, when the settled batch is held")

			// Held: any number of cycles cost no Auth0 call and no audit row.
			logs := b.count(`SELECT count(*) FROM auth0_sync_logs`)
			b.emu.ResetCalls()
			for range 3 {
				b.cycle(rec, g, ids)
				c.Advance(time.Minute)
			}
			require.EqualValues(t, 0, b.emu.CallCount(""), "%v", b.emu.Calls())
			require.Equal(t, logs, b.count(`SELECT count(*) FROM auth0_sync_logs`))
			require.Zero(t, b.count(`SELECT count(*) FROM auth0_outbox`))

			// A restart: a new guard and reconciler on the same database
			// still hold them, and a release lets exactly them through.
			g2, rec2 := b.guarded(reconcile.Limit{Count: 2}, c)
			require.NoError(t, g2.Step(b.ctx))
			require.Equal(t, 8, g2.HeldCount())
			released, err := reconcile.Release(b.ctx, b.pool, "ops@example.com")
			require.NoError(t, err)
			require.Len(t, released, 8)
			require.Equal(t, 8, b.count(`SELECT count(*) FROM auth0_sync_logs WHERE action = 'guard_release' AND response_data->>'released_by' = 'ops@example.com'`))
			require.NoError(t, g2.Step(b.ctx))
			b.handleAll(rec2)
			require.Equal(t, 8, b.blocked(), "released: every account blocked")
			require.EqualValues(t, 8, b.emu.CallCount("PATCH /api/v2/users/{id}"), "each exactly once")
			require.NoError(t, g2.Step(b.ctx))
			require.Empty(t, g2.Tripped())
			require.Zero(t, b.count(`SELECT count(*) FROM syncd_deprovisions`))
			if strings.HasPrefix(change, "UPDATE") {
				require.Equal(t, 8, b.count(`SELECT count(*) FROM employees WHERE auth0_sync_status = 'deprovisioned'`))
			}
		})
	}
}

func TestUndoClearsTheHold(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.syncEmployees(6)
	c := newClock()
	g, rec := b.guarded(reconcile.Limit{Count: 2}, c)
	b.exec(`UPDATE employees SET active = false WHERE id = ANY($1)`, ids[:4])
	b.handleAll(rec)
	c.Advance(11 * time.Second)
	require.NoError(t, g.Step(b.ctx))
	require.Equal(t, 4, g.HeldCount())
	var reason string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT auth0_sync_error FROM employees WHERE id = $1`, ids[0]).Scan(&reason))
	require.Contains(t, reason, "mass deprovision guard")

	// The mistake is undone: the hold clears by itself, at no Auth0 cost.
	b.emu.ResetCalls()
	b.exec(`UPDATE employees SET active = true WHERE id = ANY($1)`, ids[:4])
	b.handleAll(rec)
	require.EqualValues(t, 0, b.emu.CallCount(""))
	require.NoError(t, g.Step(b.ctx))
	require.Empty(t, g.Tripped())
	require.Equal(t, 0, g.HeldCount())
	require.Equal(t, 6, b.count(`SELECT count(*) FROM employees WHERE auth0_sync_status = 'synced' AND auth0_sync_error IS NULL`))

	// A later, legitimate leaver goes through after the settling window.
	b.exec(`UPDATE employees SET active = false WHERE id = $1`, ids[5])
	b.handleAll(rec)
	c.Advance(11 * time.Second)
	require.NoError(t, g.Step(b.ctx))
	b.handleAll(rec)
	require.Equal(t, "deprovisioned", b.row(ids[5]).Status)
	require.Equal(t, 1, b.blocked())
}

func TestPermanentRejectionFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insert("Big", "big@example.com")
	b.exec(`UPDATE employees SET department = repeat('x', 1100000) WHERE id = $1`, id)
	out := b.reconcile(id)
	require.Equal(t, reconcile.ResultTerminal, out.Result, "%v", out.Err)
	r := b.row(id)
	require.Equal(t, "failed", r.Status)
	require.Nil(t, r.NextAttempt, "not retried until the row changes")
	require.Contains(t, r.Error, "larger than Auth0 accepts (413)")
}

func TestUsernameCollisionIsAConflict(t *testing.T) {
	t.Parallel()
	for _, answer := range []string{"emulator (400 username in use)", "real Auth0 (409 user exists)"} {
		t.Run(answer, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *reconcile.Config, o *emulator.Options) {
				c.Username = reconcile.UsernameLocalPart
				o.RequiresUsername = true
			})
			first := b.insert("Sam A", "sam@a.example.com")
			require.Equal(t, "synced", b.reconcile(first).Status)
			second := b.insert("Sam B", "sam@b.example.com")
			if strings.HasPrefix(answer, "real") {
				b.emu.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/users", Status: 409, Times: 100}}})
			}
			out := b.reconcile(second)
			require.Equal(t, reconcile.ResultTerminal, out.Result, "%v", out.Err)
			r := b.row(second)
			require.Equal(t, "conflict", r.Status)
			require.Contains(t, r.Error, `username "sam" (made from sam@b.example.com) is taken by another Auth0 account`)
			require.Nil(t, r.NextAttempt)
		})
	}
}

// logBuffer is a slog handler's writer safe for the workers' concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) count(s string) int { return strings.Count(l.String(), s) }

func TestNoPersonalOrForeignDataInLogs(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	b := setup(t, func(c *reconcile.Config, _ *emulator.Options) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	id := b.insert("Kim", "kim@example.com")
	b.reconcile(id)
	uid := b.row(id).UserID
	_, err := b.api.UpdateUser(b.ctx, uid, auth0.UpdateUserRequest{AppMetadata: map[string]any{"billing_token": "tok_foreign_secret"}})
	require.NoError(t, err)
	b.exec(`UPDATE employees SET email = 'kim.new@example.com', phone_number = '+15557654321' WHERE id = $1`, id)
	require.Equal(t, "synced", b.reconcile(id).Status)

	require.Contains(t, logs.String(), "update email")
	require.NotContains(t, logs.String(), "kim.new@example.com", "the log names fields, not values")
	require.NotContains(t, logs.String(), "+15557654321")
	require.Zero(t, b.count(`SELECT count(*) FROM auth0_sync_logs WHERE response_data::text LIKE '%billing_token%'`),
		"the audit row keeps only the keys syncd owns")
	require.NotZero(t, b.count(`SELECT count(*) FROM auth0_sync_logs WHERE response_data->'app_metadata' ? 'employee_id'`))
}
