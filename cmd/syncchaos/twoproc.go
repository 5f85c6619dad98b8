package main

import (
	"context"
	"fmt"
	"time"

	"github.com/syncd/syncd/auth0/emulator"
)

// twoSize is the number of employees of the two-process scenarios.
func (s *suite) twoSize() int {
	if s.cfg.Short {
		return 200
	}
	return 1000
}

// runTwoNotify runs two notify-mode processes on one database: the work is
// shared, and every employee is created exactly once (the POST /users 201s
// equal the employees: the emulator has no faults here, so any extra create
// is a duplicate attempt).
func runTwoNotify(ctx context.Context, s *suite, r *result) error {
	w, err := s.newWorld(ctx, "two-notify", r, s.cloner, &emulator.Options{Faults: emulator.Faults{Latency: 2 * time.Millisecond, LatencyJitter: 8 * time.Millisecond}})
	if err != nil {
		return err
	}
	defer w.close()
	a, err := w.start(ctx, "a", "notify")
	if err != nil {
		return err
	}
	b, err := w.start(ctx, "b", "notify")
	if err != nil {
		return err
	}
	n := s.twoSize()
	// Half in one transaction, the rest in twenty small ones while they
	// work: each claim goes to whichever process asks first.
	if err := w.insertEmployees(ctx, "two", 1, n/2); err != nil {
		return err
	}
	step := max((n-n/2)/20, 1)
	for from := n/2 + 1; from <= n; from += step {
		if err := w.insertEmployees(ctx, "two", from, min(from+step-1, n)); err != nil {
			return err
		}
		sleep(ctx, time.Duration(s.randFloat(20, 120))*time.Millisecond)
	}
	c, took, _ := w.waitSettled(ctx, 3*time.Minute)
	w.logf("settled in %s: %s", took.Round(time.Millisecond), c)
	r.check(a.alive() && b.alive(), "a syncd exited by itself")
	w.stop(a)
	w.stop(b)
	w.verify(ctx, expectations{})
	created := w.emu.callCount("POST /api/v2/users", 201)
	r.check(created == int64(n), "POST /users answered 201 %d times for %d employees", created, n)
	ca, cb := a.logCount(`"employee converged"`), b.logCount(`"employee converged"`)
	r.note("%d employees, POST /users 201: %d, 409: %d", n, created, w.emu.callCount("POST /api/v2/users", 409))
	r.note("converged by a: %d, b: %d", ca, cb)
	r.check(ca > 0 && cb > 0, "one process did all the work (a %d, b %d): the scenario did not run two at once", ca, cb)
	return nil
}

// runTwoReplication runs two replication-mode processes on one slot: one
// leads (streams), the other waits. The leader is killed with SIGKILL in the
// middle of a backfill; the follower must take over (after the leader lease
// of 10 s runs out) and finish, creating every account exactly once.
func runTwoReplication(ctx context.Context, s *suite, r *result) error {
	w, err := s.newWorld(ctx, "two-replication", r, s.cloner, &emulator.Options{Faults: emulator.Faults{Latency: 5 * time.Millisecond, LatencyJitter: 5 * time.Millisecond}})
	if err != nil {
		return err
	}
	defer w.close()
	a, err := w.start(ctx, "a", "replication")
	if err != nil {
		return err
	}
	b, err := w.start(ctx, "b", "replication")
	if err != nil {
		return err
	}
	var leader, follower *proc
	deadline := time.Now().Add(30 * time.Second)
	for leader == nil && time.Now().Before(deadline) {
		switch w.leaderPID(ctx) {
		case a.pid:
			leader, follower = a, b
		case b.pid:
			leader, follower = b, a
		default:
			sleep(ctx, 50*time.Millisecond)
		}
	}
	if leader == nil {
		return fmt.Errorf("no replication leader within 30s")
	}
	n := s.twoSize()
	if err := w.insertEmployees(ctx, "repl", 1, n); err != nil {
		return err
	}
	target := int(float64(n) * s.randFloat(0.2, 0.6))
	if c, ok := w.waitFor(ctx, 2*time.Minute, func(c counts) bool { return c.Synced >= target }); !ok {
		return fmt.Errorf("the backfill did not reach %d synced: %s", target, c)
	}
	leader.kill()
	killed := time.Now()
	c, _ := w.counts(ctx)
	w.logf("kill -9 of the leader (%s): %s", leader.name, c)
	// More rows while nobody leads: the new leader must stream them too.
	total := n + n/2
	if err := w.insertEmployees(ctx, "repl", n+1, total); err != nil {
		return err
	}
	var takeover time.Duration
	for time.Since(killed) < 2*time.Minute && ctx.Err() == nil {
		if w.leaderPID(ctx) == follower.pid {
			takeover = time.Since(killed)
			break
		}
		sleep(ctx, 50*time.Millisecond)
	}
	r.check(takeover > 0, "the follower did not take the leadership within 2m of the leader's death")
	w.logf("the follower leads %s after the kill", takeover.Round(time.Millisecond))
	c, _, _ = w.waitSettled(ctx, 3*time.Minute)
	settled := time.Since(killed)
	w.logf("settled %s after the kill: %s", settled.Round(time.Millisecond), c)
	r.check(follower.alive(), "the follower exited by itself: %s", tail(follower.logPath, 2))
	w.stop(follower)
	w.verify(ctx, expectations{})
	created := w.emu.callCount("POST /api/v2/users", 201)
	r.check(created == int64(total), "POST /users answered 201 %d times for %d employees", created, total)
	r.note("%d employees, POST /users 201: %d, 409: %d", total, created, w.emu.callCount("POST /api/v2/users", 409))
	r.note("takeover %s, settled %s after the kill", takeover.Round(100*time.Millisecond), settled.Round(100*time.Millisecond))
	return nil
}
