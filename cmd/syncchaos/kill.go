package main

import (
	"context"
	"fmt"
	"time"

	"github.com/syncd/syncd/auth0/emulator"
	syncdsql "github.com/syncd/syncd/sql"
)

// chaosFaults are the emulator's faults during the kill -9 backfill: 5 %
// answered 503, 2 % connections dropped (not applied), 2 % of writes applied
// with the answer lost.
var chaosFaults = emulator.Faults{ErrorRate: 0.05, DropRate: 0.02, LostWriteRate: 0.02}

// runKill is the kill -9 scenario on the bigint key syncd creates:
// Employees rows.
func runKill(ctx context.Context, s *suite, r *result) error {
	return runKillKeyed(ctx, s, r, "kill", syncdsql.KeyBigint, s.cfg.Employees)
}

// runKillUUID is the kill -9 scenario on a uuid key: KeyEmployees rows.
func runKillUUID(ctx context.Context, s *suite, r *result) error {
	return runKillKeyed(ctx, s, r, "kill-uuid", syncdsql.KeyUUID, s.cfg.KeyEmployees)
}

// runKillText is the kill -9 scenario on a text key (E-00001, …):
// KeyEmployees rows.
func runKillText(ctx context.Context, s *suite, r *result) error {
	return runKillKeyed(ctx, s, r, "kill-text", syncdsql.KeyText, s.cfg.KeyEmployees)
}

// runKillKeyed backfills n rows of an employees table keyed by key while
// `syncd run` is killed with SIGKILL Kills times, each at a random point of
// the backfill (a random synced count within its share of the rows), then
// lets a last process finish; then the leavers' half (runKillLeavers).
func runKillKeyed(ctx context.Context, s *suite, r *result, name, key string, n int) error {
	w, err := s.newKeyedWorld(ctx, name, key, r, s.cloner, &emulator.Options{Faults: chaosFaults})
	if err != nil {
		return err
	}
	defer w.close()
	if err := w.insertEmployees(ctx, name, 1, n); err != nil {
		return err
	}
	start := time.Now()
	for k := 1; k <= s.cfg.Kills; k++ {
		p, err := w.start(ctx, fmt.Sprintf("%d", k), "notify")
		if err != nil {
			return err
		}
		// A random moment of the backfill: once the synced count passes a
		// random point of this kill's share of the rows.
		share := 0.9 * float64(n) / float64(s.cfg.Kills)
		target := int(share*float64(k-1) + share*s.randFloat(0.15, 0.95))
		c, ok := w.waitFor(ctx, 4*time.Minute, func(c counts) bool { return c.Synced >= target || !p.alive() })
		if !p.alive() {
			r.fail("syncd %d exited by itself before its kill: %s", k, tail(p.logPath, 2))
		}
		if !ok {
			r.fail("kill %d: the backfill did not reach %d synced within 4m: %s", k, target, c)
			break
		}
		sleep(ctx, time.Duration(s.randFloat(0, 50))*time.Millisecond)
		outboxHeld, empLeased := w.leased(ctx, p.pid)
		p.kill()
		c, _ = w.counts(ctx)
		w.logf("kill -9 #%d after %s: %d/%d synced, %d syncing, %d outbox rows and %d employee rows leased by the dead process",
			k, time.Since(p.started).Round(time.Millisecond), c.Synced, n, c.Syncing, outboxHeld, empLeased)
		if c.Synced == n {
			r.fail("kill %d came after the backfill had finished: the scenario proves nothing; use more -employees (-key-employees for a uuid or text key)", k)
		}
		if s.cfg.FastLeases {
			ob, emp, err := w.expireLeases(ctx, p.pid)
			if err != nil {
				return err
			}
			w.logf("expired the dead process's leases: %d outbox rows, %d employees", ob, emp)
		}
	}
	p, err := w.start(ctx, "final", "notify")
	if err != nil {
		return err
	}
	timeout := 2 * time.Minute
	if !s.cfg.FastLeases {
		timeout = 5 * time.Minute
	}
	c, took, _ := w.waitSettled(ctx, timeout)
	w.logf("settled %s after the last start: %s", took.Round(time.Millisecond), c)
	r.check(p.alive(), "the last syncd exited by itself: %s", tail(p.logPath, 2))
	w.stop(p)
	w.verify(ctx, expectations{})
	if err := runKillLeavers(ctx, s, w, r); err != nil {
		return err
	}
	created, lost := w.emu.callCount("POST /api/v2/users", 201), w.emu.callCount("POST /api/v2/users", 0)
	r.note("%s key: %d employees, %d kills, converged in %s", key, n, s.cfg.Kills, time.Since(start).Round(100*time.Millisecond))
	r.note("POST /users: %d×201, %d×409, %d unanswered", created, w.emu.callCount("POST /api/v2/users", 409), lost)
	r.note("%.1f Auth0 calls/employee", float64(w.emu.apiCalls())/float64(n))
	if s.cfg.FastLeases {
		r.note("leases expired by SQL after each kill")
	}
	return nil
}
