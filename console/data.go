package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/reconcile"
)

// Statuses are the values of auth0_sync_status, in the order shown.
var Statuses = []string{reconcile.StatusPending, reconcile.StatusSyncing, reconcile.StatusSynced, reconcile.StatusRetrying,
	reconcile.StatusFailed, reconcile.StatusConflict, reconcile.StatusDeprovisioned}

// Employee is an employees row as the console shows it.
type Employee struct {
	ID           string     `json:"id"` // the table's key, as text
	Name         *string    `json:"name"`
	Email        *string    `json:"email"`
	Department   *string    `json:"department"`
	PhoneNumber  *string    `json:"phone_number"`
	ConnecteamID *string    `json:"connecteam_id"`
	RoleCode     string     `json:"role_code"`
	Active       bool       `json:"active"`
	Status       string     `json:"auth0_sync_status"`
	Error        *string    `json:"auth0_sync_error"`
	Attempts     int        `json:"auth0_sync_attempts"`
	UserID       *string    `json:"auth0_user_id"`
	CreatedAt    *time.Time `json:"auth0_account_created_at"`
	SyncedAt     *time.Time `json:"auth0_synced_at"`
	NextAttempt  *time.Time `json:"auth0_next_attempt_at"`
}

const employeeCols = `id::text AS employee_key, name, email, department, phone_number, connecteam_id, role_code, active, auth0_sync_status,
	auth0_sync_error, auth0_sync_attempts, auth0_user_id, auth0_account_created_at, auth0_synced_at, auth0_next_attempt_at`

// ListQuery selects a page of employees.
type ListQuery struct {
	// Status filters by auth0_sync_status ("" all).
	Status string
	// Search is an employee id or the start of an email (case-insensitive).
	Search string
	// After is the last key of the previous page (keyset paging; "" for
	// the first page).
	After string
	// Limit is the page size (1..500, default 50).
	Limit int
}

// ListPage is a page of employees; NextAfter is the After of the next page,
// nil on the last.
type ListPage struct {
	Employees []Employee `json:"employees"`
	NextAfter *string    `json:"next_after"`
}

// errBadQuery is a list query the console refuses (400).
var errBadQuery = errors.New("bad query")

func (q *ListQuery) validate() error {
	if q.Limit == 0 {
		q.Limit = 50
	}
	if q.Limit < 1 || q.Limit > 500 {
		return fmt.Errorf("%w: limit must be 1..500, got %d", errBadQuery, q.Limit)
	}
	if q.Status != "" && !contains(Statuses, q.Status) {
		return fmt.Errorf("%w: status must be one of %s, got %q", errBadQuery, strings.Join(Statuses, ", "), q.Status)
	}
	q.Search = strings.TrimSpace(q.Search)
	if len(q.Search) > 320 {
		return fmt.Errorf("%w: search is longer than an email can be", errBadQuery)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// listEmployees reads one keyset page: each predicate is an index scan
// (primary key; (auth0_sync_status, id); lower(email) text_pattern_ops).
func (c *Console) listEmployees(ctx context.Context, q ListQuery) (*ListPage, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	where := []string{"true"}
	var args []any
	if q.After != "" {
		if err := reconcile.CheckKeys(ctx, c.cfg.Pool, []string{q.After}); err != nil {
			return nil, fmt.Errorf("%w: after: %w", errBadQuery, err)
		}
		args = append(args, q.After)
		where[0] = fmt.Sprintf("id > (SELECT key FROM syncd_parse_keys(ARRAY[$%d::text]))", len(args))
	}
	if q.Status != "" {
		// A literal (validated against Statuses), not a parameter: a cached
		// generic plan would not know how rare the status is and would walk
		// the primary key instead of (auth0_sync_status, id).
		where = append(where, "auth0_sync_status = '"+q.Status+"'")
	}
	if q.Search != "" {
		args = append(args, likePrefix(strings.ToLower(q.Search)))
		cond := fmt.Sprintf("lower(email) LIKE $%d", len(args))
		args = append(args, q.Search)
		cond = fmt.Sprintf("(%s OR id = (SELECT key FROM syncd_parse_keys(ARRAY[$%d::text])))", cond, len(args))
		where = append(where, cond)
	}
	args = append(args, q.Limit+1)
	sql := fmt.Sprintf(`SELECT %s FROM employees WHERE %s ORDER BY id LIMIT $%d`, employeeCols, strings.Join(where, " AND "), len(args))
	rows, err := c.cfg.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list employees: %w", err)
	}
	emps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Employee])
	if err != nil {
		return nil, fmt.Errorf("list employees: %w", err)
	}
	page := &ListPage{Employees: emps}
	if len(emps) > q.Limit {
		page.Employees = emps[:q.Limit]
		next := page.Employees[q.Limit-1].ID
		page.NextAfter = &next
	}
	return page, nil
}

// likePrefix escapes s for LIKE and matches what starts with it.
func likePrefix(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s) + "%"
}

