package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/console"
	"github.com/syncd/syncd/internal/breaker"
	"github.com/syncd/syncd/outbox"
	"github.com/syncd/syncd/reconcile"
)

// daemon is `syncd run`: the change source, the retry timer, the worker
// pool, the deprovision guard, the drift scan, the rescuer and the HTTP
// server, each a Run(ctx) under one errgroup. It wires; the loops that decide
// live in their packages.
type daemon struct {
	log          *slog.Logger
	pool         *pgxpool.Pool
	api          *auth0.Client
	rec          *reconcile.Reconciler
	queue        *outbox.Queue
	source       interface{ Run(context.Context) error }
	retry        *outbox.RetryTimer
	breaker      *breaker.Breaker
	guard        *reconcile.Guard
	scan         *reconcile.ScanLoop
	rescue       *reconcile.Rescuer
	bulk         *reconcile.Bulk         // users-import jobs for a large backlog of new employees
	mappingSweep *reconcile.MappingSweep // nil: --mapping-sweep-interval 0
	metrics      *metrics
	running      atomic.Int64 // reconciles past the breaker
	metricsAddr  string
	console      *console.Console // nil: off
	consoleAddr  string
	shutdownWait time.Duration
	scanEvery    time.Duration
	scanTimeout  time.Duration

	// stopping is done once shutdown begins.
	stopping context.Context

	listening   atomic.Pointer[string] // the HTTP server's address once it listens
	lastScanErr atomic.Pointer[string]
	// onConverged, if set, hears every reconcile that changed something (the demo's live output).
	onConverged func(id string, out reconcile.Outcome)

	// faults are the operator's (configuration, database, replication
	// prerequisites): faults.go.
	faults            faultState
	replication       bool
	replURL, slotName string
}

// handle is the work queue's handler: it waits while the breaker is open,
// then reconciles. It returns an error only when the outcome could not be
// recorded (the database is down) or shutdown began while it waited on the
// breaker: the key's outbox rows stay, and the queue retries the key.
func (d *daemon) handle(ctx context.Context, id string) error {
	// Waiting on the breaker ends at shutdown too: the key's outbox rows
	// stay, so nothing is lost.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(d.stopping, cancel)()
	out, err := d.reconcile(ctx, wctx, id)
	for err == nil && out.Result == reconcile.ResultConfig {
		// The configuration is wrong, not the row: hold all work (the row
		// stays pending) and try again once the breaker closes.
		ce := d.rec.Config().ConfigFault(out.Err)
		if ce == nil {
			break
		}
		d.holdForConfig([]*reconcile.ConfigError{ce}, id)
		out, err = d.reconcile(ctx, wctx, id)
	}
	if err == nil && d.onConverged != nil && (len(out.Applied) > 0 || out.Result != reconcile.ResultDone) {
		d.onConverged(id, out)
	}
	return err
}

// reconcile waits for the breaker (until wctx ends), then reconciles id.
func (d *daemon) reconcile(ctx, wctx context.Context, id string) (reconcile.Outcome, error) {
	if err := d.breaker.Wait(wctx); err != nil {
		return reconcile.Outcome{}, fmt.Errorf("wait for the breaker: %w", err)
	}
	d.running.Add(1)
	defer d.running.Add(-1)
	start := time.Now()
	out, err := d.rec.Reconcile(ctx, id)
	d.metrics.reconciled(out, err, time.Since(start))
	if d.console != nil {
		d.console.Reconciled(out, err)
	}
	return out, err
}

