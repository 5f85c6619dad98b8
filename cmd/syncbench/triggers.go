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
	// OverheadPct is the extra time per row the triggers cost:
	// without/with - 1, in percent; ExtraMicros the same in µs per row.
	OverheadPct float64 `json:"overhead_pct"`
	ExtraMicros float64 `json:"extra_us_per_row"`
}

// triggerResult is scenario 5.
type triggerResult struct {
	Rounds int `json:"rounds"`
	// Triggers are syncd's triggers on employees, dropped on one side.
	Triggers []string      `json:"triggers"`
	Cases    []triggerCase `json:"cases"`
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
	// Whatever triggers the migrations put on employees (their names start
	// with syncd_), so that this follows the schema as it changes.
	rows, err := without.pool.Query(ctx, `SELECT tgname FROM pg_trigger
		WHERE tgrelid = 'employees'::regclass AND NOT tgisinternal AND tgname LIKE 'syncd\_%' ORDER BY tgname`)
	if err != nil {
		return nil, fmt.Errorf("list triggers: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list triggers: %w", err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no syncd_ trigger on employees")
	}
	for _, t := range names {
		if err := without.exec(ctx, "DROP TRIGGER "+pgx.Identifier{t}.Sanitize()+" ON employees"); err != nil {
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
		// run does the work and returns the rows it wrote and the time the
		// timed part took.
		run func(ctx context.Context, c *pgx.Conn, round int) (int, time.Duration, error)
	}
	workloads := []workload{
		{"single-row INSERT", "rows/s", func(ctx context.Context, c *pgx.Conn, round int) (int, time.Duration, error) {
			start := time.Now()
			for i := range sz.TriggerRows {
				if _, err := c.Exec(ctx, `INSERT INTO employees (name, email, department, phone_number) VALUES ($1, $2, 'Production', '+15550100')`,
					fmt.Sprintf("Trigger %d %d", round, i), fmt.Sprintf("trigger-%d-%d@bench.example", round, i)); err != nil {
					return 0, 0, err
				}
			}
			return sz.TriggerRows, time.Since(start), nil
		}},
		{"single-row UPDATE (department)", "rows/s", func(ctx context.Context, c *pgx.Conn, round int) (int, time.Duration, error) {
			start := time.Now()
			for i := range sz.TriggerRows {
				if _, err := c.Exec(ctx, `UPDATE employees SET department = $2 WHERE id = $1`, int64(i+1), fmt.Sprintf("Dept %d-%d", round, i)); err != nil {
					return 0, 0, err
				}
			}
			return sz.TriggerRows, time.Since(start), nil
		}},
		{fmt.Sprintf("batch INSERT (%d rows a statement)", sz.TriggerBatch), "rows/s", func(ctx context.Context, c *pgx.Conn, round int) (int, time.Duration, error) {
			start := time.Now()
			for j := range sz.TriggerBatches {
				if _, err := c.Exec(ctx, `INSERT INTO employees (name, email, department)
					SELECT 'Batch ' || g, 'batch-' || $2::int || '-' || $3::int || '-' || g || '@bench.example', 'Production'
					  FROM generate_series(1, $1::int) g`, sz.TriggerBatch, round, j); err != nil {
					return 0, 0, err
				}
			}
			return sz.TriggerBatch * sz.TriggerBatches, time.Since(start), nil
		}},
		{fmt.Sprintf("batch UPDATE (%d rows a statement), right after a single-row UPDATE on the connection", sz.TriggerBatch), "rows/s", func(ctx context.Context, c *pgx.Conn, round int) (int, time.Duration, error) {
			var took time.Duration
			for j := range sz.TriggerBatches {
				// Untimed: what an application's pooled connection did last.
				if _, err := c.Exec(ctx, `UPDATE employees SET department = 'Single ' || $2::int || '-' || $3::int WHERE id = $1`, int64(1), round, j); err != nil {
					return 0, 0, err
				}
				start := time.Now()
				if _, err := c.Exec(ctx, `UPDATE employees SET department = 'Batch ' || $2::int || '-' || $3::int WHERE id <= $1`, sz.TriggerBatch, round, j); err != nil {
					return 0, 0, err
				}
				took += time.Since(start)
			}
			return sz.TriggerBatch * sz.TriggerBatches, took, nil
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
					n, took, err = w.run(ctx, conns[side], round)
				}
				if err != nil {
					return nil, fmt.Errorf("%s: %w", w.name, err)
				}
				rate := float64(n) / took.Seconds()
				best[w.name][side] = max(best[w.name][side], rate)
			}
		}
	}
	res := &triggerResult{Rounds: sz.TriggerRounds, Triggers: names}
	for _, w := range workloads {
		c := triggerCase{Workload: w.name, Unit: w.unit, With: round(best[w.name][true], 0), Without: round(best[w.name][false], 0)}
		c.OverheadPct = round(100*(best[w.name][false]/best[w.name][true]-1), 1)
		c.ExtraMicros = round(1e6/best[w.name][true]-1e6/best[w.name][false], 1)
		res.Cases = append(res.Cases, c)
	}
	return res, nil
}
