package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"

	syncdsql "github.com/syncd/syncd/sql"
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
	lease   leaderLease

	leader atomic.Bool
	lag    atomic.Int64

	mu          sync.Mutex
	outstanding int                // acks not yet called
	handed      map[int64]struct{} // rows handed to the queue and not yet acked
	undeleted   []int64            // handled rows whose delete failed
	drained     chan struct{}
	interrupt   func() // wakes the stream loop's receive; nil when not receiving
}

// NewReplicationSource returns a source that streams from the database of
// replURL (the ordinary DATABASE_URL: replication=database is added) and uses
// pool for everything else. Defaults are filled in; an invalid config makes
// Run return its error.
func NewReplicationSource(pool *pgxpool.Pool, replURL string, q *Queue, cfg ReplicationConfig) *ReplicationSource {
	cfg = cfg.WithDefaults()
	id := newWorkerID()
	return &ReplicationSource{
		pool:    pool,
		replURL: replURL,
		q:       q,
		cfg:     cfg,
		id:      id,
		log:     cfg.Logger.With(keyWorkerID, id, keySlot, cfg.SlotName),
		lease:   leaderLease{pool: pool, name: cfg.SlotName, id: id, ttl: cfg.LeaderTTL},
		handed:  make(map[int64]struct{}),
		drained: make(chan struct{}, 1),
	}
}

// IsLeader reports whether this process holds the leadership lease (and so
// is, or is about to be, streaming).
func (s *ReplicationSource) IsLeader() bool { return s.leader.Load() }

// SlotLagBytes is how far the slot's confirmed position trails the server's
// WAL, as last measured by the leader (every StatusInterval); 0 on followers.
func (s *ReplicationSource) SlotLagBytes() int64 { return s.lag.Load() }

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
		failures++
		d := backoff(reconnectMin, reconnectMax, failures)
		s.log.WarnContext(ctx, "replication stream", keyError, err, keyAttempt, failures, keyBackoff, d)
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

// watchSlot measures the slot's lag every StatusInterval, warns above
// LagWarnBytes and retries deletes that failed.
func (s *ReplicationSource) watchSlot(ctx context.Context) {
	t := time.NewTicker(s.cfg.StatusInterval)
	defer t.Stop()
	var lastWarn time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, dbTimeout)
		var lag int64
		err := s.pool.QueryRow(qctx, `SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint
			FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.SlotName).Scan(&lag)
		if err == nil {
			s.lag.Store(lag)
			if lag > s.cfg.LagWarnBytes && time.Since(lastWarn) > time.Minute {
				lastWarn = time.Now()
				s.log.WarnContext(ctx, "replication slot lags; WAL is retained until syncd catches up", keyLagBytes, lag)
			}
		}
		s.mu.Lock()
		undeleted := s.undeleted
		s.undeleted = nil
		s.mu.Unlock()
		if len(undeleted) > 0 {
			if err := deleteRows(qctx, s.pool, undeleted); err != nil {
				s.mu.Lock()
				s.undeleted = append(s.undeleted, undeleted...)
				s.mu.Unlock()
			}
		}
		cancel()
	}
}

// slotInfo is what pg_replication_slots says of the slot.
type slotInfo struct {
	exists    bool
	database  string
	plugin    string
	walStatus string
	confirmed pglogrepl.LSN
}

func (s *ReplicationSource) readSlot(ctx context.Context) (slotInfo, error) {
	var (
		info      slotInfo
		db        *string
		plugin    *string
		walStatus *string
		confirmed *string
	)
	err := s.pool.QueryRow(ctx, `SELECT database, plugin, wal_status, confirmed_flush_lsn::text
		FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.SlotName).Scan(&db, &plugin, &walStatus, &confirmed)
	if errors.Is(err, pgx.ErrNoRows) {
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("read replication slot: %w", err)
	}
	info.exists = true
	info.database, info.plugin, info.walStatus = deref(db), deref(plugin), deref(walStatus)
	if confirmed != nil {
		if info.confirmed, err = pglogrepl.ParseLSN(*confirmed); err != nil {
			return info, fmt.Errorf("read replication slot: %w", err)
		}
	}
	return info, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// ensureSlot makes sure the slot exists and is usable, recreating one that
