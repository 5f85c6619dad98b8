package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	syncdsql "github.com/syncd/syncd/sql"
)

// mappingResult is the mapping scenario (issue 15): on N synced employees,
// an operator changes the mapping view so that the desired state of K of
// them changes, and applies it with `syncd mapping apply`; then a column the
// new view does not read changes on every row.
type mappingResult struct {
	Employees int `json:"employees"`
	// Affected is how many rows the new view gives another desired state.
	Affected int `json:"affected"`
	// ApplyMS is `syncd mapping apply --file F`, process start to exit.
	ApplyMS float64 `json:"apply_ms"`
	// MarkedPending counts the rows the apply turned pending (a counting
	// trigger of syncbench's); MarkedExact: they are the affected rows.
	MarkedPending int64 `json:"rows_marked_pending"`
	MarkedExact   bool  `json:"marked_exactly_the_affected_rows"`
	// Auth0 requests from the apply to every row synced again: writes are
	// POST/PATCH/DELETE to /api/v2 (export jobs excepted), reads every other
	// /api/v2 request.
	Writes  int64 `json:"auth0_writes"`
	Reads   int64 `json:"auth0_reads"`
	TooMany int64 `json:"auth0_429s"`
	// ConvergeS is from the apply's start to every row synced again.
	ConvergeS float64 `json:"apply_to_converged_s"`
	// DBXacts is the database's transactions over the same interval
	// (pg_stat_database, read after syncd exited), syncd run's and the
	// apply's, minus syncbench's own.
	DBXacts int64 `json:"db_transactions"`
	// Verified: every affected account has the new value and no other
	// account changed.
	Verified bool `json:"verified"`

	// The change to a column the view does not read (phone_number, on
	// every row, once the apply regenerated the triggers).
	UnreadRows    int64 `json:"unread_column_rows_updated"`
	UnreadOutbox  int64 `json:"unread_column_outbox_rows"`
	UnreadPending int64 `json:"unread_column_rows_pending"`
	UnreadCalls   int64 `json:"unread_column_auth0_calls"`
}

// statsFlushed is how long after a transaction pg_stat_database counts it
// at the latest, with a second to spare.
const statsFlushed = 11 * time.Second

// mappingDepartment is the department of the rows the new view changes: it
// gives their app_metadata.department upper-cased.
const mappingDepartment = "Mapping-100"

// mappingInsert inserts $1 employees, the first $2 of them in
// mappingDepartment. Nobody has a phone number: the new view stops reading
// phone_number, which leaves every other row's desired state as it was only
// if the old view gave no user_metadata.phone_number.
const mappingInsert = `INSERT INTO employees (name, email, department, connecteam_id)
	SELECT 'Mapping ' || g, 'mapping-' || g || '@bench.example',
	       CASE WHEN g <= $2::int THEN '` + mappingDepartment + `' ELSE (ARRAY['Production', 'Shipping', 'Quality', 'Maintenance'])[g % 4 + 1] END,
	       'ct-' || g
	  FROM generate_series(1, $1::int) g`

// mappingView is the changed mapping: migration 10's default view, except
// that app_metadata.department is upper-cased for mappingDepartment and
// phone_number is not read at all.
const mappingView = `-- syncbench's mapping change: app_metadata.department upper-cased for one
-- department; phone_number no longer read.
CREATE OR REPLACE VIEW syncd_desired AS
SELECT e.id,
       e.email,
       e.name,
       e.role_code,
       NOT e.active AS blocked,
       jsonb_strip_nulls(jsonb_build_object(
           'internal_id', to_jsonb(e.id),
           'role_code', e.role_code,
           'department', CASE WHEN e.department = '` + mappingDepartment + `' THEN upper(e.department)
                              ELSE nullif(syncd_trim(e.department), '') END,
           'connecteam_id', nullif(syncd_trim(e.connecteam_id), ''),
           'sync_status', CASE WHEN e.active THEN 'active' ELSE 'terminated' END)) AS app_metadata,
       jsonb_strip_nulls(jsonb_build_object(
           'employee_id', to_jsonb(e.id),
           'full_name', syncd_trim(e.name),
           'department', nullif(syncd_trim(e.department), ''))) AS user_metadata
  FROM employees e;
`

