package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

// readyz returns /readyz's checks.
func (x *e2e) readyz() (int, map[string]string) {
	x.t.Helper()
	code, body := x.get("/readyz")
	var doc struct {
		Checks map[string]string `json:"checks"`
	}
	require.NoError(x.t, json.Unmarshal([]byte(body), &doc), body)
	return code, doc.Checks
}

// An export job stuck in "pending" used to stop drift healing silently: the
// scan waited for ever. Now each scan is bounded, fails when it runs out, and
// once none has succeeded for a cycle and a timeout, /readyz and a metric say
// the scan is overdue.
func TestDriftScanStuckExportIsBoundedAndOverdue(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{ExportDelay: 24 * time.Hour})
	d := x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1s", "--scan-timeout", "1s")
	defer d.stop(t)

	require.True(t, assertEventually(func() bool {
		return strings.Contains(x.logs.String(), "drift scan timed out after 1s")
	}, 60*time.Second), "the stuck scan ends by itself")
	require.True(t, assertEventually(func() bool {
		_, checks := x.readyz()
		return strings.HasPrefix(checks["drift_scan"], "overdue: ")
	}, 60*time.Second))
	code, checks := x.readyz()
	require.Equal(t, 200, code, "an overdue scan does not stop reconciles: still ready")
	require.Contains(t, checks["drift_scan"], "one is due every 1s and may take 1s")
	_, metrics := x.get("/metrics")
	require.Contains(t, metrics, "syncd_drift_scan_overdue 1")
	require.Contains(t, metrics, `syncd_drift_scans_total{result="failure"}`)
	require.Contains(t, metrics, "syncd_drift_scan_last_success_timestamp_seconds 0")
	require.True(t, assertEventually(func() bool {
		return x.emu.Emulator.CallCount("POST /api/v2/jobs/users-exports") >= 2
	}, 60*time.Second), "and the next cycle tries again")

}

// A scan that succeeds is not overdue, and says when it succeeded.
func TestDriftScanSuccessIsNotOverdue(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	d := x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h", "--scan-timeout", "1m")
	defer d.stop(t)
	require.True(t, assertEventually(func() bool {
		_, metrics := x.get("/metrics")
		return strings.Contains(metrics, `syncd_drift_scans_total{result="success"} 1`)
	}, 60*time.Second))
	_, checks := x.readyz()
	require.Equal(t, "ok", checks["drift_scan"])
	_, metrics := x.get("/metrics")
	require.Contains(t, metrics, "syncd_drift_scan_overdue 0")
	require.NotContains(t, metrics, "syncd_drift_scan_last_success_timestamp_seconds 0")
}

// While the token endpoint refuses the credentials, /readyz polled in a loop
// makes at most one token request per few seconds (it used to make one per
// call).
func TestReadyzDoesNotHammerTheTokenEndpoint(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	d := x.start("notify", "wrong-secret", "--resync-interval", "1h")
	defer d.stop(t)
	// The start check's own token request is done first (its refusal opens
	// the breaker, so no scan asks): only /readyz and the probe ask now.
	require.True(t, assertEventually(func() bool { return strings.Contains(x.logs.String(), "breaker open: Auth0 refused") }, 60*time.Second))

	before := x.emu.Emulator.CallCount(emulator.EndpointToken)
	start := time.Now()
	const polls = 40
	for range polls {
		code, checks := x.readyz()
		require.Equal(t, 503, code)
		require.Contains(t, checks["auth0_token"], "token refused: 401")
	}
	elapsed := time.Since(start)
	made := x.emu.Emulator.CallCount(emulator.EndpointToken) - before
	// One per 5 s window at most (the breaker's probe shares the cache); the
	// bound grows with the time the polls took, so a slow machine cannot fail it.
	allowed := int64(elapsed/(5*time.Second)) + 1
	require.LessOrEqual(t, made, allowed, "%d token requests for %d /readyz calls in %s", made, polls, elapsed)
}

// The status collector used to drop a row it could not read and report the
// rest (zeros) as if the table said so.
func TestStatusCollectorReportsReadErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewEmptyDatabase(t))
	require.NoError(t, err)
	defer pool.Close()
	// A status no string can hold (NULL) makes Scan fail.
	_, err = pool.Exec(ctx, `CREATE TABLE employees (auth0_sync_status text); INSERT INTO employees VALUES ('synced'), (NULL)`)
	require.NoError(t, err)
	m := newMetrics()
	m.watchEmployees(pool)
	_, err = m.reg.Gather()
	require.ErrorContains(t, err, "count employees by status")

	// A missing table is an error too, not zeros.
	_, err = pool.Exec(ctx, `DROP TABLE employees`)
	require.NoError(t, err)
	_, err = m.reg.Gather()
	require.ErrorContains(t, err, "count employees by status")

	_, err = pool.Exec(ctx, `CREATE TABLE employees (auth0_sync_status text); INSERT INTO employees VALUES ('synced'), ('synced'), ('failed')`)
	require.NoError(t, err)
	families, err := m.reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() == "syncd_employees" {
			for _, mm := range f.GetMetric() {
				got[mm.GetLabel()[0].GetValue()] = mm.GetGauge().GetValue()
			}
		}
	}
	require.Equal(t, 2.0, got["synced"])
	require.Equal(t, 1.0, got["failed"])
	require.Equal(t, 0.0, got["pending"])
}

func TestHTTPServerTimeouts(t *testing.T) {
	t.Parallel()
	srv := newHTTPServer(http.NotFoundHandler())
	for name, d := range map[string]time.Duration{"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout} {
		require.Positive(t, d, name)
	}
}

// run and plan build the Auth0 client with one constructor: the same burst.
func TestClientBurst(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		rate  float64
		burst int
		want  int
	}{
		{0, 0, 0},
		{0, 3, 3},
		{0.5, 0, 1},
		{2, 0, 2},
		{16, 0, 16},
		{16, 4, 4},
	} {
		c := clientConfig{Rate: tt.rate, Burst: tt.burst}
		require.Equal(t, tt.want, c.burst(), "rate %v burst %d", tt.rate, tt.burst)
	}
}

var _ prometheus.Collector = (*statusCollector)(nil)
