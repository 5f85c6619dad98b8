package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/internal/groupcommit"
)

// claimLockKey is the transaction-scoped advisory lock that serialises claims
// across processes ("syncdclm"). Claims are one short statement, so the
// serialisation costs nothing; without it two processes could each lease a
// different row of one employee at the same instant and handle the key
// together.
const claimLockKey int64 = 0x73796e6364636c6d

// claimSQL leases up to $2 rows for worker $1 for $3 seconds. A row is free
// when it has no live lease (never claimed, released, or its owner died and
// the lease expired, as River's rescuer finds stuck jobs). A row is claimed
// only if no other worker holds a live lease on any row of the same employee:
// a key belongs to one worker at a time, and rows added while it handles the
// key go to it as well.
const claimSQL = `
WITH candidates AS (
    SELECT o.id
      FROM auth0_outbox o
     WHERE (o.locked_until IS NULL OR o.locked_until <= now())
       AND NOT EXISTS (
           SELECT 1 FROM auth0_outbox x
            WHERE x.employee_id = o.employee_id
              AND x.locked_by <> $1
              AND x.locked_until > now())
     ORDER BY o.id
     LIMIT $2
     FOR UPDATE SKIP LOCKED
)
UPDATE auth0_outbox o
   SET locked_by = $1, locked_until = now() + make_interval(secs => $3)
  FROM candidates c
 WHERE o.id = c.id
RETURNING o.id, o.employee_id::text`

// claimedRow is one leased outbox row.
type claimedRow struct {
	ID         int64
	EmployeeID string // the employees key, in its text form
}

// claim leases up to limit free rows for worker in one round trip: the lock
// and the claim go in one pipeline, which pgx runs as one implicit
// transaction, and the claim statement's snapshot is taken after the lock.
func claim(ctx context.Context, pool *pgxpool.Pool, worker string, limit int, lease time.Duration) ([]claimedRow, error) {
	b := &pgx.Batch{}
	b.Queue("SELECT pg_advisory_xact_lock($1)", claimLockKey)
	b.Queue(claimSQL, worker, limit, lease.Seconds())
	br := pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("lock outbox claim: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	claimed, err := pgx.CollectRows(rows, pgx.RowToStructByPos[claimedRow])
	if err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	return claimed, nil
}

// byEmployee groups rows by key, keys in the order of their first row.
func byEmployee(rows []claimedRow) (keys []string, ids map[string][]int64) {
	ids = make(map[string][]int64)
	for _, r := range rows {
		if _, ok := ids[r.EmployeeID]; !ok {
			keys = append(keys, r.EmployeeID)
		}
		ids[r.EmployeeID] = append(ids[r.EmployeeID], r.ID)
	}
	return keys, ids
}

// deleteRows deletes handled outbox rows by id, whoever leases them now: the
// key was handled after they were written, so their work is done.
func deleteRows(ctx context.Context, pool *pgxpool.Pool, ids []int64) error {
	if _, err := pool.Exec(ctx, "DELETE FROM auth0_outbox WHERE id = ANY($1)", ids); err != nil {
		return fmt.Errorf("delete handled outbox rows: %w", err)
	}
	return nil
}

// rowDeleter deletes the handled rows of keys acknowledged at about the same
// time in one statement (a group commit, internal/groupcommit): one
// transaction for the group instead of one per key. Each ack waits for the
// delete that carried its rows, so a source's bookkeeping (a failed delete is
// retried; replication's confirmed position moves on) is what it was with a
// delete of its own.
type rowDeleter = groupcommit.Group[[]int64, struct{}]

// deleteGroupMax bounds the keys of one grouped delete.
const deleteGroupMax = 256

func newRowDeleter(pool *pgxpool.Pool) *rowDeleter {
	return groupcommit.New(deleteGroupMax, func(keys [][]int64) ([]struct{}, error) {
		var ids []int64
		for _, k := range keys {
			ids = append(ids, k...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
		defer cancel()
		if err := deleteRows(ctx, pool, ids); err != nil {
			return nil, err
		}
		return make([]struct{}, len(keys)), nil
	})
}

// renewLeases extends every lease worker holds.
func renewLeases(ctx context.Context, pool *pgxpool.Pool, worker string, lease time.Duration) (int64, error) {
	tag, err := pool.Exec(ctx, "UPDATE auth0_outbox SET locked_until = now() + make_interval(secs => $2) WHERE locked_by = $1",
		worker, lease.Seconds())
	if err != nil {
		return 0, fmt.Errorf("renew outbox leases: %w", err)
	}
	return tag.RowsAffected(), nil
}

// releaseLeases gives rows back: the given ones, or every row of worker if ids
// is nil.
func releaseLeases(ctx context.Context, pool *pgxpool.Pool, worker string, ids []int64) (int64, error) {
	var (
		tag pgconn.CommandTag
		err error
	)
	if ids == nil {
		tag, err = pool.Exec(ctx, "UPDATE auth0_outbox SET locked_by = NULL, locked_until = NULL WHERE locked_by = $1", worker)
	} else {
		tag, err = pool.Exec(ctx, "UPDATE auth0_outbox SET locked_by = NULL, locked_until = NULL WHERE locked_by = $1 AND id = ANY($2)", worker, ids)
	}
	if err != nil {
		return 0, fmt.Errorf("release outbox leases: %w", err)
	}
	return tag.RowsAffected(), nil
}

// scanRows reads up to limit outbox rows with id above after, in id order
// (replication mode's catch-up scan: it takes no lease).
func scanRows(ctx context.Context, pool *pgxpool.Pool, after int64, limit int) ([]claimedRow, error) {
	rows, err := pool.Query(ctx, "SELECT id, employee_id::text FROM auth0_outbox WHERE id > $1 ORDER BY id LIMIT $2", after, limit)
	if err != nil {
		return nil, fmt.Errorf("scan outbox: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[claimedRow])
	if err != nil {
		return nil, fmt.Errorf("scan outbox: %w", err)
	}
	return out, nil
}
