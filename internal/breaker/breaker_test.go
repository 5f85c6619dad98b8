package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOpensOnMostlyFailuresAndRecovers(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	var mu sync.Mutex
	var changes []string
	b := New(Config{Window: 10, MinCalls: 5, Cooldown: 10 * time.Millisecond, MaxCooldown: 40 * time.Millisecond,
		Probe: func(context.Context) error {
			if healthy.Load() {
				return nil
			}
			return errors.New("still down")
		},
		OnChange: func(open bool, c Cause, _ string) {
			mu.Lock()
			defer mu.Unlock()
			if open {
				changes = append(changes, "open: "+string(c))
			} else {
				changes = append(changes, "closed")
			}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()

	// A few failures among successes do not open it.
	for i := range 10 {
		if i%3 == 0 {
			b.Record(CauseServer)
		} else {
			b.Record(CauseNone)
		}
	}
	open, _ := b.State()
	require.False(t, open)
	require.NoError(t, b.Wait(ctx))

	// Mostly failures, mostly bad credentials: it opens, naming that cause.
	for i := range 10 {
		if i < 7 {
			b.Record(CauseCredentials)
		} else {
			b.Record(CauseUnreachable)
		}
	}
	open, cause := b.State()
	require.True(t, open)
	require.Equal(t, CauseCredentials, cause)

	// Wait blocks while open.
	wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	require.ErrorIs(t, b.Wait(wctx), context.DeadlineExceeded)
	wcancel()

	// The cause clears: a probe closes it and waiters go on.
	healthy.Store(true)
	require.NoError(t, b.Wait(ctx))
	open, _ = b.State()
	require.False(t, open)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"open: " + string(CauseCredentials), "closed"}, changes)
}

func TestNeedsMinCalls(t *testing.T) {
	t.Parallel()
	b := New(Config{MinCalls: 5, Probe: func(context.Context) error { return nil }})
	for range 4 {
		b.Record(CauseUnreachable)
	}
	open, _ := b.State()
	require.False(t, open)
	b.Record(CauseUnreachable)
	open, _ = b.State()
	require.True(t, open)
}

func TestTripOpensAtOnceAndProbeCloses(t *testing.T) {
	t.Parallel()
	var fixed atomic.Bool
	var mu sync.Mutex
	var changes []string
	b := New(Config{Cooldown: time.Millisecond, MaxCooldown: 5 * time.Millisecond,
		Probe: func(context.Context) error {
			if fixed.Load() {
				return nil
			}
			return errors.New("still wrong")
		},
		OnChange: func(open bool, c Cause, _ string) {
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, fmt.Sprint(open, " ", c.Label()))
		}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()

	b.Trip(CauseConfiguration, "the connection does not exist")
	b.Trip(CauseConfiguration, "the connection does not exist") // the same: nothing new
	open, cause := b.State()
	require.True(t, open)
	require.Equal(t, CauseConfiguration, cause)
	require.Equal(t, "the connection does not exist", b.Detail())
	b.Record(CauseNone) // ignored while open
	open, _ = b.State()
	require.True(t, open)
	b.Trip(CauseConfiguration, "a role is missing") // another fault: said again
	require.Equal(t, "a role is missing", b.Detail())

	fixed.Store(true)
	require.NoError(t, b.Wait(ctx))
	require.Empty(t, b.Detail())
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"true configuration", "true configuration", "false none"}, changes)
}
