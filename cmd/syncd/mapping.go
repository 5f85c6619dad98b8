package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/reconcile"
)

func init() {
	register("mapping", "check the mapping view syncd_desired, or apply it: mapping check|apply [--file F] (exit 2: the mapping is bad)", cmdMapping)
}

// exitBadMapping is `syncd mapping`'s and `syncd plan --mapping`'s status
// for a mapping that breaks the contract or SQL that fails.
const exitBadMapping = 2

// mappingOutput is `syncd mapping check|apply --json`.
type mappingOutput struct {
	File   string                   `json:"file,omitempty"`
	Report *reconcile.MappingReport `json:"check"`
	// RowsRead: the check read every row (check does; apply checks the
	// contract only, so that writes of employees do not wait for a row pass).
	RowsRead bool                      `json:"rows_read"`
	Applied  *reconcile.MappingApplied `json:"applied,omitempty"`
}

// cmdMapping is `syncd mapping check|apply [--file F]`: wiring and
// formatting only, the checks and the apply are reconcile's.
func cmdMapping(ctx context.Context, e *env, args []string) error {
	action := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	switch action {
	case "check", "apply":
	case "":
		return usagef("mapping: say check or apply (`syncd mapping check [--file F]`)")
	default:
		return usagef("mapping: unknown action %q (want check or apply)", action)
	}
	var (
		db      dbConfig
		mapping mappingConfig
		log     logConfig
		file    string
		asJSON  bool
	)
	fs := newFlagSet(e, "mapping "+action)
	db.register(fs, e)
	mapping.register(fs, e)
	log.register(fs, e)
	registerMappingFile(fs, &file, action)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := e.check(fs, db.validate(), mapping.validate(), log.validate()); err != nil {
		return err
	}
	// Before the file changes the view, an apply takes the mapping's lock:
	// two applies run one after the other, never interleaved.
	tx, done, err := mappingTx(ctx, db.URL, file, action == "apply")
	if err != nil {
		return err
	}
	defer done()
	out := mappingOutput{File: file}
	if action == "check" {
		if out.Report, err = reconcile.CheckMapping(ctx, tx, mapping.cfg); err != nil {
			return viewFails(err)
		}
		out.RowsRead = true
	} else {
		// No row pass: writes of employees wait for the apply (LockMapping).
		// `syncd mapping check` reads the rows beforehand.
		c, err := reconcile.CheckMappingContract(ctx, tx)
		if err != nil {
			return err
		}
		out.Report = &reconcile.MappingReport{MappingContract: *c, Failures: []reconcile.MappingFailure{},
			ChangedKeys: []string{}, Sample: []reconcile.MappingSample{}}
	}
	bad := len(out.Report.Problems) > 0
	if action == "apply" && !bad {
		if out.Applied, err = reconcile.ApplyMapping(ctx, tx); err != nil {
			return viewFails(err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit the mapping: %w", err)
		}
	}
	if asJSON {
		if err := printJSON(e, out); err != nil {
			return err
		}
	} else {
		printMapping(e, &out)
	}
	if bad {
		msg := "the mapping view breaks syncd's contract (above)"
		if action == "apply" {
			msg += ": nothing was applied"
		}
		return &exitStatus{code: exitBadMapping, msg: msg}
	}
	return nil
}

func registerMappingFile(fs *flag.FlagSet, file *string, action string) {
	usage := "SQL `file` run first, in the same transaction: CREATE OR REPLACE VIEW syncd_desired AS … (or DROP VIEW and CREATE VIEW), INSERT INTO syncd_managed_keys …, a table the view joins; "
	switch action {
	case "check":
		usage += "rolled back after the check"
	case "apply":
		usage += "committed with the triggers and the pending marks"
	default:
		usage += "rolled back after the plan"
	}
	fs.StringVar(file, mappingFlagName(action), "", usage)
}

// mappingFlagName is the file flag's name: `plan --mapping F`, `mapping check --file F`.
func mappingFlagName(action string) string {
	if action == "plan" {
		return "mapping"
	}
	return "file"
}

// readMappingFile reads the SQL of --file ("" when none was given).
func readMappingFile(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usagef("%v", err)
	}
	if !utf8.Valid(b) {
		return "", &exitStatus{code: exitBadMapping, msg: path + ": not UTF-8 text"}
	}
	return string(b), nil
}

