package outbox

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers/pgtest"
)

// queryCounter is a pgx tracer that counts the statements a pool sends.
type queryCounter struct{ n atomic.Int64 }

func (c *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func countingPool(t *testing.T, url string, c *queryCounter) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.ConnConfig.Tracer = c
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// TestIdleSourcesDoOnlyTheirTimersWork runs every part on an idle database
// and counts what they do over a window: the statements sent to Postgres and
// the turns of the replication stream's loop. Each part works on a timer, so
// the count is bounded by the window divided by its intervals, whatever the
// machine's speed (a slow machine only does less); a busy loop would do
// thousands. Wall-clock CPU time belongs in make bench, not here.
func TestIdleSourcesDoOnlyTheirTimersWork(t *testing.T) {
	t.Parallel()
	// A server of its own: WAL is the whole server's, and other tests'
	// transactions would reach this stream as messages to skip.
	url := serverDatabase(t, pgtest.NewServer(t))
	var queries queryCounter
	pool := countingPool(t, url, &queries)
	slot := newSlot(t, pool)
	rec := newRecorder(pool)
	const (
		poll   = 500 * time.Millisecond
		retryI = 500 * time.Millisecond
		elect  = 500 * time.Millisecond
		status = time.Second
	)
	q := NewQueue(QueueConfig{Handler: rec.handle})
	notifySrc := NewNotifySource(pool, q, NotifyConfig{PollInterval: poll})
	replCfg := ReplicationConfig{SlotName: slot, StatusInterval: status, LeaderTTL: 5 * elect, ElectInterval: elect}
	leader := NewReplicationSource(pool, url, q, replCfg)
	follower := NewReplicationSource(countingPool(t, url, &queries), url, q, replCfg)
	retry := NewRetryTimer(pool, q, RetryConfig{Interval: retryI})
	start(t, q, notifySrc, leader, retry)
	require.Eventually(t, leader.IsLeader, waitLong, pollEvery)
	start(t, follower)

	// Warm up: one key through both sources.
	ids := insertEmployees(t, pool, 1)
	require.Eventually(t, func() bool {
		return rec.handledAll(ids) && count(t, pool, "SELECT count(*) FROM auth0_outbox") == 0 && leader.Outstanding() == 0
	}, waitLong, pollEvery)

	began := time.Now()
	q0, w0 := queries.n.Load(), leader.counters.wakeups.Load()+follower.counters.wakeups.Load()
	// The window is measured, not slept to a bound: the assertion holds
	// for any length of it.
	require.Eventually(t, func() bool { return time.Since(began) >= 3*time.Second }, waitLong, 100*time.Millisecond)
	dq := queries.n.Load() - q0
	dw := leader.counters.wakeups.Load() + follower.counters.wakeups.Load() - w0
	window := time.Since(began)
	ticks := func(every time.Duration) int64 { return int64(window/every) + 2 }
	// Per tick, at most: notify claims and tidies (4 statements); the retry
	// timer looks for due rows (1); the leader renews its lease and the
	// follower tries to take it (1 each); the leader measures the slot and
	// retries failed deletes (2 per status interval).
	maxQueries := 4*ticks(poll) + ticks(retryI) + 2*ticks(elect) + 2*ticks(status)
	// Each lease renewal writes WAL, which the walsender follows with a
	// message or two; the loop also turns for each status update.
	maxWakeups := 4*ticks(elect) + 2*ticks(status)
	t.Logf("over %v idle: %d statements (bound %d), %d stream loop turns (bound %d)", window.Round(time.Millisecond), dq, maxQueries, dw, maxWakeups)
	require.LessOrEqual(t, dq, maxQueries, "an idle source sends statements only on its timers")
	require.LessOrEqual(t, dw, maxWakeups, "an idle stream does not spin")
	require.False(t, follower.IsLeader())
}
