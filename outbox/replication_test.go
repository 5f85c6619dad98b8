package outbox

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers/pgtest"
)

// walLSN is the server's current WAL insert position: past every commit
// record so far (the test servers commit asynchronously, so the write
// position may still be behind them).
func (f *fixture) walLSN(t *testing.T) pglogrepl.LSN {
	t.Helper()
	var s string
	require.NoError(t, f.pool.QueryRow(context.Background(), "SELECT pg_current_wal_insert_lsn()::text").Scan(&s))
	lsn, err := pglogrepl.ParseLSN(s)
	require.NoError(t, err)
	return lsn
}

// confirmed is the slot's confirmed_flush_lsn (0 if there is no slot yet).
func (f *fixture) confirmed(t *testing.T) pglogrepl.LSN {
	t.Helper()
	var s *string
	err := f.pool.QueryRow(context.Background(), "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", f.opts.slot).Scan(&s)
	if err != nil || s == nil {
		return 0
	}
	lsn, err := pglogrepl.ParseLSN(*s)
	require.NoError(t, err)
	return lsn
}

// slotActive reports that the slot exists, is streamed, and was done being
// created: a transaction that starts now will be in its stream (one that
// committed before the slot's consistent point only the catch-up scan finds).
func (f *fixture) slotActive(t *testing.T) bool {
	t.Helper()
	return count(t, f.pool, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active AND confirmed_flush_lsn IS NOT NULL", f.opts.slot) == 1
}

func TestReplicationConfirmedFlushAdvancesAsWorkCompletes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindReplication, pgtest.NewDatabase(t))
	p := startProc(t, kindReplication, f.url, f.opts)
	require.Eventually(t, func() bool { return f.slotActive(t) }, waitLong, pollEvery)

	ids := insertEmployees(t, f.pool, 5)
	afterInsert := f.walLSN(t)
	require.Eventually(t, func() bool { return p.rec.handledAll(ids) && f.outbox(t) == 0 }, waitLong, pollEvery)
	require.Eventually(t, func() bool { return f.confirmed(t) >= afterInsert }, waitLong, pollEvery,
		"the slot confirms the handled transaction")

	// WAL that does not concern the outbox: an idle slot follows the
	// server's keepalives instead of pinning it.
	exec(t, f.pool, "INSERT INTO auth0_sync_logs (action, status) SELECT 'noise', 'ok' FROM generate_series(1, 100)")
	afterNoise := f.walLSN(t)
	require.Eventually(t, func() bool { return f.confirmed(t) >= afterNoise }, waitLong, pollEvery,
		"nothing in flight: the slot advances to the keepalive's WAL end")
	require.True(t, p.repl.IsLeader())
	require.Eventually(t, func() bool { return p.repl.SlotLagBytes() < 1<<20 }, waitLong, 10*time.Millisecond)
}

func TestReplicationKilledBeforeAckDeliversAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindReplication, pgtest.NewDatabase(t))
	var failing atomic.Bool
	failing.Store(true)
	var attempts atomic.Int32
	f.opts.handler = func(ctx context.Context, id string) error {
		attempts.Add(1)
		if failing.Load() {
			return context.DeadlineExceeded // could not record its outcome
		}
		return nil
	}
	f.opts.retryDelay = time.Hour
	first := startProc(t, kindReplication, f.url, f.opts)
	require.Eventually(t, func() bool { return f.slotActive(t) }, waitLong, pollEvery)

	ids := insertEmployees(t, f.pool, 1)
	after := f.walLSN(t)
	require.Eventually(t, func() bool { return attempts.Load() == 1 }, waitLong, time.Millisecond)
	first.stop(t) // dies before its ack

	require.Less(t, f.confirmed(t), after, "the unhandled transaction is not confirmed")
	require.Equal(t, 1, f.outbox(t), "its outbox row stays")

	failing.Store(false)
	f.opts.handler = nil
	second := startProc(t, kindReplication, f.url, f.opts)
	require.Equal(t, ids[0], recv(t, second.rec.seen), "the key is delivered again after the restart")
	require.Eventually(t, func() bool { return f.outbox(t) == 0 && f.confirmed(t) >= after }, waitLong, pollEvery)
}

