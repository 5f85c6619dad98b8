package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The mapping is SQL (issue 15): the operator's view syncd_desired says what
// each row asks of Auth0, and syncd_desired_of(id) (migration 10) reads one
// row of it. This file holds what surrounds a change of the view:
//
//   - CheckMappingContract reads the catalog: the view exists and is a view,
//     its columns are the contract's, and which columns of employees it
//     reads (pg_depend, through intermediate views);
//   - CheckMapping adds a pass over every row (what would fail and why, what
//     changed since syncd last applied it, a sample);
//   - ApplyMapping regenerates the UPDATE triggers' change test from those
//     columns and marks pending the rows whose desired state changed;
//   - MarkChanged (the mapping sweep) marks what the triggers cannot see
//     change: a joined table, the date.
//
// Nothing here calls Auth0.

// MappingView is the view that is the mapping.
const MappingView = "syncd_desired"

// The row-level UPDATE triggers whose WHEN clause ApplyMapping writes
// (migrations 1 and 9 created them).
const (
	triggerUpdatePending = "syncd_employees_update_pending" // BEFORE UPDATE: the row is pending
	triggerOutboxUpdate  = "syncd_employees_outbox_update"  // AFTER UPDATE: its outbox row and a NOTIFY
)

// mappingLockKey is the transaction-scoped advisory lock ApplyMapping takes:
// tern's migrate lock (lockNum in github.com/jackc/tern/v2/migrate), so
// that an apply waits for a migration (which may replace the triggers) and
// two applies run one after the other.
const mappingLockKey int64 = 9628173550095224

// mappingPage is how many rows one statement of a row pass reads.
const mappingPage = 1000

// outcomeStatuses are the statuses of rows whose last outcome is recorded
// (with auth0_desired_hash); rows in the others are on their way to a
// reconcile anyway.
const outcomeStatuses = `('synced', 'failed', 'conflict', 'deprovisioned')`

// MappingDB is what the mapping's checks read through: a pool, a connection
// or a transaction (`syncd mapping check --file` checks a view inside the
// transaction that created it).
type MappingDB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrBadMapping matches every *MappingError.
var ErrBadMapping = errors.New("the mapping view breaks syncd's contract")

// MappingError is a view that breaks the contract: syncd cannot read desired
// states from it. Each problem is one sentence a person can act on.
type MappingError struct {
	Problems []string
}

func (e *MappingError) Error() string {
	return "mapping view " + MappingView + ": " + strings.Join(e.Problems, "; ")
}

// Is makes errors.Is(err, ErrBadMapping) true.
func (e *MappingError) Is(target error) bool { return target == ErrBadMapping }

// MappingContract is what the catalog says of the view.
type MappingContract struct {
	// Problems break the contract; none means syncd can read the view.
	Problems []string `json:"problems"`
	// Watched are the columns of employees the view reads (directly or
	// through the views it reads), in the table's order: the UPDATE
	// triggers compare exactly these.
	Watched []string `json:"watched_columns"`
	// Notes are facts about the view a person should know that do not
	// break the contract.
	Notes []string `json:"notes,omitempty"`
	// Definition is the md5 of the definitions of the view and of the views
	// it reads: it changes whenever one of them does.
	Definition string `json:"definition_md5,omitempty"`
	// Triggers are the columns the BEFORE UPDATE trigger compares now (nil:
	// the trigger is missing).
	Triggers []string `json:"trigger_columns"`
	// Applied is what `syncd mapping apply` recorded last; nil if it never ran.
	Applied *AppliedMapping `json:"applied,omitempty"`
}

// AppliedMapping is ApplyMapping's record, kept as the comment of the BEFORE
// UPDATE trigger it wrote (the trigger's definition is the rest of the record).
type AppliedMapping struct {
	Definition string    `json:"definition_md5"`
	Columns    []string  `json:"columns"`
	At         time.Time `json:"applied_at"`
}

// Err is the contract's problems as a *MappingError, nil if there are none.
func (c *MappingContract) Err() error {
	if len(c.Problems) == 0 {
		return nil
	}
	return &MappingError{Problems: slices.Clone(c.Problems)}
}

