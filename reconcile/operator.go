package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/auth0"
)

// Operator actions: what a person asks of syncd by hand (the console, its
// JSON API), each recorded in auth0_sync_logs with who asked
// (response_data.actor), in the same transaction as its effect.

// Audit actions of operator requests.
const (
	ActionResyncRequest = "resync_request"
	ActionLinkRequest   = "link_request"
)

// ErrNoEmployee says that an employee id has no row.
var ErrNoEmployee = errors.New("no such employee")

// UnknownEmployeesError lists the ids of a request that have no row; the
// request changed nothing.
type UnknownEmployeesError struct{ IDs []string }

func (e *UnknownEmployeesError) Error() string {
	return fmt.Sprintf("no employee with id %s; nothing was changed", strings.Join(e.IDs, ", "))
}

// Is makes errors.Is(err, ErrNoEmployee) true.
func (e *UnknownEmployeesError) Is(target error) bool { return target == ErrNoEmployee }

// LinkRefusedError says why an account cannot be linked to an employee; the
// row is unchanged.
type LinkRefusedError struct{ Reason string }

func (e *LinkRefusedError) Error() string { return "link refused: " + e.Reason }

// RequeueBy is Requeue of the given ids on behalf of actor, all or nothing:
// if any id has no row nothing changes and the error is an
// *UnknownEmployeesError. Each requeued employee gets an audit row
// (resync_request) naming the actor.
func RequeueBy(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, ids []string, actor string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	ids, err = lockExisting(ctx, tx, ids)
	if err != nil {
		return 0, err
	}
	if err := auditRequest(ctx, tx, ids, "", ActionResyncRequest, map[string]any{"actor": actor}); err != nil {
		return 0, err
	}
	n, err := Requeue(ctx, tx, ids, false)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return n, nil
}

// lockExisting locks the rows of ids (keys as a person typed them) and
// returns their keys in the table's own text form, sorted and without
// duplicates; it fails with *NotAKeyError if some are no key of the table's
// type, and with *UnknownEmployeesError if some have no row.
func lockExisting(ctx context.Context, tx pgx.Tx, ids []string) ([]string, error) {
	keys, missing, err := resolveKeys(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, &UnknownEmployeesError{IDs: missing}
	}
	slices.SortFunc(keys, CompareKeys)
	keys = slices.Compact(keys)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM employees WHERE id = ANY(syncd_keys($1)) ORDER BY id FOR UPDATE`, keys); err != nil {
		return nil, fmt.Errorf("lock employees: %w", err)
	}
	return keys, nil
}

func auditRequest(ctx context.Context, tx pgx.Tx, ids []string, userID, action string, response map[string]any) error {
	raw, err := json.Marshal(response)
	if err != nil {
		return fmt.Errorf("encode audit response: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO auth0_sync_logs (employee_id, auth0_user_id, action, status, response_data)
		SELECT id, nullif($2, ''), $3, 'requested', $4::jsonb FROM unnest(syncd_keys($1)) AS id`, ids, userID, action, string(raw)); err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

// Link makes userID employee id's Auth0 account on behalf of actor, then
// requeues the employee (the reconcile reads the account and converges it).
// It is how a conflict is resolved by a person who knows that the account
// the email belongs to is this employee's. It refuses, changing nothing, an
// account that does not exist, is outside the connection, carries another
// employee's app_metadata.employee_id, or is linked to another row.
func (r *Reconciler) Link(ctx context.Context, id string, userID, actor string) error {
	userID = strings.TrimSpace(userID)
	if userID == "" {
		return &LinkRefusedError{Reason: "no Auth0 user id given"}
	}
	u, err := r.api.GetUser(ctx, userID)
	if errors.Is(err, auth0.ErrNotFound) {
		return &LinkRefusedError{Reason: fmt.Sprintf("Auth0 has no account %s", userID)}
	}
	if err != nil {
		return fmt.Errorf("read auth0 account: %w", err)
	}
	if !u.InConnection(r.cfg.Connection) {
		return &LinkRefusedError{Reason: fmt.Sprintf("account %s is not in the connection %s", userID, r.cfg.Connection)}
	}
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	keys, err := lockExisting(ctx, tx, []string{id})
	if err != nil {
		return err
	}
	id = keys[0]
	if eid, ok := employeeIDOf(u); ok && eid != id {
		return &LinkRefusedError{Reason: fmt.Sprintf("account %s belongs to employee %s (its app_metadata.employee_id)", userID, eid)}
	}
	var other string
	err = tx.QueryRow(ctx, `SELECT id::text FROM employees WHERE auth0_user_id = $1 AND id <> $2 LIMIT 1`, userID, id).Scan(&other)
	switch {
	case err == nil:
		return &LinkRefusedError{Reason: fmt.Sprintf("account %s is linked to employee %s", userID, other)}
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("read employees: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE employees SET auth0_user_id = $2, auth0_synced_state = NULL WHERE id = $1`, id, userID); err != nil {
		return fmt.Errorf("link account: %w", err)
	}
	if err := auditRequest(ctx, tx, []string{id}, userID, ActionLinkRequest, map[string]any{"actor": actor, "auth0_user_id": userID}); err != nil {
		return err
	}
	if _, err := Requeue(ctx, tx, []string{id}, false); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// DesiredOf reads employee id's row and computes its desired Auth0 state
// (no Auth0 call). A row that cannot become an account returns its
// *InvalidRowError with a zero Desired.
func (r *Reconciler) DesiredOf(ctx context.Context, id string) (Desired, error) {
	e, err := scanEmployee(r.pool.QueryRow(ctx, `SELECT `+employeeColumns+` FROM employees
		WHERE id = (SELECT key FROM syncd_parse_keys(ARRAY[$1::text]))`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Desired{}, fmt.Errorf("employee %s: %w", id, ErrNoEmployee)
	}
	if err != nil {
		return Desired{}, fmt.Errorf("read employee: %w", err)
	}
	return r.desiredFor(e)
}

// ConflictAccount returns the Auth0 account a conflict names, from the
// message a *ConflictError wrote to auth0_sync_error; "" if msg is not one.
func ConflictAccount(msg string) string {
	const mid = " belongs to Auth0 account "
	if !strings.HasPrefix(msg, "email ") {
		return ""
	}
	_, rest, ok := strings.Cut(msg, mid)
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, ", ")
	if strings.ContainsAny(id, " \t\n") {
		return ""
	}
	return id
}
