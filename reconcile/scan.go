package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/auth0"
)

// DriftKind names how an account differs from its row.
type DriftKind string

// Kinds of drift the scan finds.
const (
	DriftMissing      DriftKind = "missing_account" // the linked account is gone
	DriftProfile      DriftKind = "profile"         // email or name
	DriftBlocked      DriftKind = "blocked"         // blocked when it should not be, or the reverse
	DriftAppMetadata  DriftKind = "app_metadata"    // a managed app_metadata key
	DriftUserMetadata DriftKind = "user_metadata"   // a managed user_metadata key
	DriftRole         DriftKind = "role"            // the mapped role missing, or another mapped role present
	DriftOrphan       DriftKind = "orphan"          // a managed account that no row claims
)

// Drift is an employee whose account differs from the row.
type Drift struct {
	EmployeeID string      `json:"employee_id"`
	UserID     string      `json:"auth0_user_id,omitempty"`
	Kinds      []DriftKind `json:"kinds"`
	// Deprovisions: fixing it blocks or deletes the account.
	Deprovisions bool `json:"deprovisions,omitempty"`
}

// Orphan is a managed account (app_metadata.created_by is ours, or it
// carries an employee_id) that no employee row is linked to, and that syncd
// has not deprovisioned already (those are ScanResult.Deprovisioned).
type Orphan struct {
	UserID     string `json:"auth0_user_id"`
	Email      string `json:"email,omitempty"`
	EmployeeID string `json:"employee_id,omitempty"` // from app_metadata, "" if none
	Blocked    bool   `json:"blocked"`
	Reason     string `json:"reason"`
}

// ScanResult is what one drift scan found. Its lists are never nil (JSON
// shows [] for none), and its JSON gives durations in seconds.
type ScanResult struct {
	Employees    int `json:"employees"`     // rows read
	Compared     int `json:"compared"`      // rows in a converged state, compared with Auth0
	ManagedUsers int `json:"managed_users"` // managed accounts seen in Auth0
	// NotCompared says which rows were not compared, and why, grouped by
	// reason (most rows first): in flight, failed, held by the guard, or
	// not an account under the current settings.
	NotCompared []NotCompared `json:"not_compared"`
	Drifted     []Drift       `json:"drifted"`
	Orphans     []Orphan      `json:"orphans"`
	// Deprovisioned counts managed accounts that no row claims and that
	// syncd deprovisioned (blocked, app_metadata.sync_status terminated):
	// a deleted row's account at rest. Not drift, not an orphan.
	Deprovisioned int           `json:"deprovisioned_accounts"`
	Took          time.Duration `json:"-"`
	TookSeconds   float64       `json:"took_seconds"`
}

// NotCompared is a group of rows that a scan did not compare, for one reason.
type NotCompared struct {
	Reason      string   `json:"reason"`
	Count       int      `json:"count"`
	EmployeeIDs []string `json:"employee_ids"`
}

// Reasons a row is not compared (besides the row's own invalidity).
const (
	notComparedHeld     = "a deprovision held by the mass-deprovision guard (`syncd guard list`; `syncd guard release` lets it through)"
	notComparedSettling = "a deprovision settling: the guard counts its batch within seconds"
	notComparedFailed   = "failed: syncd waits for the row to change (`syncd status` says why)"
	notComparedConflict = "conflict: the email belongs to another account; a person decides (`syncd status`)"
)

func notComparedInFlight(status string) string {
	return "in flight (" + status + "): syncd is working on it"
}

// ActionableOrphans counts the orphans a fix would deprovision (those not
// blocked yet).
func (s *ScanResult) ActionableOrphans() int {
	n := 0
	for _, o := range s.Orphans {
		if !o.Blocked {
			n++
		}
	}
	return n
}

// HasDrift says whether fixing the result would change anything in Auth0:
// a drifted row, or an orphan account not blocked yet.
func (s *ScanResult) HasDrift() bool { return len(s.Drifted) > 0 || s.ActionableOrphans() > 0 }

