package outbox

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
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
	require.Eventually(t, func() bool { return f.slotActive(t) }, waitLong, 5*time.Millisecond)

	ids := insertEmployees(t, f.pool, 5)
	afterInsert := f.walLSN(t)
	require.Eventually(t, func() bool { return p.rec.handledAll(ids) && f.outbox(t) == 0 }, waitLong, 5*time.Millisecond)
	require.Eventually(t, func() bool { return f.confirmed(t) >= afterInsert }, waitLong, 5*time.Millisecond,
		"the slot confirms the handled transaction")

	// WAL that does not concern the outbox: an idle slot follows the
	// server's keepalives instead of pinning it.
	exec(t, f.pool, "INSERT INTO auth0_sync_logs (action, status) SELECT 'noise', 'ok' FROM generate_series(1, 100)")
	afterNoise := f.walLSN(t)
	require.Eventually(t, func() bool { return f.confirmed(t) >= afterNoise }, waitLong, 5*time.Millisecond,
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
	f.opts.handler = func(ctx context.Context, id int64) error {
		attempts.Add(1)
		if failing.Load() {
			return context.DeadlineExceeded // could not record its outcome
		}
		return nil
	}
	f.opts.retryDelay = time.Hour
	first := startProc(t, kindReplication, f.url, f.opts)
	require.Eventually(t, func() bool { return f.slotActive(t) }, waitLong, 5*time.Millisecond)

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
	require.Eventually(t, func() bool { return f.outbox(t) == 0 && f.confirmed(t) >= after }, waitLong, 5*time.Millisecond)
}

func TestReplicationGracefulHandover(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindReplication, pgtest.NewDatabase(t))
	rec := newRecorder(f.pool)
	f.opts.rec = rec
	a := startProc(t, kindReplication, f.url, f.opts)
	b := startProc(t, kindReplication, f.url, f.opts)
	require.Eventually(t, func() bool { return a.repl.IsLeader() != b.repl.IsLeader() }, waitLong, 5*time.Millisecond, "exactly one leader")
	leader, follower := a, b
	if b.repl.IsLeader() {
		leader, follower = b, a
	}
	require.Eventually(t, func() bool { return f.slotActive(t) }, waitLong, 5*time.Millisecond)
	ids := insertEmployees(t, f.pool, 10)
	require.Eventually(t, func() bool { return rec.handledAll(ids) && f.outbox(t) == 0 }, waitLong, 5*time.Millisecond)
	require.False(t, follower.repl.IsLeader(), "the follower waits")

	leader.stop(t) // resigns
	require.Eventually(t, func() bool { return follower.repl.IsLeader() }, waitLong, 5*time.Millisecond)
	more := insertEmployees(t, f.pool, 10)
	require.Eventually(t, func() bool { return rec.handledAll(more) && f.outbox(t) == 0 }, waitLong, 5*time.Millisecond)
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
	require.Eventually(t, func() bool { return leader.repl.IsLeader() && f.slotActive(t) }, waitLong, 5*time.Millisecond)
	follower := startProc(t, kindReplication, f.url, f.opts)

	ids := insertEmployees(t, f.pool, 10)
	require.Eventually(t, func() bool { return rec.handledAll(ids) && f.outbox(t) == 0 }, waitLong, 5*time.Millisecond)
	require.False(t, follower.repl.IsLeader())

	px.cut()
	more := insertEmployees(t, f.pool, 10)
	require.Eventually(t, func() bool { return follower.repl.IsLeader() }, waitLong, 5*time.Millisecond, "the follower takes over")
	require.Eventually(t, func() bool { return rec.handledAll(more) && f.outbox(t) == 0 }, waitLong, 5*time.Millisecond)
	require.Eventually(t, func() bool { return !leader.repl.IsLeader() }, waitLong, 5*time.Millisecond,
		"the cut-off leader notices that its lease expired")
}

func TestReplicationLostSlotIsRecreatedAndOutboxScanned(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	f := newFixture(t, kindReplication, serverDatabase(t, srv))
	exec(t, f.pool, "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
	exec(t, f.pool, "SELECT pg_reload_conf()")

	first := startProc(t, kindReplication, f.url, f.opts)
	require.Eventually(t, func() bool { return f.slotActive(t) }, waitLong, 5*time.Millisecond)
	first.stop(t)
	require.Eventually(t, func() bool { return !f.slotActive(t) }, waitLong, 5*time.Millisecond)

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
	require.Eventually(t, func() bool { return second.rec.handledAll(ids) && f.outbox(t) == 0 }, waitLong, 5*time.Millisecond,
		"the catch-up scan finds the rows the lost slot will never stream")
	require.Equal(t, 0, count(t, f.pool, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND wal_status = 'lost'", f.opts.slot))
	require.Contains(t, logs.String(), "recreating it")

	more := insertEmployees(t, f.pool, 5)
	require.Eventually(t, func() bool { return second.rec.handledAll(more) && f.outbox(t) == 0 }, waitLong, 5*time.Millisecond,
		"the new slot streams")
}

func TestReplicationAnswersTheServerInTime(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindReplication, pgtest.NewDatabase(t))
	var logs bufferLogger
	f.opts.logger = slog.New(slog.NewTextHandler(&logs, nil))
	// The server drops a walsender that is silent for 1s; our own status
	// interval is 10s, so only answering its keepalive requests keeps the
	// stream up.
	f.opts.status = 10 * time.Second
	f.opts.replURL = f.url + "&wal_sender_timeout=1s"
	// No lease renewal during the idle spell: its commits would move the
	// WAL, and the stream would report progress without being asked.
	f.opts.leaderTTL = 30 * time.Second
	startProc(t, kindReplication, f.url, f.opts)
	require.Eventually(t, func() bool { return f.slotActive(t) }, waitLong, 5*time.Millisecond)
	pid := func() int {
		return count(t, f.pool, "SELECT coalesce(max(active_pid), 0) FROM pg_replication_slots WHERE slot_name = $1", f.opts.slot)
	}
	first := pid()
	time.Sleep(4 * time.Second) // four timeouts' worth of idling
	require.Equal(t, first, pid(), "the same walsender still streams")
	require.NotContains(t, logs.String(), "replication stream")
}

func TestReplicationReportsSlotLag(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindReplication, pgtest.NewDatabase(t))
	var logs bufferLogger
	f.opts.logger = slog.New(slog.NewTextHandler(&logs, nil))
	f.opts.lagWarn = 1 << 16
	release := make(chan struct{})
	f.opts.handler = func(ctx context.Context, id int64) error {
		select {
		case <-release: // the key stays unhandled: the slot cannot advance
		case <-ctx.Done():
		}
		return nil
	}
	f.opts.drain = time.Millisecond
	p := startProc(t, kindReplication, f.url, f.opts)
	defer close(release)
	require.Eventually(t, func() bool { return f.slotActive(t) }, waitLong, 5*time.Millisecond)
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
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "replication stream") }, waitLong, 5*time.Millisecond)
	p.stop(t)
	require.NotContains(t, logs.String(), "hunter2")

	bad := NewReplicationSource(f.pool, "postgres://syncd:hunter2-secret@[::1/app", p.queue, ReplicationConfig{SlotName: f.opts.slot})
	err := bad.Run(context.Background())
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2")
}

func TestReplicationConfigErrors(t *testing.T) {
	t.Parallel()
	q := NewQueue(QueueConfig{Handler: func(context.Context, int64) error { return nil }})
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
