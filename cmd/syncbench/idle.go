package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	syncdsql "github.com/syncd/syncd/sql"
)

// idleResult is scenario 6 for one source.
type idleResult struct {
	Source  string  `json:"source"`
	Seconds float64 `json:"seconds"`
	// CPU time of the process over the window, and as a share of one core.
	CPUS       float64 `json:"cpu_s"`
	CPUPct     float64 `json:"cpu_pct_of_core"`
	RSSMiB     float64 `json:"rss_mib"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// What it did meanwhile: Auth0 requests and database transactions.
	Auth0Calls int64 `json:"auth0_calls"`
	DBXacts    int64 `json:"db_transactions"`
}

// runIdle starts syncd on an empty table, lets its start-up work finish,
// then measures it doing nothing for the idle window.
func (b *bench) runIdle(ctx context.Context, source string) (*idleResult, error) {
	res := &idleResult{Source: source, Seconds: b.cfg.Sizes.Idle.Seconds()}
	db, e, p, stop, err := b.startStack(ctx, syncdsql.KeyBigint, "idle-"+source, source)
	if err != nil {
		return nil, err
	}
	defer stop()
	settle(e, 20*time.Second)
	time.Sleep(time.Second)
	conn, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	x0, err := dbXacts(ctx, conn, db.name)
	if err != nil {
		return nil, err
	}
	e.ResetCalls()
	st0, err := readProcStat(p.pid())
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	select {
	case <-time.After(b.cfg.Sizes.Idle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	st1, err := readProcStat(p.pid())
	if err != nil {
		return nil, err
	}
	wall := time.Since(t0)
	rss, hwm, err := procMem(p.pid())
	if err != nil {
		return nil, err
	}
	res.Auth0Calls = e.allCalls()
	cpu := st1.cpu() - st0.cpu()
	res.CPUS = round(cpu.Seconds(), 3)
	res.CPUPct = round(100*cpu.Seconds()/wall.Seconds(), 3)
	res.RSSMiB = round(float64(rss)/(1<<20), 1)
	res.PeakRSSMiB = round(float64(hwm)/(1<<20), 1)
	if err := p.stop(); err != nil {
		return res, err
	}
	time.Sleep(500 * time.Millisecond) // exited backends flush their counters
	x1, err := dbXacts(ctx, conn, db.name)
	if err != nil {
		return res, err
	}
	res.DBXacts = x1 - x0 - 1 // minus the first read (the second is not counted yet)
	return res, nil
}
