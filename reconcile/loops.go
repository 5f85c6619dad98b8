package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Log attribute keys of the loops.
const (
	keyError   = "error"
	keyUserID  = "auth0_user_id"
	keyDrifted = "drifted"
	keyOrphans = "orphans"
)

// ScanLoopConfig configures a ScanLoop.
type ScanLoopConfig struct {
	// Every is the time between drift scans; one runs at start (default 15m).
	Every time.Duration
	// Timeout bounds one scan (default 1h): an export job stuck in
	// "pending" or a download that trickles must not end drift healing
	// silently. A scan that runs out fails, and the next cycle tries again.
	Timeout time.Duration
	// Skip, if set, says to skip a scan now (the breaker is open: most Auth0
	// calls fail anyway).
	Skip func() bool
	// OnScan, if set, hears every scan's result (for metrics and readiness).
	OnScan func(res *ScanResult, err error, took time.Duration)
	// Logger; nil is the Reconciler's.
	Logger *slog.Logger
}

// ScanLoop is the drift-scan cycle: scan, requeue drifted rows, and
// deprovision orphan accounts as one batch under the guard.
type ScanLoop struct {
	rec     *Reconciler
	cfg     ScanLoopConfig
	started time.Time
	// lastSuccess is when the last scan succeeded (Unix nanoseconds; 0: none yet).
	lastSuccess atomic.Int64
}

// NewScanLoop returns the drift-scan cycle of rec.
func NewScanLoop(rec *Reconciler, cfg ScanLoopConfig) *ScanLoop {
	if cfg.Every <= 0 {
		cfg.Every = 15 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = rec.cfg.Logger
	}
	if cfg.OnScan == nil {
		cfg.OnScan = func(*ScanResult, error, time.Duration) {}
	}
	return &ScanLoop{rec: rec, cfg: cfg, started: time.Now()}
}

