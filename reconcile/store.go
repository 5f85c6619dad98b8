package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/auth0"
)

// auditEntry is one row of auth0_sync_logs.
type auditEntry struct {
	userID   string
	action   string
	status   string
	response map[string]any
	err      string
}

// done records that act took effect.
func (a *attempt) done(act Action, response map[string]any) {
	a.applied = append(a.applied, act)
	r := response
	if act.Field != "" {
		r = maps.Clone(response)
		if r == nil {
			r = map[string]any{}
		}
		r["field"] = act.Field
	}
	a.logs = append(a.logs, auditEntry{userID: a.userID, action: string(act.Kind), status: "success", response: r})
}

// audit records an action that failed, was refused, or found something.
func (a *attempt) audit(action, status string, response map[string]any, err error) {
	e := auditEntry{userID: a.userID, action: action, status: status, response: response}
	if err != nil {
		e.err = err.Error()
	}
	a.logs = append(a.logs, e)
}

// outcomeRow is what recording an outcome writes to the employee's row.
type outcomeRow struct {
	syncErr      *string
	next         *time.Time
	syncedAt     *time.Time
	state        []byte // auth0_synced_state
	attempts     int
	failedConfig *string // the configuration a failure was decided under
	userID       *string
	known        bool  // the account link is known (userID, or none after a delete)
	version      int64 // the row's xmin when claimed
	// hash is the row's viewHash: what the outcome was decided from
	// (auth0_desired_hash, which the mapping sweep compares).
	hash *string
}

// outcomeRow computes what out writes to the row (record, recordGroup).
func (a *attempt) outcomeRow(out *Outcome) (outcomeRow, error) {
	now := a.r.cfg.Now()
	row := outcomeRow{attempts: a.emp.Attempts, version: int64(a.emp.version), hash: a.emp.viewHash()}
	if out.Err != nil {
		s := out.Err.Error()
		row.syncErr = &s
	}
	switch out.Result {
	case ResultDone:
		row.attempts, row.syncedAt = 0, &now
		if a.desired != nil && !a.deleted {
			var err error
			if row.state, err = json.Marshal(a.desired.State); err != nil {
				return row, fmt.Errorf("encode synced state: %w", err)
			}
		}
	case ResultRetry:
		next := out.NextAttempt
		row.next = &next
	case ResultHeld, ResultConfig:
		// Waiting for the guard (or a fixed configuration) is no attempt;
		// what was applied last stays known, so the work, once it resumes,
		// needs no read.
		row.state = a.emp.SyncedState
	}
	if out.Status == StatusFailed {
		fp := a.r.cfg.Fingerprint()
		row.failedConfig = &fp
	}
	if a.userID != "" && !a.deleted {
		id := a.userID
		row.userID = &id
	}
	row.known = a.userID != "" || a.deleted
	return row, nil
}

