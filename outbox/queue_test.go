package outbox

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// gate is a handler whose calls block until released, one key at a time.
type gate struct {
	mu      sync.Mutex
	calls   map[string]int
	entered chan string
	release chan struct{}
}

func newGate() *gate {
	return &gate{calls: make(map[string]int), entered: make(chan string, 100), release: make(chan struct{})}
}

func (g *gate) handle(ctx context.Context, id string) error {
	g.mu.Lock()
	g.calls[id]++
	g.mu.Unlock()
	g.entered <- id
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) callsOf(id string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[id]
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLong):
		t.Fatal("timed out waiting")
		panic("unreachable")
	}
}

func TestQueueCoalescesWhileInFlight(t *testing.T) {
	t.Parallel()
	g := newGate()
	q := NewQueue(QueueConfig{Handler: g.handle, Workers: 4})
	start(t, q)

	q.Enqueue("7")
	require.Equal(t, "7", recv(t, g.entered))
	for range 1000 {
		q.Enqueue("7")
	}
	st := q.Stats()
	require.Equal(t, 1, st.InFlight)
	require.Equal(t, 1, st.Depth, "1000 enqueues of a running key are one pending run")

	g.release <- struct{}{}
	require.Equal(t, "7", recv(t, g.entered), "the key runs once more after its run")
	g.release <- struct{}{}
	require.Eventually(t, func() bool { s := q.Stats(); return s.InFlight == 0 && s.Depth == 0 }, waitLong, time.Millisecond)
	require.Equal(t, 2, g.callsOf("7"))
}

func TestQueueAckWaitsForARunThatStartedAfterIt(t *testing.T) {
	t.Parallel()
	g := newGate()
	q := NewQueue(QueueConfig{Handler: g.handle})
	start(t, q)

	q.Enqueue("1")
	recv(t, g.entered) // run 1 is under way: it may have read the old state
	acked := make(chan bool, 1)
	q.EnqueueAck("1", func(handled bool) { acked <- handled })

	g.release <- struct{}{} // run 1 ends
	recv(t, g.entered)      // run 2 starts
	select {
	case <-acked:
		t.Fatal("ack called by a run that started before EnqueueAck")
	default:
	}
	g.release <- struct{}{}
	require.True(t, recv(t, acked))
	require.Equal(t, 2, g.callsOf("1"))
}

