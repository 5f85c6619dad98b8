package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/reconcile"
)

// stalling is a client whose CreateUser says it started and then waits for
// its context to end (a create in flight when shutdown begins).
type stalling struct {
	*auth0.Client
	started chan struct{}
}

func (s *stalling) CreateUser(ctx context.Context, _ auth0.CreateUserRequest) (*auth0.User, error) {
	close(s.started)
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestShutdownRecordsDueAgain: a reconcile whose context ends (shutdown)
// mid-create records the row as retrying, due at once, with its lease
// released, so that the next process picks it up without waiting.
func TestShutdownRecordsDueAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insert("Sam", "sam@example.com")
	api := &stalling{Client: b.api, started: make(chan struct{})}
	rec := b.reconciler(api)
	ctx, cancel := context.WithCancel(b.ctx)
	go func() { <-api.started; cancel() }()
	out, err := rec.Reconcile(ctx, id)
	require.NoError(t, err, "the outcome is recorded despite the cancelled context")
	require.Equal(t, reconcile.ResultRetry, out.Result)
	require.ErrorIs(t, out.Err, context.Canceled)

	var status string
	var due, leased bool
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT auth0_sync_status, auth0_next_attempt_at <= now(), auth0_locked_by IS NOT NULL
		FROM employees WHERE id = $1`, id).Scan(&status, &due, &leased))
	require.Equal(t, "retrying", status)
	require.True(t, due, "due again at once, not after a backoff")
	require.False(t, leased, "the lease is released")
	require.False(t, out.NextAttempt.After(time.Now()), "NextAttempt is now, not a backoff away")

	// Another process converges it at once (no lease to wait for).
	next, err := b.reconciler(b.api).Reconcile(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, "synced", next.Status, "%v", next.Err)
	require.Equal(t, 1, b.accounts("sam@example.com"))
}
