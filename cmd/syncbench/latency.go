package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/reconcile"
)

// latencyResult is scenario 1 for one source.
type latencyResult struct {
	Source  string  `json:"source"`
	Inserts int     `json:"inserts"`
	P50     float64 `json:"p50_ms"`
	P95     float64 `json:"p95_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
	Mean    float64 `json:"mean_ms"`
	// The legs, medians: INSERT sent → first Auth0 request (the change
	// source and the claim); first request → role assigned (Auth0 calls);
	// role assigned → the synced row seen (the record and this poll).
	PickupP50 float64 `json:"pickup_p50_ms"`
	PickupP99 float64 `json:"pickup_p99_ms"`
	Auth0P50  float64 `json:"auth0_p50_ms"`
	RecordP50 float64 `json:"record_p50_ms"`
	// Auth0 requests per new employee (every /api/v2 request) and writes.
	CallsPerNew  float64 `json:"calls_per_new_employee"`
	WritesPerNew float64 `json:"writes_per_new_employee"`
	// Verified: every row synced and its account holds the role.
	Verified bool `json:"verified"`
	// Lost: inserts that no reconcile picked up within lostAfter (the row
	// stays pending); LostKeys says what each row held.
	Lost     int      `json:"lost"`
	LostKeys []string `json:"lost_keys,omitempty"`
}

// A key with no Auth0 request lostAfter after its INSERT is lost (the
// latency target is 25 ms); maxLost losses end the scenario.
const (
	lostAfter = 10 * time.Second
	maxLost   = 5
)

// lostKey describes a lost employee row: its status, attempts (0: no
// reconcile ever claimed it) and outbox rows.
func lostKey(ctx context.Context, q querier, id int64) string {
	var status string
	var attempts, outbox int64
	err := q.QueryRow(ctx, `SELECT auth0_sync_status, auth0_sync_attempts, (SELECT count(*) FROM auth0_outbox WHERE employee_id = $1)
		FROM employees WHERE id = $1`, id).Scan(&status, &attempts, &outbox)
	if err != nil {
		return fmt.Sprintf("employee %d (%v)", id, err)
	}
	return fmt.Sprintf("employee %d: %s, %d attempts, %d outbox rows", id, status, attempts, outbox)
}

// changeResult is what the follow-up changes of the latency database cost,
// per employee.
type changeResult struct {
	Sample int `json:"sample"`
	// One UPDATE of department for Sample synced employees.
	FieldChangeCalls  float64 `json:"field_change_calls"`
	FieldChangeWrites float64 `json:"field_change_writes"`
	// An outbox row for each of Sample converged employees (what a
	// duplicate or stray event costs).
	ConvergedCalls  float64 `json:"converged_calls"`
	ConvergedWrites float64 `json:"converged_writes"`
	// reconcile.Requeue of Sample converged employees (what the drift scan
	// does to drifted rows: the last-applied record is cleared, so Auth0
	// is read).
	RequeueCalls  float64 `json:"requeue_calls"`
	RequeueWrites float64 `json:"requeue_writes"`
}

// legTracker follows the Auth0 requests of the one insert in flight.
type legTracker struct {
	mu    sync.Mutex
	first time.Time
	role  time.Time
	done  chan struct{}
}

func (b *bench) runLatency(ctx context.Context, source string, withChanges bool) (*latencyResult, *changeResult, error) {
	n := b.cfg.Sizes.LatencyInserts
	db, dropDB, err := b.newDatabase(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer dropDB()
	e, err := startEmulator(emulator.Options{})
	if err != nil {
		return nil, nil, err
	}
	defer e.Close()
	p, err := b.startSyncd(ctx, daemonOptions{name: "latency-" + source, dbURL: db.url, emuURL: e.URL, source: source})
	if err != nil {
		return nil, nil, err
	}
	defer p.kill()
	if source == "replication" {
		if err := waitSlotActive(ctx, db, "syncbench_latency_replication"); err != nil {
			return nil, nil, err
		}
	}
	settle(e, 20*time.Second)

	var cur atomic.Pointer[legTracker]
	e.setHook(func(ev apiEvent) {
		t := cur.Load()
		if t == nil || !strings.HasPrefix(ev.path, "/api/v2/") {
			return
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.first.IsZero() {
			t.first = ev.start
		}
		if ev.method == "POST" && strings.HasSuffix(ev.path, "/roles") && ev.status < 300 && t.role.IsZero() {
			t.role = ev.end
			close(t.done)
		}
	})
	defer e.setHook(nil)

	writer, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	defer writer.Close(context.WithoutCancel(ctx))
	poller, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	defer poller.Close(context.WithoutCancel(ctx))

	e.ResetCalls()
	var total, pickup, auth0Leg, record []float64
	var lost []string
	for i := range n {
		t := &legTracker{done: make(chan struct{})}
		cur.Store(t)
		start := time.Now()
		var id int64
		err := writer.QueryRow(ctx, `INSERT INTO employees (name, email, department, phone_number, connecteam_id)
			VALUES ($1, $2, 'Production', '+15550100', $3) RETURNING id`,
			fmt.Sprintf("Latency %s %d", source, i), fmt.Sprintf("lat-%s-%d@bench.example", source, i), fmt.Sprintf("ct-%d", i)).Scan(&id)
		if err != nil {
			return nil, nil, fmt.Errorf("insert: %w", err)
		}
		select {
		case <-t.done:
		case <-time.After(lostAfter):
			// Lost: the row is still pending and no Auth0 request came.
			// Count it, say what the row holds, and go on (up to a point).
			lost = append(lost, lostKey(ctx, poller, id))
			cur.Store(nil)
			if len(lost) >= maxLost {
				return nil, nil, fmt.Errorf("%d keys lost (%v); statuses: %s%s", len(lost), lost, statusSummary(ctx, poller), p.stuck(ctx, poller))
			}
			continue
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		var synced time.Time
		for deadline := time.Now().Add(30 * time.Second); ; {
			var status string
			if err := poller.QueryRow(ctx, `SELECT auth0_sync_status FROM employees WHERE id = $1`, id).Scan(&status); err != nil {
				return nil, nil, fmt.Errorf("read status: %w", err)
			}
			if status == reconcile.StatusSynced {
				synced = time.Now()
				break
			}
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("employee %d: status %s 30s after its role was assigned", id, status)
			}
			time.Sleep(100 * time.Microsecond)
		}
		cur.Store(nil)
		t.mu.Lock()
		total = append(total, msOf(synced.Sub(start)))
		pickup = append(pickup, msOf(t.first.Sub(start)))
		auth0Leg = append(auth0Leg, msOf(t.role.Sub(t.first)))
		record = append(record, msOf(synced.Sub(t.role)))
		t.mu.Unlock()
	}
	e.setHook(nil)
	done := n - len(lost)
	res := &latencyResult{Source: source, Inserts: n, Lost: len(lost), LostKeys: lost,
		CallsPerNew: float64(e.apiCalls()) / float64(done), WritesPerNew: float64(e.WriteCount()) / float64(done)}
	s := sortedCopy(total)
	res.P50, res.P95, res.P99, res.Max, res.Mean = percentile(s, .50), percentile(s, .95), percentile(s, .99), s[len(s)-1], round(mean(s), 3)
	pk := sortedCopy(pickup)
	res.PickupP50, res.PickupP99 = percentile(pk, .5), percentile(pk, .99)
	res.Auth0P50 = percentile(sortedCopy(auth0Leg), .5)
	res.RecordP50 = percentile(sortedCopy(record), .5)
	if res.Verified, err = verifyAccounts(ctx, db, e, int64(done)); err != nil {
		return res, nil, err
	}

	var ch *changeResult
	if withChanges && len(lost) == 0 {
		if ch, err = b.measureChanges(ctx, db, e, int64(n)); err != nil {
			return res, nil, err
		}
	}
	if err := p.stop(); err != nil {
		return res, ch, err
	}
	if _, _, leak := p.logStats(); leak {
		return res, ch, fmt.Errorf("syncd run %s: a secret or token in its log", p.name)
	}
	return res, ch, nil
}

// verifyAccounts checks that want rows are synced, each linked to an
// account that exists and holds the mapped role.
func verifyAccounts(ctx context.Context, db *database, e *emu, want int64) (bool, error) {
	rows, err := db.pool.Query(ctx, `SELECT auth0_user_id FROM employees WHERE auth0_sync_status = 'synced' AND auth0_user_id IS NOT NULL`)
	if err != nil {
		return false, fmt.Errorf("read accounts: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, fmt.Errorf("read accounts: %w", err)
	}
	if int64(len(ids)) != want {
		return false, fmt.Errorf("%d rows synced and linked, want %d", len(ids), want)
	}
	for _, uid := range ids {
		roles := e.UserRoles(uid)
		if len(roles) != 1 || roles[0] != emulator.DefaultRole {
			return false, fmt.Errorf("account %s: roles %v, want [%s]", uid, roles, emulator.DefaultRole)
		}
	}
	return true, nil
}

// measureChanges counts the Auth0 calls of a single-field change, of a
// converged employee woken by an outbox row, and of a requeued one.
func (b *bench) measureChanges(ctx context.Context, db *database, e *emu, synced int64) (*changeResult, error) {
	k := b.cfg.Sizes.ChangeSample
	res := &changeResult{Sample: k}
	per := func(n int64) float64 { return float64(n) / float64(k) }
	timeout := 2 * time.Minute

	e.ResetCalls()
	if err := db.exec(ctx, `UPDATE employees SET department = 'Changed' WHERE id IN (SELECT id FROM employees ORDER BY id LIMIT $1)`, k); err != nil {
		return nil, fmt.Errorf("update department: %w", err)
	}
	if _, _, err := waitSynced(ctx, db.pool, synced, 20*time.Millisecond, timeout); err != nil {
		return nil, err
	}
	if err := waitOutboxEmpty(ctx, db.pool, timeout); err != nil {
		return nil, err
	}
	res.FieldChangeCalls, res.FieldChangeWrites = per(e.apiCalls()), per(e.WriteCount())

	e.ResetCalls()
	if err := db.exec(ctx, `WITH ins AS (INSERT INTO auth0_outbox (employee_id, op)
			SELECT id, 'resync' FROM employees ORDER BY id LIMIT $1 RETURNING 1)
		SELECT pg_notify('auth0_outbox', '') FROM (SELECT count(*) FROM ins) c`, k); err != nil {
		return nil, fmt.Errorf("queue converged employees: %w", err)
	}
	if err := waitOutboxEmpty(ctx, db.pool, timeout); err != nil {
		return nil, err
	}
	res.ConvergedCalls, res.ConvergedWrites = per(e.apiCalls()), per(e.WriteCount())

	var ids []string
	rows, err := db.pool.Query(ctx, `SELECT id::text FROM employees ORDER BY employees.id LIMIT $1`, k)
	if err != nil {
		return nil, fmt.Errorf("read ids: %w", err)
	}
	if ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, fmt.Errorf("read ids: %w", err)
	}
	e.ResetCalls()
	if _, err := reconcile.Requeue(ctx, db.pool, ids, false); err != nil {
		return nil, err
	}
	if _, _, err := waitSynced(ctx, db.pool, synced, 20*time.Millisecond, timeout); err != nil {
		return nil, err
	}
	if err := waitOutboxEmpty(ctx, db.pool, timeout); err != nil {
		return nil, err
	}
	res.RequeueCalls, res.RequeueWrites = per(e.apiCalls()), per(e.WriteCount())
	return res, nil
}

// waitSlotActive waits until the replication source streams from its slot.
func waitSlotActive(ctx context.Context, db *database, slot string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := db.count(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active AND confirmed_flush_lsn IS NOT NULL`, slot)
		if err != nil {
			return fmt.Errorf("read slot: %w", err)
		}
		if n == 1 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replication slot %s not active after 30s", slot)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stuck describes a daemon that stopped making progress: the replication