// Drift says how the database differs from what ApplyMapping leaves: the
// triggers compare other columns than the view reads, or the view changed
// since the last apply. "" when neither; meaningless for a view with
// Problems.
func (c *MappingContract) Drift() string {
	switch {
	case c.Triggers == nil:
		return fmt.Sprintf("the trigger %s is missing: no update of employees marks a row pending; run `syncd mapping apply`", triggerUpdatePending)
	case !sameWatch(c.Triggers, c.Watched):
		return fmt.Sprintf("the update triggers compare (%s) but %s reads (%s): a change to a column it reads may not mark the row pending; run `syncd mapping apply`",
			strings.Join(c.Triggers, ", "), MappingView, strings.Join(c.Watched, ", "))
	case c.Applied != nil && c.Applied.Definition != c.Definition:
		return fmt.Sprintf("%s changed since `syncd mapping apply` last ran (%s): the rows whose desired state it changes are marked pending only by the mapping sweep; run `syncd mapping apply`",
			MappingView, c.Applied.At.UTC().Format(time.RFC3339))
	}
	return ""
}

// sameWatch says whether the BEFORE trigger compares (a) what the view
// reads (b). The key is left out: a trigger of migration 9 does not compare
// it (the AFTER one does, always), and a view always reads it.
func sameWatch(a, b []string) bool {
	notID := func(s []string) []string {
		s = slices.DeleteFunc(slices.Clone(s), func(c string) bool { return c == "id" })
		slices.Sort(s)
		return s
	}
	return slices.Equal(notID(a), notID(b))
}

// isSyncColumn says whether employees column name is one syncd writes.
func isSyncColumn(name string) bool { return strings.HasPrefix(name, "auth0_") }

// contractColumn is one column of the contract and the types it may have.
type contractColumn struct {
	name  string
	types []string // base type names (pg_type.typname); nil: the key's type
	want  string   // the types in words
}

var contractColumns = []contractColumn{
	{name: "id", want: "the employees key's type"},
	{name: "email", types: []string{"text", "varchar"}, want: "text or varchar"},
	{name: "name", types: []string{"text", "varchar"}, want: "text or varchar"},
	{name: "role_code", types: []string{"text", "varchar"}, want: "text or varchar (NULL: no managed role)"},
	{name: "blocked", types: []string{"bool"}, want: "boolean"},
	{name: "app_metadata", types: []string{"jsonb"}, want: "jsonb"},
	{name: "user_metadata", types: []string{"jsonb"}, want: "jsonb"},
}

