package reconcile_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/reconcile"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

// clock is a clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type guardBundle struct {
	t     *testing.T
	ctx   context.Context
	pool  *pgxpool.Pool
	clock *clock
	trips []string
	held  int
	mu    sync.Mutex
}

func setupGuard(t *testing.T, managed int) *guardBundle {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	if managed > 0 {
		_, err = pool.Exec(ctx, `INSERT INTO employees (id, name, email, auth0_user_id, auth0_sync_status)
			SELECT g, 'E', 'e' || g || '@x.io', 'auth0|' || g, 'synced' FROM generate_series(1, $1) g`, managed)
		require.NoError(t, err)
	}
	return &guardBundle{t: t, ctx: ctx, pool: pool, clock: newClock()}
}

// guard is one process's guard (a replica) on the bundle's database.
func (b *guardBundle) guard(limit reconcile.Limit) *reconcile.Guard {
	return reconcile.NewGuard(b.pool, reconcile.GuardConfig{Limit: limit, Settle: 10 * time.Second, Now: b.clock.Now,
		OnTrip: func(reason string, _ int) {
			b.mu.Lock()
			b.trips = append(b.trips, reason)
			b.mu.Unlock()
		},
		OnHeld: func(n int) {
			b.mu.Lock()
			b.held += n
			b.mu.Unlock()
		}})
}

func (b *guardBundle) request(g *reconcile.Guard, ids ...int64) []reconcile.Verdict {
	b.t.Helper()
	var out []reconcile.Verdict
	for _, id := range ids {
		// The row asks for it (a guard forgets what rows no longer ask for).
		_, err := b.pool.Exec(b.ctx, `UPDATE employees SET active = false WHERE id = $1`, id)
		require.NoError(b.t, err)
		dec, err := g.Request(b.ctx, reconcile.Deprovision{Kind: reconcile.KindInactive, EmployeeID: strconv.FormatInt(id, 10)})
		require.NoError(b.t, err)
		out = append(out, dec.Verdict)
	}
	return out
}

// settle lets the settling window pass and runs one step.
func (b *guardBundle) settle(g *reconcile.Guard) {
	b.t.Helper()
	b.clock.Advance(11 * time.Second)
	require.NoError(b.t, g.Step(b.ctx))
}

