package main

import (
	"context"
	"fmt"
	"time"

	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/testcontainers"
)

// runOutage stops a private PostgreSQL server for cfg.Outage in the middle
// of a backfill, with one syncd per change source (each on its own database
// of that server), starts it again, adds and changes rows, and checks that
// both converge without a restart of syncd.
func runOutage(ctx context.Context, s *suite, r *result) error {
	pg, err := testcontainers.StartLocal(ctx, testcontainers.LocalOptions{})
	if err != nil {
		return fmt.Errorf("start a private postgres: %w", err)
	}
	defer pg.Close()
	cloner := testcontainers.NewCloner(pg)
	n := 1000
	if s.cfg.Short {
		n = 200
	}
	type side struct {
		source string
		w      *world
		p      *proc
		r      *result
	}
	var sides []*side
	for _, source := range []string{"notify", "replication"} {
		// Each side notes on its own result, merged below with a prefix.
		sr := &result{name: source}
		w, err := s.newWorld(ctx, "outage-"+source, sr, cloner, &emulator.Options{Faults: emulator.Faults{Latency: 10 * time.Millisecond}})
		if err != nil {
			return err
		}
		defer w.close()
		if err := w.insertEmployees(ctx, "outage", 1, n); err != nil {
			return err
		}
		p, err := w.start(ctx, "1", source)
		if err != nil {
			return err
		}
		sides = append(sides, &side{source: source, w: w, p: p, r: sr})
	}
	for _, sd := range sides {
		if c, ok := sd.w.waitFor(ctx, 2*time.Minute, func(c counts) bool { return c.Synced >= n/4 }); !ok {
			r.fail("%s: the backfill did not get going: %s", sd.source, c)
		}
	}
	for _, sd := range sides {
		c, _ := sd.w.counts(ctx)
		sd.w.logf("stopping postgres: %s", c)
	}
	if err := pg.Stop(); err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	down := time.Now()
	for time.Since(down) < s.cfg.Outage && ctx.Err() == nil {
		sleep(ctx, 250*time.Millisecond)
		for _, sd := range sides {
			if !sd.p.alive() {
				r.fail("%s: syncd exited during the outage: %s", sd.source, tail(sd.p.logPath, 2))
				sd.p = nil
			}
		}
		if sides[0].p == nil || sides[1].p == nil {
			break
		}
	}
	if err := pg.Start(ctx); err != nil {
		return fmt.Errorf("start postgres again: %w", err)
	}
	up := time.Now()
	s.logf("outage", "postgres was down %s", up.Sub(down).Round(time.Millisecond))
	total := n + n/2
	for _, sd := range sides {
		if sd.p == nil {
			return fmt.Errorf("%s: syncd did not survive the outage", sd.source)
		}
		// New rows and changes after the outage: the sources must have
		// reconnected (LISTEN, the replication stream).
		if err := retryDB(ctx, func() error { return sd.w.insertEmployees(ctx, "outage", n+1, total) }); err != nil {
			return err
		}
		if err := retryDB(ctx, func() error {
			_, err := sd.w.pool.Exec(ctx, `UPDATE employees SET department = 'After The Outage' WHERE id % 10 = 0 AND id <= $1`, n)
			return err
		}); err != nil {
			return fmt.Errorf("update employees: %w", err)
		}
	}
	for _, sd := range sides {
		c, _, _ := sd.w.waitSettled(ctx, 3*time.Minute)
		recovered := time.Since(up)
		sd.w.logf("settled %s after postgres came back: %s", recovered.Round(time.Millisecond), c)
		r.check(sd.p.alive(), "%s: syncd exited after the outage: %s", sd.source, tail(sd.p.logPath, 2))
		sd.w.stop(sd.p)
		sd.w.verify(ctx, expectations{})
		r.note("%s: settled %s after restart", sd.source, recovered.Round(100*time.Millisecond))
		for _, num := range sd.r.numbers {
			r.note("%s: %s", sd.source, num)
		}
		for _, p := range sd.r.problems {
			r.fail("%s: %s", sd.source, p)
		}
	}
	r.note("postgres down %s", s.cfg.Outage)
	return nil
}

// retryDB runs f until it succeeds or 30 s pass: the first statements after
// a restart may meet connections the server closed.
func retryDB(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		sleep(ctx, 200*time.Millisecond)
	}
}
