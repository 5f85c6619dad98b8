package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// StatusReport is the read model behind `syncd status`: what the sync state
// of the employees table, the outbox, the replication slots and the
// mass-deprovision guard is now. The JSON names are `syncd status --json`'s.
type StatusReport struct {
	// Counts is the number of employees per auth0_sync_status.
	Counts map[string]int64 `json:"counts"`
	// OldestPending is the oldest outbox row; nil when the outbox is empty.
	OldestPending *PendingInfo `json:"oldest_pending,omitempty"`
	OutboxRows    int64        `json:"outbox_rows"`
	// Problems are the latest failed, conflict and retrying rows, newest
	// first, at most the limit given to ReadStatus.
	Problems []ProblemRow `json:"problems"`
	// Reasons groups every failed, conflict and retrying row by status and
	// identical reason, latest first, at most the limit given to ReadStatus.
	Reasons []ReasonGroup `json:"reasons"`
	// Slots are this database's pgoutput replication slots.
	Slots []SlotInfo `json:"replication_slots"`
	// Deprovisions waits for the mass-deprovision guard (held or settling).
	Deprovisions []HeldDeprovision `json:"deprovisions_waiting"`
	// Holds are what running syncd processes hold all work for (the
	// configuration, the credentials, Auth0 down), with the fix in words.
	Holds []Hold `json:"holds"`
	// ImportJobs are syncd's users-import jobs (bulk creation) and their rows.
	ImportJobs []ImportJobStatus `json:"import_jobs"`
}

// PendingInfo is the oldest piece of pending work.
type PendingInfo struct {
	EmployeeID string  `json:"employee_id"`
	AgeSeconds float64 `json:"age_seconds"`
}

// ProblemRow is an employee row that failed, conflicts or waits to retry.
type ProblemRow struct {
	EmployeeID string `json:"employee_id"`
	Status     string `json:"status"`
	Error      string `json:"error"`
	Attempts   int    `json:"attempts"`
	// Since is its latest audit row (now if it has none).
	Since   time.Time  `json:"since"`
	NextTry *time.Time `json:"next_attempt_at,omitempty"`
}

// ReasonGroup is the rows of one status that share one reason.
type ReasonGroup struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Count  int64  `json:"count"`
	// EmployeeIDs are the first (lowest) ten ids.
	EmployeeIDs []string `json:"employee_ids"`
	// Latest is the newest audit row among them (now if none has one).
	Latest time.Time `json:"latest"`
}

// Statuses lists every auth0_sync_status, in the order of a row's life.
var Statuses = []string{StatusSynced, StatusPending, StatusSyncing, StatusRetrying, StatusFailed, StatusConflict, StatusDeprovisioned}

// SlotInfo is a replication slot and how far it lags behind the WAL.
type SlotInfo struct {
	Name     string `json:"name"`
	Active   bool   `json:"active"`
	LagBytes int64  `json:"lag_bytes"`
	WALState string `json:"wal_status"`
}

// StatusQuerier is what ReadStatus needs of a connection or pool.
type StatusQuerier interface {
	Querier
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrNegativeLimit is returned by ReadStatus for a limit below zero.
var ErrNegativeLimit = errors.New("limit must not be negative")

// ReadStatus reads the status report, listing at most limit problem rows.
// It only reads.
func ReadStatus(ctx context.Context, db StatusQuerier, limit int) (*StatusReport, error) {
	if limit < 0 {
		return nil, fmt.Errorf("read status: %w, got %d", ErrNegativeLimit, limit)
	}
	rep := &StatusReport{Counts: map[string]int64{}}
	for _, st := range Statuses {
		rep.Counts[st] = 0 // a zero is an answer too: JSON shows what the text shows
	}
	rows, err := db.Query(ctx, `SELECT auth0_sync_status, count(*) FROM employees GROUP BY 1`)
	if err != nil {
		return nil, fmt.Errorf("count statuses: %w", err)
	}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("count statuses: %w", err)
		}
		rep.Counts[s] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count statuses: %w", err)
	}
	var p PendingInfo
	err = db.QueryRow(ctx, `SELECT employee_id::text, extract(epoch FROM now() - created_at)::float8 FROM auth0_outbox ORDER BY id LIMIT 1`).Scan(&p.EmployeeID, &p.AgeSeconds)
	switch {
	case err == nil:
		rep.OldestPending = &p
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("oldest pending: %w", err)
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM auth0_outbox`).Scan(&rep.OutboxRows); err != nil {
		return nil, fmt.Errorf("count outbox: %w", err)
	}
	rows, err = db.Query(ctx, `SELECT e.id::text, e.auth0_sync_status, coalesce(e.auth0_sync_error, ''), e.auth0_sync_attempts,
			coalesce((SELECT max(l.created_at) FROM auth0_sync_logs l WHERE l.employee_id = e.id), now()), e.auth0_next_attempt_at
		  FROM employees e WHERE e.auth0_sync_status IN ('failed', 'conflict', 'retrying')
		 ORDER BY 5 DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("latest problems: %w", err)
	}
	rep.Problems, err = pgx.CollectRows(rows, pgx.RowToStructByPos[ProblemRow])
	if err != nil {
		return nil, fmt.Errorf("latest problems: %w", err)
	}
	rows, err = db.Query(ctx, `SELECT auth0_sync_status, error, count(*), (array_agg(id::text ORDER BY id))[1:10], max(since)
		  FROM (SELECT e.id, e.auth0_sync_status, coalesce(e.auth0_sync_error, '') AS error,
				coalesce((SELECT max(l.created_at) FROM auth0_sync_logs l WHERE l.employee_id = e.id), now()) AS since
			  FROM employees e WHERE e.auth0_sync_status IN ('failed', 'conflict', 'retrying')) p
		 GROUP BY 1, 2 ORDER BY 5 DESC, 1, 2 LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("group problem reasons: %w", err)
	}
	rep.Reasons, err = pgx.CollectRows(rows, pgx.RowToStructByPos[ReasonGroup])
	if err != nil {
		return nil, fmt.Errorf("group problem reasons: %w", err)
	}
	rows, err = db.Query(ctx, `SELECT slot_name, active, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::int8,
			coalesce(wal_status, '') FROM pg_replication_slots WHERE database = current_database() AND plugin = 'pgoutput' ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("replication slots: %w", err)
	}
	rep.Slots, err = pgx.CollectRows(rows, pgx.RowToStructByPos[SlotInfo])
	if err != nil {
		return nil, fmt.Errorf("replication slots: %w", err)
	}
	if rep.Deprovisions, err = Waiting(ctx, db); err != nil {
		return nil, err
	}
	if rep.Holds, err = Holds(ctx, db); err != nil {
		return nil, err
	}
	if rep.Deprovisions == nil {
		rep.Deprovisions = []HeldDeprovision{}
	}
	if rep.ImportJobs, err = readImportJobs(ctx, db); err != nil {
		return nil, err
	}
	return rep, nil
}
