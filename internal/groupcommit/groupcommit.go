// Package groupcommit writes the items that concurrent callers hand over at
// about the same time in one flush (one statement or one batch, one
// transaction) instead of one each: a small group commit.
//
// There is no background goroutine and no timer. A caller that finds no flush
// under way flushes at once, alone (an idle system pays no extra latency);
// callers that arrive while a flush runs wait and go together in the next
// one, up to Max items. Each caller gets the result of the flush that carried
// its item only after that flush returned, so nothing a caller does next
// (acknowledging a key) happens before its write committed. A flush that
// fails fails every item of it; the caller decides what to do (write alone,
// retry later): nothing is dropped here.
package groupcommit

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Flush writes items and returns one result per item, in order. An error
// fails every item (the flush is one transaction: it committed whole or not
// at all).
type Flush[T, R any] func(items []T) ([]R, error)

// Group batches the items of concurrent Do calls. It is safe for concurrent
// use; the zero value is not usable, call New.
type Group[T, R any] struct {
	flush Flush[T, R]
	max   int

	mu      sync.Mutex
	pending []*call[T, R]
	busy    bool // a caller is flushing (the leader)

	flushes, items atomic.Int64
}

type call[T, R any] struct {
	item T
	res  R
	err  error
	// wake says either that the item was flushed by another caller (false)
	// or that this caller leads the next flush (true).
	wake chan bool
}

// New returns a Group that flushes at most maxItems items at once (at least 1).
func New[T, R any](maxItems int, flush Flush[T, R]) *Group[T, R] {
	return &Group[T, R]{flush: flush, max: max(maxItems, 1)}
}

// Do hands item over and returns its result once the flush that carried it
// has returned. It blocks for as long as that flush takes; a Flush bounds
// its own time.
func (g *Group[T, R]) Do(item T) (R, error) {
	c := &call[T, R]{item: item, wake: make(chan bool, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if g.busy {
		g.mu.Unlock()
		if lead := <-c.wake; !lead {
			return c.res, c.err
		}
	} else {
		g.busy = true
		g.mu.Unlock()
	}
	g.lead(c)
	return c.res, c.err
}

// lead flushes pending items, oldest first, until c's item is flushed, then
// hands the lead to the oldest caller still waiting, if any.
func (g *Group[T, R]) lead(c *call[T, R]) {
	for {
		g.mu.Lock()
		n := min(len(g.pending), g.max)
		batch := make([]*call[T, R], n)
		copy(batch, g.pending)
		g.pending = append(g.pending[:0], g.pending[n:]...)
		g.mu.Unlock()

		g.run(batch)
		mine := false
		for _, b := range batch {
			if b == c {
				mine = true
				continue
			}
			b.wake <- false
		}
		if !mine {
			continue
		}
		g.mu.Lock()
		if len(g.pending) == 0 {
			g.busy = false
			g.mu.Unlock()
			return
		}
		next := g.pending[0]
		g.mu.Unlock()
		next.wake <- true
		return
	}
}

// run flushes batch and stores each item's result; a panic of the flush
// fails the batch instead of stranding its waiting callers.
func (g *Group[T, R]) run(batch []*call[T, R]) {
	items := make([]T, len(batch))
	for i, b := range batch {
		items[i] = b.item
	}
	res, err := g.safeFlush(items)
	if err == nil && len(res) != len(items) {
		err = fmt.Errorf("group commit: flush returned %d results for %d items", len(res), len(items))
	}
	g.flushes.Add(1)
	g.items.Add(int64(len(items)))
	for i, b := range batch {
		if err != nil {
			b.err = err
			continue
		}
		b.res = res[i]
	}
}

func (g *Group[T, R]) safeFlush(items []T) (res []R, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("group commit: flush panicked: %v", r)
		}
	}()
	return g.flush(items)
}

// Stats are a Group's counters since New.
type Stats struct {
	Flushes int64 // flushes run (failed ones too)
	Items   int64 // items they carried
}

// Stats returns how many flushes ran and how many items they carried.
func (g *Group[T, R]) Stats() Stats {
	return Stats{Flushes: g.flushes.Load(), Items: g.items.Load()}
}