func TestQueueNeverRunsAKeyTwiceAtOnce(t *testing.T) {
	t.Parallel()
	const workers = 6
	var (
		mu       sync.Mutex
		active   = map[string]int{}
		running  int
		maxSeen  int
		overlaps int
		runs     atomic.Int64
	)
	handler := func(ctx context.Context, id string) error {
		mu.Lock()
		active[id]++
		running++
		if active[id] > 1 {
			overlaps++
		}
		maxSeen = max(maxSeen, running)
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		mu.Lock()
		active[id]--
		running--
		mu.Unlock()
		runs.Add(1)
		if rand.IntN(10) == 0 {
			return errors.New("transient")
		}
		return nil
	}
	q := NewQueue(QueueConfig{Handler: handler, Workers: workers, RetryBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	start(t, q)

	var acks, handled atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				acks.Add(1)
				q.EnqueueAck(strconv.Itoa(rand.IntN(20)), func(ok bool) {
					if ok {
						handled.Add(1)
					}
				})
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool { return handled.Load() == acks.Load() }, waitLong, time.Millisecond,
		"every ack is answered true once its key ran")
	mu.Lock()
	defer mu.Unlock()
	require.Zero(t, overlaps)
	require.LessOrEqual(t, maxSeen, workers)
	// How many runs the 16,000 enqueues took depends on the machine's
	// speed; coalescing is proven where it is forced (TestQueueCoalescesWhileInFlight,
	// TestSourceBurstOfUpdatesIsCoalesced).
	require.Positive(t, runs.Load())
}

func TestQueueRetriesFailuresWithBackoff(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	handler := func(ctx context.Context, id string) error {
		if calls.Add(1) <= 3 {
			return errors.New("database down")
		}
		return nil
	}
	q := NewQueue(QueueConfig{Handler: handler, RetryBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	start(t, q)
	acked := make(chan bool, 1)
	q.EnqueueAck("3", func(ok bool) { acked <- ok })
	require.True(t, recv(t, acked), "acked after the run that succeeded")
	require.Equal(t, int32(4), calls.Load())
	require.Eventually(t, func() bool { return q.Stats() == QueueStats{} }, waitLong, time.Millisecond)
}

func TestQueuePanicIsAFailure(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	handler := func(ctx context.Context, id string) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return nil
	}
	q := NewQueue(QueueConfig{Handler: handler, RetryBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	start(t, q)
	acked := make(chan bool, 1)
	q.EnqueueAck("1", func(ok bool) { acked <- ok })
	require.True(t, recv(t, acked))
	require.Equal(t, int32(2), calls.Load())
}

func TestQueueDrainsOnCancel(t *testing.T) {
	t.Parallel()
	g := newGate()
	q := NewQueue(QueueConfig{Handler: g.handle, Workers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()

	ranAck := make(chan bool, 1)
	q.EnqueueAck("1", func(ok bool) { ranAck <- ok })
	recv(t, g.entered)
	waitingAck := make(chan bool, 1)
	q.EnqueueAck("2", func(ok bool) { waitingAck <- ok }) // no free worker: waits

	cancel()
	select {
	case <-done:
		t.Fatal("Run returned while a handler was running")
	case <-time.After(50 * time.Millisecond):
	}
	g.release <- struct{}{}
	require.NoError(t, recv(t, done))
	require.True(t, recv(t, ranAck), "the running key finished")
	require.False(t, recv(t, waitingAck), "the waiting key was given back")
	require.Zero(t, g.callsOf("2"), "no new work after cancel")

	late := make(chan bool, 1)
	q.EnqueueAck("3", func(ok bool) { late <- ok })
	require.False(t, recv(t, late), "a stopped queue gives keys back at once")
}

func TestQueueDrainTimeoutCancelsHandlers(t *testing.T) {
	t.Parallel()
	g := newGate()
	q := NewQueue(QueueConfig{Handler: g.handle, DrainTimeout: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	acked := make(chan bool, 1)
	q.EnqueueAck("1", func(ok bool) { acked <- ok })
	recv(t, g.entered)
	cancel()
	require.NoError(t, recv(t, done), "the handler's context was cancelled after DrainTimeout")
	require.False(t, recv(t, acked), "a run that failed on shutdown is not an ack")
}

func TestQueueStats(t *testing.T) {
	t.Parallel()
	g := newGate()
	q := NewQueue(QueueConfig{Handler: g.handle, Workers: 1})
	var clock atomic.Int64
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	q.now = func() time.Time { return base.Add(time.Duration(clock.Load())) }

	q.Enqueue("1")
	clock.Store(int64(3 * time.Second))
	q.Enqueue("2")
	clock.Store(int64(10 * time.Second))
	require.Equal(t, QueueStats{Depth: 2, OldestPending: 10 * time.Second}, q.Stats())

	start(t, q)
	require.Equal(t, "1", recv(t, g.entered))
	require.Equal(t, QueueStats{Depth: 1, InFlight: 1, OldestPending: 7 * time.Second}, q.Stats())
	g.release <- struct{}{}
	require.Equal(t, "2", recv(t, g.entered))
	require.Equal(t, QueueStats{InFlight: 1}, q.Stats())
	g.release <- struct{}{}
	require.Eventually(t, func() bool { return q.Stats() == QueueStats{} }, waitLong, time.Millisecond)
}

func TestQueueConfigErrors(t *testing.T) {
	t.Parallel()
	err := NewQueue(QueueConfig{}).Run(context.Background())
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "Handler", ce.Field)

	err = NewQueue(QueueConfig{Handler: func(context.Context, string) error { return nil }, RetryBackoff: time.Minute, MaxBackoff: time.Second}).Run(context.Background())
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "MaxBackoff", ce.Field)
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for n := 1; n < 40; n++ {
		d := backoff(time.Second, time.Minute, n)
		want := min(time.Second<<min(n-1, 10), time.Minute)
		require.GreaterOrEqual(t, d, want/2, n)
		require.LessOrEqual(t, d, want, n)
	}
}
