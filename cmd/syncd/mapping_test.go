package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/reconcile"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

func TestTransactionControl(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ sql, want string }{
		{`CREATE OR REPLACE VIEW syncd_desired AS SELECT 1`, ""},
		{`CREATE VIEW v AS SELECT 1; COMMIT;`, "COMMIT"},
		{"begin;\nCREATE VIEW v AS SELECT 1", "BEGIN"},
		{`CREATE VIEW v AS SELECT 1; end`, "END"},
		{`SAVEPOINT a; CREATE VIEW v AS SELECT 1; ROLLBACK TO SAVEPOINT a; RELEASE a`, ""},
		{`CREATE VIEW v AS SELECT 1; ROLLBACK`, "ROLLBACK"},
		{`START TRANSACTION`, "START"},
		{`PREPARE TRANSACTION 'x'`, "PREPARE TRANSACTION"},
		{`SELECT 'x; COMMIT'; SELECT "a;commit"`, ""},
		{"-- COMMIT;\nSELECT 1 /* ; COMMIT; /* nested */ ; */", ""},
		{`DO $$ BEGIN PERFORM 1; COMMIT; END $$; SELECT $tag$; ROLLBACK;$tag$`, ""},
		{`SELECT E'it\'s; COMMIT'`, ""},
		{`CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; SELECT f()`, ""},
		{`CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; COMMIT`, "COMMIT"},
	} {
		require.Equal(t, tc.want, transactionControl(tc.sql), tc.sql)
	}
}

// mappingDB is a migrated database with employees Ada (Ops, a phone
// number), Bob (Sales, a phone number) and Cyd (Sales, none), all synced
// as a recorded outcome leaves them: linked, with what syncd applied and
// the hash of the desired state.
func mappingDB(t *testing.T) (url string, pool *pgxpool.Pool, ids []string) {
	t.Helper()
	ctx := context.Background()
	url = pgtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	rows, err := pool.Query(ctx, `INSERT INTO employees (name, email, department, phone_number) VALUES
		('Ada', 'ada@example.com', 'Ops', '+15550100'), ('Bob', 'bob@example.com', 'Sales', '+15550101'), ('Cyd', 'cyd@example.com', 'Sales', NULL)
		RETURNING id::text`)
	require.NoError(t, err)
	ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	settleMapping(t, pool)
	return url, pool, ids
}

