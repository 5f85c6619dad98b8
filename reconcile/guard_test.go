package reconcile_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/reconcile"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

func TestGuard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	require.NoError(t, err)
	defer pool.Close()

	var trips []string
	empty := reconcile.NewGuard(pool, reconcile.GuardConfig{OnTrip: func(r string) { trips = append(trips, r) }})
	require.ErrorIs(t, empty.AllowDeprovision(ctx, 1), reconcile.ErrMassDeprovision)
	require.Contains(t, empty.Tripped(), "employees table reads empty")

	_, err = pool.Exec(ctx, `INSERT INTO employees (name, email, auth0_user_id) SELECT 'E', 'e' || g || '@x.io', 'auth0|' || g FROM generate_series(1, 20) g`)
	require.NoError(t, err)
	limit, err := reconcile.ParseLimit("10%")
	require.NoError(t, err)
	g := reconcile.NewGuard(pool, reconcile.GuardConfig{Limit: limit, OnTrip: func(r string) { trips = append(trips, r) }})
	require.NoError(t, g.AllowDeprovision(ctx, 1))
	require.NoError(t, g.AllowDeprovision(ctx, 2))
	err = g.AllowDeprovision(ctx, 3)
	require.ErrorIs(t, err, reconcile.ErrMassDeprovision)
	require.ErrorContains(t, err, "3 deprovisions within 1h0m0s would exceed --max-deprovision=10% (limit 2 with 20 managed accounts)")
	require.ErrorContains(t, g.AllowDeprovision(ctx, 4), "--allow-mass-deprovision", "it stays tripped")
	require.Len(t, trips, 2, "each guard says why once")

	scan := reconcile.NewGuard(pool, reconcile.GuardConfig{Limit: reconcile.Limit{Count: 5}})
	require.NoError(t, scan.Check(ctx, 5))
	require.ErrorIs(t, scan.Check(ctx, 6), reconcile.ErrMassDeprovision)

	allowed := reconcile.NewGuard(pool, reconcile.GuardConfig{Limit: limit, AllowMass: true})
	for i := range 20 {
		require.NoError(t, allowed.AllowDeprovision(ctx, int64(i)))
	}
	require.NoError(t, allowed.Check(ctx, 20))
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
