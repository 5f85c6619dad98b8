package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/internal/groupcommit"
)

// Group commit of claims and outcomes.
//
// Workers that take a lease, or record an outcome, at about the same time do
// it in one statement (claims) or one batch of set-based statements
// (outcomes): one round trip and one transaction for the group instead of
// one each. A worker waits for the flush that carried its item, so a lease is
// committed before its reconcile calls Auth0 (the attempt count is durable
// before any POST /users) and an outcome is committed before Reconcile
// returns (before the key is acknowledged and its outbox rows go). A flush
// that fails sends each of its workers down the single-row path, which
// retries, so a failed flush loses nothing; a process that dies mid-flush
// leaves the rows leased and syncing, as a death mid-reconcile does, and they
// converge once the lease expires (the attempt count makes the next attempt
// look before it creates).
//
// A group never holds two items of one employee: an employee is worked on
// by one attempt of a Reconciler at a time (inFlight).

// groupMax bounds the items of one flush.
const groupMax = 128

func (r *Reconciler) initGroups() {
	r.claims = groupcommit.New(groupMax, r.flushClaims)
	r.records = groupcommit.New(groupMax, r.flushRecords)
}

// GroupStats are the group commits' counters: how many flushes carried how
// many claims and outcomes.
type GroupStats struct {
	Claims, Records groupcommit.Stats
}

// GroupStats returns the group commits' counters since New.
func (r *Reconciler) GroupStats() GroupStats {
	return GroupStats{Claims: r.claims.Stats(), Records: r.records.Stats()}
}

// claimGroupSQL leases the free rows of $1 as claim does, in one statement.
// A row another transaction has locked (an operator's open UPDATE, another
// process's claim) is skipped rather than waited for: it does not hold up
// the group, and its worker claims it alone.
const claimGroupSQL = `WITH c AS (
		SELECT id AS claim_id FROM employees
		 WHERE id = ANY(syncd_keys($1)) AND auth0_import_job IS NULL
		   AND (auth0_locked_until IS NULL OR auth0_locked_until < now() OR auth0_locked_by = $3)
		 ORDER BY id
		 FOR UPDATE SKIP LOCKED)
	UPDATE employees SET auth0_sync_status = 'syncing',
		auth0_sync_attempts = auth0_sync_attempts + 1, auth0_locked_until = now() + make_interval(secs => $2),
		auth0_locked_by = $3
	  FROM c WHERE employees.id = c.claim_id
	RETURNING ` + employeeColumns + `, ` + revokedColumns