// LastSuccess is when the last scan succeeded; zero if none has yet.
func (s *ScanLoop) LastSuccess() time.Time {
	if n := s.lastSuccess.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Overdue says whether no scan has succeeded for longer than a cycle and a
// scan's timeout (counted from the loop's creation until the first success),
// and for how long none has. A scan is overdue when it fails, times out, or is
// skipped because the breaker is open.
func (s *ScanLoop) Overdue(now time.Time) (bool, time.Duration) {
	since := s.started
	if last := s.LastSuccess(); !last.IsZero() {
		since = last
	}
	age := now.Sub(since)
	return age > s.cfg.Every+s.cfg.Timeout, age
}

// Run scans at start and every Every until ctx is done.
func (s *ScanLoop) Run(ctx context.Context) error {
	for {
		if s.cfg.Skip == nil || !s.cfg.Skip() {
			s.Once(ctx)
		}
		t := time.NewTimer(s.cfg.Every)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Once runs one cycle: it scans, requeues every drifted row (one whose fix
// deprovisions asks the guard when it is reconciled, like any leaver), and
// asks the guard about the unblocked orphans as one batch, deprovisioning
// those it allows. A failure is logged; the next cycle tries again.
func (s *ScanLoop) Once(ctx context.Context) *ScanResult {
	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	res, err := s.rec.Scan(sctx)
	if err != nil && ctx.Err() == nil && errors.Is(sctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("drift scan timed out after %s: %w", s.cfg.Timeout, err)
	}
	cancel()
	if err == nil {
		s.lastSuccess.Store(time.Now().UnixNano())
	}
	s.cfg.OnScan(res, err, time.Since(start))
	log := s.cfg.Logger
	if err != nil {
		if ctx.Err() == nil {
			log.WarnContext(ctx, "drift scan failed", keyError, err)
		}
		return nil
	}
	attrs := []any{"employees", res.Employees, "managed_users", res.ManagedUsers, keyDrifted, len(res.Drifted),
		keyOrphans, res.ActionableOrphans(), "took", res.Took.Round(time.Millisecond)}
	// Only what a fix would change is drift: an orphan blocked already
	// (and a deleted row's account that syncd blocked, which is not even
	// an orphan) needs nothing.
	if !res.HasDrift() {
		log.DebugContext(ctx, "drift scan found nothing", attrs...)
	} else {
		log.InfoContext(ctx, "drift scan found drift", attrs...)
	}
	ids := make([]string, 0, len(res.Drifted))
	for _, dr := range res.Drifted {
		ids = append(ids, dr.EmployeeID)
	}
	if _, err := Requeue(ctx, s.rec.pool, ids, false); err != nil {
		log.WarnContext(ctx, "requeue drifted employees", keyError, err)
	}
	var orphans []Deprovision
	byUser := map[string]Orphan{}
	for _, o := range res.Orphans {
		if o.Blocked {
			continue
		}
		orphans = append(orphans, Deprovision{Kind: KindOrphan, EmployeeID: o.EmployeeID, UserID: o.UserID})
		byUser[o.UserID] = o
	}
	allowed := orphans
	if g := s.rec.cfg.Guard; g != nil {
		if err := g.forgetOrphansExcept(ctx, orphans); err != nil {
			log.WarnContext(ctx, "forget orphan deprovisions", keyError, err)
		}
		if allowed, err = g.RequestBatch(ctx, orphans); err != nil {
			log.WarnContext(ctx, "ask the mass-deprovision guard about orphan accounts", keyError, err)
			return res
		}
	}
	for _, d := range allowed {
		if _, err := s.rec.DeprovisionOrphan(ctx, byUser[d.UserID]); err != nil {
			log.WarnContext(ctx, "deprovision orphan account", keyUserID, d.UserID, keyError, err)
		}
	}
	return res
}

// OrphanPlan is what fixing an orphan does: block it (or delete it, per the
// deprovision mode); nothing if it is blocked already.
func (r *Reconciler) OrphanPlan(o Orphan) Plan {
	if o.Blocked {
		return nil
	}
	p := Plan{{Kind: ActionBlock, UserID: o.UserID}}
	d := Desired{State: State{Blocked: true}}
	if r.cfg.Deprovision == DeprovisionDelete {
		p, d = Plan{{Kind: ActionDelete, UserID: o.UserID}}, Desired{Delete: true}
	}
	return WithRevocations(p, r.owedRevocations(p, d, revoked{}))
}

// Rescuer feeds rows left "syncing" by a process that died mid-reconcile
// (their lease expired) back to the work queue.
type Rescuer struct {
	rec     *Reconciler
	enqueue func(id string)
	every   time.Duration
	log     *slog.Logger
}

// NewRescuer returns a Rescuer that looks every interval (default 30s) and
// hands what it finds to enqueue.
func NewRescuer(rec *Reconciler, enqueue func(id string), every time.Duration) *Rescuer {
	if every <= 0 {
		every = 30 * time.Second
	}
	return &Rescuer{rec: rec, enqueue: enqueue, every: every, log: rec.cfg.Logger}
}

// Run looks at start and every interval until ctx is done. A failed look is
// logged when its cause changes, not on every attempt (a database that is
// down would fill the log), and a look that works again after failures says
// so once.
func (r *Rescuer) Run(ctx context.Context) error {
	t := time.NewTicker(r.every)
	defer t.Stop()
	lastCause := "" // the failure last logged; "" while looks work
	for {
		ids, err := r.rec.Abandoned(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if cause := err.Error(); cause != lastCause {
				r.log.WarnContext(ctx, "find rows abandoned mid-reconcile; will try again", keyError, err)
				lastCause = cause
			}
		case err == nil:
			if lastCause != "" {
				r.log.InfoContext(ctx, "finding rows abandoned mid-reconcile works again")
				lastCause = ""
			}
			for _, id := range ids {
				r.enqueue(id)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
