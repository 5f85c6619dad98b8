package reconcile_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/reconcile"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

// mappingBundle is a migrated database for the mapping's tests: no Auth0.
type mappingBundle struct {
	t    testing.TB
	ctx  context.Context
	pool *pgxpool.Pool
	cfg  reconcile.Config
}

func newMappingBundle(t testing.TB) *mappingBundle {
	t.Helper()
	return newMappingBundleOn(t, pgtest.NewDatabase(t))
}

func newMappingBundleOn(t testing.TB, url string) *mappingBundle {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return &mappingBundle{t: t, ctx: ctx, pool: pool,
		cfg: reconcile.Config{Roles: map[string]string{"associate": "production_associate", "lead": "production_lead"}}}
}

func (m *mappingBundle) exec(sql string, args ...any) {
	m.t.Helper()
	_, err := m.pool.Exec(m.ctx, sql, args...)
	require.NoError(m.t, err)
}

func (m *mappingBundle) insert(name, email, department, phone string) string {
	m.t.Helper()
	var id string
	require.NoError(m.t, m.pool.QueryRow(m.ctx, `INSERT INTO employees (name, email, department, phone_number)
		VALUES ($1, $2, $3, $4) RETURNING id::text`, name, email, department, phone).Scan(&id))
	return id
}

// settle is every row converged: synced, with the hash of its desired state
// as a recorded outcome leaves it, and no outbox row.
func (m *mappingBundle) settle() {
	m.t.Helper()
	m.exec(`UPDATE employees SET auth0_sync_status = 'synced', auth0_desired_hash = md5(syncd_desired_of(id)::text)`)
	m.exec(`DELETE FROM auth0_outbox`)
}

func (m *mappingBundle) status(id string) string {
	m.t.Helper()
	var s string
	require.NoError(m.t, m.pool.QueryRow(m.ctx, `SELECT auth0_sync_status FROM employees WHERE id::text = $1`, id).Scan(&s))
	return s
}