// Postgres invalidated, and returns its confirmed position.
func (s *ReplicationSource) ensureSlot(ctx context.Context, conn *pgconn.PgConn) (pglogrepl.LSN, error) {
	info, err := s.readSlot(ctx)
	if err != nil {
		return 0, err
	}
	if info.exists {
		var current string
		if err := s.pool.QueryRow(ctx, "SELECT current_database()").Scan(&current); err != nil {
			return 0, fmt.Errorf("read database name: %w", err)
		}
		switch {
		case info.database != current:
			return 0, fmt.Errorf("replication slot %s belongs to database %q, not %q: choose another slot name", s.cfg.SlotName, info.database, current)
		case info.plugin != "pgoutput":
			return 0, fmt.Errorf("replication slot %s uses plugin %q, not pgoutput: choose another slot name", s.cfg.SlotName, info.plugin)
		case info.walStatus == "lost":
			s.log.WarnContext(ctx, "replication slot was invalidated by Postgres (wal_status lost); recreating it and scanning the outbox")
			if _, err := s.pool.Exec(ctx, "SELECT pg_drop_replication_slot($1)", s.cfg.SlotName); err != nil {
				return 0, fmt.Errorf("drop lost replication slot: %w", err)
			}
		default:
			return info.confirmed, nil
		}
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, s.cfg.SlotName, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object: made meanwhile
		info, err := s.readSlot(ctx)
		return info.confirmed, err
	}
	if err != nil {
		return 0, fmt.Errorf("create replication slot: %w", err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, fmt.Errorf("create replication slot: %w", err)
	}
	s.log.InfoContext(ctx, "created replication slot", keyLSN, lsn.String())
	return lsn, nil
}

// session is one replication connection: slot, START_REPLICATION, catch-up
// scan, then the stream until an error or ctx ends. When runCtx (not just the
// leadership) is done, it drains before its last status update.
func (s *ReplicationSource) session(ctx, runCtx context.Context, connCfg *pgconn.Config) error {
	cctx, cancel := context.WithTimeout(ctx, dbTimeout)
	conn, err := pgconn.ConnectConfig(cctx, connCfg)
	cancel()
	if err != nil {
		return fmt.Errorf("connect for replication: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(closeCtx)
		cancel()
	}()

	cctx, cancel = context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	confirmed, err := s.ensureSlot(cctx, conn)
	if err != nil {
		return err
	}
	err = pglogrepl.StartReplication(cctx, conn, s.cfg.SlotName, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '1'",
			"publication_names '" + syncdsql.Publication + "'",
		},
	})
	if err != nil {
		return fmt.Errorf("start replication: %w", err)
	}
	s.log.DebugContext(ctx, "replication stream started", keyLSN, confirmed.String())
	if err := s.catchUp(cctx); err != nil {
		return err
	}
	cancel()

	st := &stream{src: s, conn: conn, track: newFlushTracker(confirmed), received: confirmed, lastSent: confirmed}
	return st.run(ctx, runCtx)
}

// catchUp hands every row of the outbox to the queue: rows that the stream
// will not deliver again (their transaction was confirmed, or the slot is
// new) must still be handled.
func (s *ReplicationSource) catchUp(ctx context.Context) error {
	var after int64
	total := 0
	for {
		rows, err := scanRows(ctx, s.pool, after, s.cfg.BatchSize)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			break
		}
		after = rows[len(rows)-1].ID
		total += len(rows)
		// Rows still in the queue from an earlier session need no second ack.
		s.mu.Lock()
		rows = slices.DeleteFunc(rows, func(r claimedRow) bool { _, ok := s.handed[r.ID]; return ok })
		s.mu.Unlock()
		keys, ids := byEmployee(rows)
		s.hand(keys, ids)
		for _, k := range keys {
			s.q.EnqueueAck(k, s.ack(nil, ids[k]))
		}
	}
	if total > 0 {
		s.log.InfoContext(ctx, "outbox rows found at stream start", keyRows, total)
	}
	return nil
}

// hand counts the acks about to be handed out and remembers their rows.
func (s *ReplicationSource) hand(keys []int64, ids map[int64][]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outstanding += len(keys)
	for _, k := range keys {
		for _, id := range ids[k] {
			s.handed[id] = struct{}{}
		}
	}
}

