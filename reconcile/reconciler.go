package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/internal/groupcommit"
)

// Result is the kind of outcome of one reconcile.
type Result string

// Results.
const (
	// ResultDone: Auth0 matches the row (status synced or deprovisioned), or
	// there was nothing to do.
	ResultDone Result = "done"
	// ResultRetry: a transient failure; the row is retrying with
	// auth0_next_attempt_at set.
	ResultRetry Result = "retry"
	// ResultTerminal: Auth0 rejected the data (failed) or the email belongs to
	// another account (conflict); retried only when the row changes.
	ResultTerminal Result = "terminal"
	// ResultStale: the row changed while it was reconciled; what was applied
	// is recorded, the status is left pending for the next pass, which the
	// change itself queued.
	ResultStale Result = "stale"
	// ResultImporting: the row is in a users-import job (bulk creation), which
	// records its outcome or hands it back as new work; nothing was done.
	ResultImporting Result = "importing"
	// ResultHeld: the deprovision waits for the mass-deprovision guard
	// (settling or held). The row is left pending, its work is handled (the
	// outbox row goes), and the guard hands it back when it allows it.
	ResultHeld Result = "held"
)

// Sync statuses written to employees.auth0_sync_status.
const (
	StatusPending       = "pending"
	StatusSyncing       = "syncing"
	StatusSynced        = "synced"
	StatusRetrying      = "retrying"
	StatusFailed        = "failed"
	StatusConflict      = "conflict"
	StatusDeprovisioned = "deprovisioned"
)

// Outcome is what one reconcile did.
type Outcome struct {
	Result Result
	// Status is the auth0_sync_status written, "" if none.
	Status string
	// Applied are the actions that took effect in Auth0.
	Applied Plan
	// UserID is the employee's Auth0 account, if known.
	UserID string
	// Err is the cause of a retry or terminal outcome.
	Err error
	// NextAttempt is when a retry is due.
	NextAttempt time.Time
}

// ConflictError says that the employee's email belongs to an Auth0 account
// that is not this employee's.
type ConflictError struct {
	Email  string
	UserID string
	Reason string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("email %s belongs to Auth0 account %s, %s", e.Email, e.UserID, e.Reason)
}

// UsernameConflictError says that the username made from the employee's
// email (--username local-part) belongs to another account in the
// connection: two employees' emails share a local part.
type UsernameConflictError struct {
	Username string
	Email    string
}

func (e *UsernameConflictError) Error() string {
	return fmt.Sprintf("username %q (made from %s) is taken by another Auth0 account in the connection, most likely an employee whose email has the same local part; "+
		"give one of them another email, or create this account by hand and link it by setting auth0_user_id", e.Username, e.Email)
}

// RejectedError says that Auth0 refused the row's data for good (a 4xx that
// repeating cannot fix); the row is failed until it changes.
type RejectedError struct {
	Advice string
	Err    error
}

func (e *RejectedError) Error() string { return e.Advice + ": " + e.Err.Error() }

func (e *RejectedError) Unwrap() error { return e.Err }

// rejected classifies an Auth0 answer: a *RejectedError for a status that
// says the data itself is refused (400, 413, 414, 422), nil otherwise. 401
// and 403 are configuration (the breaker's), 404 and 409 are handled where
// they mean something, 429 and 5xx are transient.
func rejected(err error) error {
	var ae *auth0.APIError
	if !errors.As(err, &ae) {
		return nil
	}
	switch ae.StatusCode {
	case 400:
		return err // Auth0's message says what is wrong with the data
	case 413:
		return &RejectedError{Advice: "the account is larger than Auth0 accepts (413): shorten the row's longest values", Err: err}
	case 414:
		return &RejectedError{Advice: "a request for this row is longer than Auth0 accepts (414): shorten its email", Err: err}
	case 422:
		return &RejectedError{Advice: "Auth0 cannot process the row's data (422)", Err: err}
	}
	return nil
}

// errReobserve: what syncd believed of Auth0 is wrong (the account is gone,
// or a create found one); read Auth0 again and re-plan.
var errReobserve = errors.New("auth0 state changed: observe again")