func settleMapping(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		UPDATE employees SET auth0_sync_status = 'synced', auth0_user_id = 'auth0|' || id,
		       auth0_synced_state = jsonb_build_object('email', email, 'name', name, 'blocked', NOT active, 'role', 'production_associate',
		           'app_metadata', syncd_desired_of(id)->'app_metadata' || jsonb_build_object('employee_id', to_jsonb(id), 'created_by', 'productivity_system'),
		           'user_metadata', syncd_desired_of(id)->'user_metadata'),
		       auth0_desired_hash = md5(syncd_desired_of(id)::text);
		DELETE FROM auth0_outbox`)
	require.NoError(t, err)
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

// defaultMetadata is migration 10's app_metadata and user_metadata.
const defaultMetadata = `jsonb_strip_nulls(jsonb_build_object(
           'internal_id', to_jsonb(e.id), 'role_code', e.role_code, 'department', nullif(btrim(e.department), ''),
           'connecteam_id', nullif(btrim(e.connecteam_id), ''), 'sync_status', CASE WHEN e.active THEN 'active' ELSE 'terminated' END)) AS app_metadata,
       jsonb_strip_nulls(jsonb_build_object(
           'employee_id', to_jsonb(e.id), 'full_name', btrim(e.name), 'department', nullif(btrim(e.department), ''),
           'phone_number', nullif(btrim(e.phone_number), ''))) AS user_metadata`

// noPhone is the default mapping without phone_number.
const noPhone = `-- The default mapping, without the phone number.
CREATE OR REPLACE VIEW syncd_desired AS
SELECT e.id, e.email, e.name, e.role_code, NOT e.active AS blocked,
       jsonb_strip_nulls(jsonb_build_object(
           'internal_id', to_jsonb(e.id), 'role_code', e.role_code, 'department', nullif(btrim(e.department), ''),
           'sync_status', CASE WHEN e.active THEN 'active' ELSE 'terminated' END)) AS app_metadata,
       jsonb_strip_nulls(jsonb_build_object(
           'employee_id', to_jsonb(e.id), 'full_name', btrim(e.name), 'department', nullif(btrim(e.department), ''))) AS user_metadata
  FROM employees e;
`

func watched(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	c, err := reconcile.CheckMappingContract(context.Background(), pool)
	require.NoError(t, err)
	return c.Watched
}

// `syncd mapping check --file` checks a changed view and rolls it back;
// a view that breaks the contract, SQL that fails, and a file that would
// end the transaction are each exit status 2 with a line saying why.
func TestMappingCheckCommand(t *testing.T) {
	t.Parallel()
	url, pool, ids := mappingDB(t)
	environ := map[string]string{"DATABASE_URL": url, "LOG_FORMAT": "json"}
	defaultWatch := []string{"id", "name", "email", "department", "phone_number", "connecteam_id", "role_code", "active"}

	code, stdout, stderr := runCLI(t, environ, "mapping", "check", "--file", writeFile(t, "no-phone.sql", noPhone))
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "keeps the contract.")
	require.Contains(t, stdout, "Columns of employees it reads, which the update triggers watch: id, name, email, department, role_code, active\n")
	require.Contains(t, stdout, "Rows: 3 read, 3 valid, none would fail.")
	require.Contains(t, stdout, "Desired state changed for 2 rows (employees "+ids[0]+", "+ids[1]+"): `syncd mapping apply` marks them pending")
	require.Contains(t, stdout, "Not applied yet: the update triggers compare")
	require.Contains(t, stdout, "employee "+ids[0]+" (changed): {")
	require.Equal(t, defaultWatch, watched(t, pool), "rolled back")

	code, stdout, stderr = runCLI(t, environ, "mapping", "check")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "(as it is in the database)")
	require.Contains(t, stdout, "No row's desired state differs")

	code, stdout, _ = runCLI(t, environ, "mapping", "check", "--json", "--file", writeFile(t, "no-phone.sql", noPhone))
	require.Equal(t, 0, code)
	var out mappingOutput
	require.NoError(t, json.Unmarshal([]byte(stdout), &out))
	require.Equal(t, 2, out.Report.Changed, "Cyd has no phone number: unchanged")
	require.Equal(t, []string{}, out.Report.Problems)

	// Contract problems: exit 2, listed on stdout.
	missing := writeFile(t, "missing.sql", `DROP VIEW syncd_desired;
CREATE VIEW syncd_desired AS SELECT e.id, e.email, e.name, e.role_code, e.auth0_sync_status = 'failed' AS blocked, '{}'::jsonb AS app_metadata FROM employees e;`)
	code, stdout, stderr = runCLI(t, environ, "mapping", "check", "--file", missing)
	require.Equal(t, 2, code)
	require.Contains(t, stdout, "  breaks the contract:\n  - column user_metadata is missing (it must be jsonb)\n  - it reads auth0_sync_status of employees")
	require.Equal(t, "syncd: the mapping view breaks syncd's contract (above)\n", stderr)

	// SQL that fails: its line.
	typo := writeFile(t, "typo.sql", "CREATE OR REPLACE VIEW syncd_desired AS\nSELECT e.id, e.email,\n       e.first_nme AS name\n  FROM employees e;\n")
	code, _, stderr = runCLI(t, environ, "mapping", "check", "--file", typo)
	require.Equal(t, 2, code)
	require.Equal(t, "syncd: "+typo+": line 3: ERROR: column e.first_nme does not exist (SQLSTATE 42703; nothing was changed)\n", stderr)

	// A view that fails for every row (not a row's fault: a table it reads
	// is gone): exit 2 too, with PostgreSQL's reason.
	gone := writeFile(t, "gone.sql", `CREATE FUNCTION title_of(code text) RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE t text;
BEGIN
    EXECUTE 'SELECT title FROM no_such_table WHERE code = $1' INTO t USING code;
    RETURN t;
END $$;
CREATE OR REPLACE VIEW syncd_desired AS SELECT e.id, e.email, coalesce(title_of(e.department), e.name) AS name, e.role_code,
       NOT e.active AS blocked, `+defaultMetadata+` FROM employees e;`)
	code, _, stderr = runCLI(t, environ, "mapping", "check", "--file", gone)
	require.Equal(t, 2, code)
	require.Equal(t, `syncd: reading the rows through syncd_desired fails: ERROR: relation "no_such_table" does not exist (SQLSTATE 42P01): `+
		"a fault of the view, not of a row (a running syncd retries and marks nothing failed)\n", stderr)
	code, _, stderr = runCLI(t, environ, "plan", "--mapping", gone)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `relation "no_such_table" does not exist`)
	code, _, stderr = runCLI(t, environ, "mapping", "apply", "--file", gone)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `relation "no_such_table" does not exist`)
	require.Equal(t, defaultWatch, watched(t, pool), "nothing applied")

	// A file that ends the transaction: refused before anything runs.
	commit := writeFile(t, "commit.sql", "CREATE TABLE stray (x int);\nCOMMIT;\n")
	code, _, stderr = runCLI(t, environ, "mapping", "check", "--file", commit)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, commit+": COMMIT: the file runs inside syncd's transaction")
	var stray *string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT to_regclass('stray')::text`).Scan(&stray))
	require.Nil(t, stray, "nothing of the file was committed")

	code, _, stderr = runCLI(t, environ, "mapping")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "mapping: say check or apply")
	code, _, stderr = runCLI(t, environ, "mapping", "check", "--file", filepath.Join(t.TempDir(), "absent.sql"))
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "absent.sql: no such file or directory")
}