// genericPlans makes the statements after it in its transaction use their
// generic plans. The set-based statements take arrays, whose custom plans
// Postgres prefers for ever (it knows their length) and makes anew at every
// execution, which costs more than running them; their generic plans are the
// same index scans.
const genericPlans = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true)`

// claimGrouped takes id's lease in a group with other workers' claims. nil
// (with or without an error) means it did not: the caller claims alone.
func (r *Reconciler) claimGrouped(id string) (*Employee, error) {
	return r.claims.Do(id)
}

func (r *Reconciler) flushClaims(ids []string) ([]*Employee, error) {
	if len(ids) == 1 {
		// Alone: one plain UPDATE is quicker than the set-based statement (a
		// new hire's latency is mostly such round trips). It waits for a
		// row lock, as the caller's own claim would.
		ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
		defer cancel()
		e, err := r.claimOne(ctx, ids[0], (r.cfg.Timeout + recordTimeout).Seconds())
		if errors.Is(err, pgx.ErrNoRows) {
			return []*Employee{nil}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("claim employee: %w", err)
		}
		return []*Employee{e}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	lease := (r.cfg.Timeout + recordTimeout).Seconds()
	b := &pgx.Batch{}
	b.Queue(genericPlans)
	b.Queue(claimGroupSQL, ids, lease, r.owner)
	res := r.pool.SendBatch(ctx, b)
	defer res.Close()
	if _, err := res.Exec(); err != nil {
		return nil, fmt.Errorf("claim employees: %w", err)
	}
	rows, err := res.Query()
	if err != nil {
		return nil, fmt.Errorf("claim employees: %w", err)
	}
	defer rows.Close()
	got := make(map[string]*Employee, len(ids))
	for rows.Next() {
		var rev revoked
		e, err := scanEmployee(withRevoked(rows, &rev))
		if err != nil {
			return nil, fmt.Errorf("claim employees: %w", err)
		}
		e.revoked = rev
		got[e.ID] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim employees: %w", err)
	}
	rows.Close()
	if err := res.Close(); err != nil {
		return nil, fmt.Errorf("claim employees: %w", err)
	}
	out := make([]*Employee, len(ids))
	for i, id := range ids {
		out[i] = got[id]
	}
	return out, nil
}

// recordItem is one outcome to record.
type recordItem struct {
	a   *attempt
	out *Outcome
	row outcomeRow
}

// recordGrouped is record in a group with other workers' outcomes. If the
// group's flush fails, it records alone.
func (a *attempt) recordGrouped(ctx context.Context, out *Outcome) error {
	row, err := a.outcomeRow(out)
	if err != nil {
		return err
	}
	stale, err := a.r.records.Do(recordItem{a: a, out: out, row: row})
	if err != nil {
		a.log.DebugContext(ctx, "group record failed; recording alone", keyError, err)
		return a.record(ctx, out)
	}
	if stale {
		out.Result, out.Status = ResultStale, ""
	}
	return nil
}

// flushRecords writes the outcomes of items with the statements of record,
// each over every item at once, in one batch (one implicit transaction). The
// result says, per item, whether its row changed since it was claimed.
func (r *Reconciler) flushRecords(items []recordItem) ([]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	n := len(items)
	if n == 1 {
		// Alone: record's statements, without the arrays and the generic
		// plans a group needs.
		out := *items[0].out
		if err := items[0].a.record(ctx, &out); err != nil {
			return nil, err
		}
		return []bool{out.Result == ResultStale}, nil
	}
	var (
		guardKeys          []string
		guardIDs           []string
		guardVer           []int64
		ids                = make([]string, n)
		versions           = make([]int64, n)
		userIDs            = make([]*string, n)
		known              = make([]bool, n)
		createdAt          = make([]*time.Time, n)
		statuses           = make([]string, n)
		errs, states, cfgs = make([]*string, n), make([]*string, n), make([]*string, n)
		hashes             = make([]*string, n)
		attempts           = make([]int, n)
		next, syncedAt     = make([]*time.Time, n), make([]*time.Time, n)
		unlinked           []string
		logs               logColumns
	)
	for i, it := range items {
		a, row := it.a, it.row
		if it.out.Result == ResultDone && r.cfg.Guard != nil {
			guardKeys = append(guardKeys, Deprovision{Kind: KindInactive, EmployeeID: a.id}.key())
			guardIDs = append(guardIDs, a.id)
			guardVer = append(guardVer, row.version)
		}
		ids[i], versions[i], userIDs[i], known[i] = a.id, row.version, row.userID, row.known
		createdAt[i] = a.createdAt
		statuses[i], errs[i], attempts[i], cfgs[i] = it.out.Status, row.syncErr, row.attempts, row.failedConfig
		next[i], syncedAt[i], hashes[i] = row.next, row.syncedAt, row.hash
		if row.state != nil {
			s := string(row.state)
			states[i] = &s
		}
		if err := logs.add(a); err != nil {
			return nil, err
		}
	}
	b := &pgx.Batch{}
	b.Queue(genericPlans)
	if len(guardKeys) > 0 {
		b.Queue(`DELETE FROM syncd_deprovisions d
			USING unnest($1::text[], syncd_keys($2), $3::bigint[]) AS t(key, id, version)
			WHERE d.key = t.key AND EXISTS (SELECT 1 FROM employees e WHERE e.id = t.id AND e.xmin::text::bigint = t.version)`,
			guardKeys, guardIDs, guardVer)
	}
	b.Queue(`UPDATE employees e SET auth0_user_id = CASE WHEN t.known THEN t.user_id ELSE e.auth0_user_id END,
			auth0_account_created_at = COALESCE(e.auth0_account_created_at, t.created_at), auth0_synced_state = NULL,
			auth0_locked_until = NULL, auth0_locked_by = NULL
		  FROM unnest(syncd_keys($1), $2::text[], $3::bool[], $4::timestamptz[], $5::bigint[]) AS t(id, user_id, known, created_at, version)
		 WHERE e.id = t.id AND e.xmin::text::bigint <> t.version
		RETURNING e.id::text`, ids, userIDs, known, createdAt, versions)
	b.Queue(`UPDATE employees e SET
			auth0_sync_status = t.status, auth0_sync_error = t.error, auth0_sync_attempts = t.attempts, auth0_next_attempt_at = t.next,
			auth0_synced_at = COALESCE(t.synced_at, e.auth0_synced_at), auth0_user_id = t.user_id,
			auth0_account_created_at = COALESCE(e.auth0_account_created_at, t.created_at), auth0_synced_state = t.state::jsonb,
			auth0_locked_until = NULL, auth0_locked_by = NULL, auth0_failed_config = t.failed_config, auth0_desired_hash = t.hash
		  FROM unnest(syncd_keys($1), $2::text[], $3::text[], $4::int[], $5::timestamptz[], $6::timestamptz[], $7::text[],
				$8::timestamptz[], $9::text[], $10::bigint[], $11::text[], $12::text[])
			AS t(id, status, error, attempts, next, synced_at, user_id, created_at, state, version, failed_config, hash)
		 WHERE e.id = t.id AND e.xmin::text::bigint = t.version
		RETURNING e.id::text`, ids, statuses, errs, attempts, next, syncedAt, userIDs, createdAt, states, versions, cfgs, hashes)
	logs.queue(b)
	for _, it := range items {
		// The revocation records of accounts syncd (re)created, unblocked or
		// deleted go in one statement; the rare others as record queues them.
		a := it.a
		if a.userID != "" && (a.deleted || a.applied.Has(ActionUnblock) || a.applied.Has(ActionCreate)) {
			unlinked = append(unlinked, a.userID)
			continue
		}
		a.queueRevocations(b)
	}
	if len(unlinked) > 0 {
		b.Queue(`DELETE FROM syncd_access_revocations WHERE auth0_user_id = ANY($1)`, unlinked)
	}

	res := r.pool.SendBatch(ctx, b)
	defer res.Close()
	if _, err := res.Exec(); err != nil {
		return nil, fmt.Errorf("record outcomes: %w", err)
	}
	if len(guardKeys) > 0 {
		if _, err := res.Exec(); err != nil {
			return nil, fmt.Errorf("record outcomes: %w", err)
		}
	}
	staleIDs, err := collectIDs(res)
	if err != nil {
		return nil, fmt.Errorf("record outcomes: %w", err)
	}
	markedIDs, err := collectIDs(res)
	if err != nil {
		return nil, fmt.Errorf("record outcomes: %w", err)
	}
	if err := res.Close(); err != nil {
		return nil, fmt.Errorf("record outcomes: %w", err)
	}
	stale := make([]bool, n)
	for i, id := range ids {
		_, changed := staleIDs[id]
		_, marked := markedIDs[id]
		stale[i] = changed || !marked
	}
	return stale, nil
}

func collectIDs(res pgx.BatchResults) (map[string]struct{}, error) {
	rows, err := res.Query()
	if err != nil {
		return nil, err
	}
	got := map[string]struct{}{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		got[id] = struct{}{}
	}
	rows.Close()
	return got, rows.Err()
}