// mappingCounters are syncbench's own triggers: one records every row an
// UPDATE turns pending, one counts the outbox rows written. Neither is
// named syncd_*, so `syncd mapping apply` leaves them alone.
const mappingCounters = `
CREATE TABLE syncbench_marked (employee_id text NOT NULL);
CREATE TABLE syncbench_outbox (n bigint NOT NULL);
CREATE FUNCTION syncbench_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO syncbench_marked VALUES (NEW.id::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER syncbench_marked AFTER UPDATE ON employees FOR EACH ROW
    WHEN (NEW.auth0_sync_status = 'pending' AND OLD.auth0_sync_status IS DISTINCT FROM 'pending')
    EXECUTE FUNCTION syncbench_mark();
CREATE FUNCTION syncbench_count_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO syncbench_outbox SELECT count(*) FROM syncbench_new;
    RETURN NULL;
END;
$$;
CREATE TRIGGER syncbench_outbox AFTER INSERT ON auth0_outbox REFERENCING NEW TABLE AS syncbench_new
    FOR EACH STATEMENT EXECUTE FUNCTION syncbench_count_outbox();
`

// runMapping: N employees synced; the mapping changed for K of them and
// applied; every row synced again; then phone_number changed on every row.
func (b *bench) runMapping(ctx context.Context) (*mappingResult, error) {
	n, k := b.cfg.Sizes.MappingEmployees, b.cfg.Sizes.MappingAffected
	res := &mappingResult{Employees: n, Affected: k}
	db, e, p, stop, err := b.startStack(ctx, syncdsql.KeyBigint, "mapping", "notify")
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := db.exec(ctx, mappingCounters); err != nil {
		return nil, fmt.Errorf("counting triggers: %w", err)
	}
	if err := db.exec(ctx, mappingInsert, n, k); err != nil {
		return nil, fmt.Errorf("seed employees: %w", err)
	}
	if _, _, err := waitSynced(ctx, db.pool, int64(n), 20*time.Millisecond, b.cfg.Sizes.ConvergeTimeout); err != nil {
		return nil, err
	}
	if err := waitOutboxEmpty(ctx, db.pool, time.Minute); err != nil {
		return nil, err
	}
	if err := p.waitScanned(ctx, time.Minute); err != nil {
		return nil, err
	}
	settle(e, 20*time.Second)
	before, err := mappingAccounts(ctx, db, e)
	if err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, `SELECT id::text FROM employees WHERE department = $1 ORDER BY id`, mappingDepartment)
	if err != nil {
		return nil, fmt.Errorf("read the affected rows: %w", err)
	}
	affected, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the affected rows: %w", err)
	}
	slices.Sort(affected) // as markedRows sorts
	viewFile := filepath.Join(b.tmp, "mapping-view.sql")
	if err := os.WriteFile(viewFile, []byte(mappingView), 0o600); err != nil {
		return nil, fmt.Errorf("write the view: %w", err)
	}
	db.pool.Reset() // from here on every transaction is syncd's, the apply's or conn's
	// A backend adds its transactions to pg_stat_database when it goes idle,
	// at most once a second, and an idle backend at the latest 10 s later
	// (PGSTAT_IDLE_INTERVAL): wait that out, or the initial sync's last
	// transactions would be counted as the mapping change's.
	select {
	case <-time.After(statsFlushed):
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	conn, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer func() { conn.Close(context.WithoutCancel(ctx)) }()
	mine := 0 // this program's transactions on the database
	x0, err := dbXacts(ctx, conn, db.name)
	if err != nil {
		return nil, err
	}
	mine++
	if _, err := conn.Exec(ctx, `TRUNCATE syncbench_marked, syncbench_outbox`); err != nil {
		return nil, fmt.Errorf("reset the counters: %w", err)
	}
	mine++
	e.ResetCalls()
	start := time.Now()
	if err := b.applyMapping(ctx, db.url, viewFile); err != nil {
		return res, err
	}
	res.ApplyMS = round(msOf(time.Since(start)), 1)
	polls, at, err := waitSynced(ctx, conn, int64(n), 20*time.Millisecond, b.cfg.Sizes.ConvergeTimeout)
	mine += polls
	if err != nil {
		return res, err
	}
	res.ConvergeS = round(at.Sub(start).Seconds(), 3)
	res.Writes = e.WriteCount()
	res.Reads = e.apiCalls() - res.Writes
	res.TooMany = e.apiStatus(429)
	marked, err := markedRows(ctx, conn)
	mine++
	if err != nil {
		return res, err
	}
	res.MarkedPending = int64(len(marked))
	res.MarkedExact = slices.Equal(marked, affected)

	// Every transaction is counted once its backend has exited: syncd's and
	// this connection's.
	conn.Close(ctx)
	if err := p.stop(); err != nil {
		return res, err
	}
	time.Sleep(500 * time.Millisecond) // exited backends flush their counters
	if conn, err = pgx.Connect(ctx, db.url); err != nil {
		return res, fmt.Errorf("connect: %w", err)
	}
	x1, err := dbXacts(ctx, conn, db.name)
	if err != nil {
		return res, err
	}
	res.DBXacts = x1 - x0 - int64(mine)
	after, err := mappingAccounts(ctx, db, e)
	if err != nil {
		return res, err
	}
	if err := checkMappingAccounts(before, after, affected); err != nil {
		return res, err
	}
	res.Verified = true

	// A column the view does not read, on every row, with syncd running.
	p2, err := b.startSyncd(ctx, daemonOptions{name: "mapping-unread", dbURL: db.url, emuURL: e.URL, source: "notify"})
	if err != nil {
		return res, err
	}
	defer p2.kill()
	// Its start-up drift scan reads every account: over before counting.
	if err := p2.waitScanned(ctx, b.cfg.Sizes.ConvergeTimeout); err != nil {
		return res, err
	}
	settle(e, 20*time.Second)
	if _, err := conn.Exec(ctx, `TRUNCATE syncbench_marked, syncbench_outbox`); err != nil {
		return res, fmt.Errorf("reset the counters: %w", err)
	}
	e.ResetCalls()
	tag, err := conn.Exec(ctx, `UPDATE employees SET phone_number = '+1555' || lpad(id::text, 7, '0')`)
	if err != nil {
		return res, fmt.Errorf("update phone_number: %w", err)
	}
	res.UnreadRows = tag.RowsAffected()
	// Whatever the UPDATE queued is in the outbox when it returns: once that
	// is drained and no row is pending, its Auth0 calls are made.
	if err := waitOutboxEmpty(ctx, conn, b.cfg.Sizes.ConvergeTimeout); err != nil {
		return res, err
	}
	res.UnreadCalls = e.allCalls()
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM syncbench_marked), (SELECT coalesce(sum(n), 0) FROM syncbench_outbox)`).
		Scan(&res.UnreadPending, &res.UnreadOutbox); err != nil {
		return res, fmt.Errorf("read the counters: %w", err)
	}
	unread, err := mappingAccounts(ctx, db, e)
	if err != nil {
		return res, err
	}
	if err := checkMappingAccounts(after, unread, nil); err != nil {
		return res, fmt.Errorf("after the phone_number update: %w", err)
	}
	if err := p2.stop(); err != nil {
		return res, err
	}
	for _, q := range []*syncdProc{p, p2} {
		if _, _, leak := q.logStats(); leak {
			return res, fmt.Errorf("syncd run %s: a secret or token in its log", q.name)
		}
	}
	return res, nil
}

// applyMapping runs `syncd mapping apply --file file` on the database, as
// an operator does.
func (b *bench) applyMapping(ctx context.Context, dbURL, file string) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Sizes.ConvergeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.syncd, "mapping", "apply", "--file", file) //nolint:gosec // our own binary
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + dbURL,
		"LOG_FORMAT=json",
		"LOG_LEVEL=" + b.cfg.LogLevel,
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("syncd mapping apply --file %s: %w: %s", file, err, strings.TrimSpace(out.String()))
	}
	if err := os.WriteFile(filepath.Join(b.tmp, "mapping-apply.log"), out.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write the apply's output: %w", err)
	}
	return nil
}

// markedRows is the ids the counting trigger saw turn pending, each once,
// sorted as strings.
func markedRows(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT DISTINCT employee_id FROM syncbench_marked ORDER BY employee_id`)
	if err != nil {
		return nil, fmt.Errorf("read the rows marked pending: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the rows marked pending: %w", err)
	}
	return ids, nil
}

