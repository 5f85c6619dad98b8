package outbox

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/syncd/syncd/internal/faultlog"
)

// Handler handles one key: it reads the current state of employee
// employeeID and converges it. nil means handled; an error means the key is
// retried with backoff.
type Handler func(ctx context.Context, employeeID string) error

// Ack is told the fate of a key handed over with EnqueueAck. handled is true
// once a handler run of the key that started after EnqueueAck returned has
// succeeded; false when the queue stopped before such a run (the work is then
// left to the durable outbox). It is called exactly once, never under the
// queue's lock, and it may block briefly (the worker that calls it waits).
type Ack func(handled bool)

// QueueConfig configures a Queue. The zero value of every field but Handler
// means its default.
type QueueConfig struct {
	// Workers is how many keys are handled at once. Default 8.
	Workers int
	// Handler is called for each key. Required.
	Handler Handler
	// Logger receives handler failures and panics. Default: discard.
	Logger *slog.Logger
	// RetryBackoff is the first delay before a key whose handler failed runs
	// again; it doubles with each failure (with jitter) up to MaxBackoff.
	// Default 1s.
	RetryBackoff time.Duration
	// MaxBackoff bounds the retry delay. Default 1m.
	MaxBackoff time.Duration
	// DrainTimeout is how long handlers that are running when Run's context
	// is cancelled may go on before their own context is cancelled. Default 15s.
	DrainTimeout time.Duration
}

// WithDefaults returns c with every unset field at its default.
func (c QueueConfig) WithDefaults() QueueConfig {
	c.Workers = cmp.Or(c.Workers, 8)
	c.Logger = cmp.Or(c.Logger, discardLogger)
	c.RetryBackoff = cmp.Or(c.RetryBackoff, time.Second)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, time.Minute)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, 15*time.Second)
	return c
}

// Validate reports the first setting that is unusable.
func (c QueueConfig) Validate() error {
	switch {
	case c.Handler == nil:
		return &ConfigError{Field: "Handler", Value: "nil", Err: errors.New("is required")}
	case c.Workers < 0:
		return &ConfigError{Field: "Workers", Value: fmt.Sprint(c.Workers), Err: errors.New("must not be negative")}
	case c.RetryBackoff < 0:
		return &ConfigError{Field: "RetryBackoff", Value: c.RetryBackoff.String(), Err: errors.New("must not be negative")}
	case c.MaxBackoff < c.RetryBackoff:
		return &ConfigError{Field: "MaxBackoff", Value: c.MaxBackoff.String(), Err: errors.New("must not be below RetryBackoff")}
	case c.DrainTimeout < 0:
		return &ConfigError{Field: "DrainTimeout", Value: c.DrainTimeout.String(), Err: errors.New("must not be negative")}
	}
	return nil
}

// QueueStats is a snapshot of a Queue for metrics.
type QueueStats struct {
	// Depth is the number of keys waiting to run (including keys waiting
	// out a retry backoff and keys that will run again after their current
	// run).
	Depth int
	// InFlight is the number of keys whose handler is running.
	InFlight int
	// OldestPending is how long the longest-waiting key has been waiting; 0
	// when none waits.
	OldestPending time.Duration
}

// Queue is a keyed work queue: bounded workers, a key is never handled by two
// workers at once, and a key enqueued while it is pending or running is
// coalesced into one further run. Handler errors are retried per key with
// exponential backoff. The zero value is not usable; call NewQueue.
type Queue struct {
	cfg    QueueConfig
	now    func() time.Time // tests
	faults *faultlog.Tracker

	mu       sync.Mutex
	keys     map[string]*keyState
	ready    fifo      // keys that may run now, in arrival order
	delayed  delayHeap // keys waiting out a backoff
	inFlight int       // keys running
	depth    int       // keys with a pending run
	stopped  bool      // Run returned: acks are answered false at once
	wake     chan struct{}
}