// outbox lists the outbox's rows as "key op", in order.
func (m *mappingBundle) outbox() []string {
	m.t.Helper()
	rows, err := m.pool.Query(m.ctx, `SELECT employee_id::text || ' ' || op FROM auth0_outbox ORDER BY id`)
	require.NoError(m.t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(m.t, err)
	return out
}

// apply is `syncd mapping apply --file`: the lock, the SQL, the apply, one
// transaction.
func (m *mappingBundle) apply(sql string) (*reconcile.MappingApplied, error) {
	m.t.Helper()
	var out *reconcile.MappingApplied
	err := pgx.BeginFunc(m.ctx, m.pool, func(tx pgx.Tx) error {
		if err := reconcile.LockMapping(m.ctx, tx); err != nil {
			return err
		}
		if sql != "" {
			if _, err := tx.Exec(m.ctx, sql); err != nil {
				return err
			}
		}
		var err error
		out, err = reconcile.ApplyMapping(m.ctx, tx)
		return err
	})
	return out, err
}

func (m *mappingBundle) contract() *reconcile.MappingContract {
	m.t.Helper()
	c, err := reconcile.CheckMappingContract(m.ctx, m.pool)
	require.NoError(m.t, err)
	return c
}

// view is a syncd_desired over employees e with the given expressions for
// the contract's columns after id and email.
func view(name, blocked, app, user string) string {
	return `CREATE OR REPLACE VIEW syncd_desired AS SELECT e.id, e.email, ` + name + ` AS name, e.role_code, ` + blocked + ` AS blocked, ` +
		app + ` AS app_metadata, ` + user + ` AS user_metadata FROM employees e`
}

// Each way a view can break the contract is one sentence naming it.
func TestMappingContractProblems(t *testing.T) {
	t.Parallel()
	const tail = `, e.role_code, NOT e.active AS blocked, '{}'::jsonb AS app_metadata, '{}'::jsonb AS user_metadata FROM employees e`
	for _, tc := range []struct{ name, ddl, want string }{
		{"absent", `DROP VIEW syncd_desired`,
			"there is no view syncd_desired in schema public: create it (`syncd migrate` creates the default one)"},
		{"a table", `DROP VIEW syncd_desired; CREATE TABLE syncd_desired (id bigint)`,
			"syncd_desired is a table, not a view"},
		{"materialized", `DROP VIEW syncd_desired; CREATE MATERIALIZED VIEW syncd_desired AS SELECT e.id, e.email, e.name` + tail,
			"syncd_desired is a materialized view; it must be a plain view (a materialized view is as old as its last REFRESH, and no change of employees reaches it)"},
		{"missing column", `DROP VIEW syncd_desired; CREATE VIEW syncd_desired AS SELECT e.id, e.email, e.name, e.role_code, NOT e.active AS blocked, '{}'::jsonb AS app_metadata FROM employees e`,
			"column user_metadata is missing (it must be jsonb)"},
		{"blocked not boolean", `DROP VIEW syncd_desired; CREATE VIEW syncd_desired AS SELECT e.id, e.email, e.name, e.role_code, CASE WHEN e.active THEN 0 ELSE 1 END AS blocked, '{}'::jsonb AS app_metadata, '{}'::jsonb AS user_metadata FROM employees e`,
			"column blocked is integer; it must be boolean"},
		{"metadata json, not jsonb", `DROP VIEW syncd_desired; CREATE VIEW syncd_desired AS SELECT e.id, e.email, e.name, e.role_code, NOT e.active AS blocked, '{}'::json AS app_metadata, '{}'::jsonb AS user_metadata FROM employees e`,
			"column app_metadata is json; it must be jsonb"},
		{"email not text", `DROP VIEW syncd_desired; CREATE VIEW syncd_desired AS SELECT e.id, 7 AS email, e.name` + tail,
			"column email is integer; it must be text or varchar"},
		{"id of another type", `DROP VIEW syncd_desired; CREATE VIEW syncd_desired AS SELECT e.id::text AS id, e.email, e.name` + tail,
			"column id is text; it must be bigint, the type of employees.id"},
		{"reads a sync column", `DROP VIEW syncd_desired; CREATE VIEW syncd_desired AS SELECT e.id, e.email, e.name, e.role_code, e.auth0_sync_status = 'failed' AS blocked, '{}'::jsonb AS app_metadata, '{}'::jsonb AS user_metadata FROM employees e`,
			"it reads auth0_sync_status of employees, which syncd writes (every auth0_* column is syncd's): its own writes would change the desired state and wake it again; read only the employee's columns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newMappingBundle(t)
			m.exec(tc.ddl)
			c := m.contract()
			require.Equal(t, []string{tc.want}, c.Problems)
			err := c.Err()
			require.ErrorIs(t, err, reconcile.ErrBadMapping)
			require.Equal(t, "mapping view syncd_desired: "+tc.want, err.Error())

			// Apply refuses it and changes nothing.
			_, err = m.apply("")
			require.ErrorIs(t, err, reconcile.ErrBadMapping)
			rep, err := reconcile.CheckMapping(m.ctx, m.pool, m.cfg)
			require.NoError(t, err)
			require.Equal(t, []string{tc.want}, rep.Problems)
			require.Zero(t, rep.Rows, "no row pass over a view that breaks the contract")
		})
	}
}

// The default view keeps the contract; it reads the seven columns of
// today's mapping and the key, which migration 9's triggers already watch.
func TestMappingDefaultView(t *testing.T) {
	t.Parallel()
	m := newMappingBundle(t)
	c := m.contract()
	require.Empty(t, c.Problems)
	require.Equal(t, []string{"id", "name", "email", "department", "phone_number", "connecteam_id", "role_code", "active"}, c.Watched)
	require.Equal(t, []string{"name", "email", "department", "phone_number", "connecteam_id", "role_code", "active"}, c.Triggers)
	require.Empty(t, c.Drift(), "a fresh install has nothing to apply")
	require.Nil(t, c.Applied)

	applied, err := m.apply("")
	require.NoError(t, err)
	require.False(t, applied.TriggersChanged)
	require.Zero(t, applied.Marked)
	c = m.contract()
	require.NotNil(t, c.Applied)
	require.Equal(t, c.Definition, c.Applied.Definition)
	require.Empty(t, c.Drift())
}

