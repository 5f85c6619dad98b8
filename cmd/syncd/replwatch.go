package main

import (
	"context"
	"strings"
	"time"

	"github.com/syncd/syncd/outbox"
)

// checkReplication checks the replication source's prerequisites and says
// what changed since the last check: each missing piece on a line, or that
// they are all met again.
func (d *daemon) checkReplication(ctx context.Context, replURL, slot string) bool {
	problems, err := outbox.CheckReplication(ctx, d.pool, replURL, slot)
	if err != nil {
		return false // the database is down: dbWatch says so
	}
	old := d.faults.repl.Load()
	if len(problems) == 0 {
		d.faults.repl.Store(nil)
		if old != nil {
			d.log.InfoContext(ctx, "replication prerequisites are met now; the stream starts")
		}
		return true
	}
	if old == nil || strings.Join(*old, "\n") != strings.Join(problems, "\n") {
		for _, p := range problems {
			d.log.ErrorContext(ctx, "replication prerequisite missing: "+p+"; syncd waits (unready) and checks again by itself")
		}
	}
	d.faults.repl.Store(&problems)
	return false
}

// watchReplication checks the replication prerequisites again, with growing
// pauses (at most 30 s), while any is missing.
func (d *daemon) watchReplication(ctx context.Context, replURL, slot string) error {
	pause := time.Second
	for {
		if d.faults.repl.Load() == nil {
			pause = time.Second
		}
		if err := sleepCtx(ctx, pause); err != nil {
			return nil
		}
		if d.faults.repl.Load() != nil {
			d.checkReplication(ctx, replURL, slot)
			pause = min(pause*2, 30*time.Second)
		} else {
			pause = 5 * time.Second
		}
	}
}