// runMappingFile runs the file's SQL in tx. A statement that would end
// the transaction (COMMIT, ROLLBACK, BEGIN, …) is refused before anything
// runs: `mapping check` must be able to roll everything back. SQL that
// fails is a bad mapping, reported with its line.
func runMappingFile(ctx context.Context, tx pgx.Tx, path, sqlText string) error {
	if strings.TrimSpace(sqlText) == "" {
		return nil
	}
	if stmt := transactionControl(sqlText); stmt != "" {
		return &exitStatus{code: exitBadMapping, msg: fmt.Sprintf("%s: %s: the file runs inside syncd's transaction, which must not be ended or begun by it; remove it (nothing was run)", path, stmt)}
	}
	if _, err := tx.Exec(ctx, sqlText); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			where := ""
			if pe.Position > 0 {
				where = fmt.Sprintf("line %d: ", lineOf(sqlText, int(pe.Position)))
			}
			return &exitStatus{code: exitBadMapping, msg: fmt.Sprintf("%s: %s%s: %s (SQLSTATE %s; nothing was changed)", path, where, pe.Severity, pe.Message, pe.Code)}
		}
		return fmt.Errorf("run %s: %w", path, err)
	}
	if tx.Conn().PgConn().TxStatus() != 'T' {
		return &exitStatus{code: exitBadMapping, msg: path + ": the file ended syncd's transaction"}
	}
	return nil
}

// viewFails makes an error of PostgreSQL's while the rows were read
// through the view (syncd_desired_of fails the statement for what is not a
// row's fault: a privilege on a table the view reads, a function that is
// gone) a bad mapping; other errors stay errors.
func viewFails(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && viewFault(pe.Code) {
		return &exitStatus{code: exitBadMapping, msg: fmt.Sprintf("reading the rows through %s fails: %s: %s (SQLSTATE %s): a fault of the view, not of a row (a running syncd retries and marks nothing failed)",
			reconcile.MappingView, pe.Severity, pe.Message, pe.Code)}
	}
	return err
}

// viewFault says whether SQLSTATE code is the view's doing (what it reads,
// its privileges, its functions, its data) rather than the database's or
// the connection's (a deadlock, a shutdown: those stay errors, status 1).
func viewFault(code string) bool {
	switch code[:min(2, len(code))] {
	case "42", "P0", "38", "39", "2F", "22", "21", "0A":
		return true
	}
	return false
}

// lineOf is the line of the pos-th character (1-based) of s.
func lineOf(s string, pos int) int {
	line, n := 1, 0
	for _, r := range s {
		n++
		if n >= pos {
			break
		}
		if r == '\n' {
			line++
		}
	}
	return line
}

