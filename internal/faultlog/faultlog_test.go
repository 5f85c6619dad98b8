package faultlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSaysCausesNotAttempts(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	tr := New(slog.New(slog.NewTextHandler(&buf, nil)), "claim outbox rows")
	ctx := context.Background()
	tr.OK(ctx) // healthy: nothing to say
	require.Empty(t, buf.String())

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { tr.Fail(ctx, "connection refused", errors.New("dial: connection refused")) })
	}
	wg.Wait()
	for range 5 {
		tr.Fail(ctx, "password authentication failed", errors.New("FATAL: password authentication failed"))
	}
	failing, cause := tr.Failing()
	require.True(t, failing)
	require.Equal(t, "password authentication failed", cause)
	tr.OK(ctx)
	tr.OK(ctx)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 3, buf.String())
	require.Contains(t, lines[0], "level=WARN")
	require.Contains(t, lines[0], "connection refused")
	require.Contains(t, lines[1], "another cause")
	require.Contains(t, lines[2], "works again")
	require.Contains(t, lines[2], "failures=55")
	failing, _ = tr.Failing()
	require.False(t, failing)
}

type sqlStateError struct{ code string }

func (e *sqlStateError) Error() string    { return "ERROR: permission denied (SQLSTATE " + e.code + ")" }
func (e *sqlStateError) SQLState() string { return e.code }

func TestCause(t *testing.T) {
	t.Parallel()
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	require.Equal(t, "no connection", Cause(fmt.Errorf("claim: %w", reset)))
	require.Equal(t, "no connection", Cause(fmt.Errorf("claim: failed to receive message: %w", io.ErrUnexpectedEOF)))
	require.Equal(t, "no connection", Cause(fmt.Errorf("dial: %w", syscall.ECONNREFUSED)))
	require.Equal(t, "sqlstate 42501", Cause(fmt.Errorf("employee 42: %w", &sqlStateError{"42501"})))
	require.Equal(t, "employee is busy", Cause(fmt.Errorf("employee 42: %w", errors.New("employee is busy"))))
}
