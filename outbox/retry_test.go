package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers/pgtest"
)

func TestRetryTimerFeedsDueRetriesOncePerDueTime(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	pool := newPool(t, url)
	ids := insertEmployees(t, pool, 4)
	due, later, synced, next := ids[0], ids[1], ids[2], ids[3]
	exec(t, pool, `UPDATE employees SET auth0_sync_status = 'retrying', auth0_next_attempt_at = now() - interval '1 second' WHERE id = $1`, due)
	exec(t, pool, `UPDATE employees SET auth0_sync_status = 'retrying', auth0_next_attempt_at = now() + interval '1 hour' WHERE id = $1`, later)
	exec(t, pool, `UPDATE employees SET auth0_sync_status = 'synced', auth0_next_attempt_at = now() - interval '1 second' WHERE id = $1`, synced)

	rec := newRecorder(nil) // leaves the rows as they are: still due
	q := NewQueue(QueueConfig{Handler: rec.handle})
	timer := NewRetryTimer(pool, q, RetryConfig{Interval: 10 * time.Millisecond, Logger: testLogger(t)})
	start(t, q, timer)

	require.Equal(t, due, recv(t, rec.seen))
	// Later looks pass it over: each is proven by a key that becomes due after.
	for range 3 {
		exec(t, pool, `UPDATE employees SET auth0_sync_status = 'retrying', auth0_next_attempt_at = clock_timestamp() WHERE id = $1`, next)
		require.Equal(t, next, recv(t, rec.seen))
	}
	require.Equal(t, 1, rec.runsOf(due), "one due time, fed once")
	require.Zero(t, rec.runsOf(later), "not due yet")
	require.Zero(t, rec.runsOf(synced), "not retrying")

	// The handler failed again and set a new due time: fed again.
	exec(t, pool, `UPDATE employees SET auth0_next_attempt_at = clock_timestamp() WHERE id = $1`, due)
	require.Equal(t, due, recv(t, rec.seen))
	exec(t, pool, `UPDATE employees SET auth0_next_attempt_at = clock_timestamp() WHERE id = $1`, later)
	require.Equal(t, later, recv(t, rec.seen))
	require.Zero(t, rec.runsOf(synced))
}

func TestRetryTimerConfigErrors(t *testing.T) {
	t.Parallel()
	q := NewQueue(QueueConfig{Handler: func(context.Context, string) error { return nil }})
	err := NewRetryTimer(nil, q, RetryConfig{Interval: -time.Second}).Run(context.Background())
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "Interval", ce.Field)
	require.Error(t, NewRetryTimer(nil, q, RetryConfig{}).Run(context.Background()))
}
