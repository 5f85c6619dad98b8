package auth0

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func ndjson(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "{\"user_id\":\"auth0|%024d\",\"email\":\"u%d@example.com\"}\n", i, i)
	}
	return b.Bytes()
}

func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.Bytes()
}

var defaultLimits = exportLimits{bytes: DefaultMaxExportBytes, line: DefaultMaxExportLine}

func TestDecodeExport(t *testing.T) {
	t.Parallel()
	plain := ndjson(10)
	for name, data := range map[string][]byte{"plain": plain, "gzip": gzipped(t, plain), "empty": nil} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var ids []string
			err := decodeExport(bytes.NewReader(data), 3, defaultLimits, func(u ExportedUser) error {
				ids = append(ids, string(u["user_id"]))
				return nil
			})
			require.NoError(t, err)
			if data == nil {
				require.Empty(t, ids)
				return
			}
			require.Len(t, ids, 7, "the first 3 skipped")
			require.Equal(t, `"auth0|000000000000000000000003"`, ids[0])
		})
	}
	err := decodeExport(bytes.NewReader([]byte("{\"a\":1}\n{broken")), 0, defaultLimits, func(ExportedUser) error { return nil })
	require.ErrorContains(t, err, "decode line 2")
}

// The emulator cannot cut a download in the middle, so this server does: the
// first answer stops halfway through the gzipped file.
func TestDownloadResumesWithoutDuplicates(t *testing.T) {
	t.Parallel()
	file := gzipped(t, ndjson(2000))
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Empty(t, r.Header.Get("Authorization"), "a link on another host never gets the token")
		w.Header().Set("Content-Length", strconv.Itoa(len(file)))
		if hits.Add(1) == 1 {
			_, _ = w.Write(file[:len(file)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		_, _ = w.Write(file)
	}))
	defer srv.Close()
	c := newTestClient(t, "http://127.0.0.1:1") // the API is elsewhere
	seen := map[string]bool{}
	err := c.downloadExport(t.Context(), &ExportJob{Location: srv.URL + "/tenant.json.gz"}, func(u ExportedUser) error {
		id := string(u["user_id"])
		require.False(t, seen[id], "each user once")
		seen[id] = true
		return nil
	})
	require.NoError(t, err)
	require.Len(t, seen, 2000)
	require.EqualValues(t, 2, hits.Load())
}

func TestExportURL(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, "http://127.0.0.1:8089")
	for loc, ok := range map[string]bool{
		"https://bucket.s3.amazonaws.com/x.json.gz?sig=1": true,
		"/exports/job.1.abc":                              true, // relative: the tenant's host
		"http://127.0.0.1:9/x":                            true,
		"http://files.example.com/x":                      false,
		"ftp://files.example.com/x":                       false,
	} {
		_, err := c.exportURL(loc)
		require.Equal(t, ok, err == nil, loc)
	}
}

func newTestClient(t *testing.T, base string) *Client {
	t.Helper()
	u, err := ParseDomain(base)
	require.NoError(t, err)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := New(Config{BaseURL: u, ClientID: "id", ClientSecret: "secret", HTTPClient: &http.Client{Transport: tr},
		BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond})
	require.NoError(t, err)
	return c
}

