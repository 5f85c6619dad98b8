package outbox

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers/pgtest"
)

// TestReplicationSlotLagIsMeasured: while a handled key is outstanding the
// slot cannot confirm past it, and SlotLagBytes reports the WAL written since
// (over 1 MiB here); once the work completes the lag is measured again and
// falls back. (Lag starts at 0, so "below 1 MiB" alone proves nothing.)
func TestReplicationSlotLagIsMeasured(t *testing.T) {
	t.Parallel()
	// A server of its own: other tests' WAL is this slot's lag too.
	f := newFixture(t, kindReplication, serverDatabase(t, pgtest.NewServer(t)))
	release := make(chan struct{})
	f.opts.handler = func(ctx context.Context, id string) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p := startProc(t, kindReplication, f.url, f.opts)
	require.Eventually(t, func() bool { return f.slotActive(t) }, waitLong, pollEvery)
	require.Less(t, p.repl.SlotLagBytes(), int64(1<<20), "the lag starts under 1 MiB")

	insertEmployees(t, f.pool, 1) // its key is held by the handler
	// Over 1 MiB of WAL the slot must keep while the key is outstanding.
	exec(t, f.pool, "INSERT INTO auth0_sync_logs (action, status, error) SELECT 'noise', 'ok', repeat('x', 200) FROM generate_series(1, 10000)")
	require.Eventually(t, func() bool { return p.repl.SlotLagBytes() > 1<<20 }, waitLong, pollEvery,
		"the lag is measured while work is outstanding: %d", p.repl.SlotLagBytes())

	close(release)
	require.Eventually(t, func() bool { return f.outbox(t) == 0 }, waitLong, pollEvery)
	require.Eventually(t, func() bool { return p.repl.SlotLagBytes() < 1<<20 }, waitLong, pollEvery,
		"measured again once the work completed: %d", p.repl.SlotLagBytes())
}
