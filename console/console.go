package console

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/time/rate"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/reconcile"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures a Console.
type Config struct {
	// Pool is the daemon's pool; the console only reads through it, except
	// for the actions (RequeueBy, Link), which write through reconcile.
	Pool *pgxpool.Pool
	// Reconciler provides the desired state, the one-employee plan and Link.
	Reconciler *reconcile.Reconciler
	// Token is what logs in (SYNCD_CONSOLE_TOKEN); required.
	Token string
	// Live, if set, says what the daemon knows of itself now: breaker,
	// deprovision guard, rate-limit budget.
	Live func() Live
	// Logger; nil discards.
	Logger *slog.Logger
	// SampleEvery is how often the overview chart takes a sample (default
	// 1m); Samples how many it keeps (default 60: the last hour).
	SampleEvery time.Duration
	Samples     int
	// SessionTTL is how long a browser session lasts (default 12h).
	SessionTTL time.Duration
	// AuthTimeout bounds a live read of Auth0 (default 15s).
	AuthTimeout time.Duration
}

// Live is the daemon's own state, beside what the database says.
type Live struct {
	Breaker   BreakerState      `json:"breaker"`
	Guard     GuardState        `json:"deprovision_guard"`
	RateLimit *auth0.RateBudget `json:"rate_limit"`
}

// BreakerState is the job-level breaker: open means reconciles wait.
type BreakerState struct {
	Open  bool   `json:"open"`
	Cause string `json:"cause,omitempty"`
}

// GuardState is the mass-deprovision guard: holding means deprovisions wait
// for `syncd guard release`.
type GuardState struct {
	Holding bool   `json:"holding"`
	Reason  string `json:"reason,omitempty"`
}

// ScanInfo is the last drift scan this process ran.
type ScanInfo struct {
	At          time.Time `json:"at"`
	TookSeconds float64   `json:"took_seconds"`
	Employees   int       `json:"employees"`
	Compared    int       `json:"compared"`
	Managed     int       `json:"managed_users"`
	Drifted     int       `json:"drifted"`
	Orphans     int       `json:"orphans"`
	Error       string    `json:"error,omitempty"`
}

// Console serves the pages and the API. It is an http.Handler; Run keeps
// the overview chart's samples.
type Console struct {
	cfg      Config
	log      *slog.Logger
	pages    map[string]*template.Template
	handler  http.Handler
	sessions sessions
	logins   *rate.Limiter
	tokenSum [32]byte

	ring       ring
	lastSample time.Time    // when the counters were last reset (Run's goroutine only)
	reconciles atomic.Int64 // since the last sample
	failures   atomic.Int64
	scan       atomic.Pointer[ScanInfo]
}

// ErrNoToken is returned by New without a token.
var ErrNoToken = errors.New("console: a token is required")

// New returns a Console.
func New(cfg Config) (*Console, error) {
	if cfg.Token == "" {
		return nil, ErrNoToken
	}
	if cfg.Pool == nil || cfg.Reconciler == nil {
		return nil, errors.New("console: Pool and Reconciler are required")
	}
	cfg.SampleEvery = cmp.Or(cfg.SampleEvery, time.Minute)
	cfg.Samples = cmp.Or(cfg.Samples, 60)
	cfg.SessionTTL = cmp.Or(cfg.SessionTTL, 12*time.Hour)
	cfg.AuthTimeout = cmp.Or(cfg.AuthTimeout, 15*time.Second)
	if cfg.Live == nil {
		cfg.Live = func() Live { return Live{} }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg, log: cfg.Logger, pages: map[string]*template.Template{},
		sessions: sessions{m: map[string]*session{}, ttl: cfg.SessionTTL},
		logins:   rate.NewLimiter(rate.Every(time.Second), 10),
		tokenSum: sum(cfg.Token), ring: ring{size: cfg.Samples}, lastSample: time.Now()}
	for _, page := range []string{"login", "overview", "employees", "employee", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("console templates: %w", err)
		}
		c.pages[page] = t
	}
	c.handler = c.routes()
	return c, nil
}