// keyState is the state of one key the queue knows of. A key is in the map
// while it is pending, running or both.
type keyState struct {
	id        string
	running   bool      // a handler run is under way
	pending   bool      // a (further) run is wanted
	queued    bool      // in ready or delayed
	since     time.Time // when the pending run was first wanted
	notBefore time.Time // backoff after a failure
	failures  int       // consecutive failures
	waiting   []Ack     // acks satisfied by the next run to start
	current   []Ack     // acks of the run under way
}

// NewQueue returns a queue; nothing runs until Run. Defaults are filled in;
// an invalid config makes Run return its error.
func NewQueue(cfg QueueConfig) *Queue {
	return &Queue{
		cfg:    cfg.WithDefaults(),
		now:    time.Now,
		faults: faultlog.New(cfg.WithDefaults().Logger, "handling work queue keys"),
		keys:   make(map[string]*keyState),
		wake:   make(chan struct{}, 1),
	}
}

// Enqueue asks for a run of employeeID. If the key is already waiting, this
// is a no-op; if it is running, it runs once more afterwards.
func (q *Queue) Enqueue(employeeID string) { q.EnqueueAck(employeeID, nil) }

// EnqueueAck is Enqueue with an acknowledgement: ack (if not nil) is called
// with true after a handler run of employeeID that started after this call
// has succeeded, or with false if the queue stops first. A change source
// deletes the outbox rows it claimed before the call only on ack(true), so a
// row inserted while the key's handler runs is never deleted by that run.
func (q *Queue) EnqueueAck(employeeID string, ack Ack) {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		if ack != nil {
			ack(false)
		}
		return
	}
	st := q.keys[employeeID]
	if st == nil {
		st = &keyState{id: employeeID}
		q.keys[employeeID] = st
	}
	if ack != nil {
		st.waiting = append(st.waiting, ack)
	}
	if !st.pending {
		st.pending = true
		st.since = q.now()
		q.depth++
	}
	q.schedule(st)
	q.mu.Unlock()
}

// schedule puts a pending key that is not running into ready or delayed.
// Called with mu held.
func (q *Queue) schedule(st *keyState) {
	if st.running || st.queued || !st.pending {
		return
	}
	st.queued = true
	if st.notBefore.After(q.now()) {
		heap.Push(&q.delayed, st)
	} else {
		q.ready.push(st.id)
	}
	q.signal()
}

func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Stats returns the queue's current depth, in-flight count and oldest
// pending age.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := QueueStats{Depth: q.depth, InFlight: q.inFlight}
	now := q.now()
	for _, st := range q.keys {
		if st.pending {
			s.OldestPending = max(s.OldestPending, now.Sub(st.since))
		}
	}
	return s
}

// Run hands keys to at most Workers handlers at a time until ctx is done.
// Then it takes no more work, waits for the running handlers (whose context
// is cancelled DrainTimeout after ctx), answers every outstanding ack with
// false and returns nil. It returns an error at once if the config is
// invalid. Run is called once.
func (q *Queue) Run(ctx context.Context) error {
	if err := q.cfg.Validate(); err != nil {
		return fmt.Errorf("outbox queue: %w", err)
	}
	q.mu.Lock()
	q.stopped = false
	q.mu.Unlock()

	// Handlers finish their work on shutdown, within DrainTimeout.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	runDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-runDone:
			return
		}
		t := time.NewTimer(q.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			hcancel()
		case <-runDone:
		}
	})

	slots := make(chan struct{}, q.cfg.Workers)
	var workers sync.WaitGroup
	q.dispatch(ctx, slots, func(st *keyState) {
		workers.Go(func() {
			defer func() { <-slots }()
			q.handle(hctx, st)
		})
	})
	workers.Wait()
	close(runDone)
	wg.Wait()
	q.stop()
	return nil
}

// dispatch takes a worker slot, then the next ready key, until ctx is done.
func (q *Queue) dispatch(ctx context.Context, slots chan struct{}, start func(*keyState)) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		for {
			st, wait := q.next()
			if st != nil {
				start(st)
				break
			}
			var timeout <-chan time.Time
			if wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				timeout = timer.C
			}
			select {
			case <-q.wake:
			case <-timeout:
			case <-ctx.Done():
				<-slots
				return
			}
		}
	}
}

