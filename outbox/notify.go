package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/syncd/syncd/internal/faultlog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	syncdsql "github.com/syncd/syncd/sql"
)

// NotifyConfig configures a NotifySource. Zero values mean the defaults.
type NotifyConfig struct {
	// PollInterval is how often the outbox is claimed from even without a
	// notification (missed notifications, expired leases). Default 5s.
	PollInterval time.Duration
	// BatchSize is the most rows one claim transaction leases. Default 500.
	BatchSize int
	// Lease is how long a claimed row stays this process's; it is renewed
	// every Lease/3 while the key is pending, and a process that dies loses
	// its rows when it expires. Default 1m.
	Lease time.Duration
	// MaxHeld bounds the rows claimed and not yet acknowledged; above it the
	// source stops claiming until the queue catches up. Default 20 × BatchSize.
	MaxHeld int
	// ShutdownTimeout bounds how long Run waits, after its context ends, for
	// the queue to finish or give up the keys it was handed before their
	// rows are released to other processes. Default 30s.
	ShutdownTimeout time.Duration
	// Logger receives connection trouble and claim failures. Default: discard.
	Logger *slog.Logger
}

// WithDefaults returns c with every unset field at its default.
func (c NotifyConfig) WithDefaults() NotifyConfig {
	c.PollInterval = cmp.Or(c.PollInterval, 5*time.Second)
	c.BatchSize = cmp.Or(c.BatchSize, 500)
	c.Lease = cmp.Or(c.Lease, time.Minute)
	c.MaxHeld = cmp.Or(c.MaxHeld, 20*c.BatchSize)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, 30*time.Second)
	c.Logger = cmp.Or(c.Logger, discardLogger)
	return c
}

// Validate reports the first setting that is unusable.
func (c NotifyConfig) Validate() error {
	switch {
	case c.PollInterval <= 0:
		return &ConfigError{Field: "PollInterval", Value: c.PollInterval.String(), Err: errors.New("must be positive")}
	case c.BatchSize <= 0:
		return &ConfigError{Field: "BatchSize", Value: fmt.Sprint(c.BatchSize), Err: errors.New("must be positive")}
	case c.Lease < time.Second:
		return &ConfigError{Field: "Lease", Value: c.Lease.String(), Err: errors.New("must be at least 1s")}
	case c.MaxHeld < c.BatchSize:
		return &ConfigError{Field: "MaxHeld", Value: fmt.Sprint(c.MaxHeld), Err: errors.New("must be at least BatchSize")}
	case c.ShutdownTimeout < 0:
		return &ConfigError{Field: "ShutdownTimeout", Value: c.ShutdownTimeout.String(), Err: errors.New("must not be negative")}
	}
	return nil
}

// Reconnect backoff of the LISTEN connection and of failed claims.
const (
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 5 * time.Second
	// dbTimeout bounds each statement a source runs outside a stream.
	dbTimeout = 15 * time.Second
)

// NotifySource is the default change source: it LISTENs on the outbox
// channel on a connection of its own, and at start, after every reconnect,
// on every notification and every PollInterval it claims outbox rows in short
// transactions (FOR UPDATE SKIP LOCKED, a lease per row), hands their keys to
// the queue and deletes the rows once their key was handled.
type NotifySource struct {
	pool *pgxpool.Pool
	q    *Queue
	cfg  NotifyConfig
	id   string
	log  *slog.Logger
	// claimFaults and listenFaults say a failing loop's cause once.
	claimFaults, listenFaults *faultlog.Tracker

	mu          sync.Mutex
	held        int     // rows claimed and not yet acknowledged
	outstanding int     // acks not yet called
	full        bool    // claiming paused at MaxHeld
	undeleted   []int64 // handled rows whose delete failed
	unhandled   []int64 // rows the queue gave back
	toDelete    []int64 // handled rows deleteHandled deletes next
	room        chan struct{}
	drained     chan struct{}
	handled     chan struct{} // signalled when toDelete grows
}