func TestReplicationGracefulHandover(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindReplication, pgtest.NewDatabase(t))
	rec := newRecorder(f.pool)
	f.opts.rec = rec
	a := startProc(t, kindReplication, f.url, f.opts)
	b := startProc(t, kindReplication, f.url, f.opts)
	require.Eventually(t, func() bool { return a.repl.IsLeader() != b.repl.IsLeader() }, waitLong, pollEvery, "exactly one leader")
	leader, follower := a, b
	if b.repl.IsLeader() {
		leader, follower = b, a
	}
	require.Eventually(t, func() bool { return f.slotActive(t) }, waitLong, pollEvery)
	ids := insertEmployees(t, f.pool, 10)
	require.Eventually(t, func() bool { return rec.handledAll(ids) && f.outbox(t) == 0 }, waitLong, pollEvery)
	require.False(t, follower.repl.IsLeader(), "the follower waits")

	leader.stop(t) // resigns
	require.Eventually(t, func() bool { return follower.repl.IsLeader() }, waitLong, pollEvery)
	more := insertEmployees(t, f.pool, 10)
	require.Eventually(t, func() bool { return rec.handledAll(more) && f.outbox(t) == 0 }, waitLong, pollEvery)
}

func TestReplicationFollowerTakesOverWhenLeaderDies(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindReplication, pgtest.NewDatabase(t))
	rec := newRecorder(f.pool)
	f.opts.rec = rec
	f.opts.leaderTTL = time.Second

	// The leader reaches Postgres through a proxy; cutting it is the
	// leader's death as far as the database can tell.
	px := newProxy(t, hostPort(t, f.url))
	leaderURL := viaProxy(t, f.url, px)
	leader := startProc(t, kindReplication, leaderURL, f.opts)
	require.Eventually(t, func() bool { return leader.repl.IsLeader() && f.slotActive(t) }, waitLong, pollEvery)
	follower := startProc(t, kindReplication, f.url, f.opts)

	ids := insertEmployees(t, f.pool, 10)
	require.Eventually(t, func() bool { return rec.handledAll(ids) && f.outbox(t) == 0 }, waitLong, pollEvery)
	require.False(t, follower.repl.IsLeader())

	px.cut()
	more := insertEmployees(t, f.pool, 10)
	require.Eventually(t, func() bool { return follower.repl.IsLeader() }, waitLong, pollEvery, "the follower takes over")
	require.Eventually(t, func() bool { return rec.handledAll(more) && f.outbox(t) == 0 }, waitLong, pollEvery)
	require.Eventually(t, func() bool { return !leader.repl.IsLeader() }, waitLong, pollEvery,
		"the cut-off leader notices that its lease expired")
}

