package auth0

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	retry "github.com/sethvargo/go-retry"
)

// Export job statuses.
const (
	JobPending    = "pending"
	JobProcessing = "processing"
	JobCompleted  = "completed"
	JobFailed     = "failed"
)

const (
	exportFileEndpoint     = "GET {export file}"
	defaultPollInterval    = 500 * time.Millisecond
	maxPollInterval        = 10 * time.Second
	exportDownloadAttempts = 3
	maxExportRedirects     = 3
	// DefaultExportJobTimeout is how long ExportUsers waits for a job to
	// complete: a job stuck in "pending" must not stop the caller forever.
	DefaultExportJobTimeout = 30 * time.Minute
)

// ErrExportTooLarge is an export file over Config.MaxExportBytes once
// decompressed, or with a line over Config.MaxExportLine. It is final: the
// download is not tried again.
var ErrExportTooLarge = errors.New("auth0: export file over the size limit")

// exportJobBody is the body of POST /api/v2/jobs/users-exports.
type exportJobBody struct {
	ConnectionID string        `json:"connection_id,omitempty"`
	Format       string        `json:"format"`
	Limit        int           `json:"limit,omitempty"`
	Fields       []ExportField `json:"fields,omitempty"`
}

// CreateExportJob starts a users export in JSON (NDJSON) format (POST
// /api/v2/jobs/users-exports). A job created twice because an answer was lost
// costs nothing but work, so the request is retried like a read.
func (c *Client) CreateExportJob(ctx context.Context, req ExportRequest) (*ExportJob, error) {
	var job ExportJob
	err := c.do(ctx, request{
		method:   http.MethodPost,
		endpoint: "POST /api/v2/jobs/users-exports",
		path:     "/api/v2/jobs/users-exports",
		body:     exportJobBody{ConnectionID: req.ConnectionID, Format: "json", Limit: req.Limit, Fields: req.Fields},
		out:      &job,
	})
	if err != nil {
		return nil, fmt.Errorf("create auth0 export job: %w", err)
	}
	return &job, nil
}

// GetJob reads a job (GET /api/v2/jobs/{id}); once an export job is
// completed, its Location is a link to the file, valid for about a minute.
func (c *Client) GetJob(ctx context.Context, id string) (*ExportJob, error) {
	return getJob[ExportJob](ctx, c, id, "get auth0 job")
}

// getJob reads job id (GET /api/v2/jobs/{id}) into a T: export and import
// jobs share the endpoint and differ in their fields. what names the call in
// errors.
func getJob[T any](ctx context.Context, c *Client, id, what string) (*T, error) {
	if id == "" {
		return nil, fmt.Errorf("%s: %w", what, errEmptyID)
	}
	var job T
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: "GET /api/v2/jobs/{id}",
		path:     "/api/v2/jobs/" + pathEscape(id),
		out:      &job,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &job, nil
}

// ExportUsers reads every user through an export job: it creates the job,
// polls it until it completes (for at most req.JobTimeout), downloads the
// NDJSON file (gzipped or not) and hands each line to each as it is decoded,
// without holding the file in memory. An error from each stops the export
// and is returned as it is. The download is bounded by ctx only (a large
// file takes long, a stalled one is cut after RequestTimeout without a byte):
// give ctx a deadline.
func (c *Client) ExportUsers(ctx context.Context, req ExportRequest, each func(ExportedUser) error) error {
	job, err := c.CreateExportJob(ctx, req)
	if err != nil {
		return fmt.Errorf("export auth0 users: %w", err)
	}
	job, err = c.waitJob(ctx, job, cmp.Or(req.PollInterval, defaultPollInterval), cmp.Or(req.JobTimeout, DefaultExportJobTimeout))
	if err != nil {
		return fmt.Errorf("export auth0 users: %w", err)
	}
	if err := c.downloadExport(ctx, job, each); err != nil {
		return fmt.Errorf("export auth0 users: %w", err)
	}
	return nil
}