// mappingAccount is what the scenario checks of one linked account.
type mappingAccount struct {
	id, uid                  string
	appDept, userDept, phone string // as fmt.Sprint gives them (absent: "<nil>")
}

// mappingAccounts reads every row's account from the emulator.
func mappingAccounts(ctx context.Context, db *database, e *emu) ([]mappingAccount, error) {
	rows, err := db.pool.Query(ctx, `SELECT id::text, auth0_user_id FROM employees WHERE auth0_user_id IS NOT NULL ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	accs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (mappingAccount, error) {
		var a mappingAccount
		return a, r.Scan(&a.id, &a.uid)
	})
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	for i, a := range accs {
		u := e.User(a.uid)
		if u == nil {
			return nil, fmt.Errorf("employee %s: no account %s in the emulator", a.id, a.uid)
		}
		am, _ := u["app_metadata"].(map[string]any)
		um, _ := u["user_metadata"].(map[string]any)
		accs[i].appDept, accs[i].userDept, accs[i].phone = fmt.Sprint(am["department"]), fmt.Sprint(um["department"]), fmt.Sprint(um["phone_number"])
	}
	return accs, nil
}

// checkMappingAccounts checks that the affected accounts' app_metadata
// department became upper-case and that nothing else changed.
func checkMappingAccounts(before, after []mappingAccount, affected []string) error {
	if len(before) != len(after) {
		return fmt.Errorf("%d accounts before the mapping change, %d after", len(before), len(after))
	}
	var errs []error
	for i, a := range after {
		want := before[i]
		if slices.Contains(affected, a.id) {
			want.appDept = strings.ToUpper(mappingDepartment)
		}
		if a != want {
			errs = append(errs, fmt.Errorf("employee %s: account %+v, want %+v", a.id, a, want))
		}
		if len(errs) == 3 {
			break
		}
	}
	return errors.Join(errs...)
}

func (r *results) evaluateMapping(add func(name, goal string, v float64, got string, met bool)) {
	m := r.Mapping
	if m == nil {
		return
	}
	add(fmt.Sprintf("mapping change affecting %d of %d: write calls", m.Affected, m.Employees), fmt.Sprintf("= %d", m.Affected), float64(m.Writes),
		fmt.Sprintf("%d (%d rows marked pending)", m.Writes, m.MarkedPending), m.Writes == int64(m.Affected) && m.MarkedExact && m.Verified)
	add(fmt.Sprintf("mapping change affecting %d of %d: reads", m.Affected, m.Employees), "= 0", float64(m.Reads), fmt.Sprint(m.Reads), m.Reads == 0)
	add("column the view does not read, every row", "0 calls, 0 rows pending", float64(m.UnreadCalls+m.UnreadPending),
		fmt.Sprintf("%d calls, %d rows pending, %d outbox rows", m.UnreadCalls, m.UnreadPending, m.UnreadOutbox),
		m.UnreadCalls == 0 && m.UnreadPending == 0 && m.UnreadOutbox == 0)
}

func (r *results) markdownMapping(p func(format string, args ...any)) {
	m := r.Mapping
	if m == nil {
		return
	}
	p("\n## Mapping change (issue 15)\n\n")
	p("%d employees synced (notify source, default flags; nobody has a phone number), %d of them in department `%s`. The new view is the default one\n", m.Employees, m.Affected, mappingDepartment)
	p("with `app_metadata.department` upper-cased for that department and `phone_number` no longer read; `syncd mapping apply --file F` runs it\n")
	p("(a subprocess, as an operator runs it) while `syncd run` runs. Rows marked pending are counted by a trigger of syncbench's; Auth0 calls by the emulator\n")
	p("(writes: POST/PATCH/DELETE to /api/v2; reads: every other /api/v2 request); transactions are `xact_commit + xact_rollback` of the database\n")
	p("(read after syncd exited), syncd's and the apply's, minus syncbench's own; wall time is from the apply's start to every row read `synced`.\n\n")
	p("| employees | affected | rows marked pending | exactly those | Auth0 writes | Auth0 reads | 429s | apply | apply → converged (after its exit) | DB transactions | verified |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|\n")
	p("| %d | %d | %d | %v | %d | %d | %d | %.0f ms | %.2f s (%.2f s) | %d | %v |\n\n", m.Employees, m.Affected, m.MarkedPending, m.MarkedExact,
		m.Writes, m.Reads, m.TooMany, m.ApplyMS, m.ConvergeS, m.ConvergeS-m.ApplyMS/1000, m.DBXacts, m.Verified)
	p("Then, with `syncd run` started again, one UPDATE of `phone_number` (a column the new view does not read) on all %d rows: counted once the outbox\n", m.UnreadRows)
	p("is empty and no row is pending.\n\n")
	p("| rows updated | outbox rows written | rows marked pending | Auth0 calls |\n|---|---|---|---|\n")
	p("| %d | %d | %d | %d |\n", m.UnreadRows, m.UnreadOutbox, m.UnreadPending, m.UnreadCalls)
}

// waitScanned waits until syncd's first drift scan (the one at start) has
// succeeded, as its metrics say.
func (p *syncdProc) waitScanned(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		v, err := p.readMetrics()
		if err != nil {
			return err
		}
		if v[`syncd_drift_scans_total{result="failure"}`] > 0 {
			return fmt.Errorf("syncd run %s: its drift scan failed: %s", p.name, p.tail())
		}
		if v[`syncd_drift_scans_total{result="success"}`] > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("syncd run %s: no drift scan done after %s", p.name, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
