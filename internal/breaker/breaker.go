// Package breaker is syncd's job-level circuit breaker (like Entra ID's
// provisioning quarantine): when most Auth0 calls fail for one cause — bad
// credentials, Auth0 unreachable, every call a 5xx — it opens, and the whole
// reconcile loop waits instead of hammering Auth0 and flapping row statuses.
// While open it probes now and then, with growing pauses, and closes by
// itself once a probe succeeds.
package breaker

import (
	"cmp"
	"context"
	"sync"
	"time"
)

// Cause classifies a failed call.
type Cause string

// Causes that count against the breaker.
const (
	CauseNone        Cause = ""
	CauseCredentials Cause = "auth0 rejects the credentials (401/403 or token refused)"
	CauseUnreachable Cause = "auth0 is unreachable (no answer)"
	CauseServer      Cause = "auth0 answers with server errors (5xx)"
	// CauseConfiguration: syncd's settings or the tenant's setup are wrong
	// (a connection or role that does not exist, a scope not granted). One
	// such failure is enough (Trip): it is the same for every row.
	CauseConfiguration Cause = "the configuration is wrong"
)

// Config tunes a Breaker.
type Config struct {
	// Window is how many recent calls are judged (default 20).
	Window int
	// MinCalls is the fewest calls in the window before it may open (default 10).
	MinCalls int
	// Threshold is the share of failures that opens it (default 0.8).
	Threshold float64
	// Cooldown is the first pause before a probe (default 5 s); it doubles up
	// to MaxCooldown (default 30 s) while probes fail.
	Cooldown, MaxCooldown time.Duration
	// Probe checks whether the cause cleared (e.g. get a token and list roles).
	Probe func(ctx context.Context) error
	// OnChange is called when the breaker opens, closes, or is tripped for
	// another cause or detail (Trip's; "" when the share of failures opened
	// it). It is called under the breaker's lock: it must not call back.
	OnChange func(open bool, cause Cause, detail string)
}

// Breaker is safe for concurrent use.
type Breaker struct {
	cfg Config

	mu      sync.Mutex
	results []Cause // ring of the last Window results; CauseNone is success
	next    int
	filled  int
	open    bool
	cause   Cause
	detail  string        // what Trip was told: the fault and its fix
	closed  chan struct{} // closed while the breaker is closed
	wake    chan struct{} // signals Run that it opened

	// after is the probe pause's timer (time.After; tests see the pauses).
	after func(time.Duration) <-chan time.Time
}

// New returns a closed Breaker.
func New(cfg Config) *Breaker {
	cfg.Window = cmp.Or(cfg.Window, 20)
	cfg.MinCalls = cmp.Or(cfg.MinCalls, 10)
	cfg.Threshold = cmp.Or(cfg.Threshold, 0.8)
	cfg.Cooldown = cmp.Or(cfg.Cooldown, 5*time.Second)
	cfg.MaxCooldown = cmp.Or(cfg.MaxCooldown, 30*time.Second)
	if cfg.OnChange == nil {
		cfg.OnChange = func(bool, Cause, string) {}
	}
	closed := make(chan struct{})
	close(closed)
	return &Breaker{cfg: cfg, results: make([]Cause, cfg.Window), closed: closed, wake: make(chan struct{}, 1), after: time.After}
}

// Record counts one call's result: CauseNone for a success (or a failure
// that is the data's fault, such as a 400).
func (b *Breaker) Record(c Cause) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		return // while open only the probe decides
	}
	b.results[b.next] = c
	b.next = (b.next + 1) % len(b.results)
	b.filled = min(b.filled+1, len(b.results))
	if b.filled < b.cfg.MinCalls {
		return
	}
	counts := map[Cause]int{}
	failed := 0
	for i := range b.filled {
		if r := b.results[i]; r != CauseNone {
			counts[r]++
			failed++
		}
	}
	if float64(failed) < b.cfg.Threshold*float64(b.filled) {
		return
	}
	top := CauseNone
	for c, n := range counts {
		if top == CauseNone || n > counts[top] || (n == counts[top] && c < top) {
			top = c
		}
	}
	b.open, b.cause, b.detail = true, top, ""
	b.closed = make(chan struct{})
	select {
	case b.wake <- struct{}{}:
	default:
	}
	b.cfg.OnChange(true, top, "")
}

// Trip opens the breaker at once for cause, with detail (the fault and its
// fix, in words): for a failure that one occurrence proves, such as a wrong
// setting. Tripping an open breaker with another cause or detail replaces
// them (OnChange is told, as for an opening); with the same, it does
// nothing.
func (b *Breaker) Trip(c Cause, detail string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open && b.cause == c && b.detail == detail {
		return
	}
	if !b.open {
		b.open = true
		b.closed = make(chan struct{})
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	b.cause, b.detail = c, detail
	b.cfg.OnChange(true, c, detail)
}

// Detail is what the last Trip said of the open breaker's cause, "" when it
// is closed or opened by the share of failed calls.
func (b *Breaker) Detail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.detail
}

// State says whether the breaker is open, and why.
func (b *Breaker) State() (open bool, cause Cause) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open, b.cause
}

// Wait returns at once while the breaker is closed; while it is open it
// blocks until it closes or ctx is done.
func (b *Breaker) Wait(ctx context.Context) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run probes while the breaker is open, until ctx is done.
func (b *Breaker) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		}
		pause := b.cfg.Cooldown
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-b.after(pause):
			}
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := b.cfg.Probe(pctx)
			cancel()
			if err == nil {
				b.close()
				break
			}
			pause = min(pause*2, b.cfg.MaxCooldown)
		}
	}
}

func (b *Breaker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return
	}
	b.open, b.cause, b.detail = false, CauseNone, ""
	b.filled, b.next = 0, 0
	close(b.closed)
	b.cfg.OnChange(false, CauseNone, "")
}
