// Package faultlog says a repeating fault once: a retry loop reports each
// attempt's outcome to a Tracker, which logs when a fault starts, when its
// cause changes and when it clears (with how many attempts failed), never
// once per attempt.
package faultlog

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// Tracker follows one retry loop (or several that share a cause, such as
// every worker of a queue). It is safe for concurrent use.
type Tracker struct {
	log  *slog.Logger
	what string // the loop, in words: "claim outbox rows"

	mu       sync.Mutex
	cause    string // "" while healthy
	failures int    // attempts failed since the fault started
	since    time.Time
}

// New returns a Tracker that logs to log about the loop named what.
func New(log *slog.Logger, what string) *Tracker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tracker{log: log, what: what}
}

// Fail reports a failed attempt whose cause is cause (a stable text: an
// error's message without what changes per attempt). The first failure, and
// each change of cause, is logged at Warn with err and attrs; the others are
// counted.
func (t *Tracker) Fail(ctx context.Context, cause string, err error, attrs ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures++
	if cause == t.cause {
		return
	}
	msg := t.what + " fails; retrying, and saying so again only when the cause changes or clears"
	if t.cause != "" {
		msg = t.what + " fails for another cause; retrying"
	} else {
		t.since = time.Now()
	}
	t.cause = cause
	t.log.WarnContext(ctx, msg, append([]any{"error", err, "failures", t.failures}, attrs...)...)
}

// OK reports a successful attempt; if a fault was going on, it is logged as
// cleared, with the number of attempts that failed.
func (t *Tracker) OK(ctx context.Context) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cause == "" {
		return
	}
	t.log.InfoContext(ctx, t.what+" works again", "failures", t.failures, "after", time.Since(t.since).Round(time.Millisecond))
	t.cause, t.failures = "", 0
}

// Failing says whether a fault is going on, and its cause.
func (t *Tracker) Failing() (bool, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cause != "", t.cause
}

// Cause is a stable name for err's cause. A database's answer is its
// SQLSTATE; a connection that is refused, reset, closed or silent is one
// cause ("no connection"), however each attempt happened to end; anything
// else is the text of the innermost error it wraps, which leaves out what a
// wrapper adds per attempt (an employee id, a row count).
func Cause(err error) string {
	var st interface{ SQLState() string }
	if errors.As(err, &st) && st.SQLState() != "" {
		return "sqlstate " + st.SQLState()
	}
	var ne net.Error
	var errno syscall.Errno
	if errors.As(err, &ne) || errors.As(err, &errno) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, net.ErrClosed) {
		return "no connection"
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
				next = j.Unwrap()[0]
			}
		}
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