// transactionControl returns the first top-level statement of sql that
// begins or ends a transaction ("COMMIT"), "" if there is none. It skips
// comments, quoted strings and identifiers, dollar-quoted bodies, and the
// statements inside a BEGIN ATOMIC … END function body.
func transactionControl(sql string) string {
	var stmts []string
	var cur strings.Builder
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case strings.HasPrefix(sql[i:], "--"):
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				i = len(sql)
			} else {
				i += j
			}
		case strings.HasPrefix(sql[i:], "/*"):
			depth := 0
			for i < len(sql) {
				if strings.HasPrefix(sql[i:], "/*") {
					depth++
					i += 2
				} else if strings.HasPrefix(sql[i:], "*/") {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
			cur.WriteByte(' ')
		case c == '\'' || c == '"':
			escapes := c == '\'' && i > 0 && (sql[i-1] == 'E' || sql[i-1] == 'e')
			i++
			for i < len(sql) {
				if escapes && sql[i] == '\\' {
					i += 2
					continue
				}
				if sql[i] == c {
					if i+1 < len(sql) && sql[i+1] == c {
						i += 2
						continue
					}
					break
				}
				i++
			}
			i++
			cur.WriteString(" x ")
		case c == '$' && dollarTag(sql[i:]) != "":
			tag := dollarTag(sql[i:])
			j := strings.Index(sql[i+len(tag):], tag)
			if j < 0 {
				i = len(sql)
			} else {
				i += len(tag) + j + len(tag)
			}
			cur.WriteString(" x ")
		case c == ';':
			stmts = append(stmts, cur.String())
			cur.Reset()
			i++
		default:
			cur.WriteByte(c)
			i++
		}
	}
	stmts = append(stmts, cur.String())
	inAtomic := false
	for _, s := range stmts {
		words := strings.Fields(strings.ToUpper(s))
		if len(words) == 0 {
			continue
		}
		if inAtomic {
			if words[0] == "END" {
				inAtomic = false
			}
			continue
		}
		for k := 0; k+1 < len(words); k++ {
			if words[k] == "BEGIN" && words[k+1] == "ATOMIC" && k > 0 {
				inAtomic = true
			}
		}
		if inAtomic {
			continue
		}
		switch words[0] {
		case "BEGIN", "START", "COMMIT", "END", "ABORT":
			return words[0]
		case "ROLLBACK":
			if len(words) > 1 && (words[1] == "TO" || (len(words) > 2 && words[2] == "TO")) {
				continue // to a savepoint: stays in the transaction
			}
			return words[0]
		case "PREPARE":
			if len(words) > 1 && words[1] == "TRANSACTION" {
				return "PREPARE TRANSACTION"
			}
		}
	}
	return ""
}

// dollarTag returns the $tag$ that s starts with, "" if none.
func dollarTag(s string) string {
	if len(s) < 2 || s[0] != '$' {
		return ""
	}
	for j := 1; j < len(s); j++ {
		r := rune(s[j])
		switch {
		case r == '$':
			return s[:j+1]
		case r == '_' || unicode.IsLetter(r) || (j > 1 && unicode.IsDigit(r)):
		default:
			return ""
		}
	}
	return ""
}

func printMapping(e *env, out *mappingOutput) {
	rep := out.Report
	from := "as it is in the database"
	if out.File != "" {
		from = "after " + out.File
		if out.Applied == nil {
			from += ", rolled back"
		}
	}
	fmt.Fprintf(e.stdout, "Mapping view %s (%s):\n", reconcile.MappingView, from)
	if len(rep.Problems) > 0 {
		fmt.Fprintln(e.stdout, "  breaks the contract:")
		for _, p := range rep.Problems {
			fmt.Fprintf(e.stdout, "  - %s\n", p)
		}
		return
	}
	fmt.Fprintln(e.stdout, "  keeps the contract.")
	fmt.Fprintf(e.stdout, "  Columns of employees it reads, which the update triggers watch: %s\n", strings.Join(rep.Watched, ", "))
	for _, n := range rep.Notes {
		fmt.Fprintf(e.stdout, "  Note: %s\n", n)
	}
	if out.Applied == nil {
		if d := rep.Drift(); d != "" {
			fmt.Fprintf(e.stdout, "  Not applied yet: %s\n", d)
		}
	}
	if a := out.Applied; a != nil {
		what := "unchanged"
		if a.TriggersChanged {
			what = "regenerated"
		}
		fmt.Fprintf(e.stdout, "\nApplied: the update triggers (%s) compare %s; %s marked pending (a running syncd converges them, writing only what changed).\n",
			what, strings.Join(a.Watched, ", "), plural(int(a.Marked), "row", "rows"))
	}
	if !out.RowsRead {
		return
	}
	valid := rep.Rows - rep.Failing
	fmt.Fprintf(e.stdout, "\nRows: %d read, %d valid", rep.Rows, valid)
	if rep.Failing == 0 {
		fmt.Fprintln(e.stdout, ", none would fail.")
	} else {
		fmt.Fprintf(e.stdout, ", %d would be marked failed (until the row or the view changes):\n", rep.Failing)
		for _, f := range rep.Failures {
			fmt.Fprintf(e.stdout, "  %s %s: %s\n", plural(f.Count, "row", "rows"), keysPhrase(f.Keys, f.Count), f.Reason)
		}
	}
	if rep.Changed == 0 {
		fmt.Fprintln(e.stdout, "No row's desired state differs from the one its last outcome was decided from: nothing to do in Auth0.")
	} else {
		fmt.Fprintf(e.stdout, "Desired state changed for %s %s: `syncd mapping apply` marks them pending (`syncd plan --mapping F` shows the calls).\n",
			plural(rep.Changed, "row", "rows"), keysPhrase(rep.ChangedKeys, rep.Changed))
	}
	if len(rep.Sample) > 0 {
		fmt.Fprintln(e.stdout, "\nSample of desired states:")
		for _, s := range rep.Sample {
			b, _ := json.Marshal(s.Desired)
			mark := ""
			if s.Changed {
				mark = " (changed)"
			}
			fmt.Fprintf(e.stdout, "  employee %s%s: %s\n", s.EmployeeID, mark, b)
		}
	}
}

