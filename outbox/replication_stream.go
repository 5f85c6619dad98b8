package outbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// stream is the receive loop of one session.
type stream struct {
	src   *ReplicationSource
	conn  *pgconn.PgConn
	gate  *visibilityGate
	track *flushTracker

	relations map[uint32]outboxRelation
	inTxn     bool
	txnXid    uint32
	txnKeys   []string
	txnRows   map[string][]int64

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
	// A status update at once: the server measures its wal_sender_timeout
	// (and asks for replies) only after it heard from the client once.
	nextStatus := time.Now()
	for {
		s.counters.wakeups.Add(1)
		if ctx.Err() != nil {
			if runCtx.Err() != nil {
				s.drain()
			}
			// Best effort: tell the server what was handled before leaving.
			// A failure here ends the session with an error like any other
			// (counted, so that a reply it owed is accounted for).
			if err := st.sendStatus(); err != nil {
				s.counters.sessionErrors.Add(1)
			}
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
		s.mu.Lock()
		busy := s.busy()
		s.mu.Unlock()
		if busy {
			// Backpressure: read nothing more until the queue makes room;
			// status updates still go out on time.
			s.counters.backpressure.Add(1)
			t := time.NewTimer(time.Until(deadline))
			select {
			case <-ctx.Done():
			case <-s.room:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		s.mu.Lock()
		s.interrupt = cancel
		s.mu.Unlock()
		if st.track.position() != pos {
			cancel() // an ack landed before the interrupt was in place
		}
		if st.replyRequested {
			s.counters.unanswered.Add(1)
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
	// Its own deadline: a write stuck on a dead TCP peer must not hang the
	// loop (and so shutdown).
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	err := pglogrepl.SendStandbyStatusUpdate(ctx, st.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: max(st.received, pos),
		WALFlushPosition: pos,
		WALApplyPosition: pos,
	})
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	st.src.counters.statusSent.Add(1)
	if st.replyRequested {
		st.src.counters.keepaliveReplies.Add(1)
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
			st.src.counters.keepaliveRequests.Add(1)
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
		st.txnXid = m.Xid
		st.txnKeys = st.txnKeys[:0]
		st.txnRows = make(map[string][]int64)
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
		emp, err := tupleText(m.Tuple, rel.empID)
		if err != nil {
			return fmt.Errorf("decode auth0_outbox.employee_id: %w", err)
		}
		if st.src.caughtUp(id) {
			return nil // the catch-up scan handed this row out already
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

// commit passes the transaction's keys to the visibility gate, which hands
// them to the queue once the transaction is visible; its end LSN is
// confirmed once they all were handled.
func (st *stream) commit(_ context.Context, end pglogrepl.LSN) {
	st.inTxn = false
	keys := st.txnKeys
	t := st.track.add(end, len(keys))
	if len(keys) > 0 {
		st.gate.push(pendingTxn{xid: st.txnXid, t: t, keys: keys, rows: st.txnRows})
	}
	st.txnKeys = nil
	st.txnRows = nil
}

// tupleInt decodes column i of a text-format tuple as an integer.
func tupleInt(t *pglogrepl.TupleData, i int) (int64, error) {
	s, err := tupleText(t, i)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

// tupleText returns column i of a text-format tuple: the value's text form,
// as PostgreSQL prints it (what `::text` gives).
func tupleText(t *pglogrepl.TupleData, i int) (string, error) {
	if t == nil || i >= len(t.Columns) {
		return "", errors.New("column missing from tuple")
	}
	c := t.Columns[i]
	if c.DataType != pglogrepl.TupleDataTypeText {
		return "", fmt.Errorf("column sent as %q, want text", c.DataType)
	}
	return string(c.Data), nil
}
