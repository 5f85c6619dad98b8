package outbox

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Logical decoding hands over a transaction as soon as its commit record is
// flushed, which is a moment before the committing backend leaves the
// procarray: a snapshot taken in that moment still sees the transaction as
// running, so its rows are invisible to other sessions. (A commit that waits
// for a synchronous standby stays in that state for as long as it waits.) A
// key handed to the queue then would be reconciled against a row that seems
// not to exist. The gate holds each streamed transaction until a new
// snapshot sees it as committed: once that is true it stays true for every
// later snapshot of every session, so the check is exact, and it is made for
// all waiting transactions in one query.

// visibleQuery returns those of the given 32-bit xids that a new snapshot
// still sees as running. The full xid (xid8) of a recent 32-bit xid is the
// one of the snapshot's epoch, moved by one epoch when that puts it more than
// 2^31 away from the snapshot's xmax (a transaction just decoded is never
// that old).
const visibleQuery = `WITH s AS (SELECT pg_current_snapshot() AS snap),
	m AS (SELECT snap, pg_snapshot_xmax(snap)::text::bigint AS xmax FROM s),
	f AS (SELECT x, snap, xmax, ((xmax >> 32) << 32) | x AS fx FROM m, unnest($1::bigint[]) AS x)
SELECT x FROM f
WHERE NOT pg_visible_in_snapshot((CASE
	WHEN fx > xmax + 2147483648 THEN fx - 4294967296
	WHEN fx < xmax - 2147483648 THEN fx + 4294967296
	ELSE fx END)::text::xid8, snap)`

// gateRecheckMax caps the pause between two checks of a transaction that is
// not visible yet (the pause starts at 1ms and doubles).
const gateRecheckMax = 50 * time.Millisecond

// pendingTxn is a committed transaction whose keys wait for visibility.
type pendingTxn struct {
	xid  uint32
	t    *txnRef
	keys []string
	rows map[string][]int64
}

// visibilityGate passes streamed transactions to the queue once they are
// visible. One per session; run by its own goroutine.
type visibilityGate struct {
	src  *ReplicationSource
	mu   sync.Mutex
	txns []pendingTxn
	wake chan struct{}
}

func newVisibilityGate(s *ReplicationSource) *visibilityGate {
	return &visibilityGate{src: s, wake: make(chan struct{}, 1)}
}

// push queues a committed transaction's keys (counted against
// MaxOutstanding while they wait).
func (g *visibilityGate) push(p pendingTxn) {
	g.src.mu.Lock()
	g.src.gated += len(p.keys)
	g.src.mu.Unlock()
	g.mu.Lock()
	g.txns = append(g.txns, p)
	g.mu.Unlock()
	notify(g.wake)
}

// run checks the waiting transactions, a batch per query, until ctx is done.
func (g *visibilityGate) run(ctx context.Context) {
	pause := time.Millisecond
	failing := false
	for {
		g.mu.Lock()
		batch := g.txns
		g.txns = nil
		g.mu.Unlock()
		if len(batch) == 0 {
			pause = time.Millisecond
			select {
			case <-ctx.Done():
				return
			case <-g.wake:
			}
			continue
		}
		waiting, err := g.src.invisible(ctx, batch)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true // said once; the session's own errors follow
			g.src.log.WarnContext(ctx, "check that streamed transactions are visible", keyError, err)
		case err == nil && failing:
			failing = false
			g.src.log.InfoContext(ctx, "visibility check works again")
		}
		var held []pendingTxn
		for _, p := range batch {
			if err != nil || waiting[p.xid] {
				held = append(held, p)
				continue
			}
			g.pass(p)
		}
		if len(held) == 0 {
			pause = time.Millisecond
			continue
		}
		g.src.counters.gateHeld.Add(int64(len(held)))
		g.mu.Lock()
		g.txns = append(held, g.txns...)
		g.mu.Unlock()
		if !sleep(ctx, pause) {
			return
		}
		pause = min(pause*2, gateRecheckMax)
	}
}

// pass hands a visible transaction's keys to the queue.
func (g *visibilityGate) pass(p pendingTxn) {
	s := g.src
	// One step under the lock: between giving up the gated count and
	// counting the keys outstanding, the stream would see room that is not
	// there and read one transaction too many.
	s.mu.Lock()
	s.gated -= len(p.keys)
	s.handLocked(p.keys, p.rows)
	s.mu.Unlock()
	for _, k := range p.keys {
		s.q.EnqueueAck(k, s.ack(p.t, p.rows[k]))
	}
}

// abandon forgets the transactions still waiting when the session ends:
// they were never confirmed, so the slot streams them again (and the
// catch-up scan finds their rows).
func (g *visibilityGate) abandon() {
	g.mu.Lock()
	n := 0
	for _, p := range g.txns {
		n += len(p.keys)
	}
	g.txns = nil
	g.mu.Unlock()
	g.src.mu.Lock()
	g.src.gated -= n
	g.src.mu.Unlock()
	notify(g.src.room)
}

// invisible returns which of batch's transactions a new snapshot does not
// see yet.
func (s *ReplicationSource) invisible(ctx context.Context, batch []pendingTxn) (map[uint32]bool, error) {
	xids := make([]int64, 0, len(batch))
	for _, p := range batch {
		xids = append(xids, int64(p.xid))
	}
	qctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	rows, err := s.pool.Query(qctx, visibleQuery, xids)
	if err != nil {
		return nil, fmt.Errorf("check transaction visibility: %w", err)
	}
	running, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("check transaction visibility: %w", err)
	}
	out := make(map[uint32]bool, len(running))
	for _, x := range running {
		out[uint32(x)] = true
	}
	return out, nil
}
