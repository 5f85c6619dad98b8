package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/auth0/emulator"
	syncdsql "github.com/syncd/syncd/sql"
)

// backfillResult is scenario 2.
type backfillResult struct {
	Employees int `json:"employees"`
	// InsertMS is the one INSERT of every row (the triggers write the
	// outbox in the same statement).
	InsertMS float64 `json:"insert_ms"`
	// Seconds from the INSERT being sent to every row synced.
	Seconds      float64 `json:"seconds"`
	PerSecond    float64 `json:"employees_per_s"`
	CallsPerEmp  float64 `json:"auth0_calls_per_employee"`
	WritesPerEmp float64 `json:"auth0_writes_per_employee"`
	// Transactions per employee: the database's xact_commit+xact_rollback
	// delta (pg_stat_database, read after syncd exited so that its
	// backends flushed their counters) minus this program's own.
	XactsPerEmp float64 `json:"db_transactions_per_employee"`
	// CPU seconds of each party during the backfill.
	CPU cpuSplit `json:"cpu"`
	// The round-trip run: a second, smaller backfill with syncd connected
	// through a counting proxy.
	RTEmployees   int     `json:"rt_employees"`
	RoundTripsPer float64 `json:"db_round_trips_per_employee"`
	ServerBursts  float64 `json:"db_server_bursts_per_employee"`
	RTConnections int64   `json:"rt_connections"`
	RTPerSecond   float64 `json:"rt_employees_per_s"`
	// Employees per claim transaction and per outcome transaction (syncd's
	// group commits, from its metrics).
	ClaimGroup    float64 `json:"employees_per_claim_transaction"`
	RecordGroup   float64 `json:"employees_per_record_transaction"`
	Verified      bool    `json:"verified"`
	WarnLogLines  int     `json:"warn_log_lines"`
	ErrorLogLines int     `json:"error_log_lines"`
}

const insertEmployees = `INSERT INTO employees (name, email, department, phone_number, connecteam_id)
	SELECT 'Backfill ' || g, 'backfill-' || g || '@bench.example', (ARRAY['Production', 'Shipping', 'Quality', 'Maintenance'])[g % 4 + 1],
	       '+1555' || lpad(g::text, 7, '0'), 'ct-' || g
	  FROM generate_series(1, $1::int) g`

func (b *bench) runBackfill(ctx context.Context) (*backfillResult, error) {
	n := b.cfg.Sizes.Backfill
	res := &backfillResult{Employees: n}
	db, e, p, stop, err := b.startStack(ctx, syncdsql.KeyBigint, "backfill", "notify")
	if err != nil {
		return nil, err
	}
	defer stop()
	settle(e, 20*time.Second)
	db.pool.Reset() // every transaction from here on is syncd's or conn's

	conn, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	mine := 0 // this program's transactions on the database
	xact0, err := dbXacts(ctx, conn, db.name)
	if err != nil {
		conn.Close(ctx)
		return nil, err
	}
	mine++
	e.ResetCalls()
	meter := b.meterCPU(p.pid())
	start := time.Now()
	if _, err := conn.Exec(ctx, insertEmployees, n); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("insert: %w", err)
	}
	mine++
	res.InsertMS = msOf(time.Since(start))
	polls, at, err := waitSynced(ctx, conn, int64(n), 20*time.Millisecond, b.cfg.Sizes.ConvergeTimeout)
	mine += polls
	if err != nil {
		conn.Close(ctx)
		return res, err
	}
	res.CPU = meter.stop()
	res.Seconds = round(at.Sub(start).Seconds(), 3)
	res.PerSecond = round(float64(n)/at.Sub(start).Seconds(), 1)
	res.CallsPerEmp = float64(e.apiCalls()) / float64(n)
	res.WritesPerEmp = float64(e.WriteCount()) / float64(n)
	if res.ClaimGroup, res.RecordGroup, err = p.groupSizes(); err != nil {
		conn.Close(ctx)
		return res, err
	}
	conn.Close(ctx)
	if res.Verified, err = verifyAccounts(ctx, db, e, int64(n)); err != nil {
		return res, err
	}
	mine++
	db.pool.Reset()
	if err := p.stop(); err != nil {
		return res, err
	}
	warns, errs, leak := p.logStats()
	res.WarnLogLines, res.ErrorLogLines = warns, errs
	if leak {
		return res, fmt.Errorf("syncd run backfill: a secret or token in its log")
	}
	time.Sleep(500 * time.Millisecond) // exited backends flush their counters
	conn, err = pgx.Connect(ctx, db.url)
	if err != nil {
		return res, fmt.Errorf("connect: %w", err)
	}
	xact1, err := dbXacts(ctx, conn, db.name)
	conn.Close(ctx)
	if err != nil {
		return res, err
	}
	res.XactsPerEmp = round(float64(xact1-xact0-int64(mine))/float64(n), 2)

	if err := b.runBackfillRoundTrips(ctx, res); err != nil {
		return res, err
	}
	return res, nil
}

// dbXacts reads the transactions the database has counted.
func dbXacts(ctx context.Context, conn *pgx.Conn, name string) (int64, error) {
	// One statement, one transaction: statistics are read afresh in each.
	var n int64
	if err := conn.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1`, name).Scan(&n); err != nil {
		return 0, fmt.Errorf("read pg_stat_database: %w", err)
	}
	return n, nil
}

// runBackfillRoundTrips backfills again, smaller, with syncd connected
// through the counting proxy.
func (b *bench) runBackfillRoundTrips(ctx context.Context, res *backfillResult) error {
	n := b.cfg.Sizes.BackfillRT
	res.RTEmployees = n
	db, dropDB, err := b.newDatabase(ctx)
	if err != nil {
		return err
	}
	defer dropDB()
	e, err := startEmulator(emulator.Options{})
	if err != nil {
		return err
	}
	defer e.Close()
	proxy, err := startProxy(fmt.Sprintf("127.0.0.1:%d", b.pg.Port()))
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	defer proxy.Close()
	p, err := b.startSyncd(ctx, daemonOptions{name: "backfill-rt", dbURL: replaceHostPort(db.url, proxy.addr()), emuURL: e.URL, source: "notify"})
	if err != nil {
		return err
	}
	defer p.kill()
	settle(e, 20*time.Second)
	proxy.reset()
	start := time.Now()
	if err := db.exec(ctx, insertEmployees, n); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	_, at, err := waitSynced(ctx, db.pool, int64(n), 20*time.Millisecond, b.cfg.Sizes.ConvergeTimeout)
	if err != nil {
		return err
	}
	// The outbox rows of the last keys are deleted just after they are
	// recorded: count those round trips too.
	if err := waitOutboxEmpty(ctx, db.pool, time.Minute); err != nil {
		return err
	}
	res.RoundTripsPer = round(float64(proxy.sends.Load())/float64(n), 2)
	res.ServerBursts = round(float64(proxy.recvs.Load())/float64(n), 2)
	res.RTConnections = proxy.conns.Load()
	res.RTPerSecond = round(float64(n)/at.Sub(start).Seconds(), 1)
	return p.stop()
}