func TestReplicationLostSlotIsRecreatedAndOutboxScanned(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	f := newFixture(t, kindReplication, serverDatabase(t, srv))
	exec(t, f.pool, "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
	exec(t, f.pool, "SELECT pg_reload_conf()")

	first := startProc(t, kindReplication, f.url, f.opts)
	require.Eventually(t, func() bool { return f.slotActive(t) }, waitLong, pollEvery)
	first.stop(t)
	require.Eventually(t, func() bool { return !f.slotActive(t) }, waitLong, pollEvery)

	ids := insertEmployees(t, f.pool, 50)
	// Enough WAL, and checkpoints, for Postgres to invalidate the idle slot.
	exec(t, f.pool, "CREATE TABLE ballast (b text)")
	require.Eventually(t, func() bool {
		exec(t, f.pool, "INSERT INTO ballast SELECT repeat('x', 1000) FROM generate_series(1, 5000)")
		exec(t, f.pool, "SELECT pg_switch_wal()")
		exec(t, f.pool, "CHECKPOINT")
		return count(t, f.pool, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND wal_status = 'lost'", f.opts.slot) == 1
	}, waitLong, 10*time.Millisecond)

	var logs bufferLogger
	f.opts.logger = slog.New(slog.NewTextHandler(&logs, nil))
	second := startProc(t, kindReplication, f.url, f.opts)
	require.Eventually(t, func() bool { return second.rec.handledAll(ids) && f.outbox(t) == 0 }, waitLong, pollEvery,
		"the catch-up scan finds the rows the lost slot will never stream")
	require.Equal(t, 0, count(t, f.pool, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND wal_status = 'lost'", f.opts.slot))
	require.Contains(t, logs.String(), "recreating it")

	more := insertEmployees(t, f.pool, 5)
	require.Eventually(t, func() bool { return second.rec.handledAll(more) && f.outbox(t) == 0 }, waitLong, pollEvery,
		"the new slot streams")
}

// TestReplicationAnswersEveryKeepaliveRequest: the server asks for a reply
// when the stream has been silent for half its wal_sender_timeout; syncd's
// own status interval is longer, so only answering those requests keeps the
// stream up. The property is checked where it is decided: no message is
// read while a requested reply is still owed. Whether a loaded machine
// answers within the server's timeout is not this test's business.
func TestReplicationAnswersEveryKeepaliveRequest(t *testing.T) {
	t.Parallel()
	// A server of its own: WAL is the whole server's, and other tests'
	// transactions would keep the stream busy, so that the server never
	// needs to ask for a reply (seen once in a full run).
	f := newFixture(t, kindReplication, serverDatabase(t, pgtest.NewServer(t)))
	f.opts.status = 10 * time.Second
	f.opts.replURL = f.url + "&wal_sender_timeout=2s"
	// No lease renewal during the idle spell: its commits would move the
	// WAL, and the stream would report progress without being asked.
	f.opts.leaderTTL = time.Hour
	p := startProc(t, kindReplication, f.url, f.opts)
	c := &p.repl.counters
	require.Eventually(t, func() bool { return c.keepaliveRequests.Load() >= 2 && c.keepaliveReplies.Load() >= 2 }, waitLong, 10*time.Millisecond,
		"the server asked for replies and got them")
	p.stop(t)
	require.Zero(t, c.unanswered.Load(), "a message was read while a requested reply was owed")
	require.GreaterOrEqual(t, c.keepaliveReplies.Load(), c.keepaliveRequests.Load()-c.sessionErrors.Load(),
		"every request was answered, but for one cut short by a lost connection")
}

func TestReplicationReportsSlotLag(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindReplication, pgtest.NewDatabase(t))
	var logs bufferLogger
	f.opts.logger = slog.New(slog.NewTextHandler(&logs, nil))
	f.opts.lagWarn = 1 << 16
	release := make(chan struct{})
	f.opts.handler = func(ctx context.Context, id string) error {
		select {
		case <-release: // the key stays unhandled: the slot cannot advance
		case <-ctx.Done():
		}
		return nil
	}
	f.opts.drain = time.Millisecond
	p := startProc(t, kindReplication, f.url, f.opts)
	defer close(release)
	require.Eventually(t, func() bool { return f.slotActive(t) }, waitLong, pollEvery)
	insertEmployees(t, f.pool, 1)
	exec(t, f.pool, "INSERT INTO auth0_sync_logs (action, status) SELECT 'noise', repeat('x', 500) FROM generate_series(1, 1000)")
	require.Eventually(t, func() bool { return p.repl.SlotLagBytes() > 1<<16 }, waitLong, 10*time.Millisecond)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "replication slot lags") }, waitLong, 10*time.Millisecond)
}

func TestReplicationKeepsTheURLPasswordOutOfLogs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindReplication, pgtest.NewDatabase(t))
	var logs bufferLogger
	f.opts.logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// A reachable pool for the lease, an unreachable stream with a password.
	f.opts.replURL = "postgres://syncd:hunter2-secret@127.0.0.1:1/app?sslmode=disable&connect_timeout=1"
	p := startProc(t, kindReplication, f.url, f.opts)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "replication stream") }, waitLong, pollEvery)
	p.stop(t)
	require.NotContains(t, logs.String(), "hunter2")

	bad := NewReplicationSource(f.pool, "postgres://syncd:hunter2-secret@[::1/app", p.queue, ReplicationConfig{SlotName: f.opts.slot})
	err := bad.Run(context.Background())
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2")
}

func TestReplicationConfigErrors(t *testing.T) {
	t.Parallel()
	q := NewQueue(QueueConfig{Handler: func(context.Context, string) error { return nil }})
	for _, tc := range []struct {
		cfg   ReplicationConfig
		field string
	}{
		{ReplicationConfig{SlotName: "Bad-Name"}, "SlotName"},
		{ReplicationConfig{StatusInterval: 11 * time.Second}, "StatusInterval"},
		{ReplicationConfig{LeaderTTL: time.Second, ElectInterval: time.Second}, "LeaderTTL"},
	} {
		err := NewReplicationSource(nil, "", q, tc.cfg).Run(context.Background())
		var ce *ConfigError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, tc.field, ce.Field)
	}
}