// keysPhrase is "(employee 4)" or "(employees 3, 6, … 8 more)" from the
// first keys of count.
func keysPhrase(keys []string, count int) string {
	if count == 1 && len(keys) == 1 {
		return "(employee " + keys[0] + ")"
	}
	s := "(employees " + strings.Join(keys, ", ")
	if count > len(keys) {
		s += fmt.Sprintf(", … %d more", count-len(keys))
	}
	return s + ")"
}

// mappingPlanOutput is `syncd plan --mapping F --json`.
type mappingPlanOutput struct {
	File     string                    `json:"file"`
	Problems []string                  `json:"problems"`
	Plan     []reconcile.MappingChange `json:"plan"`
	// Changes: applying the mapping would change Auth0.
	Changes bool `json:"changes"`
}

// planMapping is `syncd plan --mapping F`: what applying the mapping in F
// would do in Auth0, row by row, against what syncd last applied. No Auth0
// call; everything is rolled back.
func planMapping(ctx context.Context, e *env, db *dbConfig, mapping *mappingConfig, file string, asJSON, detailed bool) error {
	err := planMappingOnce(ctx, e, db, mapping, file, asJSON, detailed)
	// With --detailed-exitcode, 2 means changes: a bad mapping is then 1,
	// as every error is.
	var st *exitStatus
	if detailed && err != errDrift && errors.As(err, &st) && st.code == exitBadMapping {
		return &exitStatus{code: exitError, msg: st.msg}
	}
	return err
}

func planMappingOnce(ctx context.Context, e *env, db *dbConfig, mapping *mappingConfig, file string, asJSON, detailed bool) error {
	tx, done, err := mappingTx(ctx, db.URL, file, false)
	if err != nil {
		return err
	}
	defer done() // always rolled back
	c, err := reconcile.CheckMappingContract(ctx, tx)
	if err != nil {
		return err
	}
	out := mappingPlanOutput{File: file, Problems: c.Problems, Plan: []reconcile.MappingChange{}}
	if len(c.Problems) == 0 {
		if out.Plan, err = reconcile.PlanMapping(ctx, tx, mapping.cfg); err != nil {
			return viewFails(err)
		}
	}
	for _, ch := range out.Plan {
		if len(ch.Actions) > 0 {
			out.Changes = true
		}
	}
	if asJSON {
		if err := printJSON(e, out); err != nil {
			return err
		}
	} else {
		printMappingPlan(e, &out)
	}
	switch {
	case len(out.Problems) > 0:
		return &exitStatus{code: exitBadMapping, msg: "the mapping view breaks syncd's contract (above)"}
	case detailed && out.Changes:
		return errDrift
	}
	return nil
}