// `syncd mapping apply --file` commits the view with the regenerated
// triggers and marks exactly the changed rows pending; a column the view no
// longer reads changes nothing afterwards.
func TestMappingApplyCommand(t *testing.T) {
	t.Parallel()
	url, pool, ids := mappingDB(t)
	ctx := context.Background()
	environ := map[string]string{"DATABASE_URL": url, "LOG_FORMAT": "json"}

	// Only Ada and Bob have a phone number: their desired state changes.
	code, stdout, stderr := runCLI(t, environ, "mapping", "apply", "--file", writeFile(t, "no-phone.sql", noPhone))
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "Applied: the update triggers (regenerated) compare id, name, email, department, role_code, active; 2 rows marked pending")
	require.Equal(t, []string{"id", "name", "email", "department", "role_code", "active"}, watched(t, pool))
	outbox := func() []string {
		rows, err := pool.Query(ctx, `SELECT employee_id::text FROM auth0_outbox ORDER BY employee_id`)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return got
	}
	require.Equal(t, ids[:2], outbox())

	settleMapping(t, pool)
	_, err := pool.Exec(ctx, `UPDATE employees SET phone_number = '+15550199'`)
	require.NoError(t, err)
	require.Empty(t, outbox(), "phone_number is read no more")
	_, err = pool.Exec(ctx, `UPDATE employees SET department = 'Ops' WHERE id::text = $1`, ids[2])
	require.NoError(t, err)
	require.Equal(t, []string{ids[2]}, outbox())

	// Again, as it is: nothing to do.
	settleMapping(t, pool)
	code, stdout, stderr = runCLI(t, environ, "mapping", "apply")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "Applied: the update triggers (unchanged) compare id, name, email, department, role_code, active; 0 rows marked pending")

	// A view that breaks the contract is not applied.
	code, _, _ = runCLI(t, environ, "mapping", "apply", "--file", writeFile(t, "bad.sql", `DROP VIEW syncd_desired; CREATE VIEW syncd_desired AS SELECT id FROM employees`))
	require.Equal(t, 2, code)
	require.Equal(t, []string{"id", "name", "email", "department", "role_code", "active"}, watched(t, pool), "rolled back")
}