// TestReplicationWaitsUntilATransactionIsVisible reproduces, exactly, the
// moment when logical decoding has a commit that other sessions cannot see
// yet: a commit that waits for a synchronous standby is flushed (so it is
// streamed) but stays invisible until the standby answers — here, until the
// standby is no longer required. A key handed out in that moment would be
// reconciled against a row that seems not to exist, and its ack would delete
// no outbox row.
func TestReplicationWaitsUntilATransactionIsVisible(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	f := newFixture(t, kindReplication, serverDatabase(t, srv))
	rec := newRecorder(f.pool)
	f.opts.rec = rec
	// The lease renewals commit too, and would wait for the standby.
	f.opts.leaderTTL = time.Hour
	p := startProc(t, kindReplication, f.url, f.opts)
	require.Eventually(t, func() bool { return f.slotActive(t) }, waitLong, pollEvery)

	ctx := context.Background()
	setStandby := func(names string) {
		exec(t, f.pool, "ALTER SYSTEM SET synchronous_standby_names = '"+names+"'")
		exec(t, f.pool, "SELECT pg_reload_conf()")
		require.Eventually(t, func() bool {
			c, err := pgx.Connect(ctx, f.url)
			require.NoError(t, err)
			defer c.Close(ctx)
			var v string
			require.NoError(t, c.QueryRow(ctx, "SHOW synchronous_standby_names").Scan(&v))
			return v == names
		}, waitLong, 10*time.Millisecond)
	}
	setStandby("nobody")
	t.Cleanup(func() { setStandby("") })

	conn, err := pgx.Connect(ctx, f.url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	inserted := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "INSERT INTO employees (name, email) VALUES ('Held', 'held@example.com')")
		inserted <- err
	}()
	// The commit record is flushed and the backend waits for the standby:
	// the walsender streams the transaction while nobody else can see it.
	require.Eventually(t, func() bool {
		return count(t, f.pool, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'") == 1
	}, waitLong, pollEvery)
	require.Eventually(t, func() bool { return p.repl.counters.gateHeld.Load() > 0 || rec.total.Load() > 0 }, waitLong, pollEvery,
		"the source decoded the commit")
	require.Zero(t, rec.total.Load(), "no key is handed out while its transaction is invisible")
	require.Equal(t, 1, p.repl.Outstanding(), "the waiting key counts against MaxOutstanding")

	setStandby("")
	require.NoError(t, <-inserted)
	id := recv(t, rec.seen)
	require.Equal(t, "Held", rec.nameOf(id), "the handler saw the row")
	require.Eventually(t, func() bool { return f.outbox(t) == 0 }, waitLong, pollEvery, "its ack deleted the outbox row")
}

// TestReplicationStopsReadingWhenTheQueueIsFull: while no key can be handled
// (Auth0 down), the source holds at most MaxOutstanding keys and lets the
// rest wait in the slot and the outbox, so its memory stays flat however
// long the outage; once keys are handled, everything follows.
func TestReplicationStopsReadingWhenTheQueueIsFull(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindReplication, pgtest.NewDatabase(t))
	release := make(chan struct{})
	rec := newRecorder(f.pool)
	f.opts.handler = func(ctx context.Context, id string) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return rec.handle(ctx, id)
	}
	const maxOut = 20
	f.opts.maxOut = maxOut
	p := startProc(t, kindReplication, f.url, f.opts)
	require.Eventually(t, func() bool { return f.slotActive(t) }, waitLong, pollEvery)

	// One key per transaction: the stream would otherwise hand out 200.
	var ids []string
	for range 200 {
		ids = append(ids, insertEmployees(t, f.pool, 1)...)
	}
	after := f.walLSN(t)
	require.Eventually(t, func() bool { return p.repl.counters.backpressure.Load() > 0 }, waitLong, pollEvery,
		"the source stops reading")
	p.repl.mu.Lock()
	peak := p.repl.peak
	p.repl.mu.Unlock()
	require.LessOrEqual(t, peak, maxOut, "outstanding keys never exceed the bound")
	require.Less(t, f.confirmed(t), after, "what was not read is not confirmed")

	close(release)
	require.Eventually(t, func() bool { return rec.handledAll(ids) && f.outbox(t) == 0 }, waitLong, pollEvery)
	require.Eventually(t, func() bool { return f.confirmed(t) >= after }, waitLong, pollEvery)
	p.repl.mu.Lock()
	peak = p.repl.peak
	p.repl.mu.Unlock()
	require.LessOrEqual(t, peak, maxOut, "and never did")
}
