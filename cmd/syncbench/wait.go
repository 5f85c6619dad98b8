package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// querier is a pool or a connection.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// waitSynced polls every interval until want rows are synced and no row is
// pending, syncing or retrying; it returns how many polls it made (each one
// transaction) and when the condition was first seen. A poll asks whether
// any row is still busy (an index probe that stops at the first one) and
// counts the synced rows only once none is: counting every row every
// interval cost the database more than a tenth of its CPU in the backfill,
// which is the harness's, not syncd's.
func waitSynced(ctx context.Context, q querier, want int64, interval, timeout time.Duration) (polls int, at time.Time, err error) {
	deadline := time.Now().Add(timeout)
	for {
		var busy bool
		polls++
		err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM employees WHERE auth0_sync_status IN ('pending', 'syncing', 'retrying'))`).Scan(&busy)
		if err != nil {
			return polls, time.Time{}, fmt.Errorf("count synced: %w", err)
		}
		seen := time.Now()
		var synced int64
		if !busy {
			polls++
			if err := q.QueryRow(ctx, `SELECT count(*) FROM employees WHERE auth0_sync_status = 'synced'`).Scan(&synced); err != nil {
				return polls, time.Time{}, fmt.Errorf("count synced: %w", err)
			}
			if synced >= want {
				return polls, seen, nil
			}
		}
		if time.Now().After(deadline) {
			return polls, time.Time{}, fmt.Errorf("not converged after %s: %d of %d synced; statuses: %s", timeout, synced, want, statusSummary(ctx, q))
		}
		select {
		case <-ctx.Done():
			return polls, time.Time{}, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// waitOutboxEmpty polls until the outbox is empty and no row is in flight.
func waitOutboxEmpty(ctx context.Context, q querier, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var outbox, busy int64
		err := q.QueryRow(ctx, `SELECT (SELECT count(*) FROM auth0_outbox),
				(SELECT count(*) FROM employees WHERE auth0_sync_status IN ('pending', 'syncing', 'retrying'))`).Scan(&outbox, &busy)
		if err != nil {
			return fmt.Errorf("count outbox: %w", err)
		}
		if outbox == 0 && busy == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("outbox not drained after %s: %d rows left; statuses: %s", timeout, outbox, statusSummary(ctx, q))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// statusSummary is "synced=10 failed=1 (first error: …)" for error messages.
func statusSummary(ctx context.Context, q querier) string {
	rows, err := q.Query(ctx, `SELECT auth0_sync_status, count(*), min(auth0_sync_error) FROM employees GROUP BY 1 ORDER BY 1`)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var status string
		var n int64
		var syncErr *string
		if rows.Scan(&status, &n, &syncErr) != nil {
			continue
		}
		p := fmt.Sprintf("%s=%d", status, n)
		if syncErr != nil {
			p += fmt.Sprintf(" (e.g. %q)", *syncErr)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

// percentile returns the p-quantile (0..1) of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(len(sorted))*p)) - 1 // nearest rank
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func sortedCopy(v []float64) []float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}
