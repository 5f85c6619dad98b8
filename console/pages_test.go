package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/console"
	"github.com/syncd/syncd/reconcile"
)

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestPagesEscapeAndRefuse: row values are HTML-escaped, an oversized form
// is refused, unknown and malformed ids are clear 4xx pages.
func TestPagesEscapeAndRefuse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insert(`<script>alert("x")</script>`, "x@example.com", "associate")
	c := b.browser()
	code, page := get(t, c, fmt.Sprintf("%s/employees/%s", b.srv.URL, id))
	require.Equal(t, 200, code)
	require.NotContains(t, page, `<script>alert`)
	require.Contains(t, page, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`)
	code, page = get(t, c, b.srv.URL+"/employees?q=x@")
	require.Equal(t, 200, code)
	require.NotContains(t, page, `<script>`)

	code, page = get(t, c, b.srv.URL+"/employees/999999")
	require.Equal(t, 404, code)
	require.Contains(t, page, "no such employee")
	code, _ = get(t, c, b.srv.URL+"/employees/nope")
	require.Equal(t, 400, code)
	code, _ = get(t, c, b.srv.URL+"/employees?status=bogus")
	require.Equal(t, 400, code)

	resp, err := c.PostForm(fmt.Sprintf("%s/employees/%s/sync", b.srv.URL, id), url.Values{"csrf": {strings.Repeat("x", 70<<10)}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	require.Zero(t, b.count(`SELECT count(*) FROM auth0_sync_logs WHERE action = 'resync_request'`))
}

// TestOverviewState: the overview and /api/v1/status show the daemon's
// live state, the last drift scan and the sampled last hour.
func TestOverviewState(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.insert("Ada Lovelace", "ada@example.com", "associate")
	con, err := console.New(console.Config{Pool: b.pool, Reconciler: b.rec, Token: token, SampleEvery: 20 * time.Millisecond,
		Live: func() console.Live {
			return console.Live{Breaker: console.BreakerState{Open: true, Cause: "auth0_5xx"},
				Guard:     console.GuardState{Holding: true, Reason: "12 of 40 managed accounts within an hour"},
				RateLimit: &auth0.RateBudget{Known: true, Remaining: 37, Reset: time.Now().Add(time.Second)}}
		}})
	require.NoError(t, err)
	con.Reconciled(reconcile.Outcome{Result: reconcile.ResultDone}, nil)
	con.Reconciled(reconcile.Outcome{Result: reconcile.ResultRetry}, nil)
	con.Reconciled(reconcile.Outcome{}, errors.New("database down"))
	con.ScanDone(&reconcile.ScanResult{Employees: 1, Compared: 1, ManagedUsers: 1, Drifted: []reconcile.Drift{{EmployeeID: "1"}}}, nil, 1500*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- con.Run(ctx) }()
	srv := httptest.NewServer(con)
	t.Cleanup(srv.Close)
	b.con, b.srv = con, srv

	type status struct {
		Counts  map[string]int64 `json:"counts"`
		Breaker struct {
			Open  bool
			Cause string
		} `json:"breaker"`
		Guard struct {
			Holding bool
			Reason  string
		} `json:"deprovision_guard"`
		RateLimit struct{ Remaining int } `json:"rate_limit"`
		DriftScan struct {
			Drifted     int     `json:"drifted"`
			TookSeconds float64 `json:"took_seconds"`
		} `json:"drift_scan"`
		History []struct {
			Backlog    int64   `json:"backlog"`
			Reconciles float64 `json:"reconciles_per_minute"`
			Failures   float64 `json:"failures_per_minute"`
		} `json:"history"`
	}
	var st status
	require.Eventually(t, func() bool {
		_, body := b.call("GET", "/api/v1/status", "")
		st = status{}
		return json.Unmarshal([]byte(body), &st) == nil && len(st.History) >= 2
	}, 30*time.Second, 20*time.Millisecond, "samples are taken")
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, int64(1), st.Counts["pending"])
	require.True(t, st.Breaker.Open)
	require.Equal(t, "auth0_5xx", st.Breaker.Cause)
	require.True(t, st.Guard.Holding)
	require.Equal(t, 37, st.RateLimit.Remaining)
	require.Equal(t, 1, st.DriftScan.Drifted)
	require.InDelta(t, 1.5, st.DriftScan.TookSeconds, 0.001)
	require.Equal(t, int64(1), st.History[0].Backlog, "the insert's outbox row")
	require.Positive(t, st.History[0].Reconciles)
	require.InDelta(t, st.History[0].Reconciles*2/3, st.History[0].Failures, 1e-9, "two of the three failed")
	for _, h := range st.History[1:] {
		require.Zero(t, h.Reconciles, "counted once")
	}

	code, page := get(t, b.browser(), srv.URL+"/")
	require.Equal(t, 200, code)
	for _, want := range []string{"open: auth0_5xx", "holding: 12 of 40 managed accounts within an hour", "37 requests left",
		"1 drifted", "<svg", "<polyline", "<circle"} {
		require.Contains(t, page, want)
	}
}