// Deprovisions counts the accounts that fixing the result would block or
// delete: drifted rows whose fix deprovisions, and orphans not yet blocked.
func (s *ScanResult) Deprovisions() int {
	n := 0
	for _, d := range s.Drifted {
		if d.Deprovisions {
			n++
		}
	}
	for _, o := range s.Orphans {
		if !o.Blocked {
			n++
		}
	}
	return n
}

// scanEntry is what the scan keeps of one row: fingerprints, not states, so
// that 100,000 rows fit in a few megabytes.
type scanEntry struct {
	userID  string
	fp      fingerprint
	role    string
	delete  bool
	blocked bool
	seen    bool
	// keys are the managed keys the desired state was computed under.
	keys ManagedKeys
	// status and syncedAt as the scan read them: a row whose values differ
	// when the scan ends was worked on meanwhile (recheckDrift).
	status   string
	syncedAt *time.Time
}

// withSyncedAt reads auth0_synced_at and the guard's state of the row
// after the columns scanEmployee reads.
type withSyncedAt struct {
	scanner
	at    **time.Time
	guard *string
}

func (w withSyncedAt) Scan(dest ...any) error { return w.scanner.Scan(append(dest, w.at, w.guard)...) }

type fingerprint struct{ profile, blocked, app, user uint64 }

func fingerprintOf(s State) fingerprint {
	return fingerprint{
		profile: hashOf(s.Email + "\x00" + s.Name),
		blocked: map[bool]uint64{false: 1, true: 2}[s.Blocked],
		app:     hashJSON(s.App),
		user:    hashJSON(s.User),
	}
}

