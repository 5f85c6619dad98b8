package reconcile_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/reconcile"
)

// fastGuard is the daemon's guard: the fast path on.
func (b *guardBundle) fastGuard(limit reconcile.Limit) *reconcile.Guard {
	return reconcile.NewGuard(b.pool, reconcile.GuardConfig{Limit: limit, Settle: 10 * time.Second, Now: b.clock.Now, Fast: true,
		OnTrip: func(reason string, _ int) {
			b.mu.Lock()
			b.trips = append(b.trips, reason)
			b.mu.Unlock()
		}})
}

func TestGuardFastPathLetsASingleLeaverGoAtOnce(t *testing.T) {
	t.Parallel()
	b := setupGuard(t, 40)
	g := b.fastGuard(reconcile.Limit{Percent: 10}) // 4 of 40; 2 at once
	require.Equal(t, []reconcile.Verdict{reconcile.Allowed}, b.request(g, 1), "no settling")
	require.Equal(t, map[string]int{"allowed": 1}, b.states())
	require.NoError(t, g.Step(b.ctx))
	var queued int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM auth0_outbox WHERE op = 'resync'`).Scan(&queued))
	require.Zero(t, queued, "the reconcile that asked carries it out: nothing handed back")
	var window int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM syncd_deprovision_window`).Scan(&window))
	require.Equal(t, 1, window, "counted against the hour")
}

// The conflict the fast path must not lose: a mass change in one
// transaction is still held whole. Its first row to reach the guard sees
// every other row of the commit as waiting.
func TestGuardFastPathStillHoldsAMassChangeWhole(t *testing.T) {
	t.Parallel()
	b := setupGuard(t, 40)
	g := b.fastGuard(reconcile.Limit{Percent: 10}) // 4 of 40
	_, err := b.pool.Exec(b.ctx, `UPDATE employees SET active = false WHERE id <= 6`)
	require.NoError(t, err)
	require.Equal(t, repeat(reconcile.Settling, 6), b.request(g, 1, 2, 3, 4, 5, 6))
	b.settle(g)
	require.Equal(t, map[string]int{"held": 6}, b.states(), "none let through")
	require.Len(t, b.trips, 1)
	require.Equal(t, []reconcile.Verdict{reconcile.Held}, b.request(g, 7), "while anything is held, nothing is fast")
}

// A small batch in one transaction within half the limit goes at once,
// whole.
func TestGuardFastPathSmallBatch(t *testing.T) {
	t.Parallel()
	b := setupGuard(t, 40)
	g := b.fastGuard(reconcile.Limit{Count: 4}) // 2 at once
	_, err := b.pool.Exec(b.ctx, `UPDATE employees SET active = false WHERE id <= 2`)
	require.NoError(t, err)
	require.Equal(t, repeat(reconcile.Allowed, 2), b.request(g, 1, 2))
}

// A mass change dripped over many transactions gets at most half the limit
// through at once; the rest settles and, counted with what went through,
// is held whole.
func TestGuardFastPathDrippedMassChange(t *testing.T) {
	t.Parallel()
	b := setupGuard(t, 40)
	g := b.fastGuard(reconcile.Limit{Count: 4}) // 2 at once
	got := b.request(g, 1, 2, 3, 4, 5)          // five transactions
	require.Equal(t, []reconcile.Verdict{reconcile.Allowed, reconcile.Allowed, reconcile.Settling, reconcile.Settling, reconcile.Settling}, got)
	b.settle(g)
	require.Equal(t, map[string]int{"allowed": 2, "held": 3}, b.states())
	require.Contains(t, b.trips[0], fmt.Sprintf("%d deprovisions within 1h0m0s would exceed --max-deprovision=4", 5))
}
