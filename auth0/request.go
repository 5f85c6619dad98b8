package auth0

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	retry "github.com/sethvargo/go-retry"
)

// Log attribute keys.
const (
	logKeyEndpoint = "endpoint"
	logKeyStatus   = "status"
	logKeyDuration = "duration"
	logKeyAttempt  = "attempt"
	logKeyWait     = "rate_limit_wait"
	logKeyError    = "error"
	logKeyJobID    = "job_id"
)

// request is one Management API call.
type request struct {
	method   string
	endpoint string // route template for logs, metrics and errors: "GET /api/v2/users/{id}"
	path     string // escaped path: "/api/v2/users/auth0%7C…"
	query    url.Values
	body     any // encoded as JSON; nil = no body
	// raw, if set, is sent as it is with contentType instead of body (a
	// multipart upload).
	raw         []byte
	contentType string
	// final429 returns a 429 to the caller instead of waiting and retrying:
	// the import jobs' "active jobs" limit is waited out by the caller.
	final429 bool
	out      any // a 2xx answer is decoded into it; nil = discarded
	// unsafe marks a request that must not be repeated once sent (POST
	// /users): a lost answer is ErrOutcomeUnknown, not a retry.
	unsafe bool
	// secrets are strings of the body (a password) scrubbed from any error
	// message the server might echo them in.
	secrets []string
}

// callState is what the attempts of one call share.
type callState struct {
	deadline  time.Time // MaxElapsed
	attempts  int
	reauthed  bool  // a 401 has already dropped the token once
	noBackoff bool  // the last failure was a 429: the gate holds the wait
	lastErr   error // the last failure, returned if the budget runs out while waiting
}

// do runs r with the rate limits, the token and the retry policy.
func (c *Client) do(ctx context.Context, r request) error {
	body := r.raw
	if r.raw == nil && r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("%s: encode body: %w", r.endpoint, err)
		}
	}
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	st := &callState{deadline: time.Now().Add(c.maxElapsed)}
	exp := retry.WithCappedDuration(c.backoffMax, retry.WithJitterPercent(20, retry.NewExponential(c.backoffBase)))
	backoff := retry.BackoffFunc(func() (time.Duration, bool) {
		if st.attempts >= c.maxAttempts {
			return 0, true
		}
		if st.noBackoff {
			return 0, false
		}
		d, stop := exp.Next()
		if stop || time.Now().Add(d).After(st.deadline) {
			return 0, true
		}
		return d, false
	})
	return retry.Do(ctx, backoff, func(ctx context.Context) error {
		st.attempts++
		st.noBackoff = false
		err := c.attempt(ctx, r, u, body, st)
		var ue *unauthorizedError
		if errors.As(err, &ue) {
			if st.reauthed {
				return ue.APIError
			}
			// The token was refused (revoked, expired early, signing key
			// rotated): fetch a new one and try once more. Nothing was applied.
			st.reauthed = true
			c.tokens.drop(ue.token)
			err = c.attempt(ctx, r, u, body, st)
			if errors.As(err, &ue) {
				return ue.APIError
			}
		}
		return err
	})
}

// unauthorizedError is a 401 from the API and the token it refused.
type unauthorizedError struct {
	*APIError
	token string
}