// next pops a key that may run now and marks it running; otherwise it
// returns how long until a delayed key is due (0: nothing is delayed).
func (q *Queue) next() (*keyState, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for q.delayed.Len() > 0 && !q.delayed[0].notBefore.After(now) {
		st := heap.Pop(&q.delayed).(*keyState)
		q.ready.push(st.id)
	}
	for q.ready.len() > 0 {
		st := q.keys[q.ready.pop()]
		if st == nil || !st.queued {
			continue
		}
		st.queued = false
		st.running = true
		st.pending = false
		st.current, st.waiting = st.waiting, nil
		q.depth--
		q.inFlight++
		return st, 0
	}
	if q.delayed.Len() > 0 {
		return nil, q.delayed[0].notBefore.Sub(now)
	}
	return nil, 0
}

// handle runs the handler for one key, acknowledges on success and
// reschedules the key if it failed or was enqueued again meanwhile.
func (q *Queue) handle(ctx context.Context, st *keyState) {
	err := q.call(ctx, st.id)
	if err == nil {
		for _, ack := range st.current {
			ack(true)
		}
	} else {
		// A handler fails when it cannot record its outcome (the database is
		// down): every key fails alike, so the cause is said once (and when
		// it changes or clears), each key's failure only at Debug.
		q.faults.Fail(ctx, faultlog.Cause(err), err, keyEmployeeID, st.id)
		q.cfg.Logger.DebugContext(ctx, "handler failed; will retry", keyEmployeeID, st.id, keyAttempt, st.failures+1, keyError, err)
	}
	if err == nil {
		q.faults.OK(ctx)
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	st.running = false
	q.inFlight--
	if err == nil {
		st.failures = 0
		st.notBefore = time.Time{}
		st.current = nil
	} else {
		st.failures++
		st.notBefore = q.now().Add(backoff(q.cfg.RetryBackoff, q.cfg.MaxBackoff, st.failures))
		st.waiting = append(st.current, st.waiting...)
		st.current = nil
		if !st.pending {
			st.pending = true
			st.since = q.now()
			q.depth++
		}
	}
	if !st.pending {
		delete(q.keys, st.id)
		return
	}
	q.schedule(st)
}

// call runs the handler, turning a panic into an error so that one bad key
// cannot take the daemon down.
func (q *Queue) call(ctx context.Context, id string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
			q.cfg.Logger.ErrorContext(ctx, "handler panicked", keyEmployeeID, id, keyError, err, "stack", string(debug.Stack()))
		}
	}()
	return q.cfg.Handler(ctx, id)
}

// stop marks the queue stopped and answers every waiting ack with false.
func (q *Queue) stop() {
	q.mu.Lock()
	q.stopped = true
	var acks []Ack
	for _, st := range q.keys {
		acks = append(acks, st.waiting...)
		st.waiting = nil
	}
	q.mu.Unlock()
	for _, ack := range acks {
		ack(false)
	}
}

// fifo is a queue of keys backed by a slice that is compacted as it drains.
type fifo struct {
	items []string
	head  int
}

func (f *fifo) push(id string) { f.items = append(f.items, id) }
func (f *fifo) len() int       { return len(f.items) - f.head }
func (f *fifo) pop() string {
	id := f.items[f.head]
	f.head++
	if f.head == len(f.items) {
		f.items, f.head = f.items[:0], 0
	} else if f.head > 1024 && f.head*2 > len(f.items) {
		f.items = append(f.items[:0], f.items[f.head:]...)
		f.head = 0
	}
	return id
}

// delayHeap orders keys by the end of their backoff.
type delayHeap []*keyState

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].notBefore.Before(h[j].notBefore) }
func (h delayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)        { *h = append(*h, x.(*keyState)) }
func (h *delayHeap) Pop() any {
	old := *h
	st := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return st
}
