package auth0

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate limiting has two halves. The client-side limiter (Config.Rate/Burst,
// golang.org/x/time/rate) spreads calls at the plan's sustained rate. The gate
// mirrors the server's token bucket from its X-RateLimit-* headers, so that
// concurrent workers neither overrun it nor sit idle:
//
//   - Auth0 refills its buckets on a fixed window; X-RateLimit-Reset is when the
//     next tokens are added (epoch seconds) and X-RateLimit-Remaining what is
//     left until then. The gate keeps that count, takes one off for each
//     request it lets through, and holds requests once it reaches 0 until the
//     reset (plus jitter). An answer corrects the count: its Remaining minus
//     the requests sent after it, which the server had not seen yet.
//   - Before the first answer, and once the reset has passed (tokens were
//     added, how many is unknown), one request goes first as a probe and the
//     others wait for its answer, rather than all racing into a bucket of
//     unknown size. A server that sends no headers is not gated at all.
//   - A 429 closes the gate for Retry-After, or until X-RateLimit-Reset with a
//     floor of one second (the reset can be "now" at one-second granularity).
//
// The gate is global to a Client: on plans with several buckets (Essentials,
// Professional) it is conservative, never optimistic.

const (
	// resetJitter spreads requests released by a reset over this long, so
	// that several clients of one tenant do not all fire at its first instant.
	resetJitter = 100 * time.Millisecond
	// minResetWait is the least a 429 or a stale reset makes us wait.
	minResetWait = time.Second
	// maxProbeWait is how long requests wait for a probe's answer before they
	// go anyway (the probe may be slow; RequestTimeout bounds it too).
	maxProbeWait = 2 * time.Second
)

// waitExceedsBudgetError: waiting for the rate limit would overrun MaxElapsed.
type waitExceedsBudgetError struct{ until time.Time }

func (e *waitExceedsBudgetError) Error() string {
	return fmt.Sprintf("auth0: rate limited: the next request may go at %s, beyond the call's time budget (MaxElapsed)", e.until.Format(time.RFC3339))
}

// Is makes it match ErrRateLimited.
func (e *waitExceedsBudgetError) Is(target error) bool { return target == ErrRateLimited }

type gate struct {
	mu        sync.Mutex
	learned   bool      // an answer has been seen
	known     bool      // the last answers carried rate-limit headers
	reset     time.Time // when the server adds tokens next
	remaining int       // estimated tokens left before reset
	openAt    time.Time // no request before this (Remaining 0 or a 429)
	sent      uint64    // requests let through so far
	probe     uint64    // the request probing a stale window, 0 = none
	probeAt   time.Time
	changed   chan struct{} // closed and replaced by every observe
}

func newGate() *gate { return &gate{changed: make(chan struct{})} }

func jitter() time.Duration { return rand.N(resetJitter) }

// acquire waits until the gate lets one request through and returns its
// sequence number for observe. It gives up with ctx.Err() when ctx is done and
// with a *waitExceedsBudgetError when the wait would pass deadline.
func (g *gate) acquire(ctx context.Context, deadline time.Time) (seq uint64, waited time.Duration, err error) {
	j := jitter() // one per caller, so that waiters spread out
	for {
		g.mu.Lock()
		now := time.Now()
		var until time.Time
		waitProbe := false
		switch {
		case now.Before(g.openAt):
			until = g.openAt
		case !g.learned || (g.known && !now.Before(g.reset)):
			// Nothing known yet, or the window has passed: one request
			// probes, the others wait for its answer.
			if g.probe != 0 && now.Sub(g.probeAt) < maxProbeWait {
				waitProbe = true
				until = g.probeAt.Add(maxProbeWait)
			}
		case !g.known: // the server sends no rate-limit headers
		case now.Before(g.reset):
			if g.remaining <= 0 {
				until = g.reset.Add(j)
			}
		}
		if until.IsZero() {
			g.sent++
			seq = g.sent
			switch {
			case g.known && now.Before(g.reset):
				g.remaining--
			case !g.learned || g.known:
				if g.probe == 0 {
					g.probe, g.probeAt = seq, now
				}
			}
			g.mu.Unlock()
			return seq, waited, nil
		}
		ch := g.changed
		g.mu.Unlock()
		if !waitProbe && until.After(deadline) {
			return 0, waited, &waitExceedsBudgetError{until: until}
		}
		start := time.Now()
		t := time.NewTimer(time.Until(until))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, waited + time.Since(start), ctx.Err()
		case <-ch:
			t.Stop()
		case <-t.C:
		}
		waited += time.Since(start)
	}
}

