package outbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	syncdsql "github.com/syncd/syncd/sql"
	"github.com/syncd/syncd/testcontainers"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// waitLong bounds every wait for the system to converge; a test that needs it
// has failed.
const waitLong = 60 * time.Second

// pollEvery is how often a test looks whether what it waits for happened
// (most looks are a query: a shorter pause costs CPU that the other tests
// of the suite need).
const pollEvery = 25 * time.Millisecond

func newPool(tb testing.TB, url string) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(tb, err)
	cfg.MaxConns = 12
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	return pool
}

// serverDatabase makes a migrated database on a private server (for tests
// that stop and start Postgres) and returns its URL.
func serverDatabase(t *testing.T, srv *testcontainers.Postgres) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, srv.AdminURL())
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "CREATE DATABASE syncd")
	require.NoError(t, err)
	url := srv.URL("syncd")
	_, err = syncdsql.MigrateURL(ctx, url)
	require.NoError(t, err)
	return url
}

func count(tb testing.TB, pool *pgxpool.Pool, query string, args ...any) int {
	tb.Helper()
	var n int
	require.NoError(tb, pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func exec(tb testing.TB, pool *pgxpool.Pool, query string, args ...any) {
	tb.Helper()
	_, err := pool.Exec(context.Background(), query, args...)
	require.NoError(tb, err)
}

// insertEmployees inserts n employees in one statement and returns their ids.
func insertEmployees(tb testing.TB, pool *pgxpool.Pool, n int) []string {
	tb.Helper()
	rows, err := pool.Query(context.Background(), `INSERT INTO employees (name, email)
		SELECT 'E' || g, 'e' || g || '-' || md5(random()::text) || '@example.com' FROM generate_series(1, $1) g RETURNING id::text`, n)
	require.NoError(tb, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(tb, err)
	return ids
}

func randomName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// recorder is a handler that records what it saw: runs per key, the name
// column it read last, and runs of one key that overlapped (across every
// queue that shares the recorder).
type recorder struct {
	pool  *pgxpool.Pool // nil: do not read the row
	delay time.Duration

	mu       sync.Mutex
	runs     map[string]int
	lastName map[string]string
	active   map[string]int
	overlaps int
	total    atomic.Int64
	seen     chan string
}

func newRecorder(pool *pgxpool.Pool) *recorder {
	return &recorder{
		pool:     pool,
		runs:     make(map[string]int),
		lastName: make(map[string]string),
		active:   make(map[string]int),
		seen:     make(chan string, 1<<16),
	}
}

func (r *recorder) handle(ctx context.Context, id string) error {
	r.mu.Lock()
	r.active[id]++
	if r.active[id] > 1 {
		r.overlaps++
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.active[id]--
		r.mu.Unlock()
	}()
	var name string
	if r.pool != nil {
		err := r.pool.QueryRow(ctx, "SELECT name FROM employees WHERE id = $1", id).Scan(&name)
		if err != nil && err != pgx.ErrNoRows {
			return fmt.Errorf("read employee: %w", err)
		}
	}
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	r.mu.Lock()
	r.runs[id]++
	r.lastName[id] = name
	r.mu.Unlock()
	r.total.Add(1)
	select {
	case r.seen <- id:
	default:
	}
	return nil
}

func (r *recorder) runsOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[id]
}

func (r *recorder) nameOf(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastName[id]
}

func (r *recorder) overlapCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.overlaps
}

// handledAll reports whether every id was handled at least once.
func (r *recorder) handledAll(ids []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if r.runs[id] == 0 {
			return false
		}
	}
	return true
}

// service is something with Run(ctx) error.
type service interface{ Run(context.Context) error }

// running is a set of services started together and stopped together.
type running struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
	once   sync.Once
}

// start runs the services until stop (or the end of the test).
func start(tb testing.TB, svcs ...service) *running {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, errs: make(chan error, len(svcs))}
	for _, s := range svcs {
		r.wg.Go(func() { r.errs <- s.Run(ctx) })
	}
	tb.Cleanup(func() { r.stop(tb) })
	return r
}

// stop cancels the services and waits for them; each must return nil.
func (r *running) stop(tb testing.TB) {
	tb.Helper()
	r.once.Do(func() {
		r.cancel()
		r.wg.Wait()
		close(r.errs)
		for err := range r.errs {
			require.NoError(tb, err)
		}
	})
}

// proc is one syncd "process": its own pool, queue and change source.
type proc struct {
	pool  *pgxpool.Pool
	queue *Queue
	rec   *recorder
	src   service
	notif *NotifySource
	repl  *ReplicationSource
	run   *running
}

