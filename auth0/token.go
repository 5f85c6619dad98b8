package auth0

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// tokenEndpoint names the token request in logs, metrics and errors.
const tokenEndpoint = "POST /oauth/token"

// maxEarlyRefresh is how long before expiry a token is replaced at most: a
// token is renewed when a tenth of its lifetime is left, capped at this.
const maxEarlyRefresh = 5 * time.Minute

// tokenCache holds the access token, fetches it when missing or about to
// expire (one fetch at a time), and drops it when the API refuses it.
type tokenCache struct {
	cc   clientcredentials.Config
	hc   *http.Client
	obs  Observer
	log  *slog.Logger
	lock chan struct{} // held while fetching; a channel so waiting honours ctx
	// failureTTL is how long recentFailure repeats a failed fetch.
	failureTTL time.Duration

	mu        sync.Mutex
	access    string
	refreshAt time.Time
	failed    error     // the last fetch's error, until a fetch succeeds
	failedAt  time.Time // when it failed
}

// recentFailure returns the last fetch's error if it failed less than
// failureTTL ago and no token is cached, else nil.
func (t *tokenCache) recentFailure() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failed != nil && time.Since(t.failedAt) < t.failureTTL &&
		(t.access == "" || !time.Now().Before(t.refreshAt)) {
		return t.failed
	}
	return nil
}

// current returns the cached token if it is still fresh.
func (t *tokenCache) current() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.access != "" && time.Now().Before(t.refreshAt) {
		return t.access
	}
	return ""
}

// drop forgets access if it is still the cached token (a 401 said it is no
// longer good); a newer token fetched meanwhile is kept.
func (t *tokenCache) drop(access string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.access == access {
		t.access = ""
	}
}

// get returns a fresh token, fetching one if needed.
func (t *tokenCache) get(ctx context.Context) (string, error) {
	if s := t.current(); s != "" {
		return s, nil
	}
	select {
	case t.lock <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-t.lock }()
	if s := t.current(); s != "" { // fetched while we waited
		return s, nil
	}
	start := time.Now()
	tok, err := t.cc.Token(context.WithValue(ctx, oauth2.HTTPClient, t.hc))
	if err != nil {
		err = tokenError(ctx, err)
		if ctx.Err() == nil { // the caller giving up says nothing about the endpoint
			t.mu.Lock()
			t.failed, t.failedAt = err, time.Now()
			t.mu.Unlock()
		}
		t.obs.TokenRefresh(err)
		t.log.LogAttrs(ctx, slog.LevelDebug, "auth0 token request failed",
			slog.Duration(logKeyDuration, time.Since(start)), slog.String(logKeyError, err.Error()))
		return "", err
	}
	t.obs.TokenRefresh(nil)
	now := time.Now()
	refreshAt := now.Add(time.Hour) // no expires_in: assume an hour
	if !tok.Expiry.IsZero() {
		ttl := tok.Expiry.Sub(now)
		refreshAt = tok.Expiry.Add(-min(maxEarlyRefresh, ttl/10))
	}
	t.mu.Lock()
	t.access = tok.AccessToken
	t.refreshAt = refreshAt
	t.failed = nil
	t.mu.Unlock()
	t.log.LogAttrs(ctx, slog.LevelDebug, "auth0 token obtained",
		slog.Duration(logKeyDuration, time.Since(start)), slog.Time("refresh_at", refreshAt))
	return tok.AccessToken, nil
}

// tokenError maps what x/oauth2 returns into our errors, keeping the token
// endpoint's {error, error_description} and dropping the raw body and URL.
func tokenError(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return ctx.Err()
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		ae := &APIError{ErrorCode: re.ErrorCode, Message: re.ErrorDescription}
		if re.Response != nil {
			ae.StatusCode = re.Response.StatusCode
			ae.RetryAfter = retryAfterSeconds(re.Response.Header, time.Now())
		}
		if ae.Message == "" {
			ae.Message = strings.TrimSpace("token endpoint answered " + http.StatusText(ae.StatusCode))
		}
		if isRedirect(ae.StatusCode) {
			ae.Message = redirectRefused
		}
		return &TokenError{Err: ae}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &TokenError{Err: ue.Err}
	}
	return &TokenError{Err: err}
}