// waitJob polls job until it is completed or failed, or timeout has passed.
func (c *Client) waitJob(ctx context.Context, job *ExportJob, interval, timeout time.Duration) (*ExportJob, error) {
	deadline := time.Now().Add(timeout)
	polled := false
	for {
		switch job.Status {
		case JobCompleted:
			if job.Location != "" {
				return job, nil
			}
			if polled {
				return nil, fmt.Errorf("job %s completed without a location", job.ID)
			}
			// The creation's answer has no location: ask for the job now.
			next, err := c.GetJob(ctx, job.ID)
			if err != nil {
				return nil, err
			}
			job, polled = next, true
			continue
		case JobFailed:
			return nil, fmt.Errorf("job %s failed", job.ID)
		}
		c.log.LogAttrs(ctx, slog.LevelDebug, "auth0 export job not done yet",
			slog.String(logKeyJobID, job.ID), slog.String("job_status", job.Status))
		wait := min(interval, time.Until(deadline))
		if wait <= 0 {
			return nil, fmt.Errorf("job %s still %s after %s", job.ID, cmp.Or(job.Status, "not done"), timeout)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		interval = min(interval*3/2, maxPollInterval)
		next, err := c.GetJob(ctx, job.ID)
		if err != nil {
			return nil, err
		}
		job, polled = next, true
	}
}

// downloadExport streams the job's file into each. A download that fails is
// tried again (with a fresh location if the link expired), skipping the users
// already handed over.
func (c *Client) downloadExport(ctx context.Context, job *ExportJob, each func(ExportedUser) error) error {
	delivered := 0
	var eachErr error
	attempts := 0
	exp := retry.WithMaxRetries(exportDownloadAttempts-1,
		retry.WithCappedDuration(c.backoffMax, retry.WithJitterPercent(20, retry.NewExponential(c.backoffBase))))
	return retry.Do(ctx, exp, func(ctx context.Context) error {
		attempts++
		if attempts > 1 && job.ID != "" {
			// The link lives about a minute: ask for a fresh one.
			fresh, err := c.GetJob(ctx, job.ID)
			if err != nil {
				return err
			}
			job = fresh
		}
		err := c.streamExport(ctx, job.Location, delivered, func(u ExportedUser) error {
			if err := each(u); err != nil {
				eachErr = err
				return err
			}
			delivered++
			return nil
		})
		if err == nil || eachErr != nil || ctx.Err() != nil || errors.Is(err, ErrExportTooLarge) {
			return err
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.StatusCode < 500 && ae.StatusCode != http.StatusTooManyRequests &&
			ae.StatusCode != http.StatusForbidden && ae.StatusCode != http.StatusNotFound {
			return err // 403/404: an expired link, worth a fresh one; other 4xx are final
		}
		c.log.LogAttrs(ctx, slog.LevelDebug, "auth0 export download failed, retrying",
			slog.String(logKeyJobID, job.ID), slog.Int("delivered", delivered), slog.String(logKeyError, err.Error()))
		return retry.RetryableError(err)
	})
}

// streamExport downloads location once, skips the first skip users and hands
// the others to each.
func (c *Client) streamExport(ctx context.Context, location string, skip int, each func(ExportedUser) error) error {
	u, err := c.exportURL(location)
	if err != nil {
		return err
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// No answer, or no progress, for RequestTimeout gives up on this try;
	// a large file may take longer than that as a whole.
	var stalled atomic.Bool
	watchdog := time.AfterFunc(c.requestTimeout, func() { stalled.Store(true); cancel() })
	defer watchdog.Stop()
	fail := func(err error) error {
		if parent.Err() != nil {
			return parent.Err()
		}
		if stalled.Load() {
			err = context.DeadlineExceeded
		}
		return transportError(exportFileEndpoint, err, c.requestTimeout)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("%s: %w", exportFileEndpoint, err)
	}
	if u.Host == c.host {
		// The emulator serves the file itself; Auth0 hands out a pre-signed
		// link on another host, which must never see our token.
		tok, err := c.tokens.get(ctx)
		if err != nil {
			return fmt.Errorf("get auth0 token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("User-Agent", "syncd")
	start := time.Now()
	hc := c.dl
	if req.Header.Get("Authorization") != "" {
		hc = c.hc // with the token: no redirect is followed
	}
	resp, err := hc.Do(req)
	if err != nil {
		c.obs.Call(exportFileEndpoint, 0, time.Since(start))
		return fail(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := readAll(resp.Body)
		c.obs.Call(exportFileEndpoint, resp.StatusCode, time.Since(start))
		return fmt.Errorf("%s: %w", exportFileEndpoint, apiError(resp, data, nil))
	}
	body := &progressReader{r: resp.Body, onRead: func() { watchdog.Reset(c.requestTimeout) }}
	err = decodeExport(body, skip, exportLimits{bytes: c.maxExportBytes, line: c.maxExportLine}, each)
	c.obs.Call(exportFileEndpoint, resp.StatusCode, time.Since(start))
	if err != nil && !errors.Is(err, errEach) {
		return fail(err)
	}
	return unwrapEach(err)
}

// exportURL resolves and checks a job's location. The location comes from
// the API's answer, so it is not trusted to name a local service: it must be
// https, and a loopback, link-local, private or unspecified address (by name
// or IP) is allowed only when the tenant itself is on loopback (the
// emulator), which may also use http on loopback. The error names the scheme
// and host only: the rest of a pre-signed link is a credential.
func (c *Client) exportURL(location string) (*url.URL, error) {
	base, _ := url.Parse(c.base)
	ref, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("%s: the job's location is not a URL", exportFileEndpoint)
	}
	u := base.ResolveReference(ref)
	if err := checkExportHost(u, IsLoopback(base.Hostname())); err != nil {
		return nil, fmt.Errorf("%s: refusing the job's location: %w", exportFileEndpoint, err)
	}
	return u, nil
}

func checkExportHost(u *url.URL, localTenant bool) error {
	host := u.Hostname()
	local := IsLoopback(host)
	if ip := net.ParseIP(host); ip != nil {
		local = local || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified()
	}
	switch {
	case u.User != nil:
		return fmt.Errorf("a URL with credentials (host %q)", host)
	case local && !localTenant:
		return fmt.Errorf("host %q is a local address, allowed only when the Auth0 domain is loopback", host)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && IsLoopback(host) && localTenant:
		return nil
	case u.Scheme == "http" && IsLoopback(host):
		return fmt.Errorf("http on host %q is allowed only when the Auth0 domain is loopback; use https", host)
	default:
		return fmt.Errorf("scheme %q on host %q; only https is allowed", u.Scheme, host)
	}
}

// checkExportRedirect lets a download off the tenant follow a few redirects,
// each held to the rules of exportURL (a storage service may redirect; it
// carries no token or secret: a request with the token never gets here).
func (c *Client) checkExportRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxExportRedirects {
		return fmt.Errorf("more than %d redirects", maxExportRedirects)
	}
	if req.Header.Get("Authorization") != "" {
		return http.ErrUseLastResponse
	}
	base, _ := url.Parse(c.base)
	if err := checkExportHost(req.URL, IsLoopback(base.Hostname())); err != nil {
		return fmt.Errorf("refusing a redirect: %w", err)
	}
	return nil
}

// errEach marks an error returned by the caller's each function.
var errEach = errors.New("each")

type eachError struct{ err error }

func (e *eachError) Error() string        { return e.err.Error() }
func (e *eachError) Is(target error) bool { return target == errEach }
func (e *eachError) Unwrap() error        { return e.err }

func unwrapEach(err error) error {
	var ee *eachError
	if errors.As(err, &ee) {
		return ee.err
	}
	return err
}

// exportLimits bound what decodeExport reads once decompressed.
type exportLimits struct {
	bytes int64 // the whole file
	line  int   // one line (one user): the most the JSON decoder holds
}

// decodeExport reads NDJSON, gzipped or not (it looks at the magic bytes: a
// pre-signed link serves the .gz file as it is, with no Content-Encoding).
// The decompressed stream is held to lim, so that neither a gzip bomb nor one
// endless line can take the process's memory or hours of CPU.
func decodeExport(r io.Reader, skip int, lim exportLimits, each func(ExportedUser) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var src io.Reader = br
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gunzip: %w", err)
		}
		defer zr.Close()
		src = zr
	}
	dec := json.NewDecoder(&limitedLines{r: src, maxBytes: lim.bytes, maxLine: lim.line})
	n := 0
	for {
		var u ExportedUser
		if err := dec.Decode(&u); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("decode line %d: %w", n+1, err)
		}
		n++
		if n <= skip {
			continue
		}
		if err := each(u); err != nil {
			return &eachError{err}
		}
	}
}

// limitedLines fails a read that would pass maxBytes in all, or make a line
// longer than maxLine, with ErrExportTooLarge.
type limitedLines struct {
	r        io.Reader
	maxBytes int64
	maxLine  int
	total    int64
	line     int // bytes since the last newline
	lines    int // newlines seen
}

func (l *limitedLines) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.total += int64(n)
	if l.total > l.maxBytes {
		return 0, fmt.Errorf("%w: more than %d bytes once decompressed", ErrExportTooLarge, l.maxBytes)
	}
	for b := p[:n]; len(b) > 0; {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			l.line += len(b)
			break
		}
		l.line += i
		if l.line > l.maxLine {
			break
		}
		l.line, l.lines, b = 0, l.lines+1, b[i+1:]
	}
	if l.line > l.maxLine {
		return 0, fmt.Errorf("%w: line %d is longer than %d bytes", ErrExportTooLarge, l.lines+1, l.maxLine)
	}
	return n, err
}

// progressReader calls onRead after each read that made progress.
type progressReader struct {
	r      io.Reader
	onRead func()
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.onRead()
	}
	return n, err
}