func TestRateHeaders(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 500_000_000)
	h := http.Header{}
	_, _, ok := rateHeaders(h)
	require.False(t, ok)
	h.Set("X-RateLimit-Remaining", "3")
	h.Set("X-RateLimit-Reset", "1700000001")
	rem, reset, ok := rateHeaders(h)
	require.True(t, ok)
	require.Equal(t, 3, rem)
	require.Equal(t, time.Unix(1_700_000_001, 0), reset)
	h.Set("X-RateLimit-Reset", "soon")
	_, _, ok = rateHeaders(h)
	require.False(t, ok)

	require.Equal(t, time.Duration(0), retryAfter(http.Header{}, now))
	require.Equal(t, 7*time.Second, retryAfter(http.Header{"Retry-After": {"7"}}, now))
	require.Equal(t, minResetWait, retryAfter(http.Header{"Retry-After": {"0"}}, now))
	date := now.Add(30 * time.Second).UTC().Format(http.TimeFormat)
	require.InDelta(t, float64(30*time.Second), float64(retryAfter(http.Header{"Retry-After": {date}}, now)), float64(time.Second))

	// A reset ahead is waited for; one that reads as now or past gets the
	// one-second floor.
	require.Equal(t, time.Unix(1_700_000_001, 0), resetTarget(time.Unix(1_700_000_001, 0), now, 0))
	require.Equal(t, now.Add(time.Second), resetTarget(time.Unix(1_700_000_000, 0), now, 0))
	require.Equal(t, now.Add(time.Second), resetTarget(time.Unix(1_700_000_001, 0), now, time.Second))

	require.EqualValues(t, 7, retryAfterSeconds(http.Header{"Retry-After": {"7"}}, now))
	require.EqualValues(t, 0, retryAfterSeconds(http.Header{}, now))
}

func answer(status, remaining int, reset time.Time) *http.Response {
	h := http.Header{}
	h.Set("X-RateLimit-Limit", "10")
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	return &http.Response{StatusCode: status, Header: h}
}

func TestGateMirrorsTheServerBucket(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	far := time.Now().Add(time.Hour)
	soon := time.Now().Add(50 * time.Millisecond)

	g := newGate()
	seq, _, err := g.acquire(ctx, far) // the first request probes
	require.NoError(t, err)
	g.observe(seq, answer(200, 5, far))
	seq2, _, err := g.acquire(ctx, far)
	require.NoError(t, err)
	_, _, err = g.acquire(ctx, far)
	require.NoError(t, err)
	// The server counted seq2 but not the one sent after it: 3 left.
	g.observe(seq2, answer(200, 4, far))
	for range 3 {
		_, _, err := g.acquire(ctx, soon)
		require.NoError(t, err)
	}
	_, _, err = g.acquire(ctx, soon)
	var budget *waitExceedsBudgetError
	require.ErrorAs(t, err, &budget, "the fourth would find the bucket empty")
	require.ErrorIs(t, err, ErrRateLimited)

	// Remaining: 0 closes the gate until the reset.
	g2 := newGate()
	s, _, err := g2.acquire(ctx, far)
	require.NoError(t, err)
	g2.observe(s, answer(200, 0, time.Now().Add(30*time.Minute)))
	_, _, err = g2.acquire(ctx, soon)
	require.ErrorIs(t, err, ErrRateLimited)

	// A cancelled context ends the wait.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = g2.acquire(cctx, far)
	require.ErrorIs(t, err, context.Canceled)

	// A 429 without headers still closes it for a second.
	g3 := newGate()
	s, _, err = g3.acquire(ctx, far)
	require.NoError(t, err)
	g3.observe(s, &http.Response{StatusCode: 429, Header: http.Header{}})
	_, _, err = g3.acquire(ctx, time.Now().Add(500*time.Millisecond))
	require.ErrorIs(t, err, ErrRateLimited)

	// An answer without headers (no limit on this server) stops the mirror.
	g4 := newGate()
	s, _, err = g4.acquire(ctx, far)
	require.NoError(t, err)
	g4.observe(s, answer(200, 1, far))
	s, _, err = g4.acquire(ctx, far)
	require.NoError(t, err)
	g4.observe(s, &http.Response{StatusCode: 200, Header: http.Header{}})
	for range 10 {
		_, _, err = g4.acquire(ctx, soon)
		require.NoError(t, err)
	}
}