// Run runs every part until ctx is done, then drains: no new work, in-flight
// reconciles finish or are left durably pending, and it returns within the
// shutdown timeout.
func (d *daemon) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	d.stopping = ctx
	if err := d.startChecks(ctx, d.replURL, d.slotName, d.replication); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return d.watchDatabase(gctx) })
	g.Go(func() error { return d.recordHolds(gctx) })
	if d.replication {
		g.Go(func() error { return d.watchReplication(gctx, d.replURL, d.slotName) })
	}
	g.Go(func() error { return d.queue.Run(gctx) })
	g.Go(func() error { return d.source.Run(gctx) })
	g.Go(func() error { return d.retry.Run(gctx) })
	g.Go(func() error { return d.breaker.Run(gctx) })
	g.Go(func() error { return d.guard.Run(gctx) })
	g.Go(func() error { return d.scan.Run(gctx) })
	g.Go(func() error { return d.rescue.Run(gctx) })
	g.Go(func() error { return d.bulk.Run(gctx) })
	if d.mappingSweep != nil {
		g.Go(func() error { return d.mappingSweep.Run(gctx) })
	}
	if d.metricsAddr != "" {
		ln, err := net.Listen("tcp", d.metricsAddr)
		if err != nil {
			cancel()
			_ = g.Wait()
			return fmt.Errorf("metrics server: %w", err)
		}
		addr := ln.Addr().String()
		d.listening.Store(&addr)
		srv := newHTTPServer(d.routes())
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics server: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer scancel()
			return srv.Shutdown(sctx)
		})
	}
	var consoleAddr string
	if d.console != nil {
		var err error
		if consoleAddr, err = d.serveConsole(g, gctx); err != nil {
			cancel()
			_ = g.Wait()
			return err
		}
	}
	// The address actually bound (":0" picks a free port), so that a
	// supervisor or a test can find the server without guessing a port.
	listenAddr := d.metricsAddr
	if a := d.listening.Load(); a != nil {
		listenAddr = *a
	}
	d.log.InfoContext(ctx, "syncd running", "metrics_addr", listenAddr, "console_addr", consoleAddr)

	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err := <-done:
		return err // a part failed
	case <-ctx.Done():
	}
	d.log.InfoContext(ctx, "shutting down: no new work; in-flight reconciles finish or stay pending", "timeout", d.shutdownWait)
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		d.log.Info("stopped")
		return nil
	case <-time.After(d.shutdownWait):
		return fmt.Errorf("shutdown timed out after %s; unfinished work stays pending in the database", d.shutdownWait)
	}
}

// newHTTPServer bounds every phase of a request, so that a slow or idle
// client cannot hold a connection (and a goroutine) for ever: /readyz and
// /metrics answer within a few seconds (their checks have their own
// timeouts), so WriteTimeout leaves them ample room.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
}

func (d *daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		checks := d.readiness(r.Context())
		unready := d.readinessFaults(checks)
		ready := !unready && checks["database"] == "ok" && checks["auth0_token"] == "ok" && checks["breaker"] == "ok"
		w.Header().Set("Content-Type", "application/json")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": ready, "checks": checks})
	})
	return mux
}

// readiness checks the database, the Auth0 token and the breaker, and says
// whether the mass-deprovision guard holds and whether the drift scan is
// overdue (neither makes syncd unready: everything else goes on). Its
// messages name causes, never secrets or people. The token check costs at
// most one token request per few seconds however often it is polled
// (auth0.Config.TokenFailureTTL).
func (d *daemon) readiness(ctx context.Context) map[string]string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok", "auth0_token": "ok", "breaker": "ok"}
	if err := d.pool.Ping(ctx); err != nil {
		checks["database"] = "unreachable"
	}
	if err := d.api.Token(ctx); err != nil {
		checks["auth0_token"] = tokenProblem(err)
	}
	if open, cause := d.breaker.State(); open {
		checks["breaker"] = "open: " + string(cause)
	}
	if reason := d.guard.Tripped(); reason != "" {
		checks["deprovision_guard"] = "holding deprovisioning: " + reason
	}
	checks["session_revocation"] = revocationCheck(d.rec)
	checks["drift_scan"] = "ok"
	if overdue, age := d.scan.Overdue(time.Now()); overdue {
		checks["drift_scan"] = fmt.Sprintf("overdue: no drift scan has succeeded for %s (one is due every %s and may take %s); see the log",
			age.Round(time.Second), d.scanEvery, d.scanTimeout)
	}
	return checks
}

func tokenProblem(err error) string {
	var ae *auth0.APIError
	if msg, ok := credentialProblem(err); ok && errors.As(err, &ae) {
		return fmt.Sprintf("token refused: %d %s: %s", ae.StatusCode, ae.ErrorCode, msg)
	}
	if errors.As(err, &ae) {
		return fmt.Sprintf("token refused: %d %s", ae.StatusCode, ae.ErrorCode)
	}
	return "token endpoint unreachable"
}
