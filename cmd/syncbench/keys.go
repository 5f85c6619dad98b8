package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	syncdsql "github.com/syncd/syncd/sql"
)

// benchKeys are the employees keys the keys scenario compares.
var benchKeys = []string{syncdsql.KeyBigint, syncdsql.KeyUUID, syncdsql.KeyText}

// keysResult is scenario 8 for one key type: the same backfill, and the
// same single-row INSERT → synced latency, on an employees table keyed by
// bigint, uuid or text (issue 18).
type keysResult struct {
	Key          string  `json:"key"`
	Employees    int     `json:"employees"`
	Seconds      float64 `json:"seconds"`
	PerSecond    float64 `json:"employees_per_s"`
	CallsPerEmp  float64 `json:"auth0_calls_per_employee"`
	Inserts      int     `json:"latency_inserts"`
	LatencyP50MS float64 `json:"latency_p50_ms"`
	LatencyP99MS float64 `json:"latency_p99_ms"`
	Verified     bool    `json:"verified"`
}

func (b *bench) runKeys(ctx context.Context, key string) (*keysResult, error) {
	n := b.cfg.Sizes.KeysBackfill
	res := &keysResult{Key: key, Employees: n, Inserts: b.cfg.Sizes.KeysInserts}
	db, e, p, stop, err := b.startStack(ctx, key, "keys-"+key, "notify")
	if err != nil {
		return nil, err
	}
	defer stop()
	settle(e, 20*time.Second)

	conn, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	e.ResetCalls()
	start := time.Now()
	if _, err := conn.Exec(ctx, insertEmployees, n); err != nil {
		return nil, fmt.Errorf("insert: %w", err)
	}
	_, at, err := waitSynced(ctx, conn, int64(n), 20*time.Millisecond, b.cfg.Sizes.ConvergeTimeout)
	if err != nil {
		return res, err
	}
	res.Seconds = round(at.Sub(start).Seconds(), 3)
	res.PerSecond = round(float64(n)/at.Sub(start).Seconds(), 1)
	res.CallsPerEmp = float64(e.apiCalls()) / float64(n)

	// One INSERT at a time, each waited for until its row reads synced.
	lat := make([]float64, 0, res.Inserts)
	for i := range res.Inserts {
		var id string
		start := time.Now()
		if err := conn.QueryRow(ctx, `INSERT INTO employees (name, email) VALUES ($1, $2) RETURNING id::text`,
			fmt.Sprintf("Key Latency %d", i), fmt.Sprintf("key-latency-%d@bench.example", i)).Scan(&id); err != nil {
			return res, fmt.Errorf("insert: %w", err)
		}
		for {
			var status string
			if err := conn.QueryRow(ctx, `SELECT auth0_sync_status FROM employees WHERE id = $1`, id).Scan(&status); err != nil {
				return res, fmt.Errorf("read status: %w", err)
			}
			if status == "synced" {
				break
			}
			if time.Since(start) > time.Minute {
				return res, fmt.Errorf("employee %s not synced after a minute (%s)", id, status)
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, msOf(time.Since(start)))
	}
	slices.Sort(lat)
	res.LatencyP50MS, res.LatencyP99MS = round(percentile(lat, 0.50), 2), round(percentile(lat, 0.99), 2)
	if res.Verified, err = verifyAccounts(ctx, db, e, int64(n+res.Inserts)); err != nil {
		return res, err
	}
	if err := p.stop(); err != nil {
		return res, err
	}
	if _, _, leak := p.logStats(); leak {
		return res, fmt.Errorf("syncd run keys-%s: a secret or token in its log", key)
	}
	return res, nil
}
