package auth0

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/time/rate"
)

// Defaults of Config.
const (
	DefaultMaxAttempts    = 5
	DefaultMaxElapsed     = 2 * time.Minute
	DefaultRequestTimeout = 30 * time.Second
	DefaultBackoffBase    = 250 * time.Millisecond
	DefaultBackoffMax     = 10 * time.Second
	// DefaultMaxExportBytes bounds an export file once decompressed: a gzip
	// bomb stops there instead of running for hours.
	DefaultMaxExportBytes = 4 << 30
	// DefaultMaxExportLine bounds one line (one user) of an export file, the
	// most the JSON decoder ever holds; as much as one API answer may be.
	DefaultMaxExportLine = maxResponseBytes
	// DefaultTokenFailureTTL is how long Token repeats a failed token
	// request's error instead of asking again.
	DefaultTokenFailureTTL = 5 * time.Second
)

// maxResponseBytes bounds what the client reads of one API answer; Auth0's
// own payload limit is 1 MB, and a page of 100 users fits easily.
const maxResponseBytes = 16 << 20

// Config is how a Client reaches the tenant and how hard it tries.
type Config struct {
	// BaseURL is the tenant, scheme://host[:port] as ParseDomain returns it.
	// Required. http:// is accepted only for a loopback host (the emulator).
	BaseURL *url.URL
	// ClientID of the machine-to-machine application. Required.
	ClientID string
	// ClientSecret of the machine-to-machine application. Required; never
	// logged, put in an error or sent anywhere but the token endpoint.
	ClientSecret string
	// Rate is the client-side limit in requests per second shared by every
	// Management API call of this Client; 0 means no client-side limit (the
	// server's X-RateLimit-* headers are obeyed in any case). Size it to the
	// tenant's plan, e.g. 16 for Enterprise, 2 for Free.
	Rate float64
	// Burst is the client-side bucket size; default 1 when Rate > 0.
	Burst int
	// MaxAttempts bounds the attempts of one call (the first included);
	// default 5. A 401 answered by refreshing the token does not count.
	MaxAttempts int
	// MaxElapsed bounds one call: every attempt and every wait (backoff,
	// rate limit); default 2m.
	MaxElapsed time.Duration
	// RequestTimeout bounds one attempt, answer body included; default 30s.
	RequestTimeout time.Duration
	// BackoffBase is the first wait before a retry after a 5xx or a
	// connection error, doubled on each retry with ±20 % jitter; default 250ms.
	BackoffBase time.Duration
	// BackoffMax caps one backoff wait; default 10s.
	BackoffMax time.Duration
	// MaxExportBytes bounds an export file's size once decompressed; default
	// 4 GiB. A larger file fails the export with ErrExportTooLarge.
	MaxExportBytes int64
	// MaxExportLine bounds one line of an export file (one user); default
	// 16 MiB. A longer line fails the export with ErrExportTooLarge.
	MaxExportLine int
	// TokenFailureTTL is how long Token answers with the last token
	// request's failure instead of asking again, so that a readiness probe
	// polled often makes at most one token request per TTL while the token
	// endpoint refuses; default 5s. API calls do not use it: they have their
	// own retries and backoff.
	TokenFailureTTL time.Duration
	// HTTPClient is used for the token endpoint, the API and export
	// downloads. nil means a client with a tuned transport (keep-alive,
	// 64 idle connections per host). Its Timeout should be 0: RequestTimeout
	// bounds each attempt. Its CheckRedirect is replaced: the client never
	// follows a redirect to the tenant (see New).
	HTTPClient *http.Client
	// Observer receives calls, rate-limit waits and token refreshes; nil = none.
	Observer Observer
	// Logger receives Debug lines about each attempt; nil = discard. It never
	// sees a secret, a token, a request body or a password.
	Logger *slog.Logger
}

// Observer receives what the client does, for metrics. Implementations must be
// fast and safe for concurrent use.
type Observer interface {
	// Call is one HTTP exchange: endpoint is a route template like
	// "GET /api/v2/users/{id}"; status 0 means no answer (connection error,
	// timeout).
	Call(endpoint string, status int, d time.Duration)
	// RateLimitWait is time spent waiting on the client-side limiter or on
	// the server's X-RateLimit-Reset / Retry-After before one attempt.
	RateLimitWait(d time.Duration)
	// TokenRefresh is one request to the token endpoint; nil = success.
	TokenRefresh(err error)
}

type nopObserver struct{}

func (nopObserver) Call(string, int, time.Duration) {}
func (nopObserver) RateLimitWait(time.Duration)     {}
func (nopObserver) TokenRefresh(error)              {}

// Client is a Management API v2 client. It is safe for concurrent use; one
// Client per tenant shares the token, the rate limiter and the connections.
type Client struct {
	base           string // scheme://host[:port]
	host           string
	hc             *http.Client // refuses redirects
	dl             *http.Client // export downloads: follows checked redirects off the tenant
	log            *slog.Logger
	obs            Observer
	limiter        *rate.Limiter // nil = no client-side limit
	gate           *gate
	tokens         *tokenCache
	maxAttempts    int
	maxElapsed     time.Duration
	requestTimeout time.Duration
	backoffBase    time.Duration
	backoffMax     time.Duration
	maxExportBytes int64
	maxExportLine  int
}

// ConfigError is a Config that New refuses; Field names the setting.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return "auth0 config: " + e.Field + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e *ConfigError) Unwrap() error { return e.Err }