// What a view reads through another view is watched; a whole-row reference
// (a row passed to a function) watches every column but syncd's own.
func TestMappingWatchedColumns(t *testing.T) {
	t.Parallel()
	t.Run("through a view", func(t *testing.T) {
		t.Parallel()
		m := newMappingBundle(t)
		m.exec(`CREATE VIEW employee_names AS SELECT id, upper(name) AS shout FROM employees`)
		m.exec(`DROP VIEW syncd_desired`)
		m.exec(`CREATE VIEW syncd_desired AS SELECT e.id, e.email, n.shout AS name, NULL::text AS role_code, false AS blocked,
			'{}'::jsonb AS app_metadata, '{}'::jsonb AS user_metadata FROM employees e JOIN employee_names n ON n.id = e.id`)
		c := m.contract()
		require.Empty(t, c.Problems)
		require.Equal(t, []string{"id", "name", "email"}, c.Watched)
		require.Contains(t, strings.Join(c.Notes, "\n"), "it reads the views employee_names")
		require.Contains(t, c.Drift(), "the update triggers compare (name, email, department, phone_number, connecteam_id, role_code, active) but syncd_desired reads (id, name, email)")
	})
	t.Run("whole row", func(t *testing.T) {
		t.Parallel()
		m := newMappingBundle(t)
		m.exec(`CREATE FUNCTION display_name(e employees) RETURNS text LANGUAGE sql STABLE AS 'SELECT e.name'`)
		m.exec(`DROP VIEW syncd_desired`)
		m.exec(`CREATE VIEW syncd_desired AS SELECT e.id, e.email, display_name(e) AS name, NULL::text AS role_code, false AS blocked,
			'{}'::jsonb AS app_metadata, '{}'::jsonb AS user_metadata FROM employees e`)
		c := m.contract()
		require.Empty(t, c.Problems)
		require.Equal(t, []string{"id", "name", "email", "department", "phone_number", "connecteam_id", "role_code", "active"}, c.Watched)
		require.Contains(t, strings.Join(c.Notes, "\n"), "it reads whole rows of employees")
		require.Contains(t, strings.Join(c.Notes, "\n"), "it calls display_name(employees): what a function reads by itself is not in the catalog")
	})
	t.Run("another table and the date", func(t *testing.T) {
		t.Parallel()
		m := newMappingBundle(t)
		m.exec(`CREATE TABLE departments (code text PRIMARY KEY, title text)`)
		m.exec(`ALTER TABLE employees ADD COLUMN end_date date`)
		m.exec(`DROP VIEW syncd_desired`)
		m.exec(`CREATE VIEW syncd_desired AS SELECT e.id, e.email, e.name, NULL::text AS role_code,
			coalesce(e.end_date < current_date, false) AS blocked, jsonb_build_object('department', d.title) AS app_metadata,
			'{}'::jsonb AS user_metadata FROM employees e LEFT JOIN departments d ON d.code = e.department`)
		c := m.contract()
		require.Empty(t, c.Problems)
		require.Equal(t, []string{"id", "name", "email", "department", "end_date"}, c.Watched)
		notes := strings.Join(c.Notes, "\n")
		require.Contains(t, notes, "it reads the tables departments: a change there reaches syncd through the mapping sweep (--mapping-sweep-interval), not the triggers")
		require.Contains(t, notes, "it reads the date or the time (current_date, now(), …)")
		require.NotContains(t, notes, "it calls")
	})
}