// ack deletes a handled key's rows and, for a key that came from the stream,
// counts it against its transaction so that the confirmed position can move.
func (s *ReplicationSource) ack(t *txnRef, ids []int64) Ack {
	return func(handled bool) {
		var deleteErr error
		if handled {
			ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
			deleteErr = deleteRows(ctx, s.pool, ids)
			cancel()
			if t != nil {
				// The key was handled: even if the delete failed the
				// transaction is done; the rows are retried by watchSlot
				// and otherwise found by the next catch-up scan.
				t.done()
			}
		}
		s.mu.Lock()
		if deleteErr != nil {
			s.undeleted = append(s.undeleted, ids...)
		}
		for _, id := range ids {
			delete(s.handed, id)
		}
		s.outstanding--
		if s.outstanding == 0 {
			notify(s.drained)
		}
		wake := s.interrupt
		s.mu.Unlock()
		if handled && t != nil && wake != nil {
			wake()
		}
	}
}

// drain waits until every ack was called or ShutdownTimeout passed.
func (s *ReplicationSource) drain() {
	if n := waitSettled(&s.mu, &s.outstanding, s.drained, s.cfg.ShutdownTimeout); n > 0 {
		s.log.WarnContext(context.Background(), "queue did not settle its keys before the shutdown timeout; their transactions stay unconfirmed", keyKeys, n)
	}
}

// flushTracker knows which streamed transactions still have keys to handle.
// confirmed is the end of the last transaction of the longest fully handled
// prefix of the stream: everything below it is handled.
type flushTracker struct {
	mu        sync.Mutex
	confirmed pglogrepl.LSN
	txns      []*txnRef // in stream order
}

type txnRef struct {
	tr        *flushTracker
	end       pglogrepl.LSN
	remaining int
}

func newFlushTracker(confirmed pglogrepl.LSN) *flushTracker {
	return &flushTracker{confirmed: confirmed}
}

// add records a committed transaction with keys outstanding keys.
func (f *flushTracker) add(end pglogrepl.LSN, keys int) *txnRef {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &txnRef{tr: f, end: end, remaining: keys}
	f.txns = append(f.txns, t)
	f.advance()
	return t
}

// done counts one key of t as handled.
func (t *txnRef) done() {
	f := t.tr
	f.mu.Lock()
	defer f.mu.Unlock()
	t.remaining--
	f.advance()
}

func (f *flushTracker) advance() {
	i := 0
	for i < len(f.txns) && f.txns[i].remaining <= 0 {
		f.confirmed = max(f.confirmed, f.txns[i].end)
		i++
	}
	if i > 0 {
		f.txns = append(f.txns[:0], f.txns[i:]...)
	}
}

// idle moves confirmed to lsn if no transaction is outstanding: the server
// has sent everything below lsn and all of it is handled, so an idle slot
// does not pin WAL.
func (f *flushTracker) idle(lsn pglogrepl.LSN) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.txns) == 0 {
		f.confirmed = max(f.confirmed, lsn)
	}
}

func (f *flushTracker) position() pglogrepl.LSN {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.confirmed
}

// stream is the receive loop of one session.
type stream struct {
	src   *ReplicationSource
	conn  *pgconn.PgConn
	track *flushTracker

	relations map[uint32]outboxRelation
	inTxn     bool
	txnKeys   []int64
	txnRows   map[int64][]int64

	received       pglogrepl.LSN // highest WAL position received
	lastSent       pglogrepl.LSN // flush position of the last status update
	lastSentAt     time.Time
	replyRequested bool
}

// outboxRelation is the relation cache entry: where the columns syncd needs
// are in the relation's tuples; ok is false for other tables.
type outboxRelation struct {
	ok           bool
	idCol, empID int
}