func printMappingPlan(e *env, out *mappingPlanOutput) {
	if len(out.Problems) > 0 {
		fmt.Fprintf(e.stdout, "Mapping view %s after %s (rolled back) breaks the contract:\n", reconcile.MappingView, out.File)
		for _, p := range out.Problems {
			fmt.Fprintf(e.stdout, "  - %s\n", p)
		}
		return
	}
	if len(out.Plan) == 0 {
		fmt.Fprintf(e.stdout, "Mapping after %s (rolled back): no row's desired state changes; applying it costs no Auth0 call.\n", out.File)
		return
	}
	calls := 0
	for _, ch := range out.Plan {
		if len(ch.Actions) > 0 {
			calls++
		}
	}
	fmt.Fprintf(e.stdout, "Mapping after %s (rolled back): %s change their desired state; %s would be written to Auth0 (no read for the rows syncd has a record of):\n\n",
		out.File, plural(len(out.Plan), "row", "rows"), plural(calls, "account", "accounts"))
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "EMPLOYEE\tAUTH0 USER\tPLANNED ACTIONS")
	for _, ch := range out.Plan {
		actions := ch.Actions.String()
		if len(ch.Actions) == 0 {
			actions = "none"
		}
		if ch.Note != "" {
			actions += " (" + ch.Note + ")"
		}
		user := ch.UserID
		if user == "" {
			user = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", ch.EmployeeID, user, actions)
	}
	w.Flush()
	deprovisions := 0
	for _, ch := range out.Plan {
		if ch.Actions.Deprovisions() {
			deprovisions++
		}
	}
	if deprovisions > 0 {
		fmt.Fprintf(e.stdout, "\n%s would be blocked or deleted (subject to --max-deprovision: the mass-deprovision guard holds a batch over it).\n",
			plural(deprovisions, "account", "accounts"))
	}
	fmt.Fprintf(e.stdout, "\nTo apply it: syncd mapping apply --file %s\n", shellQuote(out.File))
}

// checkMappingAtStart is `syncd run`'s look at the mapping: a view that
// breaks the contract, or that cannot be read for a reason that is not a
// row's, stops it (one line naming the problem); triggers
// that do not watch what the view reads, or a view changed since the last
// apply, are a warning.
func checkMappingAtStart(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := reconcile.CheckMappingContract(cctx, pool)
	if err != nil {
		return err
	}
	if err := c.Err(); err != nil {
		return fmt.Errorf("%w (`syncd mapping check` says more)", err)
	}
	if err := reconcile.ProbeMapping(cctx, pool); err != nil {
		return fmt.Errorf("%w (`syncd mapping check` says more)", err)
	}
	if d := c.Drift(); d != "" {
		logger.WarnContext(ctx, "the mapping is not applied: "+d)
	}
	return nil
}

// newMappingSweep wires the mapping sweep and its metrics; nil when
// --mapping-sweep-interval is 0.
func newMappingSweep(every time.Duration, pool *pgxpool.Pool, owner string, m *metrics, logger *slog.Logger) *reconcile.MappingSweep {
	if every <= 0 {
		return nil
	}
	marked := prometheus.NewCounter(prometheus.CounterOpts{Name: "syncd_mapping_sweep_marked_total",
		Help: "Rows the mapping sweep marked pending: their desired state (syncd_desired) changed where no trigger sees (a table the view joins, the date)."})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "syncd_mapping_sweep_duration_seconds",
		Help: "Duration of the mapping sweeps this process ran (one replica sweeps per interval).", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)})
	sweeps := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncd_mapping_sweeps_total",
		Help: "Mapping sweeps this process ran, by result: success or failure."}, []string{"result"})
	m.reg.MustRegister(marked, duration, sweeps)
	return reconcile.NewMappingSweep(pool, reconcile.MappingSweepConfig{Every: every, Owner: owner, Logger: logger,
		OnSweep: func(n int64, err error, took time.Duration) {
			duration.Observe(took.Seconds())
			if err != nil {
				sweeps.WithLabelValues("failure").Inc()
				return
			}
			sweeps.WithLabelValues("success").Inc()
			marked.Add(float64(n))
		}})
}

// mappingTx connects to url, begins the transaction a mapping command works
// in, takes the mapping's lock if lock, and runs the SQL file (if one is
// given) in it. done rolls back what was not committed and disconnects.
func mappingTx(ctx context.Context, url, file string, lock bool) (pgx.Tx, func(), error) {
	sqlText, err := readMappingFile(file)
	if err != nil {
		return nil, nil, err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	done := func() {
		_ = tx.Rollback(context.WithoutCancel(ctx)) // a no-op after Commit
		pool.Close()
	}
	if lock {
		if err := reconcile.LockMapping(ctx, tx); err != nil {
			done()
			return nil, nil, err
		}
	}
	if err := runMappingFile(ctx, tx, file, sqlText); err != nil {
		done()
		return nil, nil, err
	}
	return tx, done, nil
}