// After an apply, the triggers fire for a column the view reads and not for
// one it no longer reads.
func TestApplyMappingTriggers(t *testing.T) {
	t.Parallel()
	m := newMappingBundle(t)
	ada := m.insert("Ada", "ada@example.com", "Ops", "+15550100")
	m.settle()

	// user_metadata without phone_number: the view reads it no more.
	applied, err := m.apply(view("e.name", "NOT e.active",
		`jsonb_build_object('department', e.department)`, `jsonb_build_object('full_name', e.name, 'department', e.department)`))
	require.NoError(t, err)
	require.True(t, applied.TriggersChanged)
	require.Equal(t, []string{"id", "name", "email", "department", "role_code", "active"}, applied.Watched)
	c := m.contract()
	require.Empty(t, c.Drift())
	require.Equal(t, []string{"id", "name", "email", "department", "role_code", "active"}, c.Triggers)
	m.settle()

	m.exec(`UPDATE employees SET phone_number = '+15550199' WHERE id::text = $1`, ada)
	require.Equal(t, "synced", m.status(ada), "a column the view does not read changes nothing")
	require.Empty(t, m.outbox())

	m.exec(`UPDATE employees SET department = 'Heat Press' WHERE id::text = $1`, ada)
	require.Equal(t, "pending", m.status(ada), "a column the view reads marks the row pending")
	require.Equal(t, []string{ada + " update"}, m.outbox())

	// syncd's own writes wake nothing.
	m.settle()
	m.exec(`UPDATE employees SET auth0_sync_error = 'x', auth0_synced_at = now() WHERE id::text = $1`, ada)
	require.Equal(t, "synced", m.status(ada))
	require.Empty(t, m.outbox())

	// A view changed without an apply is drift.
	m.exec(view("upper(e.name)", "NOT e.active",
		`jsonb_build_object('department', e.department)`, `jsonb_build_object('full_name', e.name, 'department', e.department)`))
	require.Contains(t, m.contract().Drift(), "syncd_desired changed since `syncd mapping apply` last ran")
}

// Apply marks pending exactly the rows whose desired state changed, each
// with one outbox row and a notification, in the transaction that changed
// the view.
func TestApplyMappingMarksChangedRows(t *testing.T) {
	t.Parallel()
	m := newMappingBundle(t)
	ada := m.insert("Ada", "ada@example.com", "Ops", "")
	bob := m.insert("Bob", "bob@example.com", "Sales", "")
	cyd := m.insert("Cyd", "cyd@example.com", "Sales", "")
	dee := m.insert("Dee", "dee@example.com", "Ops", "")
	m.settle()
	m.exec(`UPDATE employees SET auth0_sync_status = 'retrying' WHERE id::text = $1`, dee) // on its way already

	conn, err := pgx.Connect(m.ctx, m.pool.Config().ConnConfig.ConnString())
	require.NoError(t, err)
	defer conn.Close(m.ctx)
	_, err = conn.Exec(m.ctx, `LISTEN auth0_outbox`)
	require.NoError(t, err)

	// The name is upper-cased in Ops only.
	sql := `CREATE OR REPLACE VIEW syncd_desired AS SELECT d.id, d.email,
		CASE WHEN e.department = 'Ops' THEN upper(d.name) ELSE d.name END AS name, d.role_code, d.blocked, d.app_metadata, d.user_metadata
		FROM (SELECT e.id, e.email, e.name, e.role_code, NOT e.active AS blocked,
		             jsonb_strip_nulls(jsonb_build_object('internal_id', to_jsonb(e.id), 'role_code', e.role_code)) AS app_metadata,
		             jsonb_build_object('full_name', e.name) AS user_metadata FROM employees e) d JOIN employees e ON e.id = d.id`
	// The shape of the metadata changed for every row: the check says so.
	rep := m.check(sql)
	require.Equal(t, 3, rep.Changed)
	require.Equal(t, []string{ada, bob, cyd}, rep.ChangedKeys)
	require.Equal(t, 4, rep.Rows)
	require.Zero(t, rep.Failing)

	applied, err := m.apply(sql)
	require.NoError(t, err)
	require.EqualValues(t, 3, applied.Marked)
	m.settle()
	m.exec(`UPDATE employees SET auth0_sync_status = 'retrying' WHERE id::text = $1`, dee)
	drainNotifications(t, conn)

	// Now a change to the Ops names only.
	sql = strings.Replace(sql, "upper(d.name)", "lower(d.name)", 1)
	applied, err = m.apply(sql)
	require.NoError(t, err)
	require.EqualValues(t, 1, applied.Marked, "Ada only: Dee is retrying, Bob and Cyd are not in Ops")
	require.Equal(t, "pending", m.status(ada))
	require.Equal(t, "synced", m.status(bob))
	require.Equal(t, "synced", m.status(cyd))
	require.Equal(t, "retrying", m.status(dee))
	require.Equal(t, []string{ada + " update"}, m.outbox())
	wctx, cancel := context.WithTimeout(m.ctx, time.Minute)
	defer cancel()
	_, err = conn.WaitForNotification(wctx)
	require.NoError(t, err, "the apply notified the outbox channel")

	// Applying the same again marks nothing.
	m.settle()
	applied, err = m.apply(sql)
	require.NoError(t, err)
	require.Zero(t, applied.Marked)
	require.False(t, applied.TriggersChanged)
}