func hashOf(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

func hashJSON(m map[string]any) uint64 {
	if len(m) == 0 {
		return 0
	}
	b, _ := json.Marshal(m) // map keys are sorted: a canonical form
	return hashOf(string(b))
}

// scanFields are the fields the users export asks for.
var scanFields = []auth0.ExportField{
	{Name: "user_id"}, {Name: "email"}, {Name: "name"}, {Name: "blocked"},
	{Name: "app_metadata"}, {Name: "user_metadata"}, {Name: "identities"},
}

// Scan compares every employee with every managed Auth0 account in bulk: one
// users export and the members of each mapped role, streamed, so its cost is
// O(N / page size) Auth0 calls and its memory a few fingerprints per row. It
// reads only; the caller decides what to requeue (Requeue) and which orphans
// to deprovision (DeprovisionOrphan).
func (r *Reconciler) Scan(ctx context.Context) (*ScanResult, error) {
	start := time.Now()
	res := &ScanResult{Drifted: []Drift{}, Orphans: []Orphan{}, NotCompared: []NotCompared{}}
	entries := map[string]*scanEntry{}
	known := map[string]bool{} // every row, compared or not
	skipped := map[string]*NotCompared{}
	skip := func(id string, reason string) {
		g := skipped[reason]
		if g == nil {
			g = &NotCompared{Reason: reason}
			skipped[reason] = g
		}
		g.Count++
		g.EmployeeIDs = append(g.EmployeeIDs, id)
	}

	rows, err := r.pool.Query(ctx, `SELECT `+employeeColumns+`, auth0_synced_at,
			coalesce((SELECT d.state FROM syncd_deprovisions d WHERE d.key = 'employee:' || employees.id), '')
		FROM employees`)
	if err != nil {
		return nil, fmt.Errorf("read employees: %w", err)
	}
	for rows.Next() {
		var (
			syncedAt   *time.Time
			guardState string
		)
		e, err := scanEmployee(withSyncedAt{rows, &syncedAt, &guardState})
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read employee: %w", err)
		}
		res.Employees++
		known[e.ID] = true
		// Only rows syncd believes converged are compared: the others are
		// in flight, or terminal until they change.
		switch {
		case e.Status == StatusSynced || e.Status == StatusDeprovisioned:
		case guardState == string(Held):
			skip(e.ID, notComparedHeld)
			continue
		case guardState == string(Settling):
			skip(e.ID, notComparedSettling)
			continue
		case e.Status == StatusFailed:
			skip(e.ID, notComparedFailed)
			continue
		case e.Status == StatusConflict:
			skip(e.ID, notComparedConflict)
			continue
		default:
			skip(e.ID, notComparedInFlight(e.Status))
			continue
		}
		d, err := r.desiredFor(e)
		if err != nil {
			skip(e.ID, "not an account under these settings: "+err.Error())
			continue
		}
		res.Compared++
		entries[e.ID] = &scanEntry{userID: deref(e.Auth0UserID), fp: fingerprintOf(d.State), role: d.Role, delete: d.Delete, blocked: d.Blocked, keys: d.Keys,
			status: e.Status, syncedAt: syncedAt}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read employees: %w", err)
	}

	// Members of every managed role: user id → the managed roles it has.
	//
	// Roles change while the scan pages (checkpoint paging: a checkpoint is
	// a position, so the members that do not change are each listed once).
	// Auth0 lists members in assignment order, so a member assigned while
	// its role is still being listed comes after every page served and this
	// scan sees it; one assigned after its role's listing ended (or, on
	// Auth0, in the same microsecond as the checkpoint with a smaller
	// user_id; or, with an order by creation, behind the checkpoint) is seen
	// by the next scan. A member removed after its page was served still
	// counts as a member here; the next scan reports the drift. No change
	// made during a scan is missed by the scan after it. What the listing
	// got wrong cannot become false drift: a row that syncd worked on
	// meanwhile is dropped from the result (recheckDrift), and every role
	// drift left is confirmed by reading the account's roles (confirmRoles).
	managed := r.cfg.managedRoles()
	roleOf := map[string][]string{}
	for _, name := range managed {
		id, err := r.roles.id(ctx, r.api, name)
		if err != nil {
			return nil, fmt.Errorf("resolve role %q: %w", name, err)
		}
		err = r.api.ListRoleUsers(ctx, id, func(page []auth0.RoleMember) error {
			for _, m := range page {
				// A member removed and assigned again while the scan
				// pages is listed twice.
				if !slices.Contains(roleOf[m.UserID], name) {
					roleOf[m.UserID] = append(roleOf[m.UserID], name)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list members of role %q: %w", name, err)
		}
	}

	drifted := map[string]*Drift{}
	addDrift := func(id string, userID string, k DriftKind, deprov bool) {
		d := drifted[id]
		if d == nil {
			d = &Drift{EmployeeID: id, UserID: userID}
			drifted[id] = d
		}
		if !slices.Contains(d.Kinds, k) {
			d.Kinds = append(d.Kinds, k)
		}
		d.Deprovisions = d.Deprovisions || deprov
	}

	err = r.api.ExportUsers(ctx, auth0.ExportRequest{Fields: scanFields}, func(x auth0.ExportedUser) error {
		u, err := decodeExported(x)
		if err != nil {
			return err
		}
		if !u.InConnection(r.cfg.Connection) {
			return nil
		}
		eid, hasEID := employeeIDOf(u)
		createdBy, _ := u.AppMetadata["created_by"].(string)
		if !hasEID && createdBy != r.cfg.CreatedBy {
			return nil // not ours
		}
		res.ManagedUsers++
		ent := entries[eid]
		switch {
		case u.Blocked && ent == nil && !known[eid] && u.AppMetadata["sync_status"] == syncStatusTerminated:
			// A deleted row's account that syncd blocked: at rest.
			res.Deprovisioned++
			return nil
		case !hasEID:
			res.Orphans = append(res.Orphans, Orphan{UserID: u.UserID, Email: u.Email, Blocked: u.Blocked, Reason: "managed account without app_metadata.employee_id"})
			return nil
		case ent == nil && !known[eid]:
			res.Orphans = append(res.Orphans, Orphan{UserID: u.UserID, Email: u.Email, EmployeeID: eid, Blocked: u.Blocked, Reason: "no employee row has this employee_id"})
			return nil
		case ent == nil:
			return nil // the row is in flight or terminal: not compared
		case ent.userID != u.UserID:
			res.Orphans = append(res.Orphans, Orphan{UserID: u.UserID, Email: u.Email, EmployeeID: eid, Blocked: u.Blocked,
				Reason: fmt.Sprintf("employee %s is linked to another account (%s)", eid, ent.userID)})
			return nil
		}
		ent.seen = true
		if ent.delete {
			addDrift(eid, u.UserID, DriftBlocked, true)
			return nil
		}
		got := fingerprintOf(observedState(u, ent.keys))
		if got.profile != ent.fp.profile {
			addDrift(eid, u.UserID, DriftProfile, false)
		}
		if got.blocked != ent.fp.blocked {
			addDrift(eid, u.UserID, DriftBlocked, ent.blocked)
		}
		if got.app != ent.fp.app {
			addDrift(eid, u.UserID, DriftAppMetadata, false)
		}
		if got.user != ent.fp.user {
			addDrift(eid, u.UserID, DriftUserMetadata, false)
		}
		if roleDrifted(ent.role, roleOf[u.UserID]) {
			addDrift(eid, u.UserID, DriftRole, false)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("export users: %w", err)
	}
	for id, ent := range entries {
		if !ent.seen && ent.userID != "" && !ent.delete {
			addDrift(id, ent.userID, DriftMissing, false)
		}
	}
	if err := r.recheckDrift(ctx, drifted, entries); err != nil {
		return nil, err
	}
	if err := r.confirmRoles(ctx, drifted, entries); err != nil {
		return nil, err
	}
	if res.Orphans, err = r.recheckOrphans(ctx, res.Orphans); err != nil {
		return nil, err
	}
	for _, d := range drifted {
		slices.Sort(d.Kinds)
		res.Drifted = append(res.Drifted, *d)
	}
	slices.SortFunc(res.Drifted, func(a, b Drift) int { return CompareKeys(a.EmployeeID, b.EmployeeID) })
	slices.SortFunc(res.Orphans, func(a, b Orphan) int {
		if a.UserID < b.UserID {
			return -1
		}
		return 1
	})
	for _, g := range skipped {
		slices.SortFunc(g.EmployeeIDs, CompareKeys)
		res.NotCompared = append(res.NotCompared, *g)
	}
	slices.SortFunc(res.NotCompared, func(a, b NotCompared) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	res.Took = time.Since(start)
	res.TookSeconds = res.Took.Seconds()
	return res, nil
}

// roleDrifted says whether an account with the managed roles have differs
// from a row that wants role ("" = no mapped role).
func roleDrifted(role string, have []string) bool {
	return (role != "" && !slices.Contains(have, role)) || slices.ContainsFunc(have, func(n string) bool { return n != role })
}

// recheckDrift reads the drifted rows again and drops those that syncd
// worked on while the scan ran: a row now in flight (pending, syncing,
// retrying or leased), or whose status or auth0_synced_at moved on, or that
// is gone. The scan compared Auth0 with the row as it was before, so a worker
// that changed the account meanwhile (a role_code change: one role removed,
// another assigned, while the scan paged) looks like drift that is not
// there. Whatever drift such a row still has, the next scan reports it.
func (r *Reconciler) recheckDrift(ctx context.Context, drifted map[string]*Drift, entries map[string]*scanEntry) error {
	if len(drifted) == 0 {
		return nil
	}
	ids := slices.Collect(maps.Keys(drifted))
	rows, err := r.pool.Query(ctx, `SELECT id::text, auth0_sync_status, auth0_synced_at,
			auth0_sync_status IN ('pending', 'syncing', 'retrying') OR coalesce(auth0_locked_until > now(), false)
		FROM employees WHERE id = ANY(syncd_keys($1))`, ids)
	if err != nil {
		return fmt.Errorf("read drifted employees again: %w", err)
	}
	atRest := map[string]bool{}
	for rows.Next() {
		var (
			id       string
			status   string
			syncedAt *time.Time
			inFlight bool
		)
		if err := rows.Scan(&id, &status, &syncedAt, &inFlight); err != nil {
			rows.Close()
			return fmt.Errorf("read drifted employees again: %w", err)
		}
		ent := entries[id]
		atRest[id] = ent != nil && !inFlight && status == ent.status && sameTime(syncedAt, ent.syncedAt)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read drifted employees again: %w", err)
	}
	for id := range drifted {
		if !atRest[id] {
			delete(drifted, id)
		}
	}
	return nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// confirmRoles reads the roles of every account with role drift (GET
// /users/{id}/roles, immediately consistent) and drops the drift that the
// account no longer shows: a role assigned or removed by hand while the
// listing paged (a member assigned behind the checkpoint is not listed). It
// costs one call per role-drifted account, none when nothing drifted.
func (r *Reconciler) confirmRoles(ctx context.Context, drifted map[string]*Drift, entries map[string]*scanEntry) error {
	managed := r.cfg.managedRoles()
	for id, d := range drifted {
		if !slices.Contains(d.Kinds, DriftRole) {
			continue
		}
		roles, err := r.api.ListUserRoles(ctx, d.UserID)
		if errors.Is(err, auth0.ErrNotFound) {
			continue // deleted meanwhile: the requeued reconcile sees it
		}
		if err != nil {
			return fmt.Errorf("confirm role drift of employee %s: %w", id, err)
		}
		var have []string
		for _, ro := range roles {
			if slices.Contains(managed, ro.Name) {
				have = append(have, ro.Name)
			}
		}
		if roleDrifted(entries[id].role, have) {
			continue
		}
		d.Kinds = slices.DeleteFunc(d.Kinds, func(k DriftKind) bool { return k == DriftRole })
		if len(d.Kinds) == 0 {
			delete(drifted, id)
		}
	}
	return nil
}

// recheckOrphans reads again the rows named by orphans that carry an
// employee_id. The employees were read before Auth0, so an account that a
// worker (of this process or another) created or relinked meanwhile, for a
// row that was new or in flight, looks like an orphan; blocking it would lock
// a new hire out while the row says synced. An account stays an orphan only
// if its row is gone, or is at rest (not leased, not pending) and linked to
// another account.
func (r *Reconciler) recheckOrphans(ctx context.Context, orphans []Orphan) ([]Orphan, error) {
	var ids []string
	for _, o := range orphans {
		if o.EmployeeID != "" {
			ids = append(ids, o.EmployeeID)
		}
	}
	if len(ids) == 0 {
		return orphans, nil
	}
	// The ids come from Auth0: one that is no key of the table's type names
	// no row (syncd_parse_keys gives it no key).
	rows, err := r.pool.Query(ctx, `SELECT p.given, coalesce(e.auth0_user_id, ''),
			e.auth0_sync_status IN ('pending', 'syncing', 'retrying') OR coalesce(e.auth0_locked_until > now(), false)
		FROM syncd_parse_keys($1) p JOIN employees e ON e.id = p.key`, ids)
	if err != nil {
		return nil, fmt.Errorf("read employees again: %w", err)
	}
	type now struct {
		userID   string
		inFlight bool
	}
	current := map[string]now{}
	for rows.Next() {
		var (
			id string
			n  now
		)
		if err := rows.Scan(&id, &n.userID, &n.inFlight); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read employees again: %w", err)
		}
		current[id] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read employees again: %w", err)
	}
	kept := orphans[:0]
	for _, o := range orphans {
		n, exists := current[o.EmployeeID]
		if o.EmployeeID != "" && exists && (n.inFlight || n.userID == "" || n.userID == o.UserID) {
			continue // its row exists now and owns it, or may be about to
		}
		kept = append(kept, o)
	}
	return kept, nil
}

// decodeExported turns an export line into a user.
func decodeExported(x auth0.ExportedUser) (*auth0.User, error) {
	b, err := json.Marshal(x)
	if err != nil {
		return nil, fmt.Errorf("decode exported user: %w", err)
	}
	var u auth0.User
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, fmt.Errorf("decode exported user: %w", err)
	}
	return &u, nil
}

// Requeue makes the daemon reconcile employees ids again, reading Auth0 first
// (their last-applied record is cleared): it marks them pending and writes
// an outbox row each, which wakes the daemon and survives a crash. all
// requeues every row. It returns how many rows it marked.
func Requeue(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, ids []string, all bool) (int64, error) {
	if !all && len(ids) == 0 {
		return 0, nil
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	tag, err := tx.Exec(ctx, `WITH marked AS (
			UPDATE employees SET auth0_sync_status = 'pending', auth0_synced_state = NULL, auth0_next_attempt_at = NULL
			 WHERE $2 OR id = ANY(syncd_keys($1)) RETURNING id)
		INSERT INTO auth0_outbox (employee_id, op) SELECT id, 'resync' FROM marked ORDER BY id`, ids, all)
	if err != nil {
		return 0, fmt.Errorf("requeue: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify('auth0_outbox', '')`); err != nil {
		return 0, fmt.Errorf("notify: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return tag.RowsAffected(), nil
}

// MissingEmployees returns those of ids that no employee row has, in the
// order given; a text that is no key of the table's type is a
// *NotAKeyError.
func MissingEmployees(ctx context.Context, db Querier, ids []string) ([]string, error) {
	_, missing, err := resolveKeys(ctx, db, ids)
	return missing, err
}

// DeprovisionOrphan blocks (or deletes, per the deprovision mode) a managed
// account that no row is linked to, under the guard. A transient failure is
// returned as an error.
func (r *Reconciler) DeprovisionOrphan(ctx context.Context, o Orphan) (Outcome, error) {
	rid := newReconcileID()
	ctx = context.WithValue(ctx, ctxKey{}, rid)
	// The orphan's employee_id comes from Auth0: its audit rows carry it
	// only if it is a key of the table's type.
	id := o.EmployeeID
	if id != "" {
		if err := CheckKeys(ctx, r.pool, []string{id}); errors.Is(err, ErrNotAKey) {
			id = ""
		} else if err != nil {
			return Outcome{}, err
		}
	}
	a := &attempt{r: r, id: id, rid: rid, log: r.cfg.Logger.With("reconcile_id", rid, "auth0_user_id", o.UserID)}
	a.noEmployeeCheck = true
	out := a.deprovision(ctx, Deprovision{Kind: KindOrphan, EmployeeID: o.EmployeeID, UserID: o.UserID})
	if err := a.writeLogs(context.WithoutCancel(ctx)); err != nil {
		return out, err
	}
	if out.Result == ResultRetry {
		return out, fmt.Errorf("deprovision orphan %s: %w", o.UserID, out.Err)
	}
	a.report(ctx, out, 0)
	return out, nil
}

// PlanFor is a dry run of Reconcile: it reads the row and Auth0 (never the
// last-applied record) and returns the plan, writing nothing anywhere.
func (r *Reconciler) PlanFor(ctx context.Context, id string) (Plan, *Observed, error) {
	e, err := scanEmployee(r.pool.QueryRow(ctx, `SELECT `+employeeColumns+` FROM employees
		WHERE id = (SELECT key FROM syncd_parse_keys(ARRAY[$1::text]))`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, fmt.Errorf("employee %s: no such row", id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read employee: %w", err)
	}
	a := &attempt{r: r, id: e.ID, emp: e, log: r.cfg.Logger}
	d, err := r.desiredFor(e)
	if err != nil {
		return nil, nil, err
	}
	o, out := a.observe(ctx, d, true)
	if out != nil {
		return nil, nil, out.Err
	}
	plan := Diff(d, o)
	if o != nil {
		rev, err := r.readRevoked(ctx, o.UserID)
		if err != nil {
			return nil, nil, err
		}
		plan = WithRevocations(plan, r.owedRevocations(plan, d, rev))
	}
	return plan, o, nil
}
