package reconcile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/reconcile"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

func TestReadStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}

	rep, err := reconcile.ReadStatus(ctx, pool, 10)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"synced": 0, "pending": 0, "syncing": 0, "retrying": 0, "failed": 0, "conflict": 0, "deprovisioned": 0},
		rep.Counts, "every status, zeros too")
	require.NotNil(t, rep.Reasons, "an empty list, not null, in JSON")
	require.Nil(t, rep.OldestPending, "an empty outbox has no oldest row")
	require.Zero(t, rep.OutboxRows)
	require.Empty(t, rep.Problems)
	require.Empty(t, rep.Slots)
	require.NotNil(t, rep.Deprovisions, "an empty list, not null, in JSON")
	require.Empty(t, rep.Deprovisions)

	var ids []string
	for _, email := range []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com", "e@example.com"} {
		var id string
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO employees (name, email) VALUES ('E', $1) RETURNING id::text`, email).Scan(&id))
		ids = append(ids, id)
	}
	exec(`UPDATE employees SET auth0_sync_status = 'failed', auth0_sync_error = 'invalid email', auth0_sync_attempts = 1 WHERE id = $1`, ids[0])
	exec(`UPDATE employees SET auth0_sync_status = 'conflict', auth0_sync_error = 'email taken' WHERE id = $1`, ids[1])
	exec(`UPDATE employees SET auth0_sync_status = 'retrying', auth0_sync_error = 'auth0 503', auth0_sync_attempts = 3,
		auth0_next_attempt_at = now() + interval '1 minute' WHERE id = $1`, ids[2])
	exec(`UPDATE employees SET auth0_sync_status = 'synced' WHERE id = $1`, ids[3])
	// The latest audit row orders the problems: the retry is the newest.
	for i, age := range []string{"3 hours", "2 hours", "1 hour"} {
		exec(`INSERT INTO auth0_sync_logs (employee_id, action, status, created_at) VALUES ($1, 'create', 'error', now() - $2::interval)`, ids[i], age)
	}
	exec(`INSERT INTO syncd_deprovisions (key, kind, employee_id, state, requested_at, decided_at, reason)
		VALUES ('employee:' || $1::bigint, 'inactive', $1::bigint, 'held', now(), now(), 'too many')`, ids[4])
	slot := fmt.Sprintf("status_test_%d", time.Now().UnixNano())
	exec(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot)
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `SELECT pg_drop_replication_slot($1)`, slot) })

	rep, err = reconcile.ReadStatus(ctx, pool, 2)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"failed": 1, "conflict": 1, "retrying": 1, "synced": 1, "pending": 1, "syncing": 0, "deprovisioned": 0}, rep.Counts)
	var outbox int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM auth0_outbox`).Scan(&outbox))
	require.Positive(t, outbox, "inserts fill the outbox")
	require.Equal(t, outbox, rep.OutboxRows)
	require.NotNil(t, rep.OldestPending)
	require.Equal(t, ids[0], rep.OldestPending.EmployeeID, "the first insert is the oldest work")
	require.GreaterOrEqual(t, rep.OldestPending.AgeSeconds, 0.0)

	require.Len(t, rep.Problems, 2, "at most the limit, newest first")
	require.Equal(t, ids[2], rep.Problems[0].EmployeeID)
	require.Equal(t, "retrying", rep.Problems[0].Status)
	require.Equal(t, "auth0 503", rep.Problems[0].Error)
	require.Equal(t, 3, rep.Problems[0].Attempts)
	require.NotNil(t, rep.Problems[0].NextTry)
	require.Equal(t, ids[1], rep.Problems[1].EmployeeID)
	require.Equal(t, "conflict", rep.Problems[1].Status)
	require.Nil(t, rep.Problems[1].NextTry)
	require.True(t, rep.Problems[0].Since.After(rep.Problems[1].Since))
	require.Len(t, rep.Reasons, 2, "at most the limit, latest first")
	require.Equal(t, reconcile.ReasonGroup{Status: "retrying", Error: "auth0 503", Count: 1, EmployeeIDs: []string{ids[2]}, Latest: rep.Problems[0].Since},
		rep.Reasons[0])

	require.Len(t, rep.Slots, 1)
	require.Equal(t, slot, rep.Slots[0].Name)
	require.False(t, rep.Slots[0].Active)
	require.GreaterOrEqual(t, rep.Slots[0].LagBytes, int64(0))

	require.Len(t, rep.Deprovisions, 1)
	require.Equal(t, ids[4], rep.Deprovisions[0].EmployeeID)
	require.Equal(t, reconcile.Held, rep.Deprovisions[0].State)
	require.Equal(t, "too many", rep.Deprovisions[0].Reason)

	rep, err = reconcile.ReadStatus(ctx, pool, 0)
	require.NoError(t, err)
	require.Empty(t, rep.Problems, "limit 0 lists none")

	_, err = reconcile.ReadStatus(ctx, pool, -1)
	require.ErrorIs(t, err, reconcile.ErrNegativeLimit)
}
