package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncd/syncd/internal/faultlog"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ReplicationConfig configures a ReplicationSource. Zero values mean the
// defaults.
type ReplicationConfig struct {
	// SlotName is the permanent logical replication slot. Slot names are
	// global to the server: two syncd deployments on one server need two
	// names. Default "syncd".
	SlotName string
	// StatusInterval is the longest time between two standby status updates
	// (the server's wal_sender_timeout must be longer). At most 10s. Default 10s.
	StatusInterval time.Duration
	// LagWarnBytes: a slot lag above it is logged as a warning. Default 1 GiB.
	LagWarnBytes int64
	// LeaderTTL is how long the leader's lease lasts without renewal: a
	// follower takes over at most about this long after the leader died.
	// Default 10s.
	LeaderTTL time.Duration
	// ElectInterval is how often the leader renews its lease and followers
	// try to take it. Default LeaderTTL/5.
	ElectInterval time.Duration
	// BatchSize is the page size of the catch-up scan of the outbox. Default 1000.
	BatchSize int
	// ShutdownTimeout bounds how long Run waits, after its context ends, for
	// the queue to finish or give back the keys it was handed, so that the
	// last standby status confirms what was handled. Default 30s.
	ShutdownTimeout time.Duration
	// MaxOutstanding bounds the keys handed to the queue and not yet
	// handled (plus those waiting to become visible): past it the source
	// stops reading the stream and the catch-up scan until the queue makes
	// room, so memory stays flat while Auth0 is down. Default 10000.
	MaxOutstanding int
	// Logger receives leadership changes, connection trouble and lag
	// warnings. Default: discard.
	Logger *slog.Logger
}

// WithDefaults returns c with every unset field at its default.
func (c ReplicationConfig) WithDefaults() ReplicationConfig {
	c.SlotName = cmp.Or(c.SlotName, "syncd")
	c.StatusInterval = cmp.Or(c.StatusInterval, 10*time.Second)
	c.LagWarnBytes = cmp.Or(c.LagWarnBytes, 1<<30)
	c.LeaderTTL = cmp.Or(c.LeaderTTL, 10*time.Second)
	c.ElectInterval = cmp.Or(c.ElectInterval, c.LeaderTTL/5)
	c.BatchSize = cmp.Or(c.BatchSize, 1000)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, 30*time.Second)
	c.MaxOutstanding = cmp.Or(c.MaxOutstanding, 10000)
	c.Logger = cmp.Or(c.Logger, discardLogger)
	return c
}

var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Validate reports the first setting that is unusable.
func (c ReplicationConfig) Validate() error {
	switch {
	case !slotNameRE.MatchString(c.SlotName):
		return &ConfigError{Field: "SlotName", Value: c.SlotName, Err: errors.New("must be 1 to 63 lower-case letters, digits or underscores")}
	case c.StatusInterval <= 0 || c.StatusInterval > 10*time.Second:
		return &ConfigError{Field: "StatusInterval", Value: c.StatusInterval.String(), Err: errors.New("must be positive and at most 10s")}
	case c.LagWarnBytes <= 0:
		return &ConfigError{Field: "LagWarnBytes", Value: fmt.Sprint(c.LagWarnBytes), Err: errors.New("must be positive")}
	case c.ElectInterval <= 0:
		return &ConfigError{Field: "ElectInterval", Value: c.ElectInterval.String(), Err: errors.New("must be positive")}
	case c.LeaderTTL < 2*c.ElectInterval:
		return &ConfigError{Field: "LeaderTTL", Value: c.LeaderTTL.String(), Err: errors.New("must be at least twice ElectInterval")}
	case c.BatchSize <= 0:
		return &ConfigError{Field: "BatchSize", Value: fmt.Sprint(c.BatchSize), Err: errors.New("must be positive")}
	case c.MaxOutstanding <= 0:
		return &ConfigError{Field: "MaxOutstanding", Value: fmt.Sprint(c.MaxOutstanding), Err: errors.New("must be positive")}
	case c.ShutdownTimeout < 0:
		return &ConfigError{Field: "ShutdownTimeout", Value: c.ShutdownTimeout.String(), Err: errors.New("must not be negative")}
	}
	return nil
}

// replicationAppName is the application_name of the walsender connection.
const replicationAppName = "syncd-outbox-replication"

// statusMinGap spaces standby status updates sent because work completed, so
// that a fast stream of small transactions does not turn into one message each.
const statusMinGap = 50 * time.Millisecond