// Reconciler converges Auth0 with employee rows. It is safe for concurrent
// use; one employee is reconciled by one caller at a time across every
// process sharing the database (a lease on the row, auth0_locked_until).
type Reconciler struct {
	pool  *pgxpool.Pool
	api   Auth0
	cfg   Config
	roles roleCache
	// owner names this Reconciler's leases. A lease of its own on an
	// employee none of its attempts is working on was left by an attempt
	// that could not record its outcome (the database was down): it is taken
	// back at once instead of waiting for it to expire.
	owner string

	mu       sync.Mutex
	inFlight map[string]bool // employees this Reconciler is working on

	// unavailable says why revocation is unavailable (the tenant's plan),
	// nil while it is not known to be (revoke.go).
	unavailable atomic.Pointer[string]

	// claims and records are the group commits of leases and outcomes (group.go).
	claims  *groupcommit.Group[string, *Employee]
	records *groupcommit.Group[recordItem, bool]
}

// New returns a Reconciler; cfg is completed with WithDefaults and validated.
func New(pool *pgxpool.Pool, api Auth0, cfg Config) (*Reconciler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("reconcile config: %w", err)
	}
	r := &Reconciler{pool: pool, api: api, cfg: cfg, owner: newReconcileID(), inFlight: map[string]bool{}}
	r.initGroups()
	return r, nil
}

// Config returns the reconciler's configuration (with defaults).
func (r *Reconciler) Config() Config { return r.cfg }

// observedKeys are the managed keys an observation keeps: those the row's
// desired state was computed under (read with the row), or, for a deleted
// row's account, those syncd_managed_keys declared when its deprovision
// began.
func (a *attempt) observedKeys() ManagedKeys {
	switch {
	case a.desired != nil:
		return a.desired.Keys
	case a.keys != nil:
		return *a.keys
	}
	return DefaultManagedKeys.withOwn()
}

// desiredFor is DesiredFor under the reconciler's configuration.
func (r *Reconciler) desiredFor(e *Employee) (Desired, error) {
	return DesiredFor(e, r.cfg)
}

type ctxKey struct{}

// ReconcileID returns the id of the reconcile attempt running in ctx, "" if none.
func ReconcileID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

func newReconcileID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// attempt is the state of one reconcile.
type attempt struct {
	r      *Reconciler
	id     string
	rid    string
	log    *slog.Logger
	emp    *Employee
	logs   []auditEntry
	userID string
	// createdAt is set when this attempt created the account.
	createdAt *time.Time
	applied   Plan
	// desired is what the row asked for, recorded as auth0_synced_state on success.
	desired *Desired
	// keys are the managed keys of a deleted row's deprovision (no desired).
	keys *ManagedKeys
	// deleted: this attempt deleted the account (deprovision mode delete).
	deleted bool
	// createUnknown: a POST /users of this attempt lost its answer.
	createUnknown bool
	// noEmployeeCheck: deprovision the account whatever employee_id it
	// carries (an orphan found by the drift scan).
	noEmployeeCheck bool
	// guarded is the deprovision this attempt asked the guard about.
	guarded *Deprovision
	// usernameConflict: a create of this attempt sent this username and
	// Auth0 answered that the user exists.
	usernameConflict string
	// revokedNow are the revocations this attempt carried out (revoke.go).
	revokedNow []ActionKind
}

// Reconcile converges employee id: it reads the row and Auth0, applies the
// difference, and records status and audit rows in one transaction. The
// error is non-nil only when nothing could be recorded (the database is
// unreachable, ErrBusy, or a deleted row's deprovisioning must be retried);
// every other Auth0 failure is an Outcome.
func (r *Reconciler) Reconcile(ctx context.Context, id string) (Outcome, error) {
	rid := newReconcileID()
	ctx = context.WithValue(ctx, ctxKey{}, rid)
	a := &attempt{r: r, id: id, rid: rid, log: r.cfg.Logger.With("reconcile_id", rid, "employee_id", id)}
	start := time.Now()

	var err error
	a.emp, err = r.claim(ctx, id)
	if errors.Is(err, errNoRow) {
		return a.rowDeleted(ctx)
	}
	if errors.Is(err, errImporting) {
		return Outcome{Result: ResultImporting, Status: StatusSyncing}, nil
	}
	if err != nil {
		return Outcome{}, err
	}
	defer r.release(id)

	workCtx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	out := a.converge(workCtx)
	cancel()
	// Record even when ctx was cancelled (shutdown): what was applied in
	// Auth0 must reach the database.
	rec, rcancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer rcancel()
	if ctx.Err() != nil && out.Result != ResultDone && out.Result != ResultTerminal {
		out = a.retry(ctx.Err())
		out.NextAttempt = r.cfg.Now() // shutdown: due again at once
	}
	if err := a.recordGrouped(rec, &out); err != nil {
		return out, err
	}
	a.report(ctx, out, time.Since(start))
	return out, nil
}

