package auth0_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

// testPassword passes the emulator's default ("good") password policy.
const testPassword = "Corr3ct-Horse-Battery"

// fixture is an emulator on a loopback port and a client pointed at it.
type fixture struct {
	t      testing.TB
	srv    *emulator.Server
	e      *emulator.Emulator
	c      *auth0.Client
	cfg    auth0.Config
	obs    *recorder
	logs   *syncBuffer
	wire   *wireRecorder
	hc     *http.Client
	tr     *http.Transport
	closed bool // the test closed srv itself
	userNo atomic.Int64
}

// setup starts an emulator with opts and a client with fast retries; tweak
// may change the client's Config before New.
func setup(t testing.TB, opts emulator.Options, tweak func(*auth0.Config)) *fixture {
	t.Helper()
	srv, err := emulator.Listen("127.0.0.1:0", opts)
	require.NoError(t, err)
	f := &fixture{t: t, srv: srv, e: srv.Emulator, obs: newRecorder(), logs: &syncBuffer{}}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	f.tr = tr
	f.wire = &wireRecorder{next: tr}
	f.hc = &http.Client{Transport: f.wire}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if !f.closed {
			require.NoError(t, srv.Close())
		}
	})
	base, err := auth0.ParseDomain(srv.URL)
	require.NoError(t, err)
	o := srv.Emulator.Options()
	f.cfg = auth0.Config{
		BaseURL:      base,
		ClientID:     o.ClientID,
		ClientSecret: o.ClientSecret,
		BackoffBase:  5 * time.Millisecond,
		BackoffMax:   50 * time.Millisecond,
		HTTPClient:   f.hc,
		Observer:     f.obs,
		Logger:       slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if tweak != nil {
		tweak(&f.cfg)
	}
	f.c, err = auth0.New(f.cfg)
	require.NoError(t, err)
	return f
}

// stop closes the emulator and the client's idle connections to it, so that
// the next request finds nothing listening.
func (f *fixture) stop() {
	f.t.Helper()
	require.NoError(f.t, f.srv.Close())
	f.closed = true
	f.tr.CloseIdleConnections()
}

// newClient is another client of the same emulator with cfg changed by tweak.
func (f *fixture) newClient(tweak func(*auth0.Config)) *auth0.Client {
	f.t.Helper()
	cfg := f.cfg
	tweak(&cfg)
	c, err := auth0.New(cfg)
	require.NoError(f.t, err)
	return c
}

func (f *fixture) connection() string { return f.e.Options().Connection }

// createUser creates a user with a unique e-mail through the client.
func (f *fixture) createUser(ctx context.Context, appMetadata map[string]any) *auth0.User {
	f.t.Helper()
	n := f.userNo.Add(1)
	u, err := f.c.CreateUser(ctx, auth0.CreateUserRequest{
		Connection:  f.connection(),
		Email:       fmt.Sprintf("user%04d@example.com", n),
		Name:        fmt.Sprintf("User %d", n),
		Password:    testPassword,
		AppMetadata: appMetadata,
	})
	require.NoError(f.t, err)
	return u
}

// calls is the emulator's count for endpoint and status.
func (f *fixture) calls(endpoint string, status int) int64 {
	for _, c := range f.e.Calls() {
		if c.Endpoint == endpoint && c.Status == status {
			return c.Count
		}
	}
	return 0
}

// recorder is an auth0.Observer that remembers everything.
type recorder struct {
	mu        sync.Mutex
	calls     map[string]int // "endpoint status"
	waits     []time.Duration
	refreshes []error
}

func newRecorder() *recorder { return &recorder{calls: map[string]int{}} }

func (r *recorder) Call(endpoint string, status int, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[fmt.Sprintf("%s %d", endpoint, status)]++
}

func (r *recorder) RateLimitWait(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits = append(r.waits, d)
}

func (r *recorder) TokenRefresh(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshes = append(r.refreshes, err)
}

func (r *recorder) count(endpoint string, status int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[fmt.Sprintf("%s %d", endpoint, status)]
}

func (r *recorder) waited() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sum time.Duration
	for _, w := range r.waits {
		sum += w
	}
	return sum
}

func (r *recorder) tokenRefreshes() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.refreshes...)
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// wireRecorder passes requests through and remembers the bearer tokens sent,
// so that a test can look for them where they must not be.
type wireRecorder struct {
	next   http.RoundTripper
	mu     sync.Mutex
	tokens map[string]bool
}

func (w *wireRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		w.mu.Lock()
		if w.tokens == nil {
			w.tokens = map[string]bool{}
		}
		w.tokens[tok] = true
		w.mu.Unlock()
	}
	return w.next.RoundTrip(r)
}

func (w *wireRecorder) seenTokens() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for t := range w.tokens {
		out = append(out, t)
	}
	return out
}