// observe feeds the gate the answer to request seq; resp is nil when there was
// no answer.
func (g *gate) observe(seq uint64, resp *http.Response) {
	g.mu.Lock()
	defer g.mu.Unlock()
	defer func() {
		close(g.changed)
		g.changed = make(chan struct{})
	}()
	if seq != 0 && seq == g.probe {
		g.probe = 0
	}
	if resp == nil {
		return
	}
	g.learned = true
	now := time.Now()
	remaining, reset, ok := rateHeaders(resp.Header)
	if !ok {
		if resp.StatusCode < 300 {
			// The server does not limit this route (or this tenant): no gate.
			g.known = false
		}
	} else {
		adj := remaining - int(g.sent-seq)
		switch {
		case !g.known || reset.After(g.reset):
			g.known, g.reset, g.remaining = true, reset, adj
		case reset.Equal(g.reset):
			g.remaining = min(g.remaining, adj)
		}
		if remaining <= 0 {
			g.openAt = later(g.openAt, resetTarget(reset, now, 0).Add(jitter()))
		}
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		var until time.Time
		if ra := retryAfter(resp.Header, now); ra > 0 {
			until = now.Add(ra)
		} else if ok {
			until = resetTarget(reset, now, minResetWait)
		} else {
			until = now.Add(minResetWait)
		}
		g.openAt = later(g.openAt, until.Add(jitter()))
	}
}

// resetTarget is when to send again after the server said Remaining: 0 with
// this reset: at the reset if it is ahead, else one second from now (the
// reset has one-second granularity and may read as "now"). floor is the least
// wait from now.
func resetTarget(reset, now time.Time, floor time.Duration) time.Time {
	if !reset.After(now) {
		return now.Add(minResetWait)
	}
	return later(reset, now.Add(floor))
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// rateHeaders reads X-RateLimit-Remaining and X-RateLimit-Reset.
func rateHeaders(h http.Header) (remaining int, reset time.Time, ok bool) {
	rs, ts := h.Get("X-RateLimit-Remaining"), h.Get("X-RateLimit-Reset")
	if rs == "" || ts == "" {
		return 0, time.Time{}, false
	}
	r, err1 := strconv.Atoi(rs)
	t, err2 := strconv.ParseInt(ts, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, time.Time{}, false
	}
	return r, time.Unix(t, 0), true
}

// retryAfter reads Retry-After: delay-seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return minResetWait
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), minResetWait)
	}
	return 0
}

// retryAfterSeconds is APIError.RetryAfter: Retry-After, else the time to
// X-RateLimit-Reset, rounded up to whole seconds; 0 if neither is there.
func retryAfterSeconds(h http.Header, now time.Time) int64 {
	d := retryAfter(h, now)
	if d == 0 {
		if _, reset, ok := rateHeaders(h); ok {
			d = resetTarget(reset, now, 0).Sub(now)
		}
	}
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// waitLimiter takes a token of the client-side limiter, waiting for it
// unless ctx ends first or the wait would pass deadline.
func waitLimiter(ctx context.Context, l *rate.Limiter, deadline time.Time) (time.Duration, error) {
	if l == nil {
		return 0, nil
	}
	r := l.Reserve()
	d := r.Delay()
	if d == 0 {
		return 0, nil
	}
	if time.Now().Add(d).After(deadline) {
		r.Cancel()
		return 0, &waitExceedsBudgetError{until: time.Now().Add(d)}
	}
	start := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		r.Cancel()
		return time.Since(start), ctx.Err()
	case <-t.C:
		return d, nil
	}
}