// `syncd plan --mapping F` shows the calls a mapping change would make,
// from what syncd last applied, with no Auth0 setting and no Auth0 call,
// and rolls the change back.
func TestPlanMappingCommand(t *testing.T) {
	t.Parallel()
	url, pool, ids := mappingDB(t)
	environ := map[string]string{"DATABASE_URL": url, "LOG_FORMAT": "json"}
	upper := writeFile(t, "upper.sql", `CREATE OR REPLACE VIEW syncd_desired AS
SELECT e.id, e.email, CASE WHEN e.department = 'Ops' THEN upper(e.name) ELSE e.name END AS name, e.role_code, NOT e.active AS blocked,
       `+defaultMetadata+`
  FROM employees e;`)

	code, stdout, stderr := runCLI(t, environ, "plan", "--mapping", upper)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "1 row change their desired state")
	require.Contains(t, stdout, `update name: "Ada" → "ADA"`)
	require.NotContains(t, stdout, "Bob")
	require.Contains(t, stdout, "auth0|"+ids[0])

	code, stdout, _ = runCLI(t, environ, "plan", "--mapping", upper, "--json", "--detailed-exitcode")
	require.Equal(t, 2, code, "changes to make")
	var out mappingPlanOutput
	require.NoError(t, json.Unmarshal([]byte(stdout), &out))
	require.Len(t, out.Plan, 1)
	require.Equal(t, ids[0], out.Plan[0].EmployeeID)
	require.True(t, out.Changes)

	var name string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT syncd_desired_of(id)->>'name' FROM employees WHERE id::text = $1`, ids[0]).Scan(&name))
	require.Equal(t, "Ada", name, "rolled back")

	// A bad mapping: 2, or 1 with --detailed-exitcode (where 2 means changes).
	bad := writeFile(t, "bad.sql", `DROP VIEW syncd_desired; CREATE VIEW syncd_desired AS SELECT id FROM employees`)
	code, stdout, _ = runCLI(t, environ, "plan", "--mapping", bad)
	require.Equal(t, 2, code)
	require.Contains(t, stdout, "  - column email is missing (it must be text or varchar)")
	code, _, _ = runCLI(t, environ, "plan", "--mapping", bad, "--detailed-exitcode")
	require.Equal(t, 1, code)

	// A mapping that blocks Sales: two blocks, under the guard.
	sales := writeFile(t, "sales.sql", `CREATE OR REPLACE VIEW syncd_desired AS
