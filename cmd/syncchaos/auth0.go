package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/syncd/syncd/auth0/emulator"
)

// holdTime is how long the breaker is watched while it is open.
func (s *suite) holdTime() time.Duration {
	if s.cfg.Short {
		return 4 * time.Second
	}
	return 30 * time.Second
}

// waitBreaker polls /readyz until the breaker's state is open (or closed),
// the process exits or timeout passes; it returns the breaker text.
func waitBreaker(ctx context.Context, p *proc, open bool, timeout time.Duration) (string, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil && p.alive() {
		isOpen, text := p.breakerOpen()
		if isOpen == open && text != "" {
			return text, true
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return "", false
}

// watchOpen holds for d while the breaker is open and checks that syncd
// stays up and that no row is attempted again (no status flapping):
// auth0_sync_attempts and the status counts stay as they were.
func (w *world) watchOpen(ctx context.Context, p *proc, d time.Duration) {
	r := w.r
	// Reconciles that passed the breaker just before it opened may still
	// end (and count their attempt); wait for that event, not for a time:
	// once none runs, none may start while the breaker is open.
	deadline := time.Now().Add(time.Minute)
	for {
		n, ok := p.metric("syncd_reconciles_running")
		if ok && n == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil || !p.alive() {
			r.fail("reconciles still running (%v) a minute after the breaker opened", n)
			return
		}
		sleep(ctx, 50*time.Millisecond)
	}
	before, err := w.counts(ctx)
	if err != nil {
		r.fail("read counts: %v", err)
		return
	}
	callsBefore := w.apiCallsOrZero()
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		if !p.alive() {
			r.fail("syncd exited while the breaker was open (crash loop?): %s", tail(p.logPath, 2))
			return
		}
		sleep(ctx, 250*time.Millisecond)
	}
	after, err := w.counts(ctx)
	if err != nil {
		r.fail("read counts: %v", err)
		return
	}
	r.check(after.Attempts == before.Attempts, "auth0_sync_attempts climbed from %d to %d while the breaker was open (status flapping)", before.Attempts, after.Attempts)
	// Reconciles that were in flight when it opened may still end (syncing
	// → retrying); nothing may start, finish or fail for good.
	moved := after.Synced != before.Synced || after.Failed != before.Failed || after.Conflict != before.Conflict ||
		after.Deprovisioned != before.Deprovisioned || after.Syncing > before.Syncing
	r.check(!moved, "statuses moved while the breaker was open: %s → %s", before, after)
	if isOpen, _ := p.breakerOpen(); !isOpen {
		r.fail("the breaker closed by itself while Auth0 was still failing")
	}
	if n, ok := p.metric("syncd_reconciles_running"); !ok || n != 0 {
		r.fail("%v reconciles running while the breaker was open", n)
	}
	r.note("held %s open: attempts %d → %d, %d Auth0 API calls", d.Round(100*time.Millisecond), before.Attempts, after.Attempts, w.apiCallsOrZero()-callsBefore)
}

func (w *world) apiCallsOrZero() int64 {
	if w.emu == nil {
		return 0
	}
	return w.emu.apiCalls()
}

// authRows is the number of employees of the Auth0 failure scenarios.
const authRows = 40

// runBadCredentials starts syncd with a wrong client secret: it must stay
// up, report the cause on /readyz, open its breaker once and leave the rows
// alone; with the right secret (an operator's fix, so a restart) everything
// converges.
func runBadCredentials(ctx context.Context, s *suite, r *result) error {
	w, err := s.newWorld(ctx, "bad-credentials", r, s.cloner, &emulator.Options{})
	if err != nil {
		return err
	}
	defer w.close()
	if err := w.insertEmployees(ctx, "creds", 1, authRows); err != nil {
		return err
	}
	p, err := w.startWith(ctx, "wrong", w.emu.URL, wrongSecret, "notify")
	if err != nil {
		return err
	}
	text, ok := waitBreaker(ctx, p, true, time.Minute)
	if !ok {
		r.fail("the breaker did not open within 1m of starting with a wrong secret (alive %v)", p.alive())
	} else {
		rz, _ := p.readyz()
		r.check(rz.Code == 503, "/readyz answered %d with the breaker open", rz.Code)
		r.check(strings.HasPrefix(rz.Checks["auth0_token"], "token refused: 401"), "/readyz auth0_token is %q, want token refused: 401", rz.Checks["auth0_token"])
		w.logf("breaker %s; /readyz auth0_token: %s", text, rz.Checks["auth0_token"])
		w.watchOpen(ctx, p, s.holdTime())
	}
	opened := p.logCount(`"breaker open`)
	r.check(opened == 1, "the log says the breaker opened %d times, want once", opened)
	tokens := w.emu.callCount("POST /oauth/token", 401)
	w.stop(p)

	p, err = w.start(ctx, "fixed", "notify")
	if err != nil {
		return err
	}
	c, took, _ := w.waitSettled(ctx, time.Minute)
	w.logf("with the right secret, settled in %s: %s", took.Round(time.Millisecond), c)
	w.stop(p)
	w.verify(ctx, expectations{})
	r.note("%d token requests refused; converged %s after the fix (a restart)", tokens, took.Round(100*time.Millisecond))
	return nil
}

// runUnreachable points syncd at a closed loopback port: it must stay up,
// say "unreachable", leave the rows alone, and converge by itself once the
// tenant appears on that port.
func runUnreachable(ctx context.Context, s *suite, r *result) error {
	w, err := s.newWorld(ctx, "unreachable", r, s.cloner, nil)
	if err != nil {
		return err
	}
	defer w.close()
	addr, err := closedAddr() // nothing listens there, and no port-0 bind takes it
	if err != nil {
		return err
	}
	if err := w.insertEmployees(ctx, "unreachable", 1, authRows); err != nil {
		return err
	}
	p, err := w.startWith(ctx, "1", "http://"+addr, clientSecret, "notify")
	if err != nil {
		return err
	}
	text, ok := waitBreaker(ctx, p, true, time.Minute)
	if !ok {
		r.fail("the breaker did not open within 1m with Auth0 unreachable (alive %v)", p.alive())
	} else {
		rz, _ := p.readyz()
		r.check(rz.Checks["auth0_token"] == "token endpoint unreachable", "/readyz auth0_token is %q, want token endpoint unreachable", rz.Checks["auth0_token"])
		w.logf("breaker %s", text)
		w.watchOpen(ctx, p, s.holdTime())
	}
	// The tenant comes up where syncd looks for it.
	if w.emu, err = startEmu(addr, emulator.Options{ClientID: clientID, ClientSecret: clientSecret}, s.secrets); err != nil {
		return fmt.Errorf("start the emulator on the closed port: %w", err)
	}
	up := time.Now()
	c, _, _ := w.waitSettled(ctx, 3*time.Minute)
	recovered := time.Since(up)
	if _, ok := waitBreaker(ctx, p, false, 30*time.Second); !ok {
		r.fail("the breaker did not close after Auth0 became reachable")
	}
	w.logf("recovered by itself %s after the tenant appeared: %s", recovered.Round(time.Millisecond), c)
	r.check(p.alive(), "syncd exited: %s", tail(p.logPath, 2))
	w.stop(p)
	w.verify(ctx, expectations{})
	r.note("recovered by itself %s after Auth0 became reachable", recovered.Round(100*time.Millisecond))
	return nil
}

// runAuth0Down converges, then makes every Auth0 API call fail with 503 for
// cfg.Auth0Down while rows change: the breaker must open once, the rows
// wait, and everything converges by itself once Auth0 answers again.
func runAuth0Down(ctx context.Context, s *suite, r *result) error {
	w, err := s.newWorld(ctx, "auth0-down", r, s.cloner, &emulator.Options{})
	if err != nil {
		return err
	}
	defer w.close()
	if err := w.insertEmployees(ctx, "down", 1, authRows); err != nil {
		return err
	}
	p, err := w.start(ctx, "1", "notify")
	if err != nil {
		return err
	}
	if c, _, ok := w.waitSettled(ctx, time.Minute); !ok {
		return fmt.Errorf("no convergence before the outage: %s", c)
	}
	w.emu.SetFaults(emulator.Faults{ErrorRate: 1})
	down := time.Now()
	if _, err := w.pool.Exec(ctx, `UPDATE employees SET department = 'Night Shift' WHERE id % 2 = 0`); err != nil {
		return fmt.Errorf("update employees: %w", err)
	}
	if err := w.insertEmployees(ctx, "down", authRows+1, authRows+10); err != nil {
		return err
	}
	text, ok := waitBreaker(ctx, p, true, time.Minute)
	if !ok {
		r.fail("the breaker did not open within 1m of Auth0 answering 503 to everything (alive %v)", p.alive())
	} else {
		w.logf("breaker %s after %s", text, time.Since(down).Round(time.Millisecond))
		w.watchOpen(ctx, p, max(s.cfg.Auth0Down-time.Since(down)-time.Second, time.Second))
	}
	sleep(ctx, s.cfg.Auth0Down-time.Since(down))
	w.emu.SetFaults(emulator.Faults{})
	up := time.Now()
	w.logf("Auth0 answers again after %s", up.Sub(down).Round(time.Millisecond))
	c, _, _ := w.waitSettled(ctx, 3*time.Minute)
	recovered := time.Since(up)
	if _, ok := waitBreaker(ctx, p, false, 30*time.Second); !ok {
		r.fail("the breaker did not close after Auth0 recovered")
	}
	w.logf("recovered by itself %s after Auth0 came back: %s", recovered.Round(time.Millisecond), c)
	opened := p.logCount(`"breaker open`)
	r.check(opened == 1, "the log says the breaker opened %d times, want once", opened)
	r.check(p.alive(), "syncd exited: %s", tail(p.logPath, 2))
	w.stop(p)
	w.verify(ctx, expectations{})
	r.note("Auth0 down %s; recovered by itself %s later", up.Sub(down).Round(100*time.Millisecond), recovered.Round(100*time.Millisecond))
	return nil
}
