package groupcommit

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (g *Group[T, R]) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pending)
}

// Items that arrive while a flush runs go together in the next one, and no
// caller returns before the flush that carried its item returned.
func TestGroupsWhileAFlushRuns(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	var batches [][]int
	committed := map[int]bool{}
	g := New(10, func(items []int) ([]int, error) {
		mu.Lock()
		first := len(batches) == 0
		batches = append(batches, append([]int(nil), items...))
		mu.Unlock()
		if first {
			<-release
		}
		mu.Lock()
		out := make([]int, len(items))
		for i, v := range items {
			committed[v] = true
			out[i] = v * 10
		}
		mu.Unlock()
		return out, nil
	})
	var wg sync.WaitGroup
	check := func(v int) {
		defer wg.Done()
		r, err := g.Do(v)
		require.NoError(t, err)
		require.Equal(t, v*10, r)
		mu.Lock()
		defer mu.Unlock()
		require.True(t, committed[v], "item %d returned before its flush committed", v)
	}
	wg.Add(1)
	go check(0)
	waitFor(t, "the first flush to start", func() bool { mu.Lock(); defer mu.Unlock(); return len(batches) == 1 })
	for v := 1; v <= 5; v++ {
		wg.Add(1)
		go check(v)
	}
	waitFor(t, "five callers to wait", func() bool { return g.waiting() == 5 })
	close(release)
	wg.Wait()
	require.Equal(t, [][]int{{0}, {1, 2, 3, 4, 5}}, sortedBatches(batches))
	require.Equal(t, Stats{Flushes: 2, Items: 6}, g.Stats())
}

func sortedBatches(b [][]int) [][]int {
	for _, x := range b {
		for i := 1; i < len(x); i++ {
			for j := i; j > 0 && x[j] < x[j-1]; j-- {
				x[j], x[j-1] = x[j-1], x[j]
			}
		}
	}
	return b
}

// A flush carries at most max items; the rest go in the next.
func TestMaxItems(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var sizes []int
	var mu sync.Mutex
	g := New(2, func(items []int) ([]struct{}, error) {
		mu.Lock()
		first := len(sizes) == 0
		sizes = append(sizes, len(items))
		mu.Unlock()
		if first {
			<-release
		}
		return make([]struct{}, len(items)), nil
	})
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = g.Do(0) })
	waitFor(t, "the first flush", func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 1 })
	for v := 1; v <= 5; v++ {
		wg.Go(func() { _, _ = g.Do(v) })
	}
	waitFor(t, "five callers to wait", func() bool { return g.waiting() == 5 })
	close(release)
	wg.Wait()
	require.Equal(t, []int{1, 2, 2, 1}, sizes)
}

// A failed (or panicking) flush fails exactly the items it carried; the next
// flush is unaffected.
func TestFailureFailsItsItemsOnly(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	var n atomic.Int32
	g := New(4, func(items []string) ([]string, error) {
		switch n.Add(1) {
		case 1:
			return nil, boom
		case 2:
			panic("bad flush")
		case 3:
			return []string{"one", "too many"}, nil
		}
		return items, nil
	})
	_, err := g.Do("a")
	require.ErrorIs(t, err, boom)
	_, err = g.Do("b")
	require.ErrorContains(t, err, "panicked")
	_, err = g.Do("c")
	require.ErrorContains(t, err, "2 results for 1 items")
	r, err := g.Do("d")
	require.NoError(t, err)
	require.Equal(t, "d", r)
}

// Many callers at once: every one gets its own result.
func TestManyCallers(t *testing.T) {
	t.Parallel()
	g := New(8, func(items []int) ([]int, error) {
		out := make([]int, len(items))
		for i, v := range items {
			out[i] = -v
		}
		return out, nil
	})
	var wg sync.WaitGroup
	for v := range 500 {
		wg.Go(func() {
			r, err := g.Do(v)
			require.NoError(t, err)
			require.Equal(t, -v, r)
		})
	}
	wg.Wait()
	require.EqualValues(t, 500, g.Stats().Items)
}