func drainNotifications(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := conn.WaitForNotification(ctx)
		cancel()
		if err != nil {
			require.True(t, errors.Is(err, context.DeadlineExceeded) || pgconnTimeout(err), "%v", err)
			return
		}
	}
}

func pgconnTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// check is `syncd mapping check --file`: the SQL and the check, rolled back.
func (m *mappingBundle) check(sql string) *reconcile.MappingReport {
	m.t.Helper()
	tx, err := m.pool.Begin(m.ctx)
	require.NoError(m.t, err)
	defer func() { require.NoError(m.t, tx.Rollback(m.ctx)) }()
	_, err = tx.Exec(m.ctx, sql)
	require.NoError(m.t, err)
	rep, err := reconcile.CheckMapping(m.ctx, tx, m.cfg)
	require.NoError(m.t, err)
	return rep
}

// The check reads every row: those the view gives no valid desired state
// are counted by reason with their keys, one row's runtime error included,
// and the others are sampled.
func TestCheckMappingRows(t *testing.T) {
	t.Parallel()
	m := newMappingBundle(t)
	ada := m.insert("Ada", "ada@example.com", "Ops", "")
	bob := m.insert("Bob", "bob@example.com", "Zero", "")
	cyd := m.insert("Cyd", "cyd@example.com", "Sales", "")
	dee := m.insert("Dee", "dee@example.com", "Sales", "")
	m.settle()
	rep := m.check(`CREATE OR REPLACE VIEW syncd_desired AS SELECT e.id,
		CASE WHEN e.department = 'Sales' THEN NULL ELSE e.email END AS email,
		CASE WHEN e.department = 'Zero' THEN (100 / (length(e.department) - 4))::text ELSE e.name END AS name,
		e.role_code, NOT e.active AS blocked, '{}'::jsonb AS app_metadata, '{}'::jsonb AS user_metadata FROM employees e`)
	require.Empty(t, rep.Problems)
	require.Equal(t, 4, rep.Rows)
	require.Equal(t, 3, rep.Failing)
	require.Len(t, rep.Failures, 2)
	require.Equal(t, 2, rep.Failures[0].Count)
	require.Equal(t, []string{cyd, dee}, rep.Failures[0].Keys)
	require.Contains(t, rep.Failures[0].Reason, "email")
	require.Equal(t, 1, rep.Failures[1].Count)
	require.Equal(t, []string{bob}, rep.Failures[1].Keys)
	require.Contains(t, rep.Failures[1].Reason, "division by zero")
	require.Equal(t, 4, rep.Changed, "the metadata changed for all")
	require.Len(t, rep.Sample, 1)
	require.Equal(t, ada, rep.Sample[0].EmployeeID)
	require.Equal(t, "ada@example.com", rep.Sample[0].Desired.Email)

	// Rolled back: the view in the database is the default one still.
	require.Empty(t, m.contract().Drift())
	require.Zero(t, m.check(`SELECT 1`).Changed)
}