SELECT e.id, e.email, e.name, e.role_code, NOT e.active OR e.department = 'Sales' AS blocked, `+defaultMetadata+`
  FROM employees e;`)
	code, stdout, stderr = runCLI(t, environ, "plan", "--mapping", sales)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "2 rows change their desired state; 2 accounts would be written")
	require.Equal(t, 2, strings.Count(stdout, "  block\n"), "the block alone: %s", stdout)
	require.Contains(t, stdout, "2 accounts would be blocked or deleted (subject to --max-deprovision")
}

// A view that breaks the contract stops `syncd run` at start with one line
// naming the problem.
func TestRunRefusesBrokenMapping(t *testing.T) {
	t.Parallel()
	url, pool, _ := mappingDB(t)
	_, err := pool.Exec(context.Background(), `DROP VIEW syncd_desired; CREATE VIEW syncd_desired AS SELECT e.id, e.email, e.name, e.role_code,
		e.auth0_sync_status = 'failed' AS blocked, '{}'::jsonb AS app_metadata, '{}'::jsonb AS user_metadata FROM employees e`)
	require.NoError(t, err)
	code, _, stderr := runCLI(t, map[string]string{"DATABASE_URL": url, "LOG_FORMAT": "json", "METRICS_ADDR": "",
		"AUTH0_DOMAIN": "http://127.0.0.1:1", "AUTH0_CLIENT_ID": "id", "AUTH0_CLIENT_SECRET": "secret"}, "run")
	require.Equal(t, 1, code)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	require.Equal(t, "syncd: mapping view syncd_desired: it reads auth0_sync_status of employees, which syncd writes (every auth0_* column is syncd's): "+
		"its own writes would change the desired state and wake it again; read only the employee's columns (`syncd mapping check` says more)", lines[len(lines)-1])
}

// A view that cannot be read for a reason that is not a row's (a table it
// reads is gone) stops `syncd run` at start too.
func TestRunRefusesUnreadableMapping(t *testing.T) {
	t.Parallel()
	url, pool, _ := mappingDB(t)
	_, err := pool.Exec(context.Background(), `CREATE FUNCTION title_of(code text) RETURNS text LANGUAGE plpgsql STABLE AS $$
		DECLARE t text;
		BEGIN
		    EXECUTE 'SELECT title FROM departments WHERE code = $1' INTO t USING code;
		    RETURN t;
		END $$;
		CREATE TABLE departments (code text, title text);
		CREATE OR REPLACE VIEW syncd_desired AS SELECT e.id, e.email, coalesce(title_of(e.department), e.name) AS name, e.role_code,
		       NOT e.active AS blocked, `+defaultMetadata+` FROM employees e;
		DROP TABLE departments`)
	require.NoError(t, err)
	code, _, stderr := runCLI(t, map[string]string{"DATABASE_URL": url, "LOG_FORMAT": "json", "METRICS_ADDR": "",
		"AUTH0_DOMAIN": "http://127.0.0.1:1", "AUTH0_CLIENT_ID": "id", "AUTH0_CLIENT_SECRET": "secret"}, "run")
	require.Equal(t, 1, code)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	require.Equal(t, `syncd: mapping view syncd_desired: reading it fails: relation "departments" does not exist (SQLSTATE 42P01) (`+"`syncd mapping check` says more)", lines[len(lines)-1])
}

// A view changed without `syncd mapping apply` is a warning at start; the
// mapping sweep runs and says so in its metrics.
func TestRunWarnsUnappliedMapping(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	x.exec(noPhone)
	d := x.start("notify", emulator.DefaultClientSecret, "--mapping-sweep-interval", "1s")
	defer d.stop(t)
	require.Contains(t, x.logs.String(), `"msg":"the mapping is not applied: the update triggers compare (name, email, department, phone_number, connecteam_id, role_code, active) but syncd_desired reads (id, name, email, department, role_code, active)`)
	require.Eventually(t, func() bool { return x.metric("syncd_mapping_sweep_duration_seconds_count") >= 1 }, time.Minute, 20*time.Millisecond)
	require.Zero(t, x.metric("syncd_mapping_sweep_marked_total"), "exported, and nothing to mark on an empty table")
}

func TestMappingSweepIntervalSetting(t *testing.T) {
	t.Parallel()
	environ := map[string]string{"DATABASE_URL": "postgres://syncd@127.0.0.1:5432/app", "AUTH0_DOMAIN": "tenant.auth0.com",
		"AUTH0_CLIENT_ID": "id", "AUTH0_CLIENT_SECRET": "s"}
	code, _, stderr := runCLI(t, environ, "run", "--mapping-sweep-interval", "10ms")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "syncd: --mapping-sweep-interval: must be 0 (off) or at least 100ms, got 10ms")
	environ["SYNCD_MAPPING_SWEEP_INTERVAL"] = "often"
	code, _, stderr = runCLI(t, environ, "run")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `syncd: SYNCD_MAPPING_SWEEP_INTERVAL: must be a duration like 30s or 15m, got "often"`)

	c, err := parseRunConfig(&env{getenv: func(k string) string { return map[string]string{"SYNCD_MAPPING_SWEEP_INTERVAL": "0"}[k] },
		stdout: &strings.Builder{}, stderr: &strings.Builder{}, flagOf: map[string]string{}},
		[]string{"--database-url", environ["DATABASE_URL"], "--auth0-domain", "tenant.auth0.com", "--auth0-client-id", "id", "--auth0-client-secret", "s"})
	require.NoError(t, err)
	require.Zero(t, c.MappingSweep, "0: off")
	require.Nil(t, newMappingSweep(c.MappingSweep, nil, "me", newMetrics(), nil))
}