// ErrBusy says that another worker (in this process or another) holds the
// employee's lease and kept it for longer than Reconcile waits; try later.
var ErrBusy = errors.New("employee is being reconciled by another worker")

var errNoRow = errors.New("no such employee row")

// errImporting: the row is in a users-import job (bulk.go), which is its lease.
var errImporting = errors.New("employee is in a users-import job")

// recordTimeout bounds the write of an outcome; a lease outlives the
// reconcile timeout by this much.
const recordTimeout = 15 * time.Second

// claim takes the employee's lease, marks the row syncing and counts the
// attempt, in one committed statement: the lease gives one worker per
// employee across all processes, and the committed count tells the next
// attempt, if this process dies after POST /users, that an account may exist
// and must be looked for before creating. A held lease is waited for, a
// little; a lease of a dead process expires.
func (r *Reconciler) claim(ctx context.Context, id string) (*Employee, error) {
	lease := (r.cfg.Timeout + recordTimeout).Seconds()
	wait := 5 * time.Millisecond
	start := time.Now()
	deadline := start.Add(r.cfg.BusyWait)
	for {
		r.mu.Lock()
		mine := !r.inFlight[id]
		if mine {
			r.inFlight[id] = true
		}
		r.mu.Unlock()
		if !mine {
			// Another attempt of this Reconciler holds it: wait as for any lease.
			if time.Now().After(deadline) {
				return nil, ErrBusy
			}
			if err := sleepCtx(ctx, wait); err != nil {
				return nil, err
			}
			wait = min(wait*2, 500*time.Millisecond)
			continue
		}
		if e, _ := r.claimGrouped(id); e != nil {
			return e, nil // r.release(id) when done
		}
		// Not taken with the group (its flush failed, or the row is locked,
		// leased, importing or gone): alone, waiting for a row lock.
		e, err := r.claimOne(ctx, id, lease)
		if err == nil {
			return e, nil // r.release(id) when done
		}
		r.release(id)
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("claim employee: %w", err)
		}
		var exists, importing bool
		if err := r.pool.QueryRow(ctx, `SELECT count(*) > 0, coalesce(bool_or(auth0_import_job IS NOT NULL), false)
			FROM employees WHERE id = $1`, id).Scan(&exists, &importing); err != nil {
			return nil, fmt.Errorf("claim employee: %w", err)
		}
		if importing {
			return nil, errImporting
		}
		if !exists {
			// Gone, full stop: every source hands out a key only once the
			// transaction that named it is visible (the replication source
			// checks its xid), so a missing row was deleted.
			return nil, errNoRow
		}
		if time.Now().After(deadline) {
			return nil, ErrBusy
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, err
		}
		wait = min(wait*2, 500*time.Millisecond)
	}
}