// The sweep marks what no trigger sees: a row whose joined table changed,
// and not the others, across pages of keys; a sweep that finds nothing
// marks nothing; one replica sweeps per interval.
func TestMarkChangedSweep(t *testing.T) {
	t.Parallel()
	m := newMappingBundle(t)
	m.exec(`CREATE TABLE departments (code text PRIMARY KEY, title text NOT NULL)`)
	m.exec(`INSERT INTO departments VALUES ('ops', 'Operations'), ('sales', 'Sales')`)
	// 2,500 rows (three pages of keys), in sales but the last one.
	m.exec(`INSERT INTO employees (name, email, department) SELECT 'E' || i, 'e' || i || '@example.com', 'sales' FROM generate_series(1, 2499) i`)
	last := m.insert("Zed", "zed@example.com", "ops", "")
	_, err := m.apply(view("e.name", "NOT e.active", `'{}'::jsonb`,
		`(SELECT jsonb_build_object('department', d.title) FROM departments d WHERE d.code = e.department)`))
	require.NoError(t, err)
	m.settle()

	n, err := reconcile.MarkChanged(m.ctx, m.pool)
	require.NoError(t, err)
	require.Zero(t, n, "nothing changed")

	m.exec(`UPDATE departments SET title = 'Operations & Logistics' WHERE code = 'ops'`)
	require.Equal(t, "synced", m.status(last), "no trigger on departments")
	n, err = reconcile.MarkChanged(m.ctx, m.pool)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Equal(t, "pending", m.status(last))
	require.Equal(t, []string{last + " update"}, m.outbox())
	var pending int
	require.NoError(t, m.pool.QueryRow(m.ctx, `SELECT count(*) FROM employees WHERE auth0_sync_status <> 'synced'`).Scan(&pending))
	require.Equal(t, 1, pending)

	// A leased row is left to its reconcile.
	m.settle()
	m.exec(`UPDATE departments SET title = 'Ops' WHERE code = 'ops'`)
	m.exec(`UPDATE employees SET auth0_locked_until = now() + interval '1 minute' WHERE id::text = $1`, last)
	n, err = reconcile.MarkChanged(m.ctx, m.pool)
	require.NoError(t, err)
	require.Zero(t, n)

	// Two replicas' sweeps: one sweeps per interval.
	m.exec(`UPDATE employees SET auth0_locked_until = NULL`)
	var mu sync.Mutex
	var swept []int64
	onSweep := func(n int64, err error, _ time.Duration) {
		require.NoError(t, err)
		mu.Lock()
		swept = append(swept, n)
		mu.Unlock()
	}
	a := reconcile.NewMappingSweep(m.pool, reconcile.MappingSweepConfig{Every: time.Hour, Owner: "a", OnSweep: onSweep})
	b := reconcile.NewMappingSweep(m.pool, reconcile.MappingSweepConfig{Every: time.Hour, Owner: "b", OnSweep: onSweep})
	require.NoError(t, a.Once(m.ctx))
	require.NoError(t, b.Once(m.ctx))
	require.Equal(t, []int64{1}, swept)
	require.Equal(t, "pending", m.status(last))
}

// Two applies at once: each waits for the other, both succeed, and the
// triggers match the view that was committed last. Meanwhile outcomes are
// recorded as a reconcile records them (a write of employees, then a read
// of the view, in one transaction): they wait for the applies, never
// deadlock with them.
func TestApplyMappingConcurrent(t *testing.T) {
	t.Parallel()
	m := newMappingBundle(t)
	ada := m.insert("Ada", "ada@example.com", "Ops", "+15550100")
	m.settle()
	views := []string{
		view("e.name", "NOT e.active", `'{}'::jsonb`, `jsonb_build_object('phone', e.phone_number)`),
		view("e.name", "NOT e.active", `'{}'::jsonb`, `jsonb_build_object('department', e.department)`),
	}
	stop := make(chan struct{})
	recorded := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				recorded <- nil
				return
			default:
			}
			err := pgx.BeginFunc(m.ctx, m.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(m.ctx, `UPDATE employees SET auth0_synced_at = now() WHERE id::text = $1`, ada); err != nil {
					return err
				}
				_, err := tx.Exec(m.ctx, `UPDATE employees SET auth0_desired_hash = md5(syncd_desired_of(id)::text) WHERE id::text = $1`, ada)
				return err
			})
			if err != nil {
				recorded <- err
				return
			}
		}
	}()
	defer func() {
		close(stop)
		require.NoError(t, <-recorded, "a recorded outcome never fails for an apply")
	}()
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		errs := make([]error, len(views))
		for i, v := range views {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = m.apply(v)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		c := m.contract()
		require.Empty(t, c.Problems)
		require.Empty(t, c.Drift(), "the triggers match the view committed last")
		require.Contains(t, [][]string{{"id", "name", "email", "phone_number", "role_code", "active"}, {"id", "name", "email", "department", "role_code", "active"}}, c.Watched)
	}
}