// slot and walsender as the server sees them, and (SIGQUIT) the daemon's
// goroutine dump in its log.
func (p *syncdProc) stuck(ctx context.Context, q querier) string {
	var b strings.Builder
	rows, err := q.Query(ctx, `SELECT s.slot_name, s.active, coalesce(s.confirmed_flush_lsn::text, ''), pg_current_wal_lsn()::text,
			coalesce(r.state, ''), coalesce(r.sent_lsn::text, ''), coalesce(r.flush_lsn::text, '')
		FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid`)
	if err == nil {
		for rows.Next() {
			var slot, confirmed, current, state, sent, flush string
			var active bool
			if rows.Scan(&slot, &active, &confirmed, &current, &state, &sent, &flush) == nil {
				fmt.Fprintf(&b, "; slot %s active=%v confirmed_flush=%s current_wal=%s walsender=%s sent=%s flush=%s", slot, active, confirmed, current, state, sent, flush)
			}
		}
		rows.Close()
	}
	var outbox int64
	if q.QueryRow(ctx, "SELECT count(*) FROM auth0_outbox").Scan(&outbox) == nil {
		fmt.Fprintf(&b, "; outbox rows %d", outbox)
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	fmt.Fprintf(&b, "; goroutine dump in %s", p.logPath)
	return b.String()
}
