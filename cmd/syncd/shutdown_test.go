package main

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// TestShutdownTimesOut: a reconcile that cannot finish (its outcome's write
// waits on a row lock) makes the daemon give up waiting after
// --shutdown-timeout with an error saying so (exit status 1); the work stays
// in the database and is recorded once the lock goes.
func TestShutdownTimesOut(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	hold := &createHold{emu: x.emu.Emulator}
	front := httptest.NewServer(hold)
	t.Cleanup(front.Close)
	environ := map[string]string{"DATABASE_URL": x.dbURL, "AUTH0_DOMAIN": front.URL, "AUTH0_CLIENT_ID": emulator.DefaultClientID,
		"AUTH0_CLIENT_SECRET": emulator.DefaultClientSecret, "LOG_FORMAT": "json", "LOG_LEVEL": "debug"}
	c, err := parseRun(t, environ, "--metrics-addr", "", "--resync-interval", "1h", "--workers", "1", "--shutdown-timeout", "1s")
	require.NoError(t, err)
	dmn, cleanup, err := newDaemon(x.ctx, c, c.log.logger(x.logs))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- dmn.Run(ctx) }()

	hold.holding.Store(true)
	var id int64
	require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email) VALUES ('Slow', 'slow@example.com') RETURNING id`).Scan(&id))
	require.True(t, assertEventually(func() bool { return hold.held.Load() == 1 }, 60*time.Second), "the create is in flight")
	// Lock the row: the reconcile, cancelled by the drain, cannot write its outcome.
	tx, err := x.pool.Begin(x.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(x.ctx) }() // a failed assertion must not leave the lock held
	_, err = tx.Exec(x.ctx, `SELECT 1 FROM employees WHERE id = $1 FOR UPDATE`, id)
	require.NoError(t, err)

	cancel() // SIGTERM
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not give up waiting")
	}
	require.ErrorContains(t, err, "shutdown timed out after 1s; unfinished work stays pending in the database")
	require.Equal(t, 1, exitCode(err, io.Discard))

	require.NoError(t, tx.Rollback(x.ctx))
	// The reconcile records itself as due again once the lock goes.
	x.waitStatus(id, "retrying")
	cleanup()
}

// TestMainProcess is not a test: TestSecondSignalExitsAtOnce runs this test
// binary again with SYNCD_TEST_MAIN=1, and this runs syncd's main in it.
func TestMainProcess(t *testing.T) {
	if os.Getenv("SYNCD_TEST_MAIN") != "1" {
		t.Skip("run by TestSecondSignalExitsAtOnce in a process of its own")
	}
	os.Args = append([]string{"syncd"}, strings.Split(os.Getenv("SYNCD_TEST_ARGS"), "\x1f")...)
	main()
}

// TestSecondSignalExitsAtOnce: the first SIGTERM starts the drain (here
// it would wait minutes for a create whose answer never comes); a second
// one ends the process at once, killed by the signal's default action.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	hold := &createHold{emu: x.emu.Emulator}
	front := httptest.NewServer(hold)
	t.Cleanup(front.Close)
	hold.holding.Store(true)

	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^TestMainProcess$")
	args := []string{"run", "--resync-interval", "1h", "--workers", "1", "--shutdown-timeout", "10m", "--metrics-addr", ""}
	cmd.Env = append(os.Environ(), "SYNCD_TEST_MAIN=1", "SYNCD_TEST_ARGS="+strings.Join(args, "\x1f"),
		"DATABASE_URL="+x.dbURL, "AUTH0_DOMAIN="+front.URL, "AUTH0_CLIENT_ID="+emulator.DefaultClientID,
		"AUTH0_CLIENT_SECRET="+emulator.DefaultClientSecret, "LOG_FORMAT=json")
	var stderr syncBuffer
	cmd.Stderr, cmd.Stdout = &stderr, io.Discard
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	require.True(t, assertEventually(func() bool { return strings.Contains(stderr.String(), `"msg":"syncd running"`) }, 60*time.Second), stderr.String())

	var id int64
	require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email) VALUES ('Held', 'held@example.com') RETURNING id`).Scan(&id))
	require.True(t, assertEventually(func() bool { return hold.held.Load() == 1 }, 60*time.Second), "the create is in flight")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.True(t, assertEventually(func() bool { return strings.Contains(stderr.String(), "shutting down") }, 60*time.Second), "draining")
	select {
	case err := <-exited:
		t.Fatalf("the drain ended before the second signal (%v): the create is still held, it should not: %s", err, stderr.String())
	default:
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err = <-exited:
	case <-time.After(60 * time.Second):
		t.Fatal("the second SIGTERM did not end the process")
	}
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "%v", err)
	ws := ee.Sys().(syscall.WaitStatus)
	require.True(t, ws.Signaled(), "killed by the signal, not a clean exit: %v", err)
	require.Equal(t, syscall.SIGTERM, ws.Signal())
	require.NotContains(t, stderr.String(), `"msg":"stopped"`, "no drain completed")
}