// On every kind of key: the key's type is the contract's, the row pass
// and the sweep page through keys in their order, and the sweep marks
// exactly the rows whose joined row changed.
func TestMappingKeys(t *testing.T) {
	t.Parallel()
	for _, key := range pgtest.Keys {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			m := newMappingBundleOn(t, pgtest.NewKeyedDatabase(t, key))
			m.exec(`CREATE TABLE departments (code text PRIMARY KEY, title text NOT NULL)`)
			m.exec(`INSERT INTO departments VALUES ('ops', 'Operations'), ('sales', 'Sales')`)
			// 2,100 rows, three pages of keys; every 700th in ops.
			m.exec(`INSERT INTO employees (name, email, department)
				SELECT 'E' || i, 'e' || i || '@example.com', CASE WHEN i % 700 = 0 THEN 'ops' ELSE 'sales' END FROM generate_series(1, 2100) i`)
			_, err := m.apply(view("e.name", "NOT e.active", `'{}'::jsonb`,
				`(SELECT jsonb_build_object('department', d.title) FROM departments d WHERE d.code = e.department)`))
			require.NoError(t, err)
			m.settle()
			rep, err := reconcile.CheckMapping(m.ctx, m.pool, m.cfg)
			require.NoError(t, err)
			require.Equal(t, 2100, rep.Rows)
			require.Zero(t, rep.Changed)

			m.exec(`UPDATE departments SET title = 'Ops' WHERE code = 'ops'`)
			rep, err = reconcile.CheckMapping(m.ctx, m.pool, m.cfg)
			require.NoError(t, err)
			require.Equal(t, 3, rep.Changed)
			n, err := reconcile.MarkChanged(m.ctx, m.pool)
			require.NoError(t, err)
			require.EqualValues(t, 3, n)
			var wrong int
			require.NoError(t, m.pool.QueryRow(m.ctx, `SELECT count(*) FROM employees
				WHERE (auth0_sync_status = 'pending') <> (department = 'ops')`).Scan(&wrong))
			require.Zero(t, wrong, "exactly the ops rows are pending")
			require.Len(t, m.outbox(), 3)

			m.exec(`DROP VIEW syncd_desired`)
			m.exec(`CREATE VIEW syncd_desired AS SELECT e.id::text || '' AS id, e.email, e.name, NULL::text AS role_code, false AS blocked,
				'{}'::jsonb AS app_metadata, '{}'::jsonb AS user_metadata FROM employees e`)
			if key != "text" {
				require.Equal(t, []string{"column id is text; it must be " + key + ", the type of employees.id"}, m.contract().Problems)
			} else {
				require.Empty(t, m.contract().Problems)
			}
		})
	}
}

// Columns the triggers must quote, and of a type without an equality
// operator (json: compared as text), are watched like any other.
func TestApplyMappingQuotedAndJSONColumns(t *testing.T) {
	t.Parallel()
	m := newMappingBundle(t)
	m.exec(`ALTER TABLE employees ADD COLUMN "Given Name" text, ADD COLUMN profile json`)
	ada := m.insert("Ada", "ada@example.com", "Ops", "")
	applied, err := m.apply(`DROP VIEW syncd_desired; CREATE VIEW syncd_desired AS
		SELECT e.id, e.email, coalesce(e."Given Name", e.name) AS name, NULL::text AS role_code, false AS blocked,
		       coalesce(e.profile::jsonb, '{}') AS app_metadata, '{}'::jsonb AS user_metadata FROM employees e`)
	require.NoError(t, err)
	require.Equal(t, []string{"id", "name", "email", "Given Name", "profile"}, applied.Watched)
	require.Empty(t, m.contract().Drift())
	m.settle()

	m.exec(`UPDATE employees SET department = 'Sales', phone_number = '+1555'`)
	require.Equal(t, "synced", m.status(ada))
	m.exec(`UPDATE employees SET profile = '{"team": "blue"}'`)
	require.Equal(t, "pending", m.status(ada))
	require.Equal(t, []string{ada + " update"}, m.outbox())
	m.settle()
	m.exec(`UPDATE employees SET profile = '{"team": "blue"}'`)
	require.Equal(t, "synced", m.status(ada), "the same json: no change")
	m.exec(`UPDATE employees SET "Given Name" = 'Augusta'`)
	require.Equal(t, "pending", m.status(ada))
}
