package sql_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	syncdsql "github.com/syncd/syncd/sql"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

func count(t *testing.T, conn *pgx.Conn, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func TestMigrateEmptyDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewEmptyDatabase(t)

	res, err := syncdsql.MigrateURL(ctx, url)
	require.NoError(t, err)
	require.Equal(t, int32(0), res.From)
	require.Equal(t, syncdsql.Latest(), res.To)

	conn := connect(t, url)
	for _, table := range []string{"employees", "auth0_sync_logs", "auth0_outbox", "syncd_deprovisions", "syncd_deprovision_window"} {
		require.Equal(t, 1, count(t, conn, "SELECT count(*) FROM pg_tables WHERE tablename = $1", table), table)
	}
	for _, col := range []string{"id", "name", "email", "department", "phone_number", "connecteam_id", "auth0_user_id",
		"auth0_account_created_at", "auth0_sync_status", "role_code", "active", "auth0_sync_error", "auth0_synced_at",
		"auth0_sync_attempts", "auth0_next_attempt_at", "auth0_synced_state"} {
		require.Equal(t, 1, count(t, conn, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'employees' AND column_name = $1", col), col)
	}
	require.Equal(t, 1, count(t, conn, "SELECT count(*) FROM pg_publication_tables WHERE pubname = $1 AND tablename = 'auth0_outbox'", syncdsql.Publication))

	// Twice in a row is a no-op.
	res, err = syncdsql.MigrateURL(ctx, url)
	require.NoError(t, err)
	require.Equal(t, res.From, res.To)
}

func TestMigrateExistingReferenceTable(t *testing.T) {
	t.Parallel()
	for _, idType := range []string{"serial", "bigserial"} {
		t.Run(idType, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := pgtest.NewEmptyDatabase(t)
			conn := connect(t, url)
			// The reference guide's table, as an application made it before syncd.
			_, err := conn.Exec(ctx, `
				CREATE TABLE employees (
					id `+idType+` PRIMARY KEY,
					name varchar(255) NOT NULL,
					email varchar(255) NOT NULL,
					department varchar(100),
					phone_number varchar(50),
					connecteam_id varchar(100),
					auth0_user_id varchar(255),
					auth0_account_created_at timestamp,
					auth0_sync_status varchar(50)
				);
				CREATE TABLE auth0_sync_logs (
					id serial PRIMARY KEY, employee_id integer, auth0_user_id varchar(255),
					action varchar(50) NOT NULL, status varchar(50) NOT NULL, response_data jsonb,
					created_at timestamp DEFAULT now());
				INSERT INTO employees (name, email, department, auth0_user_id, auth0_sync_status) VALUES
					('Ada', 'ada@example.com', 'Heat Press', 'auth0|0123456789abcdef01234567', 'created'),
					('Bo', 'bo@example.com', NULL, NULL, NULL),
					('Cy', 'cy@example.com', 'Shipping', NULL, 'failed');
				INSERT INTO auth0_sync_logs (employee_id, action, status) VALUES (1, 'create', 'success');`)
			require.NoError(t, err)

			_, err = syncdsql.MigrateURL(ctx, url)
			require.NoError(t, err)

			rows, err := conn.Query(ctx, `SELECT name, email, coalesce(department, ''), coalesce(auth0_user_id, ''),
				auth0_sync_status, role_code, active, auth0_sync_attempts FROM employees ORDER BY id`)
			require.NoError(t, err)
			type row struct {
				Name, Email, Dept, UserID, Status, Role string
				Active                                  bool
				Attempts                                int
			}
			got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
			require.NoError(t, err)
			require.Equal(t, []row{
				{"Ada", "ada@example.com", "Heat Press", "auth0|0123456789abcdef01234567", "pending", "associate", true, 0},
				{"Bo", "bo@example.com", "", "", "pending", "associate", true, 0},
				{"Cy", "cy@example.com", "Shipping", "", "pending", "associate", true, 0},
			}, got)
			require.Equal(t, 3, count(t, conn, "SELECT count(DISTINCT employee_id) FROM auth0_outbox"))
			require.Equal(t, 3, count(t, conn, "SELECT count(*) FROM auth0_outbox"))
			require.Equal(t, 1, count(t, conn, "SELECT count(*) FROM auth0_sync_logs"))

			// Idempotent: a second run adds no outbox row and changes no row.
			_, err = conn.Exec(ctx, "UPDATE employees SET auth0_sync_status = 'synced' WHERE id = 1")
			require.NoError(t, err)
			_, err = syncdsql.MigrateURL(ctx, url)
			require.NoError(t, err)
			require.Equal(t, 3, count(t, conn, "SELECT count(*) FROM auth0_outbox"))
			require.Equal(t, 1, count(t, conn, "SELECT count(*) FROM employees WHERE auth0_sync_status = 'synced'"))

			// New rows get the triggers.
			_, err = conn.Exec(ctx, "INSERT INTO employees (name, email) VALUES ('Di', 'di@example.com')")
			require.NoError(t, err)
			require.Equal(t, 4, count(t, conn, "SELECT count(*) FROM auth0_outbox"))
		})
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewEmptyDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = syncdsql.MigrateURL(ctx, url)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	conn := connect(t, url)
	var v int32
	require.NoError(t, conn.QueryRow(ctx, "SELECT version FROM "+syncdsql.VersionTable).Scan(&v))
	require.Equal(t, syncdsql.Latest(), v)
	require.Equal(t, 3, count(t, conn, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'syncd_employees_outbox_%'"))
}

func TestTriggers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := conn.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	outbox := func() int { return count(t, conn, "SELECT count(*) FROM auth0_outbox") }
	status := func(id int64) string {
		var s string
		require.NoError(t, conn.QueryRow(ctx, "SELECT auth0_sync_status FROM employees WHERE id = $1", id).Scan(&s))
		return s
	}

	var id int64
	require.NoError(t, conn.QueryRow(ctx, `INSERT INTO employees (name, email, department, auth0_sync_status)
		VALUES ('Ada', 'ada@example.com', 'Ops', 'synced') RETURNING id`).Scan(&id))
	require.Equal(t, "pending", status(id), "insert marks pending whatever the row says")
	require.Equal(t, 1, outbox())
	var op string
	require.NoError(t, conn.QueryRow(ctx, "SELECT op FROM auth0_outbox WHERE employee_id = $1", id).Scan(&op))
	require.Equal(t, "insert", op)

	exec("UPDATE employees SET auth0_sync_status = 'synced', auth0_sync_attempts = 3, auth0_sync_error = 'x' WHERE id = $1", id)
	require.Equal(t, 1, outbox(), "sync columns alone do nothing")
	require.Equal(t, "synced", status(id))

	exec("UPDATE employees SET name = name, email = email, active = active WHERE id = $1", id)
	require.Equal(t, 1, outbox(), "an update that changes nothing does nothing")
	require.Equal(t, "synced", status(id))

	for _, change := range []string{
		"name = 'Ada L'", "email = 'ada.l@example.com'", "department = NULL", "phone_number = '+15550100'",
		"connecteam_id = 'ct-1'", "role_code = 'lead'", "active = false",
	} {
		before := outbox()
		exec("UPDATE employees SET auth0_sync_status = 'synced', auth0_sync_attempts = 2 WHERE id = $1", id)
		exec("UPDATE employees SET "+change+" WHERE id = $1", id)
		require.Equal(t, before+1, outbox(), change)
		require.Equal(t, "pending", status(id), change)
		require.Equal(t, 2, count(t, conn, "SELECT auth0_sync_attempts FROM employees WHERE id = $1", id), change+": attempts survive a change")
	}

	exec("UPDATE employees SET auth0_user_id = 'auth0|0123456789abcdef01234567' WHERE id = $1", id)
	before := outbox()
	exec("DELETE FROM employees WHERE id = $1", id)
	require.Equal(t, before+1, outbox())
	var uid, email string
	require.NoError(t, conn.QueryRow(ctx, "SELECT op, auth0_user_id, email FROM auth0_outbox WHERE employee_id = $1 ORDER BY id DESC LIMIT 1", id).Scan(&op, &uid, &email))
	require.Equal(t, "delete", op)
	require.Equal(t, "auth0|0123456789abcdef01234567", uid)
	require.Equal(t, "ada.l@example.com", email)
}

func TestOneNotificationPerTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	listener := connect(t, url)
	_, err := listener.Exec(ctx, "LISTEN "+syncdsql.Channel)
	require.NoError(t, err)
	writer := connect(t, url)

	_, err = writer.Exec(ctx, `INSERT INTO employees (name, email) SELECT 'E' || g, 'e' || g || '@example.com' FROM generate_series(1, 100) g`)
	require.NoError(t, err)
	// Two statements in one transaction: still one notification.
	tx, err := writer.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE employees SET department = 'A' WHERE id <= 50`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE employees SET department = 'B' WHERE id > 50`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	// An update that changes nothing notifies nobody.
	_, err = writer.Exec(ctx, `UPDATE employees SET name = name`)
	require.NoError(t, err)

	got := 0
	for {
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := listener.WaitForNotification(wctx)
		cancel()
		if err != nil {
			break
		}
		got++
	}
	require.Equal(t, 2, got)
	require.Equal(t, 200, count(t, writer, "SELECT count(*) FROM auth0_outbox"))
}