// record writes the outcome to the employee's row, releases its lease, and
// writes the audit log: one batch, one round trip, one implicit transaction.
// A row that changed since it was read is not marked: the change made it
// pending and queued it again; only the account link is kept, so that the
// next pass finds the account, and the last-applied record is cleared.
func (a *attempt) record(ctx context.Context, out *Outcome) error {
	row, err := a.outcomeRow(out)
	if err != nil {
		return err
	}
	userID, known, version := row.userID, row.known, row.version
	b := &pgx.Batch{}
	if out.Result == ResultDone && a.r.cfg.Guard != nil {
		// Done (blocked, or the row no longer asks): the guard forgets the
		// employee's deprovision, unless the row changed meanwhile.
		b.Queue(`DELETE FROM syncd_deprovisions WHERE key = $1
			AND EXISTS (SELECT 1 FROM employees WHERE id = $2 AND xmin::text::bigint = $3)`,
			Deprovision{Kind: KindInactive, EmployeeID: a.id}.key(), a.id, version)
	}
	// Exactly one of the two updates matches: the first if someone changed
	// the row meanwhile (its version moved on), else the second.
	b.Queue(`UPDATE employees SET auth0_user_id = CASE WHEN $3::bool THEN $2 ELSE auth0_user_id END,
			auth0_account_created_at = COALESCE(auth0_account_created_at, $4), auth0_synced_state = NULL, auth0_locked_until = NULL, auth0_locked_by = NULL
		WHERE id = $1 AND xmin::text::bigint <> $5`, a.id, userID, known, a.createdAt, version)
	b.Queue(`UPDATE employees SET
			auth0_sync_status = $2, auth0_sync_error = $3, auth0_sync_attempts = $4, auth0_next_attempt_at = $5,
			auth0_synced_at = COALESCE($6, auth0_synced_at), auth0_user_id = $7,
			auth0_account_created_at = COALESCE(auth0_account_created_at, $8), auth0_synced_state = $9, auth0_locked_until = NULL, auth0_locked_by = NULL,
			auth0_failed_config = $11, auth0_desired_hash = $12
		WHERE id = $1 AND xmin::text::bigint = $10`,
		a.id, out.Status, row.syncErr, row.attempts, row.next, row.syncedAt, userID, a.createdAt, row.state, version, row.failedConfig, row.hash)
	if err := a.queueLogs(b); err != nil {
		return err
	}
	a.queueRevocations(b) // after the statements whose results are read below
	res := a.r.pool.SendBatch(ctx, b)
	if out.Result == ResultDone && a.r.cfg.Guard != nil {
		if _, err := res.Exec(); err != nil {
			res.Close()
			return fmt.Errorf("record outcome: %w", err)
		}
	}
	staleTag, err := res.Exec()
	if err != nil {
		res.Close()
		return fmt.Errorf("record outcome: %w", err)
	}
	tag, err := res.Exec()
	if err != nil {
		res.Close()
		return fmt.Errorf("record outcome: %w", err)
	}
	if err := res.Close(); err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	if staleTag.RowsAffected() > 0 || tag.RowsAffected() == 0 {
		out.Result, out.Status = ResultStale, ""
	}
	return nil
}

// queueLogs adds the audit rows to b.
func (a *attempt) queueLogs(b *pgx.Batch) error {
	var c logColumns
	if err := c.add(a); err != nil {
		return err
	}
	c.queue(b)
	return nil
}

// logColumns are audit rows of one or more attempts, column by column.
type logColumns struct {
	employees                                 []*string // NULL: no employee (an orphan account)
	rids                                      []string
	users, actions, statuses, responses, errs []*string
}

// add appends a's audit rows.
func (c *logColumns) add(a *attempt) error {
	for _, l := range a.logs {
		c.employees = append(c.employees, nullable(a.id))
		c.rids = append(c.rids, a.rid)
		c.users = append(c.users, nullable(l.userID))
		c.actions = append(c.actions, &l.action)
		c.statuses = append(c.statuses, &l.status)
		c.errs = append(c.errs, nullable(l.err))
		if l.response == nil {
			c.responses = append(c.responses, nil)
			continue
		}
		raw, err := json.Marshal(l.response)
		if err != nil {
			return fmt.Errorf("encode audit response: %w", err)
		}
		s := string(raw)
		c.responses = append(c.responses, &s)
	}
	return nil
}

// queue adds one INSERT of every row to b (none if there are none).
func (c *logColumns) queue(b *pgx.Batch) {
	if len(c.employees) == 0 {
		return
	}
	b.Queue(`INSERT INTO auth0_sync_logs (employee_id, auth0_user_id, action, status, response_data, error, reconcile_id)
		SELECT eid, u, act, st, r::jsonb, e, rid
		  FROM unnest(syncd_keys($1::text[]), $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS t(eid, rid, u, act, st, r, e)`,
		c.employees, c.rids, c.users, c.actions, c.statuses, c.responses, c.errs)
}