// CheckMappingContract reads from the catalog whether the view syncd_desired
// in the current schema keeps the contract, and which columns of employees
// it reads. A view that breaks the contract is not an error: its Problems
// say why (Err makes them one).
func CheckMappingContract(ctx context.Context, db MappingDB) (*MappingContract, error) {
	c := &MappingContract{Problems: []string{}, Watched: []string{}}
	var (
		empOID, empType, idType uint32
		idTypeName              *string
		viewOID                 *uint32
		viewKind                *string
		schema                  *string
	)
	err := db.QueryRow(ctx, `
		SELECT e.oid, e.reltype, coalesce(a.atttypid, 0), format_type(a.atttypid, a.atttypmod),
		       v.oid, v.relkind::text, current_schema()
		  FROM pg_class e
		  LEFT JOIN pg_attribute a ON a.attrelid = e.oid AND a.attname = 'id' AND NOT a.attisdropped
		  LEFT JOIN pg_class v ON v.relname = $1 AND v.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
		 WHERE e.oid = to_regclass('employees')`, MappingView).
		Scan(&empOID, &empType, &idType, &idTypeName, &viewOID, &viewKind, &schema)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errors.New("read the mapping view: there is no employees table: run `syncd migrate`")
	}
	if err != nil {
		return nil, fmt.Errorf("read the mapping view: %w", err)
	}
	if c.Triggers, err = triggerColumns(ctx, db, empOID); err != nil {
		return nil, err
	}
	if c.Applied, err = appliedMapping(ctx, db, empOID); err != nil {
		return nil, err
	}
	switch {
	case viewOID == nil:
		c.Problems = append(c.Problems, fmt.Sprintf("there is no view %s in schema %s: create it (`syncd migrate` creates the default one)", MappingView, deref(schema)))
		return c, nil
	case *viewKind == "m":
		c.Problems = append(c.Problems, fmt.Sprintf("%s is a materialized view; it must be a plain view (a materialized view is as old as its last REFRESH, and no change of employees reaches it)", MappingView))
		return c, nil
	case *viewKind != "v":
		c.Problems = append(c.Problems, fmt.Sprintf("%s is a %s, not a view", MappingView, relkindWords(*viewKind)))
		return c, nil
	}

	// The contract's columns.
	rows, err := db.Query(ctx, `
		SELECT a.attname::text, a.atttypid, format_type(a.atttypid, a.atttypmod),
		       coalesce(bt.typname, t.typname)::text
		  FROM pg_attribute a
		  JOIN pg_type t ON t.oid = a.atttypid
		  LEFT JOIN pg_type bt ON bt.oid = nullif(t.typbasetype, 0)
		 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped`, *viewOID)
	if err != nil {
		return nil, fmt.Errorf("read the mapping view's columns: %w", err)
	}
	type col struct {
		typ      uint32
		typeName string
		base     string
	}
	cols := map[string]col{}
	for rows.Next() {
		var name string
		var cl col
		if err := rows.Scan(&name, &cl.typ, &cl.typeName, &cl.base); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the mapping view's columns: %w", err)
		}
		cols[name] = cl
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the mapping view's columns: %w", err)
	}
	for _, want := range contractColumns {
		got, ok := cols[want.name]
		typeWords := want.want
		if want.types == nil {
			typeWords = deref(idTypeName) + ", the type of employees.id"
		}
		switch {
		case !ok:
			c.Problems = append(c.Problems, fmt.Sprintf("column %s is missing (it must be %s)", want.name, typeWords))
		case want.types == nil && got.typ != idType:
			c.Problems = append(c.Problems, fmt.Sprintf("column id is %s; it must be %s", got.typeName, typeWords))
		case want.types != nil && !slices.Contains(want.types, got.base):
			c.Problems = append(c.Problems, fmt.Sprintf("column %s is %s; it must be %s", want.name, got.typeName, typeWords))
		}
	}

	// What it reads of employees: the dependencies of its rewrite rule, and
	// of every view it reads, on employees' columns.
	var (
		subIDs   []int16
		wholeRow bool
		views    []string
		tables   []string // other tables it reads
		funcs    []string // functions of the operator's it calls that may read tables (not IMMUTABLE)
		clock    bool     // it reads the date or the time
	)
	err = db.QueryRow(ctx, `
		WITH RECURSIVE chain(oid) AS (
		    SELECT $1::oid
		  UNION
		    SELECT d.refobjid
		      FROM chain ch
		      JOIN pg_rewrite rw ON rw.ev_class = ch.oid
		      JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
		                      AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> ch.oid
		      JOIN pg_class c ON c.oid = d.refobjid AND c.relkind IN ('v', 'm')
		)
		SELECT coalesce((SELECT array_agg(DISTINCT d.refobjsubid)
		                   FROM chain ch
		                   JOIN pg_rewrite rw ON rw.ev_class = ch.oid
		                   JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
		                                   AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $2), '{}'),
		       EXISTS (SELECT 1 FROM chain ch JOIN pg_rewrite rw ON rw.ev_class = ch.oid
		                WHERE rw.ev_action::text LIKE '%:varattno 0 :vartype ' || $3::text || ' %'),
		       (SELECT array_agg(ch.oid::regclass::text ORDER BY ch.oid::regclass::text) FROM chain ch),
		       (SELECT md5(string_agg(ch.oid::regclass::text || E'\n' || pg_get_viewdef(ch.oid), E'\n' ORDER BY ch.oid::regclass::text)) FROM chain ch),
		       coalesce((SELECT array_agg(DISTINCT d.refobjid::regclass::text)
		                   FROM chain ch
		                   JOIN pg_rewrite rw ON rw.ev_class = ch.oid
		                   JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid AND d.refclassid = 'pg_class'::regclass
		                   JOIN pg_class t ON t.oid = d.refobjid AND t.relkind IN ('r', 'p', 'f') AND t.oid <> $2), '{}'),
		       coalesce((SELECT array_agg(DISTINCT d.refobjid::regprocedure::text)
		                   FROM chain ch
		                   JOIN pg_rewrite rw ON rw.ev_class = ch.oid
		                   JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid AND d.refclassid = 'pg_proc'::regclass
		                   JOIN pg_proc p ON p.oid = d.refobjid
		                  WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
		                    AND p.provolatile <> 'i'), '{}'),
		       EXISTS (SELECT 1 FROM chain ch JOIN pg_rewrite rw ON rw.ev_class = ch.oid
		                WHERE rw.ev_action::text LIKE '%{SQLVALUEFUNCTION %'
		                   OR rw.ev_action::text ~ (':funcid (' || (SELECT string_agg(oid::text, '|') FROM pg_proc
		                          WHERE pronamespace = 'pg_catalog'::regnamespace
		                            AND proname IN ('now', 'clock_timestamp', 'statement_timestamp', 'transaction_timestamp', 'timeofday')) || ') '))`,
		*viewOID, empOID, strconv.FormatUint(uint64(empType), 10)).Scan(&subIDs, &wholeRow, &views, &c.Definition, &tables, &funcs, &clock)
	if err != nil {
		return nil, fmt.Errorf("read what the mapping view reads: %w", err)
	}
	names, err := tableColumns(ctx, db, empOID)
	if err != nil {
		return nil, err
	}
	read := map[int16]bool{}
	var syncRead []string
	for _, id := range subIDs {
		if id == 0 {
			wholeRow = true
			continue
		}
		read[id] = true
	}
	for _, n := range names {
		switch {
		case read[n.num] && isSyncColumn(n.name):
			syncRead = append(syncRead, n.name)
		case read[n.num], wholeRow && !isSyncColumn(n.name):
			c.Watched = append(c.Watched, n.name)
		}
	}
	if wholeRow {
		c.Notes = append(c.Notes, "it reads whole rows of employees (a row passed to a function, to_jsonb(e), or the table without a column): "+
			"syncd watches every column of employees but its own auth0_* columns")
	}
	if len(views) > 1 {
		c.Notes = append(c.Notes, "it reads the views "+strings.Join(slices.DeleteFunc(views, func(v string) bool { return v == MappingView }), ", ")+
			": what they read of employees is watched too")
	}
	sweep := "a change there reaches syncd through the mapping sweep (--mapping-sweep-interval), not the triggers"
	if len(tables) > 0 {
		c.Notes = append(c.Notes, "it reads the tables "+strings.Join(tables, ", ")+": "+sweep)
	}
	if clock {
		c.Notes = append(c.Notes, "it reads the date or the time (current_date, now(), …): "+sweep)
	}
	if len(funcs) > 0 {
		c.Notes = append(c.Notes, "it calls "+strings.Join(funcs, ", ")+": what a function reads by itself is not in the catalog; "+
			"pass it the columns it needs (or the row), else "+sweep)
	}
	if len(syncRead) > 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("it reads %s of employees, which syncd writes (every auth0_* column is syncd's): "+
			"its own writes would change the desired state and wake it again; read only the employee's columns", strings.Join(syncRead, ", ")))
	}
	if len(c.Watched) == 0 && len(syncRead) == 0 {
		c.Problems = append(c.Problems, "it reads no column of employees: its id must be employees.id, its rows employees' rows")
	}
	return c, nil
}

