package auth0

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
)

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
	if id == "" {
		return nil, fmt.Errorf("get auth0 job: %w", errEmptyID)
	}
	var job ExportJob
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: "GET /api/v2/jobs/{id}",
		path:     "/api/v2/jobs/" + pathEscape(id),
		out:      &job,
	})
	if err != nil {
		return nil, fmt.Errorf("get auth0 job: %w", err)
	}
	return &job, nil
}

// ExportUsers reads every user through an export job: it creates the job,
// polls it until it completes, downloads the NDJSON file (gzipped or not) and
// hands each line to each as it is decoded, without holding the file in
// memory. An error from each stops the export and is returned as it is.
func (c *Client) ExportUsers(ctx context.Context, req ExportRequest, each func(ExportedUser) error) error {
	job, err := c.CreateExportJob(ctx, req)
	if err != nil {
		return fmt.Errorf("export auth0 users: %w", err)
	}
	job, err = c.waitJob(ctx, job, cmp.Or(req.PollInterval, defaultPollInterval))
	if err != nil {
		return fmt.Errorf("export auth0 users: %w", err)
	}
	if err := c.downloadExport(ctx, job, each); err != nil {
		return fmt.Errorf("export auth0 users: %w", err)
	}
	return nil
}

// waitJob polls job until it is completed or failed.
func (c *Client) waitJob(ctx context.Context, job *ExportJob, interval time.Duration) (*ExportJob, error) {
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
		t := time.NewTimer(interval)
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
		if err == nil || eachErr != nil || ctx.Err() != nil {
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
	resp, err := c.hc.Do(req)
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
	err = decodeExport(body, skip, each)
	c.obs.Call(exportFileEndpoint, resp.StatusCode, time.Since(start))
	if err != nil && !errors.Is(err, errEach) {
		return fail(err)
	}
	return unwrapEach(err)
}

// exportURL resolves and checks a job's location: https, or http on loopback.
func (c *Client) exportURL(location string) (*url.URL, error) {
	base, _ := url.Parse(c.base)
	ref, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("%s: the job's location is not a URL", exportFileEndpoint)
	}
	u := base.ResolveReference(ref)
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && IsLoopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("%s: refusing the job's location: scheme %q on host %q", exportFileEndpoint, u.Scheme, u.Hostname())
	}
	return u, nil
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

// decodeExport reads NDJSON, gzipped or not (it looks at the magic bytes: a
// pre-signed link serves the .gz file as it is, with no Content-Encoding).
func decodeExport(r io.Reader, skip int, each func(ExportedUser) error) error {
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
	dec := json.NewDecoder(src)
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
