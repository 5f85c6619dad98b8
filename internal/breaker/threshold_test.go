package breaker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// record feeds the breaker n results of cause c.
func record(b *Breaker, c Cause, n int) {
	for range n {
		b.Record(c)
	}
}

// TestThresholdIsTheShareOfFailures pins the default threshold (0.8) at its
// edge: 8 failures in a window of 10 open it, 7 do not. A breaker that opens
// only when every call fails (threshold 1.0), or only above the threshold,
// fails here.
func TestThresholdIsTheShareOfFailures(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		failures int
		open     bool
	}{{7, false}, {8, true}, {10, true}} {
		b := New(Config{Window: 10, MinCalls: 10, Probe: func(context.Context) error { return nil }})
		record(b, CauseNone, 10-tt.failures)
		record(b, CauseServer, tt.failures)
		open, cause := b.State()
		require.Equal(t, tt.open, open, "%d failures of 10", tt.failures)
		if tt.open {
			require.Equal(t, CauseServer, cause)
		} else {
			require.Equal(t, CauseNone, cause)
		}
	}
}

// TestWindowForgetsOldResults: only the last Window results count; older
// failures roll out of the ring.
func TestWindowForgetsOldResults(t *testing.T) {
	t.Parallel()
	b := New(Config{Window: 10, MinCalls: 10, Probe: func(context.Context) error { return nil }})
	record(b, CauseNone, 10)
	record(b, CauseUnreachable, 7) // 7 of the last 10
	open, _ := b.State()
	require.False(t, open)
	b.Record(CauseUnreachable) // 8 of the last 10: the oldest successes rolled out
	open, cause := b.State()
	require.True(t, open)
	require.Equal(t, CauseUnreachable, cause)

	// Failures spread over more than one window never reach the share.
	b = New(Config{Window: 10, MinCalls: 10, Probe: func(context.Context) error { return nil }})
	for range 10 {
		record(b, CauseServer, 7)
		record(b, CauseNone, 3)
	}
	open, _ = b.State()
	require.False(t, open, "70%% failures, however long, stay below 80%%")
}

// TestCauseIsTheMostCommonFailure: the breaker names the cause most failures
// share; a tie goes to the same cause every time (the lowest by name).
func TestCauseIsTheMostCommonFailure(t *testing.T) {
	t.Parallel()
	b := New(Config{Window: 10, MinCalls: 10, Probe: func(context.Context) error { return nil }})
	record(b, CauseNone, 2)
	record(b, CauseServer, 3)
	record(b, CauseUnreachable, 5)
	_, cause := b.State()
	require.Equal(t, CauseUnreachable, cause)

	for range 20 { // map order varies run to run: the tie-break must not
		b = New(Config{Window: 10, MinCalls: 10, Probe: func(context.Context) error { return nil }})
		record(b, CauseNone, 2)
		record(b, CauseCredentials, 4)
		record(b, CauseServer, 4)
		_, cause = b.State()
		require.Equal(t, CauseServer, cause, "a tie goes to the cause lowest by name")
	}
}

// TestWhileOpenOnlyTheProbeDecides: results recorded while open neither close
// it nor change its cause.
func TestWhileOpenOnlyTheProbeDecides(t *testing.T) {
	t.Parallel()
	b := New(Config{Window: 10, MinCalls: 10, Probe: func(context.Context) error { return nil }})
	record(b, CauseCredentials, 10)
	record(b, CauseNone, 10)
	record(b, CauseServer, 10)
	open, cause := b.State()
	require.True(t, open)
	require.Equal(t, CauseCredentials, cause)
}

// pauses is a fake time.After that records each pause asked for and lets
// it pass at once.
type pauses struct {
	mu   sync.Mutex
	seen []time.Duration
}

func (p *pauses) after(d time.Duration) <-chan time.Time {
	p.mu.Lock()
	p.seen = append(p.seen, d)
	p.mu.Unlock()
	c := make(chan time.Time, 1)
	c <- time.Time{}
	return c
}

func (p *pauses) take() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.seen
	p.seen = nil
	return out
}

// TestProbePausesGrow: while probes fail, the pause before the next doubles
// up to MaxCooldown; a breaker that opens again starts from Cooldown.
func TestProbePausesGrow(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	failures := 4
	probes := 0
	closed := make(chan struct{}, 2)
	b := New(Config{Window: 10, MinCalls: 10, Cooldown: time.Second, MaxCooldown: 4 * time.Second,
		Probe: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			probes++
			if probes <= failures {
				return errors.New("still down")
			}
			return nil
		},
		OnChange: func(open bool, _ Cause, _ string) {
			if !open {
				closed <- struct{}{}
			}
		}})
	p := &pauses{}
	b.after = p.after
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	record(b, CauseServer, 10)
	<-closed
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}, p.take())
	require.Equal(t, 5, probes)

	// Closed, it judges a fresh window: fewer than MinCalls failures do not open it.
	record(b, CauseServer, 9)
	open, _ := b.State()
	require.False(t, open, "the window starts afresh after closing")
	b.Record(CauseServer)
	open, _ = b.State()
	require.True(t, open)
	<-closed
	require.Equal(t, []time.Duration{time.Second}, p.take(), "a new opening starts from Cooldown")
}

// TestDefaults: an empty Config gets the documented defaults.
func TestDefaults(t *testing.T) {
	t.Parallel()
	b := New(Config{})
	require.Equal(t, 20, b.cfg.Window)
	require.Equal(t, 10, b.cfg.MinCalls)
	require.InDelta(t, 0.8, b.cfg.Threshold, 1e-9)
	require.Equal(t, 5*time.Second, b.cfg.Cooldown)
	require.Equal(t, 30*time.Second, b.cfg.MaxCooldown)
	require.Len(t, b.results, 20)
}

// TestProbeHasItsOwnTimeout: each probe runs under a 30 s deadline of its
// own (a hung probe must not hold the breaker open for ever), measured
// against clocks read around it, so the check holds however slow the machine.
func TestProbeHasItsOwnTimeout(t *testing.T) {
	t.Parallel()
	type seen struct {
		deadline time.Time
		ok       bool
		err      error
		now      time.Time
	}
	got := make(chan seen, 1)
	b := New(Config{Window: 10, MinCalls: 10, Probe: func(ctx context.Context) error {
		dl, ok := ctx.Deadline()
		got <- seen{dl, ok, ctx.Err(), time.Now()}
		return nil
	}})
	b.after = (&pauses{}).after
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	before := time.Now()
	record(b, CauseUnreachable, 10)
	s := <-got
	require.True(t, s.ok, "the probe has a deadline")
	require.NoError(t, s.err)
	require.False(t, s.deadline.Before(before.Add(30*time.Second)), "at least 30s after the breaker opened")
	require.False(t, s.deadline.After(s.now.Add(30*time.Second)), "at most 30s after the probe began")
}
