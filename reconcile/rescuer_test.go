package reconcile_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/reconcile"
)

// The rescuer logs a failed look once per cause, not once per attempt, and
// says once when looking works again.
func TestRescuerLogsOncePerCause(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	b := setup(t, func(c *reconcile.Config, _ *emulator.Options) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	// employees becomes a view whose one row runs fail(): it counts the
	// attempts in a sequence (which a rollback keeps) and raises the cause
	// named in rescue_cause, or lets the row through when that is empty.
	b.exec(`ALTER TABLE employees RENAME TO employees_real`)
	b.exec(`CREATE SEQUENCE rescue_attempts`)
	b.exec(`CREATE TABLE rescue_cause (cause text)`)
	b.exec(`INSERT INTO rescue_cause VALUES ('cause A')`)
	b.exec(`CREATE FUNCTION fail() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
		DECLARE c text;
		BEGIN
			PERFORM nextval('rescue_attempts');
			SELECT cause INTO c FROM rescue_cause;
			IF c <> '' THEN RAISE EXCEPTION 'rescue test: %', c; END IF;
			RETURN true;
		END $$`)
	b.exec(`CREATE VIEW employees AS SELECT 7::bigint AS id, 'syncing'::text AS auth0_sync_status,
		now() - interval '1 hour' AS auth0_locked_until WHERE fail()`)
	attempts := func() int64 {
		var n int64
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT last_value FROM rescue_attempts`).Scan(&n))
		return n
	}
	waitAttempts := func(more int64) {
		t.Helper()
		want := attempts() + more
		require.Eventually(t, func() bool { return attempts() >= want }, 60*time.Second, 5*time.Millisecond)
	}

	var rescued atomic.Value
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() {
		done <- reconcile.NewRescuer(b.rec, func(id string) { rescued.Store(id) }, 5*time.Millisecond).Run(ctx)
	}()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	const warning = "find rows abandoned mid-reconcile"

	waitAttempts(5)
	require.Equal(t, 1, logs.count(warning), "one cause, many attempts: one line")
	require.Equal(t, 1, logs.count("rescue test: cause A"))

	b.exec(`UPDATE rescue_cause SET cause = 'cause B'`)
	waitAttempts(5)
	require.Equal(t, 2, logs.count(warning), "a new cause: one more line")
	require.Equal(t, 1, logs.count("rescue test: cause B"))

	b.exec(`UPDATE rescue_cause SET cause = ''`)
	require.Eventually(t, func() bool { return rescued.Load() == "7" }, 60*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return logs.count("works again") == 1 }, 60*time.Second, 5*time.Millisecond)
	waitAttempts(5)
	require.Equal(t, 1, logs.count("works again"), "said once")

	b.exec(`UPDATE rescue_cause SET cause = 'cause A'`)
	waitAttempts(5)
	require.Equal(t, 3, logs.count(warning), "a failure after recovery is logged again")
}