func (r *Reconciler) release(id string) {
	r.mu.Lock()
	delete(r.inFlight, id)
	r.mu.Unlock()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (a *attempt) report(ctx context.Context, out Outcome, took time.Duration) {
	attrs := []any{"result", out.Result, "status", out.Status, "took", took.Round(time.Microsecond)}
	if out.UserID != "" {
		attrs = append(attrs, "auth0_user_id", out.UserID)
	}
	if len(out.Applied) > 0 {
		// Names, not values: emails and phone numbers stay in
		// auth0_sync_logs, which is access-controlled.
		attrs = append(attrs, "actions", out.Applied.Names())
	}
	switch out.Result {
	case ResultDone:
		if len(out.Applied) > 0 {
			a.log.InfoContext(ctx, "employee converged", attrs...)
		} else {
			a.log.DebugContext(ctx, "employee already converged", attrs...)
		}
	case ResultStale:
		a.log.InfoContext(ctx, "row changed during reconcile; will reconcile again", attrs...)
	case ResultRetry:
		a.log.WarnContext(ctx, "reconcile will be retried", append(attrs, "error", out.Err, "next_attempt_at", out.NextAttempt)...)
	case ResultTerminal:
		a.log.WarnContext(ctx, "reconcile failed", append(attrs, "error", out.Err)...)
	case ResultHeld, ResultConfig:
		// The guard, or the daemon's hold, says it once; a row says it at Debug.
		a.log.DebugContext(ctx, "deprovision waits for the mass-deprovision guard", append(attrs, "error", out.Err)...)
	}
}

// converge observes, plans and applies until Auth0 matches the row, a
// failure stops it, or it has re-observed too often.
func (a *attempt) converge(ctx context.Context) Outcome {
	e := a.emp
	if e.Auth0UserID != nil {
		a.userID = *e.Auth0UserID
	}
	d, err := a.r.desiredFor(e)
	if err != nil {
		a.audit("validate", "failed", nil, err)
		return a.terminal(StatusFailed, err)
	}
	a.desired = &d
	// The fast path: the account exists and syncd recorded what it applied
	// last, so a row change is converged without reading Auth0 first. Drift
	// made by hand is the drift scan's to find; it clears the record.
	var o *Observed
	if e.Auth0UserID != nil && len(e.SyncedState) > 0 {
		var last State
		if err := json.Unmarshal(e.SyncedState, &last); err == nil {
			o = &Observed{UserID: *e.Auth0UserID, State: last, Linked: true}
			if last.Role != "" {
				o.Roles = []string{last.Role}
			}
		}
	}
	mayExist := e.Attempts > 1 || e.Auth0UserID != nil
	for round := 0; ; round++ {
		if o == nil {
			var out *Outcome
			o, out = a.observe(ctx, d, mayExist)
			if out != nil {
				return *out
			}
			if o == nil && a.usernameConflict != "" {
				// Auth0 said the user exists, and no account has this
				// email: the username is someone else's.
				return a.conflict(&UsernameConflictError{Username: a.usernameConflict, Email: d.Email})
			}
		}
		plan := Diff(d, o)
		var err error
		if o != nil { // no account: nothing to revoke
			rev := e.revoked
			if e.Auth0UserID == nil || o.UserID != *e.Auth0UserID {
				rev = revoked{} // another account than the stored one: nothing on record for it here
			}
			if plan, err = a.planRevocations(ctx, plan, d, o.UserID, rev); err != nil {
				return a.retry(err)
			}
		}
		if plan.Deprovisions() || plan.Revokes() {
			if out := a.askGuard(ctx, plan, Deprovision{Kind: KindInactive, EmployeeID: e.ID, UserID: o.UserID}); out != nil {
				return *out
			}
		}
		err = a.apply(ctx, d, o, plan)
		if errors.Is(err, errReobserve) && round < 3 {
			o, mayExist = nil, true
			continue
		}
		if err != nil {
			return a.failure(err)
		}
		status := StatusSynced
		if d.Blocked || d.Delete {
			status = StatusDeprovisioned
		}
		return Outcome{Result: ResultDone, Status: status, Applied: a.applied, UserID: a.userID}
	}
}

// askGuard asks the guard, if any, about the deprovision in plan. A nil
// Outcome lets it go ahead; otherwise it waits (settling or held) and the
// outcome says so: the first time it is held, one audit row records it.
func (a *attempt) askGuard(ctx context.Context, plan Plan, d Deprovision) *Outcome {
	g := a.r.cfg.Guard
	if g == nil {
		return nil
	}
	a.guarded = &d
	dec, err := g.Request(ctx, d)
	if err != nil {
		out := a.retry(fmt.Errorf("ask the mass-deprovision guard: %w", err))
		return &out
	}
	var why error
	switch dec.Verdict {
	case Allowed:
		return nil
	case Settling:
		why = fmt.Errorf("%w: deprovision waits to be counted with its batch (see syncd status)", ErrMassDeprovision)
	default:
		why = fmt.Errorf("%w: deprovision held: %s; `syncd guard release` lets it through, setting the row active again cancels it", ErrMassDeprovision, dec.Reason)
		if dec.New {
			a.audit(string(firstDeprovision(plan)), "held", nil, why)
		}
	}
	return &Outcome{Result: ResultHeld, Status: StatusPending, Err: why, Applied: a.applied, UserID: a.userID}
}

func firstDeprovision(p Plan) ActionKind {
	switch {
	case p.Has(ActionDelete):
		return ActionDelete
	case p.Has(ActionBlock):
		return ActionBlock
	}
	return p[0].Kind // revocations only: the block was done before
}

// observe reads the employee's account: by stored id, else by email, else (if
// an earlier attempt may have created one under another email) by
// app_metadata.employee_id. A nil Observed means no account. A non-nil
// Outcome ends the reconcile (conflict, or a failure to read).
func (a *attempt) observe(ctx context.Context, d Desired, mayExist bool) (*Observed, *Outcome) {
	api, e := a.r.api, a.emp
	if e.Auth0UserID != nil && *e.Auth0UserID != "" {
		u, err := api.GetUser(ctx, *e.Auth0UserID)
		switch {
		case err == nil:
			return a.observed(ctx, u, true)
		case !errors.Is(err, auth0.ErrNotFound):
			out := a.failure(err)
			return nil, &out
		}
		// The linked account was deleted in Auth0: look for another, else create.
		a.log.InfoContext(ctx, "linked auth0 account is gone", "auth0_user_id", *e.Auth0UserID)
		mayExist = true
	}
	if !mayExist {
		// Never attempted: nothing of ours can exist. Auth0's unique email per
		// connection is the look: a 409 on create leads back here.
		return nil, nil
	}
	users, err := api.UsersByEmail(ctx, d.Email)
	if err != nil {
		out := a.failure(err)
		return nil, &out
	}
	var foreign *auth0.User
	for i := range users {
		u := &users[i]
		if !u.InConnection(a.r.cfg.Connection) {
			continue
		}
		if eid, ok := employeeIDOf(u); ok && eid == e.ID {
			return a.observed(ctx, u, false)
		}
		if foreign == nil {
			foreign = u
		}
	}
	if foreign != nil {
		if eid, ok := employeeIDOf(foreign); ok {
			out := a.conflict(&ConflictError{Email: d.Email, UserID: foreign.UserID, Reason: fmt.Sprintf("which belongs to employee %s", eid)})
			return nil, &out
		}
		if a.r.cfg.Adopt != AdoptAccount {
			out := a.conflict(&ConflictError{Email: d.Email, UserID: foreign.UserID,
				Reason: "which syncd did not create (no app_metadata.employee_id); link it by setting auth0_user_id, or run with --adopt=adopt"})
			return nil, &out
		}
		return a.observed(ctx, foreign, false)
	}
	// A lost create under an email the row no longer has: search by
	// employee_id (eventually consistent, so only in this recovery path).
	page, err := api.SearchUsers(ctx, auth0.SearchUsersRequest{Query: searchKeyQuery(e), PerPage: 10})
	if err != nil {
		out := a.failure(err)
		return nil, &out
	}
	for i := range page.Users {
		u := &page.Users[i]
		if eid, ok := employeeIDOf(u); ok && eid == e.ID && u.InConnection(a.r.cfg.Connection) {
			return a.observed(ctx, u, false)
		}
	}
	return nil, nil
}

func (a *attempt) observed(ctx context.Context, u *auth0.User, linked bool) (*Observed, *Outcome) {
	roles, err := a.r.api.ListUserRoles(ctx, u.UserID)
	if err != nil {
		if errors.Is(err, auth0.ErrNotFound) {
			return nil, nil // deleted between the two reads
		}
		out := a.failure(err)
		return nil, &out
	}
	a.userID = u.UserID
	return &Observed{UserID: u.UserID, State: observedState(u, a.observedKeys()), Roles: a.managedRoleNames(roles), Linked: linked}, nil
}

func (a *attempt) managedRoleNames(roles []auth0.Role) []string {
	managed := a.r.cfg.managedRoles()
	var out []string
	for _, r := range roles {
		for _, m := range managed {
			if r.Name == m {
				out = append(out, r.Name)
			}
		}
	}
	return out
}

// failure turns an error of an Auth0 call into an outcome.
func (a *attempt) failure(err error) Outcome {
	var ce *ConflictError
	var ir *InvalidRowError
	if cf := a.r.cfg.ConfigFault(err); cf != nil {
		return a.configHeld(cf)
	}
	switch {
	case errors.As(err, &ce):
		return a.conflict(ce)
	case errors.As(err, &ir):
		return a.terminal(StatusFailed, err)
	case errors.As(err, new(*UsernameConflictError)):
		return a.conflict(err)
	case rejected(err) != nil:
		return a.terminal(StatusFailed, rejected(err))
	default:
		return a.retry(err)
	}
}

func (a *attempt) conflict(err error) Outcome {
	a.audit("look", "conflict", nil, err)
	return a.terminal(StatusConflict, err)
}

func (a *attempt) terminal(status string, err error) Outcome {
	return Outcome{Result: ResultTerminal, Status: status, Err: err, Applied: a.applied, UserID: a.userID}
}

func (a *attempt) retry(err error) Outcome {
	n := 1
	if a.emp != nil {
		n = max(a.emp.Attempts, 1)
	}
	backoff := float64(a.r.cfg.RetryBase) * math.Pow(2, float64(n-1))
	backoff = min(backoff, float64(a.r.cfg.RetryMax))
	backoff *= 0.5 + mrand.Float64()*0.5 // jitter: spread a burst of failures
	return Outcome{Result: ResultRetry, Status: StatusRetrying, Err: err, Applied: a.applied, UserID: a.userID,
		NextAttempt: a.r.cfg.Now().Add(time.Duration(backoff))}
}

// newPassword returns a random password that satisfies every Auth0 password
// policy (length 24, all four character classes). It is sent once, in the
// create request, and never stored or logged.
func newPassword() string {
	const (
		lower  = "abcdefghijkmnopqrstuvwxyz"
		upper  = "ABCDEFGHJKLMNPQRSTUVWXYZ"
		digits = "23456789"
		symbol = "!@#$%^&*()-_=+[]{}"
	)
	all := lower + upper + digits + symbol
	pick := func(set string) byte {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			panic(err) // crypto/rand never fails on Linux
		}
		return set[n.Int64()]
	}
	b := []byte{pick(lower), pick(upper), pick(digits), pick(symbol)}
	for len(b) < 24 {
		b = append(b, pick(all))
	}
	for i := len(b) - 1; i > 0; i-- {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		j := int(n.Int64())
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// Abandoned returns employees left "syncing" by a process that died in the
// middle of a reconcile: their lease expired. Rows that came from the outbox
// come back through it anyway; this finds the others (a retry or a drift
// requeue that was in flight).
func (r *Reconciler) Abandoned(ctx context.Context) ([]string, error) {
	rows, err := r.pool.Query(ctx, `SELECT id::text FROM employees
		WHERE auth0_sync_status = 'syncing' AND auth0_locked_until < now()`)
	if err != nil {
		return nil, fmt.Errorf("find abandoned rows: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// claimOne takes employee id's lease alone (one UPDATE, waiting for a row
// lock); pgx.ErrNoRows if the row is gone, importing, or leased by another
// process.
func (r *Reconciler) claimOne(ctx context.Context, id string, lease float64) (*Employee, error) {
	var rev revoked
	e, err := scanEmployee(withRevoked(r.pool.QueryRow(ctx, `UPDATE employees SET auth0_sync_status = 'syncing',
			auth0_sync_attempts = auth0_sync_attempts + 1, auth0_locked_until = now() + make_interval(secs => $2),
			auth0_locked_by = $3
		WHERE id = $1 AND auth0_import_job IS NULL
		  AND (auth0_locked_until IS NULL OR auth0_locked_until < now() OR auth0_locked_by = $3)
		RETURNING `+employeeColumns+`, `+revokedColumns, id, lease, r.owner), &rev))
	if err != nil {
		return nil, err
	}
	e.revoked = rev
	return e, nil
}