// NewNotifySource returns a source that claims from the outbox of pool's
// database and feeds q. Defaults are filled in; an invalid config makes Run
// return its error.
func NewNotifySource(pool *pgxpool.Pool, q *Queue, cfg NotifyConfig) *NotifySource {
	cfg = cfg.WithDefaults()
	id := newWorkerID()
	return &NotifySource{
		pool:         pool,
		q:            q,
		cfg:          cfg,
		id:           id,
		log:          cfg.Logger.With(keyWorkerID, id),
		claimFaults:  faultlog.New(cfg.Logger.With(keyWorkerID, id), "claiming outbox rows"),
		listenFaults: faultlog.New(cfg.Logger.With(keyWorkerID, id), "listening for outbox notifications"),
		room:         make(chan struct{}, 1),
		drained:      make(chan struct{}, 1),
		handled:      make(chan struct{}, 1),
	}
}

// WorkerID is the name this source writes into auth0_outbox.locked_by.
func (s *NotifySource) WorkerID() string { return s.id }

// Held is the number of outbox rows this source has claimed and not yet
// seen handled.
func (s *NotifySource) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// Run claims and listens until ctx is done. Then it waits (up to
// ShutdownTimeout) for the queue to finish or give back the keys it was
// handed, and releases its remaining leases so that another process takes
// them at once. It returns an error only for an invalid config.
func (s *NotifySource) Run(ctx context.Context) error {
	if err := s.cfg.Validate(); err != nil {
		return fmt.Errorf("outbox notify source: %w", err)
	}
	if s.pool == nil || s.q == nil {
		return errors.New("outbox notify source: pool and queue are required")
	}
	woken := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() { s.listen(ctx, woken) })
	wg.Go(func() { s.deleteHandled(ctx) })
	s.loop(ctx, woken)
	wg.Wait()
	s.shutdown()
	return nil
}

// loop claims whenever there may be work: at start, when the listener says
// so, on the poll ticker, when room frees up and after a failed claim.
func (s *NotifySource) loop(ctx context.Context, woken <-chan struct{}) {
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	renew := time.NewTicker(s.cfg.Lease / 3)
	defer renew.Stop()
	retry := time.NewTimer(0)
	defer retry.Stop()
	<-retry.C
	failures := 0
	claimNow := true
	for {
		if claimNow {
			claimNow = false
			if err := s.claimAll(ctx); err != nil && ctx.Err() == nil {
				failures++
				d := backoff(reconnectMin, min(reconnectMax, s.cfg.PollInterval), failures)
				s.claimFaults.Fail(ctx, faultlog.Cause(err), err)
				s.log.DebugContext(ctx, "claim outbox rows", keyError, err, keyAttempt, failures, keyBackoff, d)
				retry.Reset(d)
			} else {
				failures = 0
				s.claimFaults.OK(ctx)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-woken:
			claimNow = true
		case <-s.room:
			claimNow = true
		case <-retry.C:
			claimNow = true
		case <-poll.C:
			claimNow = true
			s.tidy(ctx)
		case <-renew.C:
			s.renew(ctx)
		}
	}
}

// claimAll claims batches until the outbox has no free row or MaxHeld is
// reached, and hands each batch's keys to the queue.
func (s *NotifySource) claimAll(ctx context.Context) error {
	for ctx.Err() == nil {
		s.mu.Lock()
		limit := min(s.cfg.BatchSize, s.cfg.MaxHeld-s.held)
		if limit <= 0 {
			s.full = true
		}
		s.mu.Unlock()
		if limit <= 0 {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, dbTimeout)
		rows, err := claim(cctx, s.pool, s.id, limit, s.cfg.Lease)
		cancel()
		if err != nil {
			return err
		}
		s.handOver(rows)
		if len(rows) < limit {
			return nil
		}
	}
	return nil
}

// handOver enqueues one key per employee with an ack that deletes the rows.
func (s *NotifySource) handOver(rows []claimedRow) {
	if len(rows) == 0 {
		return
	}
	keys, ids := byEmployee(rows)
	s.mu.Lock()
	s.held += len(rows)
	s.outstanding += len(keys)
	s.mu.Unlock()
	for _, k := range keys {
		s.q.EnqueueAck(k, s.ack(ids[k]))
	}
}

// ack notes the rows of a handled key for deleteHandled, or rows the queue
// gave back.
func (s *NotifySource) ack(ids []int64) Ack {
	return func(handled bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if handled {
			s.toDelete = append(s.toDelete, ids...)
			notify(s.handled)
		} else {
			s.unhandled = append(s.unhandled, ids...)
		}
		s.held -= len(ids)
		s.outstanding--
		if s.full && s.held <= s.cfg.MaxHeld/2 {
			s.full = false
			notify(s.room)
		}
		if s.outstanding == 0 {
			notify(s.drained)
		}
	}
}

// tidy retries failed deletes and releases rows the queue gave back.
func (s *NotifySource) tidy(ctx context.Context) {
	s.mu.Lock()
	undeleted, unhandled := s.undeleted, s.unhandled
	s.undeleted, s.unhandled = nil, nil
	s.mu.Unlock()
	if len(undeleted) == 0 && len(unhandled) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	if len(undeleted) > 0 {
		if err := deleteRows(cctx, s.pool, undeleted); err != nil {
			s.mu.Lock()
			s.undeleted = append(s.undeleted, undeleted...)
			s.mu.Unlock()
		}
	}
	if len(unhandled) > 0 {
		if _, err := releaseLeases(cctx, s.pool, s.id, unhandled); err != nil {
			s.mu.Lock()
			s.unhandled = append(s.unhandled, unhandled...)
			s.mu.Unlock()
		}
	}
}

// renew extends the leases of every row this source holds.
func (s *NotifySource) renew(ctx context.Context) {
	if s.Held() == 0 && !s.hasLeftovers() {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	if _, err := renewLeases(cctx, s.pool, s.id, s.cfg.Lease); err != nil && ctx.Err() == nil {
		s.log.WarnContext(ctx, "renew outbox leases", keyError, err)
	}
}

func (s *NotifySource) hasLeftovers() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.undeleted) > 0 || len(s.unhandled) > 0 || len(s.toDelete) > 0
}

