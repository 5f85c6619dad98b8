package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/syncd/syncd/internal/faultlog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RetryConfig configures a RetryTimer. Zero values mean the defaults.
type RetryConfig struct {
	// Interval is how often due retries are looked for. Default 1s.
	Interval time.Duration
	// BatchSize is the most employees fed per look. Default 500.
	BatchSize int
	// Refeed is how long a key fed for one due time is left alone before it
	// is fed again for the same due time (its handler did not move it on,
	// e.g. it could not reach the database). Default 1m.
	Refeed time.Duration
	// Logger receives query failures. Default: discard.
	Logger *slog.Logger
}

// WithDefaults returns c with every unset field at its default.
func (c RetryConfig) WithDefaults() RetryConfig {
	c.Interval = cmp.Or(c.Interval, time.Second)
	c.BatchSize = cmp.Or(c.BatchSize, 500)
	c.Refeed = cmp.Or(c.Refeed, time.Minute)
	c.Logger = cmp.Or(c.Logger, discardLogger)
	return c
}

// Validate reports the first setting that is unusable.
func (c RetryConfig) Validate() error {
	switch {
	case c.Interval <= 0:
		return &ConfigError{Field: "Interval", Value: c.Interval.String(), Err: errors.New("must be positive")}
	case c.BatchSize <= 0:
		return &ConfigError{Field: "BatchSize", Value: fmt.Sprint(c.BatchSize), Err: errors.New("must be positive")}
	case c.Refeed <= 0:
		return &ConfigError{Field: "Refeed", Value: c.Refeed.String(), Err: errors.New("must be positive")}
	}
	return nil
}

// RetryTimer feeds the queue the employees whose retry is due: status
// 'retrying' and auth0_next_attempt_at in the past. The handler owns the
// retry state (it sets the next attempt, or moves the row on); the timer
// only reads, and feeds each due time once (again after Refeed if the row
// did not move on), so that a slow handler is not fed the same key every
// Interval.
type RetryTimer struct {
	pool *pgxpool.Pool
	q    *Queue
	cfg  RetryConfig
	now  func() time.Time

	fed map[string]fedRetry // keys fed, by the due time they were fed for
}

type fedRetry struct {
	due, at time.Time
}

// NewRetryTimer returns a timer over pool's employees that feeds q.
// Defaults are filled in; an invalid config makes Run return its error.
func NewRetryTimer(pool *pgxpool.Pool, q *Queue, cfg RetryConfig) *RetryTimer {
	return &RetryTimer{pool: pool, q: q, cfg: cfg.WithDefaults(), now: time.Now, fed: make(map[string]fedRetry)}
}

// Run looks for due retries every Interval until ctx is done; it returns an
// error only for an invalid config.
func (t *RetryTimer) Run(ctx context.Context) error {
	if err := t.cfg.Validate(); err != nil {
		return fmt.Errorf("outbox retry timer: %w", err)
	}
	if t.pool == nil || t.q == nil {
		return errors.New("outbox retry timer: pool and queue are required")
	}
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	faults := faultlog.New(t.cfg.Logger, "looking for due retries")
	for {
		if err := t.feed(ctx); err != nil && ctx.Err() == nil {
			faults.Fail(ctx, faultlog.Cause(err), err)
		} else if err == nil {
			faults.OK(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// feed enqueues the due employees once per due time.
func (t *RetryTimer) feed(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	rows, err := t.pool.Query(qctx, `SELECT id::text, auth0_next_attempt_at FROM employees
		WHERE auth0_sync_status = 'retrying' AND auth0_next_attempt_at <= now()
		ORDER BY auth0_next_attempt_at LIMIT $1`, t.cfg.BatchSize)
	if err != nil {
		return fmt.Errorf("query due retries: %w", err)
	}
	type due struct {
		ID  string
		Due time.Time
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[due])
	if err != nil {
		return fmt.Errorf("query due retries: %w", err)
	}
	now := t.now()
	seen := make(map[string]bool, len(list))
	for _, d := range list {
		seen[d.ID] = true
		if f, ok := t.fed[d.ID]; ok && f.due.Equal(d.Due) && now.Sub(f.at) < t.cfg.Refeed {
			continue
		}
		t.fed[d.ID] = fedRetry{due: d.Due, at: now}
		t.q.Enqueue(d.ID)
	}
	// Forget keys that are no longer due (handled, or moved on), unless the
	// page was full and they may just be beyond it.
	if len(list) < t.cfg.BatchSize {
		for id := range t.fed {
			if !seen[id] {
				delete(t.fed, id)
			}
		}
	}
	return nil
}