// New checks cfg, fills its defaults and returns a Client. It makes no request:
// call Token to check the credentials.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Client{
		base:           cfg.BaseURL.Scheme + "://" + cfg.BaseURL.Host,
		host:           cfg.BaseURL.Host,
		log:            cfg.Logger,
		obs:            cfg.Observer,
		gate:           newGate(),
		maxAttempts:    cmp.Or(cfg.MaxAttempts, DefaultMaxAttempts),
		maxElapsed:     cmp.Or(cfg.MaxElapsed, DefaultMaxElapsed),
		requestTimeout: cmp.Or(cfg.RequestTimeout, DefaultRequestTimeout),
		backoffBase:    cmp.Or(cfg.BackoffBase, DefaultBackoffBase),
		backoffMax:     cmp.Or(cfg.BackoffMax, DefaultBackoffMax),
		maxExportBytes: cmp.Or(cfg.MaxExportBytes, DefaultMaxExportBytes),
		maxExportLine:  cmp.Or(cfg.MaxExportLine, DefaultMaxExportLine),
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient()
	}
	// A redirect from the tenant is never followed: Go would send the token
	// request's form body (the client secret) again to wherever the 307/308
	// points, and the bearer token along with an API call to any port of the
	// same host. The 3xx answer comes back as an *APIError instead. A copy,
	// so that the caller's client is left as it was; the oauth2 token
	// request uses this copy too (tokenCache.hc).
	noRedirect := *hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &noRedirect
	download := *hc
	download.CheckRedirect = c.checkExportRedirect
	c.dl = &download
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.obs == nil {
		c.obs = nopObserver{}
	}
	if cfg.Rate > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), cmp.Or(cfg.Burst, 1))
	}
	c.tokens = &tokenCache{
		cc: clientcredentials.Config{
			ClientID:       cfg.ClientID,
			ClientSecret:   cfg.ClientSecret,
			TokenURL:       c.base + "/oauth/token",
			EndpointParams: url.Values{"audience": {"https://" + c.host + "/api/v2/"}},
			// Auth0 documents the secret in the form body; fixing the style
			// also spares a second request that x/oauth2's auto-detection
			// makes after a failure.
			AuthStyle: oauth2.AuthStyleInParams,
		},
		hc:         c.hc,
		obs:        c.obs,
		log:        c.log,
		lock:       make(chan struct{}, 1),
		failureTTL: cmp.Or(cfg.TokenFailureTTL, DefaultTokenFailureTTL),
	}
	return c, nil
}

func (cfg *Config) validate() error {
	if cfg.BaseURL == nil {
		return &ConfigError{"BaseURL", errors.New("is required")}
	}
	u := cfg.BaseURL
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return &ConfigError{"BaseURL", fmt.Errorf("must be scheme://host[:port] with no path, got %q", u.Redacted())}
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !IsLoopback(u.Hostname()) {
			return &ConfigError{"BaseURL", fmt.Errorf("http:// is allowed only for a loopback host (the emulator), got %q; use https", u.Hostname())}
		}
	default:
		return &ConfigError{"BaseURL", fmt.Errorf("scheme must be https, got %q", u.Scheme)}
	}
	if cfg.ClientID == "" {
		return &ConfigError{"ClientID", errors.New("is required")}
	}
	if cfg.ClientSecret == "" {
		return &ConfigError{"ClientSecret", errors.New("is required")}
	}
	switch {
	case cfg.Rate < 0:
		return &ConfigError{"Rate", fmt.Errorf("must be >= 0, got %v", cfg.Rate)}
	case cfg.Burst < 0:
		return &ConfigError{"Burst", fmt.Errorf("must be >= 0, got %d", cfg.Burst)}
	case cfg.MaxAttempts < 0:
		return &ConfigError{"MaxAttempts", fmt.Errorf("must be >= 0, got %d", cfg.MaxAttempts)}
	case cfg.MaxElapsed < 0:
		return &ConfigError{"MaxElapsed", fmt.Errorf("must be >= 0, got %v", cfg.MaxElapsed)}
	case cfg.RequestTimeout < 0:
		return &ConfigError{"RequestTimeout", fmt.Errorf("must be >= 0, got %v", cfg.RequestTimeout)}
	case cfg.BackoffBase < 0:
		return &ConfigError{"BackoffBase", fmt.Errorf("must be >= 0, got %v", cfg.BackoffBase)}
	case cfg.BackoffMax < 0:
		return &ConfigError{"BackoffMax", fmt.Errorf("must be >= 0, got %v", cfg.BackoffMax)}
	case cfg.MaxExportBytes < 0:
		return &ConfigError{"MaxExportBytes", fmt.Errorf("must be >= 0, got %d", cfg.MaxExportBytes)}
	case cfg.MaxExportLine < 0:
		return &ConfigError{"MaxExportLine", fmt.Errorf("must be >= 0, got %d", cfg.MaxExportLine)}
	case cfg.TokenFailureTTL < 0:
		return &ConfigError{"TokenFailureTTL", fmt.Errorf("must be >= 0, got %v", cfg.TokenFailureTTL)}
	}
	return nil
}

// defaultHTTPClient keeps enough idle connections for a pool of workers to
// reuse them instead of paying a TLS handshake per call.
func defaultHTTPClient() *http.Client {
	t := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
	return &http.Client{Transport: t}
}

// Token obtains the access token now, or reuses the cached one while it is
// fresh (it is renewed when a tenth of its lifetime, at most 5 minutes, is
// left). It makes one attempt, for a readiness check; API calls fetch the
// token themselves and retry a token endpoint that fails for a moment. Within
// TokenFailureTTL of a failed token request it returns that failure again
// without asking: a readiness probe must not hammer a refusing endpoint.
func (c *Client) Token(ctx context.Context) error {
	if err := c.tokens.recentFailure(); err != nil {
		return fmt.Errorf("get auth0 token: %w", err)
	}
	if _, err := c.tokens.get(ctx); err != nil {
		return fmt.Errorf("get auth0 token: %w", err)
	}
	return nil
}