func TestGateProbesBeforeTheFirstAnswer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	far := time.Now().Add(time.Hour)
	g := newGate()
	probe, _, err := g.acquire(ctx, far)
	require.NoError(t, err)
	second := make(chan error, 1)
	go func() {
		_, _, err := g.acquire(ctx, far)
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("went before the probe's answer: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	g.observe(probe, nil) // no answer: the next request probes
	require.NoError(t, <-second)
}

func TestGateProbesAStaleWindow(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	far := time.Now().Add(time.Hour)
	g := newGate()
	s, _, err := g.acquire(ctx, far)
	require.NoError(t, err)
	g.observe(s, answer(200, 5, time.Now().Add(-time.Second))) // that window has passed

	probe, _, err := g.acquire(ctx, far)
	require.NoError(t, err)
	second := make(chan error, 1)
	go func() {
		_, _, err := g.acquire(ctx, far)
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("went before the probe's answer: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	g.observe(probe, answer(200, 9, time.Now().Add(time.Hour)))
	require.NoError(t, <-second)
	g.mu.Lock()
	defer g.mu.Unlock()
	require.Equal(t, 8, g.remaining, "9 left when the probe was answered, minus the one let through since")
}

// A gzip bomb or one endless line must not take the memory: the decompressed
// file and each line are capped, and the failure is final (not downloaded
// again).
func TestExportDownloadIsCapped(t *testing.T) {
	t.Parallel()
	longLine := func(n int) []byte {
		return append(append([]byte(`{"user_id":"auth0|1","name":"`), bytes.Repeat([]byte("a"), n)...), []byte("\"}\n")...)
	}
	tests := []struct {
		name string
		file []byte
		cfg  func(*Config)
		want string
	}{
		{"a line over the default cap", gzipped(t, append(ndjson(3), longLine(DefaultMaxExportLine)...)), nil, "line 4 is longer than"},
		{"a line over the cap, not gzipped", append(ndjson(3), longLine(5000)...), func(c *Config) { c.MaxExportLine = 4096 }, "line 4 is longer than 4096 bytes"},
		{"decompressed size over the cap", gzipped(t, ndjson(20000)), func(c *Config) { c.MaxExportBytes = 256 << 10 }, "more than 262144 bytes once decompressed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				_, _ = w.Write(tt.file)
			}))
			defer srv.Close()
			u, err := ParseDomain("http://127.0.0.1:1") // the API is elsewhere
			require.NoError(t, err)
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			cfg := Config{BaseURL: u, ClientID: "id", ClientSecret: "secret", HTTPClient: &http.Client{Transport: tr},
				BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			c, err := New(cfg)
			require.NoError(t, err)
			n := 0
			err = c.downloadExport(t.Context(), &ExportJob{Location: srv.URL + "/other/tenant.json.gz"}, func(ExportedUser) error { n++; return nil })
			require.ErrorIs(t, err, ErrExportTooLarge)
			require.ErrorContains(t, err, tt.want)
			require.EqualValues(t, 1, hits.Load(), "not tried again")
		})
	}
}

// The job's location comes from an API answer: it may not point syncd at a
// local service unless the tenant itself is local (the emulator).
func TestExportURLOffLoopback(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, "https://tenant.auth0.com")
	for loc, ok := range map[string]bool{
		"https://user-exports.auth0.com/job_x/t.json.gz?Expires=1&Signature=2": true,
		"https://bucket.s3.amazonaws.com/x.json.gz?sig=1":                      true,
		"/exports/job.1.abc":                 true, // relative: the tenant's host
		"http://127.0.0.1:9/x":               false,
		"http://localhost:9/x":               false,
		"https://127.0.0.1/x":                false,
		"https://[::1]/x":                    false,
		"https://localhost/x":                false,
		"https://169.254.169.254/latest/":    false,
		"https://10.0.0.5/x":                 false,
		"https://0.0.0.0/x":                  false,
		"http://files.example.com/x":         false,
		"https://user:pw@files.example.com/": false,
	} {
		_, err := c.exportURL(loc)
		require.Equal(t, ok, err == nil, "%s: %v", loc, err)
		if err != nil {
			require.NotContains(t, err.Error(), "Signature")
		}
	}
}
