package outbox

import (
	"sync"

	"github.com/jackc/pglogrepl"
)

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