func relkindWords(kind string) string {
	switch kind {
	case "r", "p":
		return "table"
	case "f":
		return "foreign table"
	case "S":
		return "sequence"
	case "i", "I":
		return "index"
	case "c":
		return "composite type"
	}
	return "relation of kind " + kind
}

type employeeColumn struct {
	num  int16
	name string
	// comparable: the type has an = operator, so the triggers may compare
	// it as it is (json, xml and the like are compared as text).
	comparable bool
}

// tableColumns lists the columns of employees in the table's order.
func tableColumns(ctx context.Context, db MappingDB, empOID uint32) ([]employeeColumn, error) {
	rows, err := db.Query(ctx, `
		SELECT a.attnum, a.attname::text,
		       t.typcategory = 'S' OR EXISTS (SELECT 1 FROM pg_operator o WHERE o.oprname = '='
		           AND o.oprleft = coalesce(nullif(t.typbasetype, 0), t.oid) AND o.oprright = o.oprleft)
		  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		 ORDER BY a.attnum`, empOID)
	if err != nil {
		return nil, fmt.Errorf("read the columns of employees: %w", err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (employeeColumn, error) {
		var c employeeColumn
		err := r.Scan(&c.num, &c.name, &c.comparable)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the columns of employees: %w", err)
	}
	return cols, nil
}

// triggerColumns reads the columns of employees the BEFORE UPDATE
// trigger's WHEN clause compares: the attribute numbers of the Vars of its
// qualification (OLD.x and NEW.x). nil: there is no such trigger.
func triggerColumns(ctx context.Context, db MappingDB, empOID uint32) ([]string, error) {
	var cols []string
	var found bool
	err := db.QueryRow(ctx, `
		SELECT true, coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum)
		                         FROM pg_attribute a
		                        WHERE a.attrelid = t.tgrelid AND a.attnum IN (
		                              SELECT m[1]::int2 FROM regexp_matches(coalesce(t.tgqual::text, ''), ':varattno (\d+)', 'g') m)), '{}')
		  FROM pg_trigger t WHERE t.tgrelid = $1 AND t.tgname = $2`, empOID, triggerUpdatePending).Scan(&found, &cols)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the update trigger: %w", err)
	}
	return cols, nil
}

// appliedMapping reads ApplyMapping's record (the trigger's comment); nil
// if there is none.
func appliedMapping(ctx context.Context, db MappingDB, empOID uint32) (*AppliedMapping, error) {
	var comment *string
	err := db.QueryRow(ctx, `SELECT obj_description(t.oid, 'pg_trigger') FROM pg_trigger t WHERE t.tgrelid = $1 AND t.tgname = $2`,
		empOID, triggerUpdatePending).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && comment == nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the applied mapping: %w", err)
	}
	var rec struct {
		Mapping *AppliedMapping `json:"syncd_mapping"`
	}
	if json.Unmarshal([]byte(*comment), &rec) != nil {
		return nil, nil // someone else's comment
	}
	return rec.Mapping, nil
}