// writeLogs writes the audit rows on their own.
func (a *attempt) writeLogs(ctx context.Context) error {
	b := &pgx.Batch{}
	if err := a.queueLogs(b); err != nil {
		return err
	}
	a.queueRevocations(b)
	if b.Len() == 0 {
		return nil
	}
	if err := a.r.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// rowDeleted handles an employee whose row is gone: the outbox row of the
// delete carries the account id and email. The account is deprovisioned like
// a leaver's. There is no row to mark, so a transient failure is returned as
// an error: the caller keeps the outbox row and tries again. A deprovision
// the guard does not allow yet is not an error: the guard keeps what it
// needs (syncd_deprovisions) and hands it back as a new outbox row.
func (a *attempt) rowDeleted(ctx context.Context) (Outcome, error) {
	var userID, email *string
	err := a.r.pool.QueryRow(ctx, `SELECT auth0_user_id, email FROM auth0_outbox
		WHERE employee_id = $1 AND op = 'delete' ORDER BY id DESC LIMIT 1`, a.id).Scan(&userID, &email)
	if errors.Is(err, pgx.ErrNoRows) {
		return Outcome{Result: ResultDone}, nil // never existed, or already handled
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("read deleted employee: %w", err)
	}
	workCtx, cancel := context.WithTimeout(ctx, a.r.cfg.Timeout)
	out := a.deprovision(workCtx, Deprovision{Kind: KindDeleted, EmployeeID: a.id, UserID: deref(userID), Email: deref(email)})
	cancel()
	if err := a.writeLogs(context.WithoutCancel(ctx)); err != nil {
		return out, err
	}
	if out.Result == ResultRetry {
		return out, fmt.Errorf("deprovision deleted employee %s: %w", a.id, out.Err)
	}
	a.report(ctx, out, 0)
	return out, nil
}

// deprovision blocks (or deletes) the account of an employee who has no row,
// found by id, else by email among the accounts carrying this employee's id.
// Once done, the guard forgets it.
func (a *attempt) deprovision(ctx context.Context, req Deprovision) Outcome {
	out := a.deprovisionAccount(ctx, req)
	if out.Result == ResultDone && a.r.cfg.Guard != nil {
		if err := a.r.cfg.Guard.forget(context.WithoutCancel(ctx), req); err != nil {
			return a.retry(err)
		}
	}
	return out
}

func (a *attempt) deprovisionAccount(ctx context.Context, req Deprovision) Outcome {
	userID, email := req.UserID, req.Email
	api := a.r.api
	keys, err := LoadManagedKeys(ctx, a.r.pool)
	if err != nil {
		return a.retry(err)
	}
	a.keys = &keys
	var o *Observed
	if userID != "" {
		u, err := api.GetUser(ctx, userID)
		switch {
		case err == nil:
			if eid, ok := employeeIDOf(u); !ok || eid == a.id || a.noEmployeeCheck {
				o = &Observed{UserID: u.UserID, State: observedState(u, keys), Linked: true}
			}
		case !errors.Is(err, auth0.ErrNotFound):
			return a.retry(err)
		}
	}
	if o == nil && email != "" {
		users, err := api.UsersByEmail(ctx, normalizeEmail(email))
		if err != nil {
			return a.retry(err)
		}
		for i := range users {
			if eid, ok := employeeIDOf(&users[i]); ok && eid == a.id {
				o = &Observed{UserID: users[i].UserID, State: observedState(&users[i], keys), Linked: true}
				break
			}
		}
	}
	if o == nil {
		return Outcome{Result: ResultDone, Status: StatusDeprovisioned}
	}
	a.userID = o.UserID
	d := Desired{State: o.State, Delete: a.r.cfg.Deprovision == DeprovisionDelete, Keys: keys}
	d.Blocked = true
	d.App = maps.Clone(o.State.App)
	d.App["sync_status"] = syncStatusTerminated
	rev, err := a.r.readRevoked(ctx, o.UserID)
	if err != nil {
		return a.retry(err)
	}
	plan, err := a.planRevocations(ctx, Diff(d, o), d, o.UserID, rev)
	if err != nil {
		return a.retry(err)
	}
	if plan.Deprovisions() || plan.Revokes() {
		if out := a.askGuard(ctx, plan, req); out != nil {
			return *out
		}
	}
	if err := a.apply(ctx, d, o, plan); err != nil {
		if errors.Is(err, errReobserve) {
			return Outcome{Result: ResultDone, Status: StatusDeprovisioned, Applied: a.applied} // gone meanwhile
		}
		return a.failure(err)
	}
	return Outcome{Result: ResultDone, Status: StatusDeprovisioned, Applied: a.applied, UserID: o.UserID}
}