// shutdown waits for the queue to settle the keys it was handed, then
// retries failed deletes and releases every lease of this source.
func (s *NotifySource) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout+s.cfg.ShutdownTimeout)
	defer cancel()
	if n := waitSettled(&s.mu, &s.outstanding, s.drained, s.cfg.ShutdownTimeout); n > 0 {
		s.log.WarnContext(ctx, "queue did not settle its keys before the shutdown timeout; releasing their rows", keyKeys, n)
	}
	s.mu.Lock()
	undeleted := append(s.undeleted, s.toDelete...)
	s.undeleted, s.unhandled, s.toDelete = nil, nil, nil
	s.mu.Unlock()
	if len(undeleted) > 0 {
		_ = deleteRows(ctx, s.pool, undeleted) // if this fails too, they are handled once more elsewhere
	}
	if n, err := releaseLeases(ctx, s.pool, s.id, nil); err != nil {
		s.log.WarnContext(ctx, "release outbox leases; they expire on their own", keyError, err)
	} else if n > 0 {
		s.log.InfoContext(ctx, "released outbox rows to other processes", keyRows, n)
	}
}

// listen keeps a LISTEN connection open and signals woken after every
// (re)connect and every notification, reconnecting with backoff.
func (s *NotifySource) listen(ctx context.Context, woken chan<- struct{}) {
	failures := 0
	for ctx.Err() == nil {
		conn, err := s.connectListener(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			d := backoff(reconnectMin, reconnectMax, failures)
			s.listenFaults.Fail(ctx, faultlog.Cause(err), err)
			s.log.DebugContext(ctx, "listen for outbox notifications", keyError, err, keyAttempt, failures, keyBackoff, d)
			sleep(ctx, d)
			continue
		}
		s.listenFaults.OK(ctx)
		failures = 0
		notify(woken) // claim what arrived while we were not listening
		for {
			if _, err = conn.WaitForNotification(ctx); err != nil {
				break
			}
			notify(woken)
		}
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(closeCtx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		failures++
		d := backoff(reconnectMin, reconnectMax, failures)
		s.listenFaults.Fail(ctx, faultlog.Cause(err), err)
		s.log.DebugContext(ctx, "outbox listener connection lost; reconnecting", keyError, err, keyBackoff, d)
		sleep(ctx, d)
	}
}

func (s *NotifySource) connectListener(ctx context.Context) (*pgx.Conn, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = listenerAppName
	cctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if _, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{syncdsql.Channel}.Sanitize()); err != nil {
		_ = conn.Close(cctx)
		return nil, fmt.Errorf("listen: %w", err)
	}
	return conn, nil
}

// listenerAppName is the application_name of the LISTEN connection, so that
// an operator (or a test) can find it in pg_stat_activity.
const listenerAppName = "syncd-outbox-listener"

func notify(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