// ReplicationSource streams the outbox's inserts from a logical replication
// slot (pgoutput, proto_version 1, publication syncd_outbox) and hands their
// keys to the queue. One process streams at a time (a leader lease); the
// others wait and take over when it stops renewing. The stream only names
// keys: the outbox rows stay the durable record, deleted once their key is
// handled, and scanned for leftovers whenever streaming starts (start-up,
// reconnect, new leader, a slot that Postgres invalidated and that was
// recreated). The slot's confirmed position is advanced only past
// transactions whose every key was handled.
type ReplicationSource struct {
	pool    *pgxpool.Pool
	replURL string
	q       *Queue
	cfg     ReplicationConfig
	id      string
	log     *slog.Logger
	// streamFaults says a failing stream's cause once, and when it clears.
	streamFaults *faultlog.Tracker
	lease        leaderLease

	leader atomic.Bool
	lag    atomic.Int64

	counters replicationCounters

	mu          sync.Mutex
	outstanding int                // acks not yet called
	gated       int                // keys of transactions waiting to become visible
	peak        int                // most outstanding+gated seen when handing keys out
	room        chan struct{}      // signalled when an ack makes room
	handed      map[int64]struct{} // rows handed to the queue and not yet acked
	// caught are the rows this session's catch-up scan handed out. The
	// stream delivers those committed after the slot's start again; it
	// skips them (and forgets each as it passes), so that an insert is not
	// handled twice. Reset by each catch-up.
	caught    map[int64]struct{}
	undeleted []int64 // handled rows whose delete failed
	deletes   *rowDeleter
	drained   chan struct{}
	interrupt func() // wakes the stream loop's receive; nil when not receiving
}

// NewReplicationSource returns a source that streams from the database of
// replURL (the ordinary DATABASE_URL: replication=database is added) and uses
// pool for everything else. Defaults are filled in; an invalid config makes
// Run return its error.
func NewReplicationSource(pool *pgxpool.Pool, replURL string, q *Queue, cfg ReplicationConfig) *ReplicationSource {
	cfg = cfg.WithDefaults()
	id := newWorkerID()
	return &ReplicationSource{
		pool:         pool,
		replURL:      replURL,
		q:            q,
		cfg:          cfg,
		id:           id,
		log:          cfg.Logger.With(keyWorkerID, id, keySlot, cfg.SlotName),
		streamFaults: faultlog.New(cfg.Logger.With(keyWorkerID, id, keySlot, cfg.SlotName), "replication stream"),
		lease:        leaderLease{pool: pool, name: cfg.SlotName, id: id, ttl: cfg.LeaderTTL},
		handed:       make(map[int64]struct{}),
		drained:      make(chan struct{}, 1),
		room:         make(chan struct{}, 1),
		deletes:      newRowDeleter(pool),
	}
}

// IsLeader reports whether this process holds the leadership lease (and so
// is, or is about to be, streaming).
func (s *ReplicationSource) IsLeader() bool { return s.leader.Load() }

// SlotLagBytes is how far the slot's confirmed position trails the server's
// WAL, as last measured by the leader (every StatusInterval); 0 on followers.
func (s *ReplicationSource) SlotLagBytes() int64 { return s.lag.Load() }

// Outstanding is the number of keys handed to the queue and not yet
// handled, plus those of streamed transactions waiting to become visible;
// at most MaxOutstanding plus one transaction's keys.
func (s *ReplicationSource) Outstanding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outstanding + s.gated
}

// replicationCounters count what the stream does, for tests (an idle
// stream must not spin; every keepalive that asks for a reply gets one) and
// for metrics.
type replicationCounters struct {
	wakeups           atomic.Int64 // turns of the stream loop
	statusSent        atomic.Int64 // standby status updates
	keepaliveRequests atomic.Int64 // server keepalives asking for a reply
	keepaliveReplies  atomic.Int64 // status updates that answered one
	unanswered        atomic.Int64 // messages read while a reply was owed (a bug)
	sessionErrors     atomic.Int64 // sessions that ended with an error
	gateHeld          atomic.Int64 // transactions found not yet visible
	backpressure      atomic.Int64 // waits for the queue to make room
}

// WorkerID is the name this source writes into syncd_leader.leader_id.
func (s *ReplicationSource) WorkerID() string { return s.id }

