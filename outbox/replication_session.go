package outbox

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	syncdsql "github.com/syncd/syncd/sql"
)

// session is one replication connection: slot, catch-up scan,
// START_REPLICATION, then the stream until an error or ctx ends. When runCtx
// (not just the leadership) is done, it drains before its last status update.
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
	confirmed, err := s.ensureSlot(cctx, conn)
	cancel()
	if err != nil {
		return err
	}
	// The scan comes before START_REPLICATION: it may wait for room
	// (backpressure) for as long as the queue needs, and a connection that
	// is not streaming yet owes the server no status updates. The slot keeps
	// every transaction after its confirmed position meanwhile, so a row
	// committed during the scan is streamed; a row both scanned and streamed
	// is skipped by the stream (caughtUp), so an insert is handled once.
	if err := s.catchUp(ctx); err != nil {
		return err
	}
	cctx, cancel = context.WithTimeout(ctx, dbTimeout)
	err = pglogrepl.StartReplication(cctx, conn, s.cfg.SlotName, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '1'",
			"publication_names '" + syncdsql.Publication + "'",
		},
	})
	cancel()
	if err != nil {
		return fmt.Errorf("start replication: %w", err)
	}
	s.log.DebugContext(ctx, "replication stream started", keyLSN, confirmed.String())
	s.streamFaults.OK(ctx)

	gctx, stopGate := context.WithCancel(ctx)
	g := newVisibilityGate(s)
	var wg sync.WaitGroup
	wg.Go(func() { g.run(gctx) })
	defer func() {
		stopGate()
		wg.Wait()
		g.abandon()
	}()
	st := &stream{src: s, conn: conn, gate: g, track: newFlushTracker(confirmed), received: confirmed, lastSent: confirmed}
	return st.run(ctx, runCtx)
}

// catchUp hands every row of the outbox to the queue: rows that the stream
// will not deliver again (their transaction was confirmed, or the slot is
// new) must still be handled.
func (s *ReplicationSource) catchUp(ctx context.Context) error {
	var after int64
	total := 0
	s.mu.Lock()
	s.caught = make(map[int64]struct{})
	s.mu.Unlock()
	for {
		if !s.waitRoom(ctx) {
			return ctx.Err()
		}
		// No more rows than there is room for: each may be a key of its own,
		// and the keys handed out must stay within MaxOutstanding.
		s.mu.Lock()
		limit := max(1, min(s.cfg.BatchSize, s.cfg.MaxOutstanding-s.outstanding-s.gated))
		s.mu.Unlock()
		qctx, cancel := context.WithTimeout(ctx, dbTimeout)
		rows, err := scanRows(qctx, s.pool, after, limit)
		cancel()
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
		for _, r := range rows {
			s.caught[r.ID] = struct{}{}
		}
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

// caughtUp reports whether this session's catch-up scan handed out the
// outbox row id, forgetting it: the stream then skips the row.
func (s *ReplicationSource) caughtUp(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.caught[id]; ok {
		delete(s.caught, id)
		return true
	}
	return false
}

// hand counts the acks about to be handed out and remembers their rows.
func (s *ReplicationSource) hand(keys []string, ids map[string][]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handLocked(keys, ids)
}

// handLocked is hand with mu held.
func (s *ReplicationSource) handLocked(keys []string, ids map[string][]int64) {
	s.outstanding += len(keys)
	s.peak = max(s.peak, s.outstanding+s.gated)
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
			_, deleteErr = s.deletes.Do(ids)
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
		notify(s.room)
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

// busy reports whether the keys handed out and not yet acked, plus those
// waiting to become visible, reached MaxOutstanding. Called with mu held.
func (s *ReplicationSource) busy() bool {
	return s.outstanding+s.gated >= s.cfg.MaxOutstanding
}

// waitRoom waits until the source is not busy (true) or ctx is done (false).
func (s *ReplicationSource) waitRoom(ctx context.Context) bool {
	for {
		s.mu.Lock()
		busy := s.busy()
		s.mu.Unlock()
		if !busy {
			return true
		}
		s.counters.backpressure.Add(1)
		select {
		case <-ctx.Done():
			return false
		case <-s.room:
		}
	}
}
