package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// triggerCase is one workload's rates with and without syncd's triggers.
type triggerCase struct {
	Workload string  `json:"workload"`
	Unit     string  `json:"unit"`
	With     float64 `json:"with_triggers_per_s"`
	Without  float64 `json:"without_triggers_per_s"`
	// OverheadPct is the extra time per statement the triggers cost:
	// without/with - 1, in percent.
	OverheadPct float64 `json:"overhead_pct"`
}

// triggerResult is scenario 5.
type triggerResult struct {
	Rounds int           `json:"rounds"`
	Cases  []triggerCase `json:"cases"`
}

// syncdTriggers are the triggers migration 1 puts on employees.
var syncdTriggers = []string{
	"syncd_employees_insert_pending", "syncd_employees_update_pending",
	"syncd_employees_outbox_insert", "syncd_employees_outbox_update", "syncd_employees_outbox_delete",
}

// runTriggers runs the same statements on two clones of the schema, one
// with syncd's triggers and one without, alternating, several rounds, and
// keeps each workload's best round on each side (the least disturbed by
// anything else on the machine). No daemon runs: this is the cost the
// triggers add to the application's own writes.
func (b *bench) runTriggers(ctx context.Context) (*triggerResult, error) {
	sz := b.cfg.Sizes
	with, dropWith, err := b.newDatabase(ctx)
	if err != nil {
		return nil, err
	}
	defer dropWith()
	without, dropWithout, err := b.newDatabase(ctx)
	if err != nil {
		return nil, err
	}
	defer dropWithout()
	for _, t := range syncdTriggers {
		if err := without.exec(ctx, "DROP TRIGGER "+t+" ON employees"); err != nil {
			return nil, fmt.Errorf("drop trigger %s: %w", t, err)
		}
	}
	conns := map[bool]*pgx.Conn{}
	for side, db := range map[bool]*database{true: with, false: without} {
		c, err := pgx.Connect(ctx, db.url)
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		defer c.Close(context.WithoutCancel(ctx))
		conns[side] = c
	}

	type workload struct {
		name, unit string
		run        func(ctx context.Context, c *pgx.Conn, round int) (int, error)
	}
	workloads := []workload{
		{"single-row INSERT", "rows/s", func(ctx context.Context, c *pgx.Conn, round int) (int, error) {
			for i := range sz.TriggerRows {
				if _, err := c.Exec(ctx, `INSERT INTO employees (name, email, department, phone_number) VALUES ($1, $2, 'Production', '+15550100')`,
					fmt.Sprintf("Trigger %d %d", round, i), fmt.Sprintf("trigger-%d-%d@bench.example", round, i)); err != nil {
					return 0, err
				}
			}
			return sz.TriggerRows, nil
		}},
		{"single-row UPDATE (department)", "rows/s", func(ctx context.Context, c *pgx.Conn, round int) (int, error) {
			for i := range sz.TriggerRows {
				if _, err := c.Exec(ctx, `UPDATE employees SET department = $2 WHERE id = $1`, int64(i+1), fmt.Sprintf("Dept %d-%d", round, i)); err != nil {
					return 0, err
				}
			}
			return sz.TriggerRows, nil
		}},
		{fmt.Sprintf("batch INSERT (%d rows a statement)", sz.TriggerBatch), "rows/s", func(ctx context.Context, c *pgx.Conn, round int) (int, error) {
			for j := range sz.TriggerBatches {
				if _, err := c.Exec(ctx, `INSERT INTO employees (name, email, department)
					SELECT 'Batch ' || g, 'batch-' || $2::int || '-' || $3::int || '-' || g || '@bench.example', 'Production'
					  FROM generate_series(1, $1::int) g`, sz.TriggerBatch, round, j); err != nil {
					return 0, err
				}
			}
			return sz.TriggerBatch * sz.TriggerBatches, nil
		}},
		{fmt.Sprintf("batch UPDATE (%d rows a statement), after single-row UPDATEs on the connection", sz.TriggerBatch), "rows/s", func(ctx context.Context, c *pgx.Conn, round int) (int, error) {
			for j := range sz.TriggerBatches {
				if _, err := c.Exec(ctx, `UPDATE employees SET department = 'Batch ' || $2::int || '-' || $3::int WHERE id <= $1`, sz.TriggerBatch, round, j); err != nil {
					return 0, err
				}
			}
			return sz.TriggerBatch * sz.TriggerBatches, nil
		}},
		{fmt.Sprintf("batch UPDATE (%d rows), first statement of a new connection", sz.TriggerBatch), "rows/s", nil},
	}
	// The last workload runs on a connection of its own: PL/pgSQL caches
	// the plan of the trigger's transition-table join at its first use in a
	// session, so a session's history changes what a batch costs.
	fresh := func(ctx context.Context, side bool, round int) (int, time.Duration, error) {
		db := without
		if side {
			db = with
		}
		c, err := pgx.Connect(ctx, db.url)
		if err != nil {
			return 0, 0, err
		}
		defer c.Close(context.WithoutCancel(ctx))
		start := time.Now()
		if _, err := c.Exec(ctx, `UPDATE employees SET department = 'Fresh ' || $2::int WHERE id <= $1`, sz.TriggerBatch, round); err != nil {
			return 0, 0, err
		}
		return sz.TriggerBatch, time.Since(start), nil
	}
	best := map[string]map[bool]float64{}
	for round := range sz.TriggerRounds {
		for _, w := range workloads {
			if best[w.name] == nil {
				best[w.name] = map[bool]float64{}
			}
			// Alternate which side goes first.
			order := []bool{true, false}
			if round%2 == 1 {
				order = []bool{false, true}
			}
			for _, side := range order {
				var n int
				var took time.Duration
				var err error
				if w.run == nil {
					n, took, err = fresh(ctx, side, round)
				} else {
					start := time.Now()
					n, err = w.run(ctx, conns[side], round)
					took = time.Since(start)
				}
				if err != nil {
					return nil, fmt.Errorf("%s: %w", w.name, err)
				}
				rate := float64(n) / took.Seconds()
				best[w.name][side] = max(best[w.name][side], rate)
			}
		}
	}
	res := &triggerResult{Rounds: sz.TriggerRounds}
	for _, w := range workloads {
		c := triggerCase{Workload: w.name, Unit: w.unit, With: round(best[w.name][true], 0), Without: round(best[w.name][false], 0)}
		c.OverheadPct = round(100*(best[w.name][false]/best[w.name][true]-1), 1)
		res.Cases = append(res.Cases, c)
	}
	return res, nil
}