// Run waits for leadership, streams while it holds it, and on cancel waits
// (up to ShutdownTimeout) for the queue to settle the keys it handed over,
// sends a last standby status, closes the stream and resigns. It returns an
// error only for an invalid config or URL.
func (s *ReplicationSource) Run(ctx context.Context) error {
	if err := s.cfg.Validate(); err != nil {
		return fmt.Errorf("outbox replication source: %w", err)
	}
	if s.pool == nil || s.q == nil {
		return errors.New("outbox replication source: pool and queue are required")
	}
	connCfg, err := pgconn.ParseConfig(s.replURL)
	if err != nil {
		// pgconn's error may quote the URL; the password must not reach a log.
		return errors.New("outbox replication source: replication URL is not a valid PostgreSQL connection string")
	}
	connCfg.RuntimeParams["replication"] = "database"
	connCfg.RuntimeParams["application_name"] = replicationAppName

	for {
		if !s.waitLeadership(ctx) {
			return nil
		}
		s.lead(ctx, connCfg)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// waitLeadership tries to take the lease every ElectInterval until it does
// (true) or ctx is done (false).
func (s *ReplicationSource) waitLeadership(ctx context.Context) bool {
	t := time.NewTicker(s.cfg.ElectInterval)
	defer t.Stop()
	failures := 0
	for {
		actx, cancel := context.WithTimeout(ctx, s.cfg.ElectInterval)
		ok, err := s.lease.attempt(actx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return false
		case err != nil:
			failures++
			if failures == 1 || failures%30 == 0 {
				s.log.WarnContext(ctx, "leader election", keyError, err, keyAttempt, failures)
			}
		case ok:
			return true
		default:
			failures = 0
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// lead streams while this process holds the lease: sessions are restarted
// with backoff until ctx is done or the lease is lost.
func (s *ReplicationSource) lead(ctx context.Context, connCfg *pgconn.Config) {
	s.leader.Store(true)
	s.log.InfoContext(ctx, "elected replication leader")
	streamCtx, lose := context.WithCancelCause(ctx)
	defer lose(nil)
	// The lease is kept through the shutdown drain, so that no follower
	// starts on keys this process is still handling.
	keepCtx, stopKeeping := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { s.keepLeadership(keepCtx, lose) })
	wg.Go(func() { s.watchSlot(streamCtx) })

	failures := 0
	for streamCtx.Err() == nil {
		start := time.Now()
		err := s.session(streamCtx, ctx, connCfg)
		if time.Since(start) > reconnectMax*2 {
			failures = 0 // it streamed for a while: start the backoff over
		}
		if err == nil || streamCtx.Err() != nil {
			break
		}
		s.counters.sessionErrors.Add(1)
		failures++
		d := backoff(reconnectMin, reconnectMax, failures)
		// Said once per cause (a missing privilege fails every attempt alike).
		s.streamFaults.Fail(ctx, faultlog.Cause(err), err)
		s.log.DebugContext(ctx, "replication stream", keyError, err, keyAttempt, failures, keyBackoff, d)
		sleep(streamCtx, d)
	}
	stopKeeping()
	wg.Wait()
	s.leader.Store(false)
	s.lag.Store(0)
	if cause := context.Cause(streamCtx); errors.Is(cause, errLeadershipLost) || errors.Is(cause, errLeadershipExpired) {
		s.log.WarnContext(ctx, "stepped down as replication leader", keyError, cause)
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	if err := s.lease.resign(rctx); err != nil {
		s.log.WarnContext(ctx, "resign replication leadership; it expires on its own", keyError, err)
		return
	}
	s.log.InfoContext(ctx, "resigned replication leadership")
}

// keepLeadership renews the lease every ElectInterval. It calls lose when
// another process holds it, or when it could not be renewed for so long that
// it may have expired.
func (s *ReplicationSource) keepLeadership(ctx context.Context, lose context.CancelCauseFunc) {
	t := time.NewTicker(s.cfg.ElectInterval)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		actx, cancel := context.WithTimeout(ctx, s.cfg.ElectInterval)
		ok, err := s.lease.attempt(actx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if time.Since(lastOK) > s.cfg.LeaderTTL-s.cfg.ElectInterval {
				lose(errLeadershipExpired)
				return
			}
			s.log.WarnContext(ctx, "renew replication leadership", keyError, err)
		case !ok:
			lose(errLeadershipLost)
			return
		default:
			lastOK = start
		}
	}
}