func (st *stream) run(ctx, runCtx context.Context) error {
	s := st.src
	st.relations = make(map[uint32]outboxRelation)
	nextStatus := time.Now().Add(s.cfg.StatusInterval)
	for {
		if ctx.Err() != nil {
			if runCtx.Err() != nil {
				s.drain()
			}
			// Best effort: tell the server what was handled before leaving.
			_ = st.sendStatus()
			return nil
		}
		pos := st.track.position()
		now := time.Now()
		if st.replyRequested || !now.Before(nextStatus) || (pos > st.lastSent && now.Sub(st.lastSentAt) >= statusMinGap) {
			if err := st.sendStatus(); err != nil {
				return err
			}
			nextStatus = time.Now().Add(s.cfg.StatusInterval)
		}
		deadline := nextStatus
		if gap := st.lastSentAt.Add(statusMinGap); pos > st.lastSent && gap.Before(deadline) {
			deadline = gap
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		s.mu.Lock()
		s.interrupt = cancel
		s.mu.Unlock()
		if st.track.position() != pos {
			cancel() // an ack landed before the interrupt was in place
		}
		msg, err := st.conn.ReceiveMessage(rctx)
		s.mu.Lock()
		s.interrupt = nil
		s.mu.Unlock()
		timedOut := rctx.Err() != nil
		cancel()
		if err != nil {
			if timedOut && ctx.Err() == nil && !st.conn.IsClosed() {
				continue // status due, work completed, or woken: loop
			}
			if ctx.Err() != nil {
				continue
			}
			return fmt.Errorf("receive replication message: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if err := st.handleCopyData(ctx, msg.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyDone:
			return errors.New("replication stream ended by the server")
		}
	}
}

func (st *stream) sendStatus() error {
	pos := st.track.position()
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), st.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: max(st.received, pos),
		WALFlushPosition: pos,
		WALApplyPosition: pos,
	})
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	st.lastSent, st.lastSentAt, st.replyRequested = pos, time.Now(), false
	return nil
}

func (st *stream) handleCopyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("parse keepalive: %w", err)
		}
		st.received = max(st.received, pkm.ServerWALEnd)
		if !st.inTxn {
			st.track.idle(pkm.ServerWALEnd)
		}
		if pkm.ReplyRequested {
			st.replyRequested = true
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("parse xlogdata: %w", err)
		}
		st.received = max(st.received, xld.WALStart)
		return st.handleLogical(ctx, xld.WALData)
	}
	return nil
}

func (st *stream) handleLogical(ctx context.Context, walData []byte) error {
	msg, err := pglogrepl.Parse(walData)
	if err != nil {
		return fmt.Errorf("parse logical replication message: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		rel := outboxRelation{idCol: -1, empID: -1}
		if m.RelationName == "auth0_outbox" {
			for i, c := range m.Columns {
				switch c.Name {
				case "id":
					rel.idCol = i
				case "employee_id":
					rel.empID = i
				}
			}
			rel.ok = rel.idCol >= 0 && rel.empID >= 0
		}
		st.relations[m.RelationID] = rel
	case *pglogrepl.BeginMessage:
		st.inTxn = true
		st.txnKeys = st.txnKeys[:0]
		st.txnRows = make(map[int64][]int64)
	case *pglogrepl.InsertMessage:
		rel, known := st.relations[m.RelationID]
		if !known {
			return fmt.Errorf("insert into relation %d before its relation message", m.RelationID)
		}
		if !rel.ok {
			return nil
		}
		id, err := tupleInt(m.Tuple, rel.idCol)
		if err != nil {
			return fmt.Errorf("decode auth0_outbox.id: %w", err)
		}
		emp, err := tupleInt(m.Tuple, rel.empID)
		if err != nil {
			return fmt.Errorf("decode auth0_outbox.employee_id: %w", err)
		}
		if _, seen := st.txnRows[emp]; !seen {
			st.txnKeys = append(st.txnKeys, emp)
		}
		st.txnRows[emp] = append(st.txnRows[emp], id)
	case *pglogrepl.CommitMessage:
		st.commit(ctx, m.TransactionEndLSN)
	}
	return nil
}

// commit hands the transaction's keys to the queue; its end LSN is confirmed
// once they all were handled.
func (st *stream) commit(_ context.Context, end pglogrepl.LSN) {
	s := st.src
	st.inTxn = false
	keys := st.txnKeys
	t := st.track.add(end, len(keys))
	s.hand(keys, st.txnRows)
	for _, k := range keys {
		s.q.EnqueueAck(k, s.ack(t, st.txnRows[k]))
	}
	st.txnKeys = nil
	st.txnRows = nil
}

// tupleInt decodes column i of a text-format tuple as an integer.
func tupleInt(t *pglogrepl.TupleData, i int) (int64, error) {
	if t == nil || i >= len(t.Columns) {
		return 0, errors.New("column missing from tuple")
	}
	c := t.Columns[i]
	if c.DataType != pglogrepl.TupleDataTypeText {
		return 0, fmt.Errorf("column sent as %q, want text", c.DataType)
	}
	return strconv.ParseInt(string(c.Data), 10, 64)
}