func (b *guardBundle) states() map[string]int {
	b.t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT state, count(*)::int FROM syncd_deprovisions GROUP BY 1`)
	require.NoError(b.t, err)
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		require.NoError(b.t, rows.Scan(&s, &n))
		out[s] = n
	}
	require.NoError(b.t, rows.Err())
	return out
}

// done is the deprovisions of ids carried out.
func (b *guardBundle) done(ids ...int64) {
	b.t.Helper()
	_, err := b.pool.Exec(b.ctx, `UPDATE employees SET auth0_sync_status = 'deprovisioned' WHERE id = ANY($1)`, ids)
	require.NoError(b.t, err)
	_, err = b.pool.Exec(b.ctx, `DELETE FROM syncd_deprovisions WHERE employee_id = ANY($1)`, ids)
	require.NoError(b.t, err)
}

func repeat(v reconcile.Verdict, n int) []reconcile.Verdict {
	out := make([]reconcile.Verdict, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestGuardHoldsABatchWhole(t *testing.T) {
	t.Parallel()
	b := setupGuard(t, 20)
	g := b.guard(reconcile.Limit{Percent: 10}) // 2 of 20
	require.Equal(t, repeat(reconcile.Settling, 5), b.request(g, 1, 2, 3, 4, 5), "each waits for its batch")
	require.NoError(t, g.Step(b.ctx))
	require.Equal(t, map[string]int{"settling": 5}, b.states(), "not decided before the settling window ends")
	b.settle(g)
	require.Equal(t, map[string]int{"held": 5}, b.states(), "the whole batch is held, none let through")
	require.Len(t, b.trips, 1, "the guard says it once")
	require.Contains(t, b.trips[0], "5 deprovisions within 1h0m0s would exceed --max-deprovision=10% (limit 2 with 20 managed accounts")
	require.Contains(t, g.Tripped(), "would exceed")
	require.Equal(t, 5, g.HeldCount())

	// While it holds, every later deprovision is held at once, and asking
	// again changes nothing.
	require.Equal(t, []reconcile.Verdict{reconcile.Held, reconcile.Held}, b.request(g, 6, 1))
	b.settle(g)
	require.Len(t, b.trips, 1, "still said once")
	require.Equal(t, 6, b.held, "each held deprovision counted once")
	require.Equal(t, 6, g.HeldCount())
}

func TestGuardCountsWaitingRows(t *testing.T) {
	t.Parallel()
	b := setupGuard(t, 20)
	g := b.guard(reconcile.Limit{Count: 3})
	// A mass change reaches the workers slowly: two rows asked, four more are
	// inactive and not reconciled yet. They are one batch.
	_, err := b.pool.Exec(b.ctx, `UPDATE employees SET active = false WHERE id <= 6`)
	require.NoError(t, err)
	b.request(g, 1, 2)
	b.settle(g)
	require.Equal(t, map[string]int{"held": 2}, b.states())
	require.Contains(t, g.Tripped(), "2 asked at once, 4 more waiting for a worker")
	require.Equal(t, repeat(reconcile.Held, 4), b.request(g, 3, 4, 5, 6))
}

func TestGuardWindowIsSharedByReplicas(t *testing.T) {
	t.Parallel()
	b := setupGuard(t, 40)
	one, two := b.guard(reconcile.Limit{Count: 3}), b.guard(reconcile.Limit{Count: 3})
	b.request(one, 1, 2)
	b.settle(one)
	require.Equal(t, map[string]int{"allowed": 2}, b.states())
	// Another replica (or this one after a restart) counts what the first let through.
	b.request(two, 3, 4)
	b.settle(two)
	require.Equal(t, map[string]int{"allowed": 2, "held": 2}, b.states(), "2 + 2 > 3 across replicas")
	require.Contains(t, b.trips[0], "4 deprovisions within 1h0m0s")
	require.NoError(t, one.Step(b.ctx))
	require.Equal(t, two.Tripped(), one.Tripped(), "both replicas see the hold")
}

func TestGuardWindowExpires(t *testing.T) {
	t.Parallel()
	b := setupGuard(t, 40)
	g := b.guard(reconcile.Limit{Count: 3})
	b.request(g, 1, 2, 3)
	b.settle(g)
	require.Equal(t, map[string]int{"allowed": 3}, b.states())
	b.done(1, 2, 3)

	b.clock.Advance(59 * time.Minute)
	b.request(g, 4)
	b.settle(g) // 59m11s after the first three: still within the hour
	require.Equal(t, map[string]int{"held": 1}, b.states())
	_, err := b.pool.Exec(b.ctx, `UPDATE employees SET active = true WHERE id = 4`) // undone
	require.NoError(t, err)
	require.NoError(t, g.Step(b.ctx))
	require.Empty(t, g.Tripped())

	b.clock.Advance(time.Minute) // the first three are more than an hour old
	b.request(g, 5, 6, 7)
	b.settle(g)
	require.Equal(t, map[string]int{"allowed": 3}, b.states(), "the window forgot the first three")
}

func TestGuardRefusesWhileTableReadsEmpty(t *testing.T) {
	t.Parallel()
	b := setupGuard(t, 0)
	g := b.guard(reconcile.Limit{Percent: 10})
	b.request(g, 1)
	b.settle(g)
	require.Equal(t, map[string]int{"held": 1}, b.states())
	require.Contains(t, g.Tripped(), "employees table reads empty")

	allowed := reconcile.NewGuard(b.pool, reconcile.GuardConfig{AllowMass: true, Now: b.clock.Now})
	require.Equal(t, repeat(reconcile.Allowed, 3), b.request(allowed, 7, 8, 9))
	require.NoError(t, allowed.Step(b.ctx))
	require.Equal(t, map[string]int{"allowed": 1}, b.states(), "--allow-mass-deprovision lets what is held through")
}

func TestGuardScanBatch(t *testing.T) {
	t.Parallel()
	b := setupGuard(t, 20)
	g := b.guard(reconcile.Limit{Count: 2})
	orphans := func(ids ...string) []reconcile.Deprovision {
		var out []reconcile.Deprovision
		for _, id := range ids {
			out = append(out, reconcile.Deprovision{Kind: reconcile.KindOrphan, UserID: id})
		}
		return out
	}
	allowed, err := g.RequestBatch(b.ctx, orphans("auth0|a", "auth0|b"))
	require.NoError(t, err)
	require.Len(t, allowed, 2)
	allowed, err = g.RequestBatch(b.ctx, orphans("auth0|a", "auth0|c", "auth0|d"))
	require.NoError(t, err)
	require.Equal(t, orphans("auth0|a"), allowed, "known ones keep their verdict; the new batch is held whole")
	require.Equal(t, map[string]int{"allowed": 2, "held": 2}, b.states())
	var audited int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM auth0_sync_logs WHERE status = 'held' AND action = 'guard_hold' AND response_data->>'kind' = 'orphan'`).Scan(&audited))
	require.Equal(t, 2, audited, "one audit row per held orphan")
}

func TestParseLimit(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]reconcile.Limit{"10%": {Percent: 10}, " 2.5 %": {Percent: 2.5}, "25": {Count: 25}} {
		got, err := reconcile.ParseLimit(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got)
	}
	for _, bad := range []string{"", "0", "-3", "0%", "150%", "ten"} {
		_, err := reconcile.ParseLimit(bad)
		require.Error(t, err, bad)
	}
}
