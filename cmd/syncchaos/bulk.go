package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/syncd/syncd/auth0/emulator"
)

// bulkImportEndpoint is the upload of a users-import job.
const bulkImportEndpoint = "POST /api/v2/jobs/users-imports"

// runBulk backfills BulkEmployees never-created rows through users-import
// jobs (--bulk-create auto) while `syncd run` is killed with SIGKILL Kills
// times at different stages of a job: as soon as the backlog is in jobs
// (before or during the upload), while a job runs in Auth0, and at random
// points of the role batches and marking. The first two uploads lose their
// 202 (the jobs run anyway), three jobs fail whole (two of them the lost
// ones), and 2 % of the calls fail or lose their answer. Every active
// employee must end with exactly one account, with the right role and
// metadata, every row synced, no duplicate and no orphan.
func runBulk(ctx context.Context, s *suite, r *result) error {
	rate := 250.0
	if s.cfg.Short {
		rate = 100
	}
	w, err := s.newWorld(ctx, "bulk", r, s.cloner, &emulator.Options{ImportRate: rate,
		Faults: emulator.Faults{ErrorRate: 0.02, LostWriteRate: 0.02,
			Script: []emulator.ScriptedFault{{Endpoint: bulkImportEndpoint, LoseAnswer: true, Times: 2}}}})
	if err != nil {
		return err
	}
	defer w.close()
	w.emu.SetImportFaults(emulator.ImportFaults{FailNext: 3, FailAfter: 40})
	n := s.cfg.BulkEmployees
	if err := w.insertEmployees(ctx, "bulk", 1, n); err != nil {
		return err
	}
	args := []string{"--bulk-create", "auto", "--bulk-threshold", "50", "--bulk-job-lease", "5s", "--bulk-poll-interval", "200ms"}
	start := time.Now()
	// The stage each kill waits for; the later ones at random synced counts.
	stages := []string{"in-jobs", "running", "marking"}
	for k := 1; k <= s.cfg.Kills; k++ {
		p, err := w.start(ctx, fmt.Sprintf("%d", k), "notify", args...)
		if err != nil {
			return err
		}
		stage := "synced"
		if k <= len(stages) {
			stage = stages[k-1]
		}
		share := 0.9 * float64(n) / float64(s.cfg.Kills)
		target := int(share*float64(k-1) + share*s.randFloat(0.15, 0.95))
		ok := eventually(ctx, 4*time.Minute, func() bool {
			if !p.alive() {
				return true
			}
			jobs, running, roles, synced := w.importState(ctx)
			switch stage {
			case "in-jobs":
				return jobs > 0
			case "running":
				// A job runs for a second or two; if the jobs left failed
				// whole (their rows went per user) before a look saw one
				// running, none will run again: kill at this point instead.
				return running > 0 || jobs == 0
			case "marking":
				return roles > 0
			}
			return synced >= target
		})
		if !p.alive() {
			r.fail("syncd %d exited by itself before its kill: %s", k, tail(p.logPath, 2))
		}
		if !ok {
			r.fail("kill %d: stage %s not reached within 4m", k, stage)
			break
		}
		sleep(ctx, time.Duration(s.randFloat(0, 50))*time.Millisecond)
		p.kill()
		jobs, running, _, synced := w.importState(ctx)
		w.logf("kill -9 #%d (%s) after %s: %d/%d synced, %d import jobs (%d running in Auth0)",
			k, stage, time.Since(p.started).Round(time.Millisecond), synced, n, jobs, running)
		if synced == n {
			r.fail("kill %d came after the backfill had finished: the scenario proves nothing", k)
		}
		if s.cfg.FastLeases {
			if _, _, err := w.expireLeases(ctx, p.pid); err != nil {
				return err
			}
			if _, err := w.pool.Exec(ctx, `UPDATE syncd_import_jobs SET locked_until = now() - interval '1 second'`); err != nil {
				return fmt.Errorf("expire import job leases: %w", err)
			}
		}
	}
	p, err := w.start(ctx, "final", "notify", args...)
	if err != nil {
		return err
	}
	c, took, _ := w.waitSettled(ctx, 5*time.Minute)
	w.logf("settled %s after the last start: %s", took.Round(time.Millisecond), c)
	r.check(p.alive(), "the last syncd exited by itself: %s", tail(p.logPath, 2))
	w.stop(p)
	jobs, _, _, _ := w.importState(ctx)
	r.check(jobs == 0, "%d import jobs left", jobs)
	w.verify(ctx, expectations{})
	r.note("%d employees, %d kills, converged in %s", n, s.cfg.Kills, time.Since(start).Round(100*time.Millisecond))
	r.note("imports: %d×202, %d lost, %d×429; role batches %d; POST /users 201: %d",
		w.emu.callCount(bulkImportEndpoint, http.StatusAccepted), w.emu.callCount(bulkImportEndpoint, 0),
		w.emu.callCount(bulkImportEndpoint, http.StatusTooManyRequests),
		w.emu.CallCount("POST /api/v2/roles/{id}/users"), w.emu.callCount("POST /api/v2/users", http.StatusCreated))
	failed := 0
	for _, j := range w.emu.ImportJobs() {
		if j.Status == "failed" {
			failed++
		}
	}
	r.check(failed > 0, "no import job failed whole: the scenario did not inject its failure")
	r.note("%d import jobs failed whole; %.2f Auth0 calls/employee", failed, float64(w.emu.apiCalls())/float64(n))
	return nil
}

// importState reads how many import jobs exist, how many are running in
// Auth0, how many are in their role batches, and how many rows are synced.
func (w *world) importState(ctx context.Context) (jobs, running, roles, synced int) {
	_ = w.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM syncd_import_jobs),
		(SELECT count(*) FROM syncd_import_jobs WHERE state = 'running'),
		(SELECT count(*) FROM syncd_import_jobs WHERE state = 'roles'),
		(SELECT count(*) FROM employees WHERE auth0_sync_status = 'synced')`).Scan(&jobs, &running, &roles, &synced)
	return jobs, running, roles, synced
}
