package outbox

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers/pgtest"
)

// The rows of handled keys are deleted in the background, together; until
// they go they stay leased by the source (polls claim often here), so no key
// is handled twice, whichever of two processes claims it; and every row goes.
func TestNotifyHandledRowsDeletedOnceHandledOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindNotify, pgtest.NewDatabase(t))
	rec := newRecorder(f.pool) // shared by both processes
	f.opts.rec = rec
	f.opts.workers = 8
	f.opts.poll = 5 * time.Millisecond
	a := startProc(t, kindNotify, f.url, f.opts)
	b := startProc(t, kindNotify, f.url, f.opts)

	ids := insertEmployees(t, f.pool, 300)
	require.Eventually(t, func() bool { return rec.handledAll(ids) && f.outbox(t) == 0 }, waitLong, pollEvery)
	for _, id := range ids {
		require.Equal(t, 1, rec.runsOf(id), "employee %d handled once", id)
	}
	require.Zero(t, rec.overlapCount())
	a.stop(t)
	b.stop(t)
	require.Zero(t, a.notif.Held()+b.notif.Held())
}

// Rows of keys handled just before shutdown, whose delete had not run yet,
// are deleted by the shutdown.
func TestNotifyShutdownDeletesHandledRows(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindNotify, pgtest.NewDatabase(t))
	p := startProc(t, kindNotify, f.url, f.opts)
	ids := insertEmployees(t, f.pool, 20)
	require.Eventually(t, func() bool { return p.rec.handledAll(ids) }, waitLong, time.Millisecond)
	p.stop(t)
	require.Zero(t, f.outbox(t))
}
