package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/syncd/syncd/internal/faultlog"
)

// errStopped: syncd was told to stop while it waited for the database.
var errStopped = errors.New("stopped while waiting for the database")

// maxDBWait is the longest pause between two tries to reach the database.
const maxDBWait = 30 * time.Second

// waitForDatabase returns once the database at url answers. Meanwhile (only
// if the first try fails) it serves /healthz (200) and a /readyz (503) that
// says why on metricsAddr, tries again with growing pauses (at most 30 s),
// and logs the cause when it starts and when it changes, never per try.
// A cancelled ctx (SIGTERM) ends it at once with errStopped.
func waitForDatabase(ctx context.Context, url, metricsAddr string, log *slog.Logger) error {
	// The first try is patient: a database that answers slowly (a loaded
	// host) is not one that is down.
	err := pingDatabase(ctx, url, 30*time.Second)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return errStopped
	}
	var cause atomicString
	cause.Store(dbCause(err))
	stopServer := func() {}
	if metricsAddr != "" {
		ln, lerr := net.Listen("tcp", metricsAddr)
		if lerr != nil {
			return fmt.Errorf("metrics server: %w", lerr)
		}
		srv := newHTTPServer(waitingRoutes(&cause))
		go func() { _ = srv.Serve(ln) }()
		stopServer = func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}
		log = log.With("metrics_addr", ln.Addr().String())
	}
	defer stopServer()
	faults := faultlog.New(log, "waiting for the database (syncd starts once it answers)")
	faults.Fail(ctx, dbCauseKey(err), errors.New(dbCause(err)))
	pause := 500 * time.Millisecond
	for {
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			log.InfoContext(ctx, "stopped while waiting for the database")
			return errStopped
		case <-t.C:
		}
		pause = min(pause*2, maxDBWait)
		err := pingDatabase(ctx, url, 10*time.Second)
		if err == nil {
			faults.OK(ctx)
			return nil
		}
		if ctx.Err() != nil {
			return errStopped
		}
		cause.Store(dbCause(err))
		faults.Fail(ctx, dbCauseKey(err), errors.New(dbCause(err)))
	}
}

func pingDatabase(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// dbCause says why the database does not answer, without the connection
// string: the server's message, or the network's.
func dbCause(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Op + ": " + oe.Err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return "no answer (timeout)"
	}
	return faultlog.Cause(err)
}

// dbCauseKey names the kind of cause, for saying it once: the server's
// SQLSTATE when it answered, else "network" (refused, reset, closed, timed
// out: one cause however the connection ended).
func dbCauseKey(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return "sqlstate " + pe.Code
	}
	return "network"
}

// waitingRoutes is the HTTP server of a syncd waiting for its database.
func waitingRoutes(cause *atomicString) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": false,
			"checks": map[string]string{"database": "unreachable: " + cause.Load() + "; syncd starts once it answers"}})
	})
	return mux
}

type atomicString struct{ v atomic.Pointer[string] }

func (a *atomicString) Store(s string) { a.v.Store(&s) }
func (a *atomicString) Load() string {
	if p := a.v.Load(); p != nil {
		return *p
	}
	return ""
}

// newOwnerID names this process in syncd_holds.
func newOwnerID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// watchDatabase pings the database every few seconds and says, once per
// change, that it was lost or is back; /readyz says why meanwhile.
func (d *daemon) watchDatabase(ctx context.Context) error {
	var since time.Time
	var lastKey string
	failed := 0
	for {
		if err := sleepCtx(ctx, 2*time.Second); err != nil {
			return nil
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := d.pool.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			cause, key := dbCause(err), dbCauseKey(err)
			if d.faults.db.Load() == nil || key != lastKey {
				if d.faults.db.Load() == nil {
					since = time.Now()
				}
				d.log.ErrorContext(ctx, "database unreachable: syncd waits for it; work resumes by itself", "error", cause)
			}
			failed++
			lastKey = key
			d.faults.db.Store(&cause)
			continue
		}
		if d.faults.db.Load() != nil {
			d.log.InfoContext(ctx, "database reachable again", "failed_checks", failed, "down_for", time.Since(since).Round(time.Second))
		}
		failed = 0
		d.faults.db.Store(nil)
	}
}
