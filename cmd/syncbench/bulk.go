package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/syncd/syncd/auth0/emulator"
)

// bulkResult is one rate-limited backfill of never-created employees through
// users-import jobs (--bulk-create auto), with the per-user path of the same
// plan (the rate-limited scenario of the same run) beside it.
type bulkResult struct {
	Plan      string  `json:"plan"`
	Rate      float64 `json:"limit_per_s"`
	Burst     int     `json:"burst"`
	Employees int     `json:"employees"`
	// ImportRate is the emulator's import speed for the tenant (users/s, shared by the jobs running at once).
	ImportRate float64 `json:"import_users_per_s"`
	// Seconds from the INSERT to every row synced.
	Seconds      float64 `json:"seconds_to_converge"`
	PerSecond    float64 `json:"employees_per_s"`
	Calls        int64   `json:"calls"`
	CallsPerEmp  float64 `json:"calls_per_employee"`
	Jobs         int64   `json:"import_jobs"`
	RoleBatches  int64   `json:"role_batches"`
	PerUserCalls int64   `json:"post_users"`
	TooMany      int64   `json:"429s"`
	JobLimit429  int64   `json:"429s_active_import_jobs"`
	TooManyPct   float64 `json:"429_pct"`
	Verified     bool    `json:"verified"`
	// PerUser* is the per-user path of the same plan in the same run,
	// measured at PerUserN employees and scaled linearly to Employees.
	PerUserN       int     `json:"per_user_employees_measured,omitempty"`
	PerUserMeasure float64 `json:"per_user_seconds_measured,omitempty"`
	PerUserScaled  float64 `json:"per_user_seconds_scaled,omitempty"`
	Speedup        float64 `json:"speedup,omitempty"`
}

func (b *bench) runBulk(ctx context.Context, ps planSpec) (*bulkResult, error) {
	res := &bulkResult{Plan: ps.plan, Rate: ps.rate, Burst: ps.burst, Employees: ps.n}
	db, dropDB, err := b.newDatabase(ctx)
	if err != nil {
		return nil, err
	}
	defer dropDB()
	e, err := startEmulator(emulator.Options{Plan: ps.plan})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	res.ImportRate = emulator.ImportRateEnterprise
	if ps.plan == "free" {
		res.ImportRate = emulator.ImportRateFree
	}
	p, err := b.startSyncd(ctx, daemonOptions{name: "bulk-" + ps.plan, dbURL: db.url, emuURL: e.URL, source: "notify",
		extra: []string{"--auth0-rate", strconv.FormatFloat(ps.rate, 'f', -1, 64), "--auth0-burst", strconv.Itoa(ps.burst),
			"--bulk-create", "auto"}})
	if err != nil {
		return nil, err
	}
	defer p.kill()
	settle(e, 30*time.Second)
	time.Sleep(time.Duration(math.Ceil(float64(ps.burst)/ps.rate)+1) * time.Second)

	e.ResetCalls()
	start := time.Now()
	if err := db.exec(ctx, insertEmployees, ps.n); err != nil {
		return nil, fmt.Errorf("insert: %w", err)
	}
	timeout := time.Duration(float64(ps.n)/res.ImportRate*float64(time.Second)) + 5*time.Minute
	_, at, err := waitSynced(ctx, db.pool, int64(ps.n), 100*time.Millisecond, timeout)
	if err != nil {
		return res, fmt.Errorf("%w (%s)", err, p.tail())
	}
	elapsed := at.Sub(start)
	res.Seconds = round(elapsed.Seconds(), 2)
	res.PerSecond = round(float64(ps.n)/elapsed.Seconds(), 1)
	res.Calls = e.apiCalls()
	res.CallsPerEmp = round(float64(res.Calls)/float64(ps.n), 4)
	res.Jobs = e.CallCount("POST /api/v2/jobs/users-imports") - count429(e, "POST /api/v2/jobs/users-imports")
	res.JobLimit429 = count429(e, "POST /api/v2/jobs/users-imports")
	res.RoleBatches = e.CallCount("POST /api/v2/roles/{id}/users")
	res.PerUserCalls = e.CallCount("POST /api/v2/users")
	res.TooMany = e.apiStatus(http.StatusTooManyRequests)
	res.TooManyPct = round(100*float64(res.TooMany)/math.Max(1, float64(res.Calls)), 3)
	if res.Verified, err = verifyAccounts(ctx, db, e, int64(ps.n)); err != nil {
		return res, err
	}
	if err := p.stop(); err != nil {
		return res, err
	}
	return res, nil
}

