package main

import (
	"context"
	"fmt"
	"time"

	"github.com/syncd/syncd/auth0/emulator"
)

// runKillLeavers is the kill -9 scenario's second half (issue 17): once the
// backfill has converged, a fifth of the employees (at most 200) log in (a
// session and a refresh token each) and then leave in one transaction, and
// `syncd run` is killed with SIGKILL while it blocks them and revokes their
// access, under the same faults (503s, drops, lost answers) and 30 ms of
// latency per call, so that the kills land mid-way. The processes run with
// --max-deprovision=50%: the leavers are a fifth, within half of that, so
// the guard lets them through at once (its fast path).
//
// Every leaver must end deprovisioned, blocked, with no session and no
// refresh token left; and none revoked twice needlessly: two revocations of
// one kind whose answers both went to a live syncd must have a kill between
// them (the dead process could not record the first), or within inFlight
// before the first (its answer went to a process dying).
func runKillLeavers(ctx context.Context, s *suite, w *world, r *result) error {
	rows, err := w.rows(ctx)
	if err != nil {
		return err
	}
	n := min(len(rows)/5, 200)
	leavers := map[string]string{}
	var ids []string
	for _, e := range rows {
		if len(ids) == n {
			break
		}
		if e.Status == "synced" && e.UserID != "" && e.Active {
			if !w.emu.Login(e.UserID) {
				return fmt.Errorf("employee %s: no account %s to log in to", e.ID, e.UserID)
			}
			leavers[e.ID] = e.UserID
			ids = append(ids, e.ID)
		}
	}
	if len(ids) == 0 {
		r.fail("no synced employee to leave")
		return nil
	}
	f := chaosFaults
	f.Latency = 30 * time.Millisecond
	w.emu.SetFaults(f)
	defer w.emu.SetFaults(emulator.Faults{})
	if _, err := w.pool.Exec(ctx, `UPDATE employees SET active = false WHERE id::text = ANY($1::text[])`, ids); err != nil {
		return fmt.Errorf("deactivate leavers: %w", err)
	}
	kills := min(s.cfg.Kills, 3)
	var killedAt []time.Time
	guard := []string{"--max-deprovision", "50%"}
	for k := 1; k <= kills; k++ {
		p, err := w.start(ctx, fmt.Sprintf("leavers-%d", k), "notify", guard...)
		if err != nil {
			return err
		}
		share := 0.9 * float64(len(ids)) / float64(kills)
		target := int(share*float64(k-1) + share*s.randFloat(0.15, 0.95))
		c, ok := w.waitFor(ctx, 2*time.Minute, func(c counts) bool { return c.Deprovisioned >= target || !p.alive() })
		if !p.alive() {
			r.fail("syncd leavers-%d exited by itself before its kill: %s", k, tail(p.logPath, 2))
		}
		if !ok {
			r.fail("leavers kill %d: %d deprovisioned not reached within 2m: %s", k, target, c)
			break
		}
		sleep(ctx, time.Duration(s.randFloat(0, 30))*time.Millisecond)
		p.kill()
		killedAt = append(killedAt, time.Now()) // after the process is gone: nothing it sent can come later
		c, _ = w.counts(ctx)
		w.logf("kill -9 leavers-%d: %d/%d leavers deprovisioned", k, c.Deprovisioned, len(ids))
		if c.Deprovisioned >= len(ids) {
			r.note("leavers kill %d came after every leaver was done", k)
		}
		if s.cfg.FastLeases {
			if _, _, err := w.expireLeases(ctx, p.pid); err != nil {
				return err
			}
		}
	}
	p, err := w.start(ctx, "leavers-final", "notify", guard...)
	if err != nil {
		return err
	}
	timeout := 2 * time.Minute
	if !s.cfg.FastLeases {
		timeout = 5 * time.Minute
	}
	c, took, _ := w.waitSettled(ctx, timeout)
	w.logf("leavers settled %s after the last start: %s", took.Round(time.Millisecond), c)
	w.stop(p)

	status := map[string]string{}
	for _, id := range ids {
		status[id] = "deprovisioned"
	}
	w.verify(ctx, expectations{status: status})
	var left, twice int
	for _, id := range ids {
		uid := leavers[id]
		u := w.emu.User(uid)
		if u == nil || u["blocked"] != true {
			r.fail("leaver %s: account %s is not blocked", id, uid)
		}
		acc := w.emu.Access(uid)
		if acc.Sessions != 0 || acc.RefreshTokens != 0 {
			left++
			r.fail("leaver %s: %d sessions and %d refresh tokens left", id, acc.Sessions, acc.RefreshTokens)
		}
		for kind, revs := range map[string][]emulator.Revocation{"sessions": acc.Revoked, "refresh tokens": acc.TokensRevoked} {
			if len(revs) == 0 {
				r.fail("leaver %s: %s never revoked", id, kind)
			}
			var last *emulator.Revocation
			for i := range revs {
				rv := &revs[i]
				if !rv.Delivered {
					continue // its answer was lost: syncd had to ask again
				}
				if last != nil && !killBetween(killedAt, last.At.Add(-inFlight), rv.At) {
					twice++
					r.fail("leaver %s: %s revoked twice needlessly (%s and %s, no kill between)", id, kind,
						last.At.Format(time.StampMicro), rv.At.Format(time.StampMicro))
				}
				last = rv
			}
		}
	}
	r.note("%d leavers, %d kills: all blocked, %d with access left, %d revoked twice needlessly; revocations %d sessions, %d refresh tokens",
		len(ids), len(killedAt), left, twice, w.emu.callCount("DELETE /api/v2/users/{id}/sessions", 202), w.emu.callCount("DELETE /api/v2/users/{id}/refresh-tokens", 202))
	return nil
}

// inFlight is how long before a revocation a kill may have happened and
// still cost its answer: a request sent just before the kill is served after
// it (30 ms of injected latency, and a loaded machine), its answer written to
// a closed connection the emulator has not noticed yet.
const inFlight = 500 * time.Millisecond

func killBetween(kills []time.Time, a, b time.Time) bool {
	for _, k := range kills {
		if k.After(a) && k.Before(b) {
			return true
		}
	}
	return false
}