type sourceKind string

const (
	kindNotify      sourceKind = "notify"
	kindReplication sourceKind = "replication"
)

type procOptions struct {
	rec        *recorder
	handler    Handler // instead of the recorder's
	workers    int
	poll       time.Duration
	lease      time.Duration
	slot       string
	replURL    string // default: the database URL
	leaderTTL  time.Duration
	logger     *slog.Logger
	drain      time.Duration
	retryDelay time.Duration
	status     time.Duration // StatusInterval, default 1s
	lagWarn    int64
	maxOut     int // MaxOutstanding
}

// startProc starts a queue and a source of kind over url.
func startProc(tb testing.TB, kind sourceKind, url string, o procOptions) *proc {
	tb.Helper()
	p := &proc{pool: newPool(tb, url), rec: o.rec}
	if p.rec == nil {
		p.rec = newRecorder(p.pool)
	}
	logger := o.logger
	if logger == nil {
		logger = testLogger(tb)
	}
	handler := o.handler
	if handler == nil {
		handler = p.rec.handle
	}
	p.queue = NewQueue(QueueConfig{
		Workers:      o.workers,
		Handler:      handler,
		Logger:       logger,
		RetryBackoff: cmpOr(o.retryDelay, 50*time.Millisecond),
		MaxBackoff:   max(time.Second, o.retryDelay),
		DrainTimeout: o.drain,
	})
	switch kind {
	case kindNotify:
		p.notif = NewNotifySource(p.pool, p.queue, NotifyConfig{
			PollInterval: cmpOr(o.poll, 250*time.Millisecond),
			Lease:        o.lease,
			Logger:       logger,
		})
		p.src = p.notif
	case kindReplication:
		p.repl = NewReplicationSource(p.pool, cmpOr(o.replURL, url), p.queue, ReplicationConfig{
			SlotName:       o.slot,
			StatusInterval: cmpOr(o.status, time.Second),
			LagWarnBytes:   o.lagWarn,
			MaxOutstanding: o.maxOut,
			LeaderTTL:      cmpOr(o.leaderTTL, 2*time.Second),
			ElectInterval:  cmpOr(o.leaderTTL, 2*time.Second) / 5,
			Logger:         logger,
		})
		p.src = p.repl
	}
	p.run = start(tb, p.queue, p.src)
	return p
}

func (p *proc) stop(tb testing.TB) { tb.Helper(); p.run.stop(tb) }

func cmpOr[T comparable](vals ...T) T {
	var zero T
	for _, v := range vals {
		if v != zero {
			return v
		}
	}
	return zero
}

// newSlot returns a slot name unique on the server and drops the slot when
// the test ends (after the sources that use it stopped: cleanups run last
// in, first out, so call it before starting them).
func newSlot(tb testing.TB, pool *pgxpool.Pool) string {
	tb.Helper()
	slot := randomName("syncd_t_")
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// The walsender of a stopped source may take a moment to exit.
		for ctx.Err() == nil {
			var active *bool
			err := pool.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&active)
			if err == pgx.ErrNoRows {
				return
			}
			if err == nil && active != nil && !*active {
				_, err = pool.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot)
				if err == nil {
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		tb.Errorf("replication slot %s still active at the end of the test", slot)
	})
	return slot
}

// testLogger writes to the test's log only when it fails (go test -v shows
// everything).
func testLogger(tb testing.TB) *slog.Logger {
	w := &tbWriter{tb: tb}
	tb.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct {
	tb   testing.TB
	mu   sync.Mutex
	done atomic.Bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done.Load() {
		w.tb.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// bufferLogger collects log output for assertions.
type bufferLogger struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *bufferLogger) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *bufferLogger) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proxy is a TCP proxy to a Postgres server; cutting it is a network
// partition for whoever connects through it.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newProxy(tb testing.TB, target string) *proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	tb.Cleanup(p.cut)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(up, c); up.Close() })
		p.wg.Go(func() { _, _ = io.Copy(c, up); c.Close() })
	}
}

// cut closes the listener and every connection through it.
func (p *proxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// viaProxy rewrites url's host:port to the proxy's.
func viaProxy(tb testing.TB, url string, p *proxy) string {
	tb.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(tb, err)
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, p.addr(), cfg.Database)
}

// hostPort is the host:port of a connection URL.
func hostPort(tb testing.TB, url string) string {
	tb.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(tb, err)
	return net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
}