// ProbeMapping reads the view as syncd does, once: the view itself (so that
// a missing privilege shows on an empty table too) and syncd_desired_of of
// one row. A fault of the setup — no privilege on the view or on what it
// reads, a table it reads gone — fails the statement (syncd_desired_of
// keeps only a row's own errors) and is a *MappingError naming it.
func ProbeMapping(ctx context.Context, db MappingDB) error {
	_, err := db.Exec(ctx, `SELECT 1 FROM `+MappingView+` LIMIT 0`)
	if err == nil {
		_, err = db.Exec(ctx, `SELECT syncd_desired_of(id) FROM employees LIMIT 1`)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return &MappingError{Problems: []string{fmt.Sprintf("reading it fails: %s (SQLSTATE %s)", pe.Message, pe.Code)}}
	}
	if err != nil {
		return fmt.Errorf("read the mapping view: %w", err)
	}
	return nil
}

// MappingReport is CheckMapping's answer: the contract, and what the view
// gives for every row.
type MappingReport struct {
	MappingContract
	// Rows is how many employees rows were read.
	Rows int `json:"rows"`
	// Failing is how many of them the view gives no valid desired state
	// (they would be marked failed with the reason); Failures groups them
	// by reason, most rows first.
	Failing  int              `json:"failing"`
	Failures []MappingFailure `json:"failures"`
	// Changed is how many rows with a recorded outcome have a desired state
	// other than the one that outcome was decided from: ApplyMapping marks
	// them pending (the sweep would too). ChangedKeys are the first few.
	Changed     int      `json:"changed"`
	ChangedKeys []string `json:"changed_keys"`
	// Sample holds a few desired states, rows that changed first.
	Sample []MappingSample `json:"sample"`
}

// MappingFailure is one reason rows fail, with how many and the first keys.
type MappingFailure struct {
	Reason string   `json:"reason"`
	Count  int      `json:"count"`
	Keys   []string `json:"employee_ids"`
}

// MappingSample is one row's desired state.
type MappingSample struct {
	EmployeeID string  `json:"employee_id"`
	Changed    bool    `json:"changed"`
	Desired    Desired `json:"desired"`
}

// Report limits: keys named per reason and for changed rows, samples.
const (
	mappingKeysShown = 5
	mappingSamples   = 3
)