func (c *Console) employee(ctx context.Context, id string) (*Employee, error) {
	rows, err := c.cfg.Pool.Query(ctx, `SELECT `+employeeCols+` FROM employees
		WHERE id = (SELECT key FROM syncd_parse_keys(ARRAY[$1::text]))`, id)
	if err != nil {
		return nil, fmt.Errorf("read employee: %w", err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[Employee])
	if errors.Is(err, pgx.ErrNoRows) {
		if err := reconcile.CheckKeys(ctx, c.cfg.Pool, []string{id}); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("employee %s: %w", id, reconcile.ErrNoEmployee)
	}
	if err != nil {
		return nil, fmt.Errorf("read employee: %w", err)
	}
	return &e, nil
}

// LogEntry is one row of auth0_sync_logs.
type LogEntry struct {
	ID          int64           `json:"id"`
	At          time.Time       `json:"created_at"`
	Action      string          `json:"action"`
	Status      string          `json:"status"`
	UserID      *string         `json:"auth0_user_id"`
	Error       *string         `json:"error"`
	ReconcileID *string         `json:"reconcile_id"`
	Response    json.RawMessage `json:"response_data"`
}

// timelineLimit is how many audit rows an employee's page shows.
const timelineLimit = 200

func (c *Console) timeline(ctx context.Context, id string) ([]LogEntry, error) {
	rows, err := c.cfg.Pool.Query(ctx, `SELECT id, created_at, action, status, auth0_user_id, error, reconcile_id, response_data
		FROM auth0_sync_logs WHERE employee_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`, id, timelineLimit)
	if err != nil {
		return nil, fmt.Errorf("read timeline: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[LogEntry])
	if err != nil {
		return nil, fmt.Errorf("read timeline: %w", err)
	}
	return out, nil
}

// Detail is everything the console knows of one employee.
type Detail struct {
	Employee *Employee `json:"employee"`
	// Desired is the Auth0 state syncd computes from the row; DesiredError
	// says why the row cannot become an account.
	Desired      *reconcile.Desired `json:"desired,omitempty"`
	DesiredError string             `json:"desired_error,omitempty"`
	// ConflictAccount is the account a conflict names (what Link this
	// account links).
	ConflictAccount string `json:"conflict_account,omitempty"`
	// Auth0 is the live read, present when asked for.
	Auth0    *LiveRead  `json:"auth0,omitempty"`
	Timeline []LogEntry `json:"timeline"`
}

// LiveRead is the account as Auth0 has it now and what a reconcile would do:
// the one-employee `syncd plan`, no writes.
type LiveRead struct {
	// Account is nil when Auth0 has none for the employee.
	Account *Account       `json:"account"`
	Plan    reconcile.Plan `json:"plan"`
	// Error is why the read or the plan stopped (a conflict, an outage).
	Error string `json:"error,omitempty"`
}

// Account is the managed part of an Auth0 account.
type Account struct {
	UserID string          `json:"user_id"`
	State  reconcile.State `json:"state"`
	Roles  []string        `json:"roles"`
	Linked bool            `json:"linked"`
}

func (c *Console) detail(ctx context.Context, id string, live bool) (*Detail, error) {
	e, err := c.employee(ctx, id)
	if err != nil {
		return nil, err
	}
	id = e.ID // as the table writes it
	d := &Detail{Employee: e}
	if e.Status == reconcile.StatusConflict && e.Error != nil {
		d.ConflictAccount = reconcile.ConflictAccount(*e.Error)
	}
	des, err := c.cfg.Reconciler.DesiredOf(ctx, id)
	switch {
	case err == nil:
		d.Desired = &des
	case errors.As(err, new(*reconcile.InvalidRowError)):
		d.DesiredError = err.Error()
	default: // ErrNoEmployee (deleted meanwhile) or the database
		return nil, err
	}
	if d.Timeline, err = c.timeline(ctx, id); err != nil {
		return nil, err
	}
	if live {
		lctx, cancel := context.WithTimeout(ctx, c.cfg.AuthTimeout)
		defer cancel()
		plan, o, err := c.cfg.Reconciler.PlanFor(lctx, id)
		lr := &LiveRead{Plan: plan}
		if lr.Plan == nil {
			lr.Plan = reconcile.Plan{}
		}
		if err != nil {
			lr.Error = err.Error()
		}
		if o != nil {
			lr.Account = &Account{UserID: o.UserID, State: o.State, Roles: o.Roles, Linked: o.Linked}
		}
		d.Auth0 = lr
	}
	return d, nil
}

// statusView is the overview's data: the database's report and the
// daemon's own state.
type statusView struct {
	*reconcile.StatusReport
	Live
	DriftScan *ScanInfo `json:"drift_scan"`
	History   []Sample  `json:"history"`
}

// problemsShown is how many problem rows the overview lists.
const problemsShown = 10

func (c *Console) status(ctx context.Context) (*statusView, error) {
	rep, err := reconcile.ReadStatus(ctx, c.cfg.Pool, problemsShown)
	if err != nil {
		return nil, err
	}
	return &statusView{StatusReport: rep, Live: c.cfg.Live(), DriftScan: c.scan.Load(), History: c.ring.all()}, nil
}
