package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/syncd/syncd/auth0/emulator"
)

// rateResult is scenario 3 for one plan.
type rateResult struct {
	Plan      string  `json:"plan"`
	Rate      float64 `json:"limit_per_s"`
	Burst     int     `json:"burst"`
	Employees int     `json:"employees"`
	// Seconds from the INSERT to every row synced.
	Seconds float64 `json:"seconds_to_converge"`
	// Requests the emulator admitted (any answer but 429), and the share
	// of what its bucket could admit over the run: burst + rate × the
	// one-second refills that happened.
	Admitted     int64   `json:"admitted"`
	AchievedRate float64 `json:"achieved_per_s"`
	Share        float64 `json:"share_of_limit"`
	TooMany      int64   `json:"429s"`
	TooManyPct   float64 `json:"429_pct"`
	CallsPerEmp  float64 `json:"calls_per_employee"`
	Verified     bool    `json:"verified"`
}

type planSpec struct {
	plan  string
	rate  float64
	burst int
	n     int
}

func (b *bench) runRateLimited(ctx context.Context, ps planSpec) (*rateResult, error) {
	res := &rateResult{Plan: ps.plan, Rate: ps.rate, Burst: ps.burst, Employees: ps.n}
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
	p, err := b.startSyncd(ctx, daemonOptions{name: "rate-" + ps.plan, dbURL: db.url, emuURL: e.URL, source: "notify",
		extra: []string{"--auth0-rate", strconv.FormatFloat(ps.rate, 'f', -1, 64), "--auth0-burst", strconv.Itoa(ps.burst)}})
	if err != nil {
		return nil, err
	}
	defer p.kill()
	settle(e, 30*time.Second)
	// Both buckets (the emulator's and syncd's own) full again.
	time.Sleep(time.Duration(math.Ceil(float64(ps.burst)/ps.rate)+1) * time.Second)

	e.ResetCalls()
	start := time.Now()
	if err := db.exec(ctx, insertEmployees, ps.n); err != nil {
		return nil, fmt.Errorf("insert: %w", err)
	}
	timeout := time.Duration(float64(2*ps.n)/ps.rate*float64(time.Second))*2 + time.Minute
	_, at, err := waitSynced(ctx, db.pool, int64(ps.n), 50*time.Millisecond, timeout)
	if err != nil {
		return res, err
	}
	elapsed := at.Sub(start)
	all := e.apiCalls()
	res.TooMany = e.apiStatus(429)
	res.Admitted = all - res.TooMany
	res.Seconds = round(elapsed.Seconds(), 2)
	res.AchievedRate = round(float64(res.Admitted)/elapsed.Seconds(), 2)
	capacity := float64(ps.burst) + ps.rate*float64(at.Unix()-start.Unix())
	res.Share = round(float64(res.Admitted)/capacity, 4)
	res.TooManyPct = round(100*float64(res.TooMany)/math.Max(1, float64(all)), 3)
	res.CallsPerEmp = round(float64(all)/float64(ps.n), 3)
	if res.Verified, err = verifyAccounts(ctx, db, e, int64(ps.n)); err != nil {
		return res, err
	}
	if err := p.stop(); err != nil {
		return res, err
	}
	return res, nil
}