// attempt is one try: rate limits, token, HTTP exchange. It returns nil, a
// final error, a retry.RetryableError, or an *unauthorizedError.
func (c *Client) attempt(ctx context.Context, r request, u string, body []byte, st *callState) error {
	tok, err := c.tokens.get(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err = fmt.Errorf("get auth0 token: %w", err)
		st.lastErr = err
		var ae *APIError
		if errors.As(err, &ae) && !Temporary(ae) {
			return err // wrong credentials, missing grant: retrying will not help
		}
		return retry.RetryableError(err)
	}

	waited, err := waitLimiter(ctx, c.limiter, st.deadline)
	if err == nil {
		var seq uint64
		var w time.Duration
		seq, w, err = c.gate.acquire(ctx, st.deadline)
		waited += w
		if err == nil {
			if waited > 0 {
				c.obs.RateLimitWait(waited)
			}
			return c.exchange(ctx, r, u, body, tok, seq, waited, st)
		}
	}
	if waited > 0 {
		c.obs.RateLimitWait(waited)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if st.lastErr != nil { // out of time budget: say why we were waiting
		return st.lastErr
	}
	return fmt.Errorf("%s: %w", r.endpoint, err)
}

// exchange sends the request once the gates let it through and classifies the
// outcome.
func (c *Client) exchange(ctx context.Context, r request, u string, body []byte, tok string, seq uint64, waited time.Duration, st *callState) error {
	deadline := time.Now().Add(c.requestTimeout)
	if st.deadline.Before(deadline) {
		deadline = st.deadline
	}
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	// Whether the request was written matters only for a request that must
	// not be repeated; the others skip the trace and its allocations.
	var sent atomic.Bool
	reqCtx := actx
	if r.unsafe {
		reqCtx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				sent.Store(true)
			}
		}})
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(reqCtx, r.method, u, rd)
	if err != nil {
		c.gate.observe(seq, nil)
		return fmt.Errorf("%s: %w", r.endpoint, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "syncd")
	if body != nil {
		req.Header.Set("Content-Type", cmp.Or(r.contentType, "application/json"))
	}

	start := time.Now()
	resp, err := c.hc.Do(req)
	var data []byte
	if err == nil {
		data, err = readBody(resp)
		resp.Body.Close()
	}
	d := time.Since(start)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	c.gate.observe(seq, resp)
	c.obs.Call(r.endpoint, status, d)
	// Every call is logged at Debug; the attributes are built only when
	// that is on.
	logCall := func(msg string, extra ...slog.Attr) {
		if !c.log.Enabled(ctx, slog.LevelDebug) {
			return
		}
		attrs := []slog.Attr{
			slog.String(logKeyEndpoint, r.endpoint), slog.Int(logKeyStatus, status),
			slog.Duration(logKeyDuration, d), slog.Int(logKeyAttempt, st.attempts),
		}
		if waited > 0 {
			attrs = append(attrs, slog.Duration(logKeyWait, waited))
		}
		c.log.LogAttrs(ctx, slog.LevelDebug, msg, append(attrs, extra...)...)
	}

	if err != nil { // no (complete) answer
		if ctx.Err() != nil { // the caller gave up
			if r.unsafe && sent.Load() {
				return fmt.Errorf("%s: %w: %w", r.endpoint, ErrOutcomeUnknown, ctx.Err())
			}
			return ctx.Err()
		}
		cause := transportError(r.endpoint, err, c.requestTimeout)
		logCall("auth0 call failed", slog.String(logKeyError, cause.Error()))
		st.lastErr = cause
		if r.unsafe && sent.Load() {
			return fmt.Errorf("%w: %w", ErrOutcomeUnknown, cause)
		}
		return retry.RetryableError(cause)
	}
	logCall("auth0 call")

	if status >= 200 && status < 300 {
		if r.out != nil && len(bytes.TrimSpace(data)) > 0 {
			if err := json.Unmarshal(data, r.out); err != nil {
				err = fmt.Errorf("%s: decode answer: %w", r.endpoint, err)
				if r.unsafe {
					return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
				}
				return err
			}
		}
		return nil
	}

	ae := apiError(resp, data, r.secrets)
	st.lastErr = ae
	switch {
	case status == http.StatusUnauthorized:
		return &unauthorizedError{APIError: ae, token: tok}
	case status == http.StatusTooManyRequests && r.final429:
		return ae
	case status == http.StatusTooManyRequests:
		// Nothing was applied, so even POST /users may go again; the gate
		// now holds every request until the server's reset.
		st.noBackoff = true
		return retry.RetryableError(ae)
	case status >= 500 || status == http.StatusRequestTimeout:
		if r.unsafe {
			return fmt.Errorf("%w: %w", ErrOutcomeUnknown, ae)
		}
		return retry.RetryableError(ae)
	}
	return ae
}

// readBody reads an answer, in one allocation when its length is announced.
func readBody(resp *http.Response) ([]byte, error) {
	n := resp.ContentLength
	if n < 0 || n > maxResponseBytes {
		return readAll(resp.Body)
	}
	var buf bytes.Buffer
	buf.Grow(int(n) + bytes.MinRead) // ReadFrom keeps MinRead free: no second allocation
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxResponseBytes+1)); err != nil {
		return nil, err
	}
	if buf.Len() > maxResponseBytes {
		return nil, fmt.Errorf("answer larger than %d bytes", maxResponseBytes)
	}
	return buf.Bytes(), nil
}

func readAll(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxResponseBytes+1))
	if err == nil && len(data) > maxResponseBytes {
		err = fmt.Errorf("answer larger than %d bytes", maxResponseBytes)
	}
	return data, err
}

// transportError names the endpoint instead of quoting the URL (which may
// hold an e-mail address in its query).
func transportError(endpoint string, err error, timeout time.Duration) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: no answer within %v: %w", endpoint, timeout, err)
	}
	return fmt.Errorf("%s: %w", endpoint, err)
}

// apiError reads Auth0's error body {statusCode, error, message, errorCode}
// (or the token endpoint's {error, error_description}).
func apiError(resp *http.Response, data []byte, secrets []string) *APIError {
	var b struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		Message          string `json:"message"`
		ErrorCode        string `json:"errorCode"`
	}
	_ = json.Unmarshal(data, &b) // a non-JSON body (a proxy's HTML page) leaves the status only
	ae := &APIError{StatusCode: resp.StatusCode, ErrorCode: b.ErrorCode, Message: b.Message}
	if ae.Message == "" {
		ae.Message = b.ErrorDescription
	}
	if ae.ErrorCode == "" && b.ErrorDescription != "" {
		ae.ErrorCode = b.Error // token-endpoint style
	}
	if ae.Message == "" {
		ae.Message = cmp.Or(b.Error, http.StatusText(resp.StatusCode))
	}
	if isRedirect(resp.StatusCode) {
		ae.Message = redirectRefused
	}
	for _, s := range secrets {
		if s != "" {
			ae.Message = strings.ReplaceAll(ae.Message, s, "[redacted]")
		}
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		ae.RetryAfter = retryAfterSeconds(resp.Header, time.Now())
	}
	return ae
}

// redirectRefused is the message of a 3xx answer: the client never follows
// one (see New), and says so rather than quote where it pointed.
const redirectRefused = "answered with a redirect, which is never followed (is the domain the tenant's own?)"

func isRedirect(status int) bool { return status >= 300 && status < 400 }

// pathEscape escapes one path segment (user ids hold a '|').
func pathEscape(s string) string { return url.PathEscape(s) }
