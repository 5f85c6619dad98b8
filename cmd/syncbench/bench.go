package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// runBench runs the scenarios the config asks for and writes the results.
func runBench(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	start := time.Now()
	b, cleanup, err := newBench(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	res := &results{Date: start.UTC().Format(time.RFC3339), Command: cfg.Command, Quick: cfg.Quick, Sizes: cfg.Sizes}
	res.Machine = describeMachine(ctx, b.pg.AdminURL())
	if cfg.ProfileDir != "" {
		stop, err := startProfile(cfg.ProfileDir, "syncbench")
		if err != nil {
			return err
		}
		defer stop()
	}

	var mu sync.Mutex
	step := func(name string, f func() error) {
		if ctx.Err() != nil {
			return
		}
		b.log.Info("scenario started", "name", name)
		t := time.Now()
		err := f()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.Errors = append(res.Errors, name+": "+err.Error())
			b.log.Error("scenario failed", "name", name, "error", err)
			return
		}
		b.log.Info("scenario done", "name", name, "took", time.Since(t).Round(time.Millisecond))
	}
	keep := func(f func()) { mu.Lock(); defer mu.Unlock(); f() }

	// Throughput and latency: one at a time, so that they have the machine.
	measured := func() {
		if cfg.runs(scMicro) {
			step("package benchmarks (go test -bench)", func() error {
				m, err := b.runMicro(ctx)
				keep(func() { res.Micro = m })
				return err
			})
		}
		if cfg.runs(scLatency) {
			for _, source := range []string{"notify", "replication"} {
				step("latency "+source, func() error {
					l, ch, err := b.runLatency(ctx, source, source == "notify")
					keep(func() {
						if l != nil {
							res.Latency = append(res.Latency, l)
						}
						if ch != nil {
							res.Changes = ch
						}
					})
					return err
				})
			}
		}
		if cfg.runs(scOffboard) {
			step("offboarding", func() error {
				o, err := b.runOffboard(ctx)
				keep(func() { res.Offboard = o })
				return err
			})
		}
		if cfg.runs(scBackfill) {
			step("backfill", func() error {
				f, err := b.runBackfill(ctx)
				keep(func() { res.Backfill = f })
				return err
			})
		}
		if cfg.runs(scReference) {
			step("reference guide's flow", func() error {
				f, err := b.runReference(ctx)
				keep(func() { res.Reference = f })
				return err
			})
		}
		if cfg.runs(scKeys) {
			for _, key := range benchKeys {
				step("keys "+key, func() error {
					k, err := b.runKeys(ctx, key)
					keep(func() {
						if k != nil {
							res.Keys = append(res.Keys, k)
						}
					})
					return err
				})
			}
		}
		if cfg.runs(scMapping) {
			step("mapping change", func() error {
				m, err := b.runMapping(ctx)
				keep(func() { res.Mapping = m })
				return err
			})
		}
		if cfg.runs(scTriggers) {
			step("trigger overhead", func() error {
				t, err := b.runTriggers(ctx)
				keep(func() { res.Triggers = t })
				return err
			})
		}
	}
	// Paced by a rate limit or a clock, light on the machine: together. The
	// drift scans go with them: their time is the emulator's paging (see
	// BENCHMARKS.md), and their memory is their own process's.
	paced := func() {
		var wg sync.WaitGroup
		if cfg.runs(scDrift) {
			wg.Go(func() {
				for _, n := range cfg.Sizes.Drift {
					step(fmt.Sprintf("drift scan %d", n), func() error {
						d, err := b.runDrift(ctx, n)
						keep(func() {
							if d != nil {
								res.Drift = append(res.Drift, d)
							}
						})
						return err
					})
				}
			})
		}
		if cfg.runs(scRateLimit) {
			for _, ps := range []planSpec{
				{plan: "enterprise", rate: 16, burst: 50, n: cfg.Sizes.Enterprise},
				{plan: "free", rate: 2, burst: 2, n: cfg.Sizes.Free},
			} {
				wg.Go(func() {
					step("rate-limited "+ps.plan, func() error {
						q, err := b.runRateLimited(ctx, ps)
						keep(func() {
							if q != nil {
								res.RateLimited = append(res.RateLimited, q)
							}
						})
						return err
					})
				})
			}
		}
		if cfg.runs(scBulk) {
			for _, ps := range []planSpec{
				{plan: "enterprise", rate: 16, burst: 50, n: cfg.Sizes.BulkEnterprise},
				{plan: "free", rate: 2, burst: 2, n: cfg.Sizes.BulkFree},
			} {
				wg.Go(func() {
					step("bulk "+ps.plan, func() error {
						q, err := b.runBulk(ctx, ps)
						keep(func() {
							if q != nil {
								res.Bulk = append(res.Bulk, q)
							}
						})
						return err
					})
				})
			}
		}
		if cfg.runs(scIdle) {
			for _, source := range []string{"notify", "replication"} {
				wg.Go(func() {
					step("idle "+source, func() error {
						i, err := b.runIdle(ctx, source)
						keep(func() {
							if i != nil {
								res.Idle = append(res.Idle, i)
							}
						})
						return err
					})
				})
			}
		}
		wg.Wait()
	}
	if cfg.Quick {
		// A smoke test: everything at once, to be quick.
		var wg sync.WaitGroup
		wg.Go(measured)
		wg.Go(paced)
		wg.Wait()
	} else {
		measured()
		paced()
	}
	sortResults(res)
	res.Machine.LoadAfter = loadavg()
	res.DurationS = round(time.Since(start).Seconds(), 1)
	res.evaluate()
	if cfg.Out != "" {
		if err := res.writeJSON(cfg.Out); err != nil {
			return err
		}
	}
	if cfg.MD != "" {
		if err := os.WriteFile(cfg.MD, withKeptNotes(res.markdown(), cfg.MD), 0o644); err != nil {
			return fmt.Errorf("write markdown: %w", err)
		}
	}
	res.summary(stdout)
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(res.Errors) > 0 {
		return errors.New(strings.Join(res.Errors, "; "))
	}
	return nil
}

// sortResults puts concurrently gathered results in a fixed order.
func sortResults(r *results) {
	order := func(s string) int {
		for i, v := range []string{"notify", "replication", "enterprise", "free"} {
			if v == s {
				return i
			}
		}
		return 99
	}
	sortBy(r.Latency, func(l *latencyResult) int { return order(l.Source) })
	sortBy(r.RateLimited, func(q *rateResult) int { return order(q.Plan) })
	sortBy(r.Bulk, func(q *bulkResult) int { return order(q.Plan) })
	sortBy(r.Idle, func(i *idleResult) int { return order(i.Source) })
	sortBy(r.Keys, func(k *keysResult) int { return slices.Index(benchKeys, k.Key) })
	sortBy(r.Drift, func(d *driftResult) int { return d.Users })
}

func sortBy[T any](s []T, key func(T) int) {
	slices.SortStableFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
}