// ServeHTTP serves the console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.page(c.logout))
	mux.HandleFunc("GET /{$}", c.page(c.overview))
	mux.HandleFunc("GET /employees", c.page(c.employeesPage))
	mux.HandleFunc("GET /employees/{id}", c.page(c.employeePage))
	mux.HandleFunc("POST /employees/{id}/sync", c.page(c.syncForm))
	mux.HandleFunc("POST /employees/{id}/link", c.page(c.linkForm))

	mux.HandleFunc("GET /api/v1/status", c.api(c.apiStatus))
	mux.HandleFunc("GET /api/v1/employees", c.api(c.apiEmployees))
	mux.HandleFunc("GET /api/v1/employees/{id}", c.api(c.apiEmployee))
	mux.HandleFunc("POST /api/v1/employees/{id}/resync", c.api(c.apiResyncOne))
	mux.HandleFunc("POST /api/v1/resync", c.api(c.apiResync))
	mux.HandleFunc("POST /api/v1/employees/{id}/link", c.api(c.apiLink))
	mux.HandleFunc("/api/", c.api(func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
	}))

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.log.WarnContext(r.Context(), "console refused a cross-origin request", "method", r.Method, "path", r.URL.Path)
		http.Error(w, "403 forbidden: cross-origin request refused", http.StatusForbidden)
	}))
	return securityHeaders(limitBody(cop.Handler(mux)))
}

// maxBody bounds every request body.
const maxBody = 64 << 10

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		next.ServeHTTP(w, r)
	})
}

// csp allows nothing but the console's own stylesheet and forms: no script
// at all, no framing, no other host.
const csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// Reconciled counts one reconcile for the chart; the daemon calls it after
// each. A failure is an error, or a retry, terminal or configuration outcome.
func (c *Console) Reconciled(out reconcile.Outcome, err error) {
	c.reconciles.Add(1)
	if err != nil || out.Result == reconcile.ResultRetry || out.Result == reconcile.ResultTerminal || out.Result == reconcile.ResultConfig {
		c.failures.Add(1)
	}
}

// ScanDone records a drift scan's result for the overview; the daemon calls
// it after each.
func (c *Console) ScanDone(res *reconcile.ScanResult, err error, took time.Duration) {
	s := &ScanInfo{At: time.Now(), TookSeconds: took.Seconds()}
	if res != nil {
		s.Employees, s.Compared, s.Managed, s.Drifted, s.Orphans = res.Employees, res.Compared, res.ManagedUsers, len(res.Drifted), len(res.Orphans)
	}
	if err != nil {
		s.Error = err.Error()
	}
	c.scan.Store(s)
}

// Run samples the chart's series every SampleEvery until ctx is done.
func (c *Console) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.SampleEvery)
	defer t.Stop()
	c.sample(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.sample(ctx)
		}
	}
}

func (c *Console) sample(ctx context.Context) {
	s := Sample{At: time.Now(), Backlog: -1}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.cfg.Pool.QueryRow(qctx, `SELECT count(*) FROM auth0_outbox`).Scan(&s.Backlog); err != nil {
		c.log.DebugContext(ctx, "console sample: count outbox", "error", err)
	}
	// Per minute over the time since the last sample (the first one covers
	// the time since the console started).
	minutes := max(s.At.Sub(c.lastSample), time.Second).Minutes()
	c.lastSample = s.At
	s.Reconciles = float64(c.reconciles.Swap(0)) / minutes
	s.Failures = float64(c.failures.Swap(0)) / minutes
	c.ring.add(s)
}

// IsLoopback says whether a listen address (host:port) binds only to the
// loopback interface: "localhost" or a loopback IP. An empty host binds
// every interface.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Sample is one point of the overview chart.
type Sample struct {
	At      time.Time `json:"at"`
	Backlog int64     `json:"backlog"` // outbox rows; -1 if the count failed
	// Reconciles and Failures are per minute over the sample's interval.
	Reconciles float64 `json:"reconciles_per_minute"`
	Failures   float64 `json:"failures_per_minute"`
}

// ring keeps the last size samples.
type ring struct {
	mu   sync.Mutex
	size int
	buf  []Sample
}

func (r *ring) add(s Sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, s)
	if len(r.buf) > r.size {
		r.buf = r.buf[len(r.buf)-r.size:]
	}
}

func (r *ring) all() []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Sample{}, r.buf...)
}
