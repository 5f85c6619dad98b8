package sql_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	syncdsql "github.com/syncd/syncd/sql"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

// syncd's own UPDATEs (sync columns only) do not even call the outbox
// trigger's function: no outbox row, no notification; an operator's UPDATE
// of a desired-state column still writes one and notifies; `SET name = name`
// still does nothing.
func TestSyncColumnUpdatesFireNoTrigger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	listener := connect(t, url)
	_, err := listener.Exec(ctx, "LISTEN "+syncdsql.Channel)
	require.NoError(t, err)
	conn := connect(t, url)
	// Count PL/pgSQL function calls of this session (the test user is a
	// superuser, as the throwaway server's is).
	_, err = conn.Exec(ctx, "SET track_functions = 'pl'")
	require.NoError(t, err)

	var id int64
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO employees (name, email, department) VALUES ('Ada', 'ada@example.com', 'Ops') RETURNING id`).Scan(&id))
	next := func() string {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		n, err := listener.WaitForNotification(wctx)
		require.NoError(t, err)
		return n.Payload
	}
	require.Equal(t, "", next(), "the insert notifies")
	_, err = conn.Exec(ctx, "DELETE FROM auth0_outbox")
	require.NoError(t, err)

	// In one transaction: the session's function-call counts not yet
	// flushed to the statistics only grow inside it (they may still hold
	// earlier transactions', hence the baseline).
	calls := func(tx pgx.Tx) int {
		t.Helper()
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::int FROM pg_stat_xact_user_functions
			WHERE funcname IN ('syncd_employees_outbox', 'syncd_employees_outbox_updated', 'syncd_employees_mark_pending')`).Scan(&n))
		return n
	}
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	base := calls(tx)
	for _, stmt := range []string{
		// What the reconciler writes: the claim, the outcome, the stale mark.
		`UPDATE employees SET auth0_sync_status = 'syncing', auth0_sync_attempts = auth0_sync_attempts + 1,
			auth0_locked_until = now() + interval '1 minute', auth0_locked_by = 'me' WHERE id = $1`,
		`UPDATE employees SET auth0_sync_status = 'synced', auth0_sync_error = NULL, auth0_sync_attempts = 0, auth0_synced_at = now(),
			auth0_user_id = 'auth0|x', auth0_synced_state = '{}', auth0_locked_until = NULL, auth0_locked_by = NULL WHERE id = $1`,
		`UPDATE employees SET name = name, email = email, active = active WHERE id = $1`,
	} {
		_, err := tx.Exec(ctx, stmt, id)
		require.NoError(t, err)
	}
	require.Equal(t, base, calls(tx), "no trigger function runs for sync columns or unchanged values")
	_, err = tx.Exec(ctx, `UPDATE employees SET department = 'Quality' WHERE id = $1`, id)
	require.NoError(t, err)
	require.Equal(t, base+2, calls(tx), "a desired-state change runs the pending mark and the outbox trigger")
	require.NoError(t, tx.Commit(ctx))

	var ops []string
	rows, err := conn.Query(ctx, "SELECT op FROM auth0_outbox WHERE employee_id = $1", id)
	require.NoError(t, err)
	ops, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"update"}, ops, "one outbox row, for the department change only")
	var status string
	require.NoError(t, conn.QueryRow(ctx, "SELECT auth0_sync_status FROM employees WHERE id = $1", id).Scan(&status))
	require.Equal(t, "pending", status)

	// The transaction notified once. Then a marker: had the sync-column
	// updates notified (before the change), a notification would have come
	// first; after it, none but the marker may come.
	require.Equal(t, "", next())
	_, err = conn.Exec(ctx, `UPDATE employees SET auth0_sync_status = 'synced', auth0_locked_by = NULL WHERE id = $1`, id)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "SELECT pg_notify($1, 'marker')", syncdsql.Channel)
	require.NoError(t, err)
	require.Equal(t, "marker", next(), "a sync-column update notifies nobody")
	require.Equal(t, 1, count(t, conn, "SELECT count(*) FROM auth0_outbox"))
}