func count429(e *emu, endpoint string) int64 {
	for _, c := range e.Calls() {
		if c.Endpoint == endpoint && c.Status == http.StatusTooManyRequests {
			return c.Count
		}
	}
	return 0
}

// bulkTargets are issue 13's: seconds to converge per plan.
var bulkTargets = map[string]float64{"enterprise": 150, "free": 240}

// evaluateBulk sets each bulk result's per-user comparison (the
// rate-limited scenario of the same plan, scaled linearly: at a rate limit
// the per-user path's time is calls / rate, 2 calls per employee) and adds
// the targets.
func (r *results) evaluateBulk(add func(name, goal string, v float64, got string, met bool)) {
	for _, q := range r.Bulk {
		for _, pu := range r.RateLimited {
			if pu.Plan == q.Plan && pu.Employees > 0 && pu.Seconds > 0 {
				q.PerUserN, q.PerUserMeasure = pu.Employees, pu.Seconds
				q.PerUserScaled = round(pu.Seconds*float64(q.Employees)/float64(pu.Employees), 1)
				q.Speedup = round(q.PerUserScaled/q.Seconds, 1)
			}
		}
		if goal, ok := bulkTargets[q.Plan]; ok {
			add(fmt.Sprintf("bulk create, %s, %d new employees", q.Plan, q.Employees), fmt.Sprintf("≤ %.0f s", goal), q.Seconds,
				fmt.Sprintf("%.1f s (%.0f employees/s)", q.Seconds, q.PerSecond), q.Seconds <= goal && q.Verified)
		}
		if q.Speedup > 0 {
			add(fmt.Sprintf("bulk create vs per-user, %s", q.Plan), "≥ 8×", q.Speedup,
				fmt.Sprintf("%.1f× (per-user %.0f s for %d, scaled from %d in %.1f s)", q.Speedup, q.PerUserScaled, q.Employees, q.PerUserN, q.PerUserMeasure),
				q.Speedup >= 8)
		}
		add(fmt.Sprintf("429s, bulk %s", q.Plan), "< 0.5 % of requests", q.TooManyPct, fmt.Sprintf("%.2f %% (%d of %d)", q.TooManyPct, q.TooMany, q.Calls), q.TooManyPct < 0.5)
	}
}

func (r *results) markdownBulk(p func(format string, args ...any)) {
	if len(r.Bulk) == 0 {
		return
	}
	p("\n## 3b. Bulk create (users-import jobs)\n\n")
	p("Emulator on a plan (its rate limit, and its import speed for the tenant, shared by the jobs running at once: %g users/s enterprise, %g free — estimates, see\n", emulator.ImportRateEnterprise, emulator.ImportRateFree)
	p("auth0-bulk.md §1.11); `syncd run --bulk-create auto` with `--auth0-rate`/`--auth0-burst` sized to it; one INSERT of every row.\n")
	p("Per-user is the rate-limited scenario (§3) of the same plan in the same run, `--bulk-create off`, scaled linearly to N\n")
	p("(at the limit its time is 2 calls per employee / rate).\n\n")
	p("| plan | employees | time to converge | employees/s | import jobs | role batches | calls / employee | 429s | per-user (scaled) | speedup |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, q := range r.Bulk {
		perUser := "—"
		if q.PerUserN > 0 {
			perUser = fmt.Sprintf("%.0f s (%d in %.1f s)", q.PerUserScaled, q.PerUserN, q.PerUserMeasure)
		}
		p("| %s (%g/s, burst %d) | %d | %.1f s | %.0f | %d (%d×429 active jobs) | %d | %.3f | %d (%.2f %%) | %s | %.1f× |\n",
			q.Plan, q.Rate, q.Burst, q.Employees, q.Seconds, q.PerSecond, q.Jobs, q.JobLimit429, q.RoleBatches, q.CallsPerEmp,
			q.TooMany, q.TooManyPct, perUser, q.Speedup)
	}
}