// CheckMapping checks the contract and then reads syncd_desired_of for
// every row (a page of keys per statement), validating each as the
// reconciler would under cfg. A view that breaks the contract gets no row
// pass (every row would fail for the same reason).
func CheckMapping(ctx context.Context, db MappingDB, cfg Config) (*MappingReport, error) {
	c, err := CheckMappingContract(ctx, db)
	if err != nil {
		return nil, err
	}
	rep := &MappingReport{MappingContract: *c, Failures: []MappingFailure{}, ChangedKeys: []string{}, Sample: []MappingSample{}}
	if len(c.Problems) > 0 {
		return rep, nil
	}
	cfg = cfg.WithDefaults()
	byReason := map[string]*MappingFailure{}
	var others []MappingSample
	err = mappingRows(ctx, db, func(r mappingRow) error {
		rep.Rows++
		if r.changed {
			rep.Changed++
			if len(rep.ChangedKeys) < mappingKeysShown {
				rep.ChangedKeys = append(rep.ChangedKeys, r.key)
			}
		}
		d, err := DesiredFromView(r.key, r.keyJSON, r.view, cfg)
		if err != nil {
			var ire *InvalidRowError
			if !errors.As(err, &ire) {
				return fmt.Errorf("employee %s: %w", r.key, err)
			}
			rep.Failing++
			f := byReason[err.Error()]
			if f == nil {
				f = &MappingFailure{Reason: err.Error()}
				byReason[f.Reason] = f
			}
			f.Count++
			if len(f.Keys) < mappingKeysShown {
				f.Keys = append(f.Keys, r.key)
			}
			return nil
		}
		s := MappingSample{EmployeeID: r.key, Changed: r.changed, Desired: d}
		switch {
		case r.changed && len(rep.Sample) < mappingSamples:
			rep.Sample = append(rep.Sample, s)
		case !r.changed && len(others) < mappingSamples:
			others = append(others, s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, s := range others {
		if len(rep.Sample) == mappingSamples {
			break
		}
		rep.Sample = append(rep.Sample, s)
	}
	for _, f := range byReason {
		rep.Failures = append(rep.Failures, *f)
	}
	slices.SortFunc(rep.Failures, func(a, b MappingFailure) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	return rep, nil
}

// mappingRow is one row of a row pass.
type mappingRow struct {
	key     string
	keyJSON json.RawMessage
	view    json.RawMessage // syncd_desired_of(id)
	changed bool            // an outcome is recorded, and view's md5 is not its auth0_desired_hash
	userID  *string
	synced  json.RawMessage // auth0_synced_state
}

// mappingRows calls fn for every row of employees in key order, a page of
// keys per statement, reading syncd_desired_of once per row.
func mappingRows(ctx context.Context, db MappingDB, fn func(mappingRow) error) error {
	var after *string
	for {
		// The first page has no key condition: each is an index range scan.
		where, args := "", []any{mappingPage}
		if after != nil {
			where, args = "WHERE id > (syncd_keys(ARRAY[$2::text]))[1]", append(args, *after)
		}
		rows, err := db.Query(ctx, `
			SELECT key, key_json, desired,
			       auth0_sync_status IN `+outcomeStatuses+` AND md5(desired::text) IS DISTINCT FROM auth0_desired_hash,
			       auth0_user_id, auth0_synced_state
			  FROM (SELECT id::text AS key, to_jsonb(id) AS key_json, syncd_desired_of(id) AS desired,
			               auth0_user_id, auth0_synced_state, auth0_sync_status, auth0_desired_hash
			          FROM employees `+where+`
			         ORDER BY id LIMIT $1) page`, args...)
		if err != nil {
			return fmt.Errorf("read syncd_desired: %w", err)
		}
		n := 0
		var last string
		for rows.Next() {
			var r mappingRow
			if err := rows.Scan(&r.key, &r.keyJSON, &r.view, &r.changed, &r.userID, &r.synced); err != nil {
				rows.Close()
				return fmt.Errorf("read syncd_desired: %w", err)
			}
			n++
			last = r.key
			if err := fn(r); err != nil {
				rows.Close()
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read syncd_desired: %w", err)
		}
		if n < mappingPage {
			return nil
		}
		after = &last
	}
}

// LockMapping takes, for the rest of tx, the lock that serialises
// ApplyMapping with another apply and with `syncd migrate`, and then
// employees against writes (SHARE ROW EXCLUSIVE, what CREATE TRIGGER takes
// anyway; reads go on). Take it before changing the view in tx: two applies
// do not interleave, and the locks are taken in the order a write of
// employees that reads the view takes them (employees, then the view), so
// that a reconcile recording its outcome meanwhile waits instead of
// deadlocking with the apply.
func LockMapping(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, mappingLockKey); err != nil {
		return fmt.Errorf("lock the mapping: %w", err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE employees IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("lock employees: %w", err)
	}
	return nil
}

// MappingApplied is what ApplyMapping did.
type MappingApplied struct {
	// Watched are the columns the UPDATE triggers compare now.
	Watched []string `json:"watched_columns"`
	// TriggersChanged: the triggers compared other columns before.
	TriggersChanged bool `json:"triggers_changed"`
	// Marked is how many rows were marked pending because their desired
	// state changed.
	Marked int64 `json:"marked"`
}

// ApplyMapping, in tx (under LockMapping, which it takes if the caller has
// not): checks the contract (a *MappingError if broken: nothing is changed),
// regenerates the WHEN clause of the two row-level UPDATE triggers so that
// they compare exactly the columns the view reads, records what it applied,
// and marks pending the rows with a recorded outcome whose desired state
// changed, each with an outbox row and one NOTIFY — one statement, no Auth0
// call. The caller commits.
func ApplyMapping(ctx context.Context, tx pgx.Tx) (*MappingApplied, error) {
	if err := LockMapping(ctx, tx); err != nil {
		return nil, err
	}
	c, err := CheckMappingContract(ctx, tx)
	if err != nil {
		return nil, err
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	out := &MappingApplied{Watched: c.Watched}
	if !sameWatch(c.Triggers, c.Watched) {
		if err := writeTriggers(ctx, tx, c.Watched); err != nil {
			return nil, err
		}
		out.TriggersChanged = true
	}
	rec, err := json.Marshal(map[string]AppliedMapping{"syncd_mapping": {Definition: c.Definition, Columns: c.Watched, At: time.Now().UTC()}})
	if err != nil {
		return nil, err
	}
	var stmt string
	if err := tx.QueryRow(ctx, `SELECT format('COMMENT ON TRIGGER %I ON employees IS %L', $1::text, $2::text)`, triggerUpdatePending, string(rec)).Scan(&stmt); err != nil {
		return nil, fmt.Errorf("record the applied mapping: %w", err)
	}
	if _, err := tx.Exec(ctx, stmt); err != nil {
		return nil, fmt.Errorf("record the applied mapping: %w", err)
	}
	if out.Marked, _, err = markChanged(ctx, tx, nil, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// writeTriggers replaces the two row-level UPDATE triggers with ones whose
// WHEN compares cols (the AFTER one compares id too: a changed key names new
// work). Identifiers are quoted (pgx.Identifier).
func writeTriggers(ctx context.Context, tx pgx.Tx, cols []string) error {
	var version int
	if err := tx.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		return fmt.Errorf("read the server version: %w", err)
	}
	var empOID uint32
	if err := tx.QueryRow(ctx, `SELECT 'employees'::regclass::oid`).Scan(&empOID); err != nil {
		return fmt.Errorf("find employees: %w", err)
	}
	all, err := tableColumns(ctx, tx, empOID)
	if err != nil {
		return err
	}
	comparable := map[string]bool{}
	for _, c := range all {
		comparable[c.name] = c.comparable
	}
	after := cols
	if !slices.Contains(cols, "id") {
		after = append([]string{"id"}, cols...)
	}
	when := func(cols []string) string {
		var old, nw []string
		for _, c := range cols {
			q := pgx.Identifier{c}.Sanitize()
			cast := ""
			if !comparable[c] {
				cast = "::text"
			}
			old = append(old, "OLD."+q+cast)
			nw = append(nw, "NEW."+q+cast)
		}
		return "((" + strings.Join(old, ", ") + ") IS DISTINCT FROM (" + strings.Join(nw, ", ") + "))"
	}
	before, afterWhen := when(cols), when(after)
	// CREATE OR REPLACE TRIGGER (PostgreSQL 14) keeps employees readable
	// while the rest of the apply runs; DROP TRIGGER would lock it whole.
	create := "CREATE OR REPLACE TRIGGER "
	if version < 140000 {
		create = "CREATE TRIGGER "
		if _, err := tx.Exec(ctx, `DROP TRIGGER IF EXISTS `+triggerUpdatePending+` ON employees; DROP TRIGGER IF EXISTS `+triggerOutboxUpdate+` ON employees`); err != nil {
			return fmt.Errorf("replace the update triggers: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, create+triggerUpdatePending+` BEFORE UPDATE ON employees FOR EACH ROW WHEN `+before+
		` EXECUTE FUNCTION syncd_employees_mark_pending()`); err != nil {
		return fmt.Errorf("write trigger %s: %w", triggerUpdatePending, err)
	}
	if _, err := tx.Exec(ctx, create+triggerOutboxUpdate+` AFTER UPDATE ON employees FOR EACH ROW WHEN `+afterWhen+
		` EXECUTE FUNCTION syncd_employees_outbox_updated()`); err != nil {
		return fmt.Errorf("write trigger %s: %w", triggerOutboxUpdate, err)
	}
	return nil
}

// markChangedSQL is the statement that marks pending the rows with a
// recorded outcome whose desired state is no longer the one their hash
// records (leased rows excepted), with an outbox row each; it returns how
// many, and the last key it looked at. paged: the $2 rows after key $1
// (after: there is a key to start after); else the whole table. The hash is
// computed in the page, for its rows only (a condition on employees would
// let the planner compute it for every row of the table), and the key
// condition is its own statement so that the page is an index range scan.
func markChangedSQL(after, paged bool) string {
	where, limit, n := "", "", 0
	if after {
		n++
		where = fmt.Sprintf("WHERE id > (syncd_keys(ARRAY[$%d::text]))[1]", n)
	}
	if paged {
		n++
		limit = fmt.Sprintf("LIMIT $%d", n)
	}
	return `
	WITH page AS MATERIALIZED (
	    SELECT id, auth0_desired_hash AS recorded,
	           CASE WHEN auth0_sync_status IN ` + outcomeStatuses + ` THEN md5(syncd_desired_of(id)::text) END AS hash
	      FROM employees ` + where + `
	     ORDER BY id ` + limit + `
	), marked AS (
	    UPDATE employees e SET auth0_sync_status = 'pending', auth0_next_attempt_at = NULL
	      FROM page p
	     WHERE e.id = p.id AND p.hash IS NOT NULL AND p.hash IS DISTINCT FROM p.recorded
	       AND e.auth0_sync_status IN ` + outcomeStatuses + `
	       AND (e.auth0_locked_until IS NULL OR e.auth0_locked_until < now())
	       -- An outcome recorded since the page was read (a row updated
	       -- meanwhile is rechecked in its new version, against the page's
	       -- hash, which may be older than that outcome): the next sweep.
	       AND e.auth0_desired_hash IS NOT DISTINCT FROM p.recorded
	    RETURNING e.id
	), queued AS (
	    INSERT INTO auth0_outbox (employee_id, op) SELECT id, 'update' FROM marked ORDER BY id
	    RETURNING 1
	)
	SELECT (SELECT count(*) FROM queued), (SELECT id::text FROM page ORDER BY id DESC LIMIT 1)`
}

// markChanged runs markChangedSQL in tx and notifies the outbox channel
// when it marked anything. With page > 0, the page of that many keys after
// after (nil: from the start); it returns the page's last key, nil when the
// page was empty.
func markChanged(ctx context.Context, tx pgx.Tx, after *string, page int) (int64, *string, error) {
	var args []any
	if after != nil {
		args = append(args, *after)
	}
	if page > 0 {
		args = append(args, page)
	}
	sql := markChangedSQL(after != nil, page > 0)
	var n int64
	var last *string
	if err := tx.QueryRow(ctx, sql, args...).Scan(&n, &last); err != nil {
		return 0, nil, fmt.Errorf("mark changed rows pending: %w", err)
	}
	if n > 0 {
		if _, err := tx.Exec(ctx, `SELECT pg_notify('auth0_outbox', '')`); err != nil {
			return 0, nil, fmt.Errorf("notify: %w", err)
		}
	}
	return n, last, nil
}

// MappingBeginner begins transactions: a pool.
type MappingBeginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// MarkChanged is the mapping sweep: it marks pending every row with a
// recorded outcome whose desired state (syncd_desired_of) no longer matches
// the one its outcome was decided from (auth0_desired_hash) — what the
// triggers cannot see change: a table the view joins, the date — each with
// an outbox row and a NOTIFY. Leased rows are left alone. One short
// transaction per page of keys, so that a large table is never held in one;
// no Auth0 call. It returns how many rows it marked.
func MarkChanged(ctx context.Context, db MappingBeginner) (int64, error) {
	var total int64
	var after *string
	for {
		var n int64
		var last *string
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			var err error
			n, last, err = markChanged(ctx, tx, after, mappingPage)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if last == nil {
			return total, nil
		}
		after = last
	}
}

// MappingChange is what a changed mapping would do to one row: the plan
// from what syncd last applied (auth0_synced_state) to the new desired state.
type MappingChange struct {
	EmployeeID string `json:"employee_id"`
	UserID     string `json:"auth0_user_id,omitempty"`
	Actions    Plan   `json:"actions"`
	// Note says why Actions is not the whole story: the row fails, or
	// syncd has no record of what it applied (the reconcile reads Auth0).
	Note string `json:"note,omitempty"`
}

// PlanMapping lists, for every row that ApplyMapping would mark pending
// (an outcome recorded, the desired state changed), the actions its
// reconcile would take: Diff of the new desired state against what syncd
// last applied. No Auth0 call: a row without that record says so in Note.
func PlanMapping(ctx context.Context, db MappingDB, cfg Config) ([]MappingChange, error) {
	cfg = cfg.WithDefaults()
	out := []MappingChange{}
	err := mappingRows(ctx, db, func(r mappingRow) error {
		if !r.changed {
			return nil
		}
		ch := MappingChange{EmployeeID: r.key, Actions: Plan{}}
		if r.userID != nil {
			ch.UserID = *r.userID
		}
		d, err := DesiredFromView(r.key, r.keyJSON, r.view, cfg)
		if err != nil {
			var ire *InvalidRowError
			if !errors.As(err, &ire) {
				return fmt.Errorf("employee %s: %w", r.key, err)
			}
			ch.Note = "would be marked failed: " + err.Error()
			out = append(out, ch)
			return nil
		}
		var o *Observed
		switch {
		case r.userID == nil:
		case len(r.synced) == 0:
			ch.Note = "syncd has no record of what it applied to this account: its reconcile reads Auth0 first, and acts only on what differs"
			out = append(out, ch)
			return nil
		default:
			var last State
			if err := json.Unmarshal(r.synced, &last); err != nil {
				ch.Note = "what syncd applied last is unreadable: its reconcile reads Auth0 first"
				out = append(out, ch)
				return nil
			}
			o = &Observed{UserID: *r.userID, State: last, Linked: true}
			if last.Role != "" {
				o.Roles = []string{last.Role}
			}
		}
		if p := Diff(d, o); p != nil {
			ch.Actions = p
		}
		if len(ch.Actions) == 0 {
			ch.Note = "its desired state changed in nothing syncd sends to Auth0: no call"
		}
		out = append(out, ch)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
