package outbox

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers/pgtest"
)

func TestNotifyListenerKilledReconnectsAndCatchesUp(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindNotify, pgtest.NewDatabase(t))
	// No polling to speak of: only the reconnect (and its claim) and the
	// notifications on the new connection can find the rows.
	f.opts.poll = time.Hour
	p := startProc(t, kindNotify, f.url, f.opts)

	listeners := func() int {
		return count(t, f.pool, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1", listenerAppName)
	}
	require.Eventually(t, func() bool { return listeners() == 1 }, waitLong, pollEvery)
	exec(t, f.pool, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1", listenerAppName)
	missed := insertEmployees(t, f.pool, 20) // while nobody listens (the reconnect waits ≥50ms)
	require.Eventually(t, func() bool { return p.rec.handledAll(missed) && f.outbox(t) == 0 }, waitLong, pollEvery,
		"the claim after the reconnect finds what was missed")
	require.Eventually(t, func() bool { return listeners() == 1 }, waitLong, pollEvery)

	later := insertEmployees(t, f.pool, 1)
	require.Eventually(t, func() bool { return p.rec.handledAll(later) && f.outbox(t) == 0 }, waitLong, pollEvery,
		"notifications arrive on the new connection")
}

func TestNotifyPollFindsRowsWithoutNotification(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindNotify, pgtest.NewDatabase(t))
	f.opts.poll = 50 * time.Millisecond
	p := startProc(t, kindNotify, f.url, f.opts)
	// Written behind the triggers' back: no NOTIFY.
	exec(t, f.pool, "INSERT INTO auth0_outbox (employee_id, op) VALUES (4242, 'resync')")
	require.Equal(t, "4242", recv(t, p.rec.seen))
	require.Eventually(t, func() bool { return f.outbox(t) == 0 }, waitLong, pollEvery)
}

func TestNotifyExpiredLeaseIsClaimedAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindNotify, pgtest.NewDatabase(t))
	f.opts.poll = 50 * time.Millisecond
	// Rows of a process that died with a live lease: one for employee 1, and
	// a newer, free row for the same employee, which must wait with it
	// (the key is that process's until its lease expires).
	exec(t, f.pool, `INSERT INTO auth0_outbox (employee_id, op, locked_by, locked_until)
		VALUES (1, 'update', 'dead-process', now() + interval '1 hour'), (1, 'update', NULL, NULL), (2, 'update', NULL, NULL)`)
	p := startProc(t, kindNotify, f.url, f.opts)

	require.Equal(t, "2", recv(t, p.rec.seen), "a free key is handled")
	// Rows written later are claimed by later claims, each of which passed
	// over employee 1: it is the dead process's until its lease expires.
	for k := int64(3); k < 6; k++ {
		exec(t, f.pool, "INSERT INTO auth0_outbox (employee_id, op) VALUES ($1, 'update')", k)
		require.Equal(t, strconv.FormatInt(k, 10), recv(t, p.rec.seen))
	}
	require.Zero(t, p.rec.runsOf("1"), "a key leased by another process is not handled")
	require.Equal(t, 2, count(t, f.pool, "SELECT count(*) FROM auth0_outbox WHERE employee_id = 1"))

	exec(t, f.pool, "UPDATE auth0_outbox SET locked_until = now() - interval '1 second' WHERE locked_by = 'dead-process'")
	require.Equal(t, "1", recv(t, p.rec.seen), "the expired lease is claimed again")
	require.Eventually(t, func() bool { return f.outbox(t) == 0 }, waitLong, pollEvery)
	require.Equal(t, 1, p.rec.runsOf("1"), "both rows of the key in one run")
}

func TestNotifyTwoProcessesNeverHandleAKeyAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindNotify, pgtest.NewDatabase(t))
	rec := newRecorder(f.pool) // shared: counts overlaps across both processes
	rec.delay = 2 * time.Millisecond
	f.opts.rec = rec
	f.opts.workers = 4
	a := startProc(t, kindNotify, f.url, f.opts)
	b := startProc(t, kindNotify, f.url, f.opts)

	ids := insertEmployees(t, f.pool, 100)
	final := make(map[string]string)
	var (
		mu       sync.Mutex
		writeErr error
	)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 300 {
				id := ids[rand.IntN(len(ids))]
				name := fmt.Sprintf("w%d-%d", w, i)
				mu.Lock() // one writer at a time, so that the last write is known
				_, err := f.pool.Exec(context.Background(), "UPDATE employees SET name = $1 WHERE id = $2", name, id)
				if err == nil {
					final[id] = name
				} else {
					writeErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.NoError(t, writeErr)
	require.Eventually(t, func() bool { return f.outbox(t) == 0 }, waitLong, 10*time.Millisecond, "none lost")
	require.Zero(t, rec.overlapCount(), "no key handled by both processes at once")
	require.True(t, rec.handledAll(ids), "every row handled once or more")
	for id, name := range final {
		require.Equal(t, name, rec.nameOf(id), "the last run of %s saw its last state", id)
	}
	a.stop(t)
	b.stop(t)
	require.Zero(t, a.notif.Held()+b.notif.Held())
}

func TestNotifyShutdownReleasesUnhandledRows(t *testing.T) {
	t.Parallel()
	f := newFixture(t, kindNotify, pgtest.NewDatabase(t))
	g := newGate()
	pool := newPool(t, f.url)
	q := NewQueue(QueueConfig{Handler: g.handle, Workers: 1})
	src := NewNotifySource(pool, q, NotifyConfig{Logger: testLogger(t)})
	r := start(t, q, src)

	ids := insertEmployees(t, f.pool, 3) // one running, two waiting
	first := recv(t, g.entered)
	require.Equal(t, 3, count(t, f.pool, "SELECT count(*) FROM auth0_outbox WHERE locked_by = $1", src.WorkerID()))
	go func() { g.release <- struct{}{} }() // the running key finishes during the drain
	r.stop(t)

	require.Zero(t, count(t, f.pool, "SELECT count(*) FROM auth0_outbox WHERE employee_id = $1", first), "the finished key's row is deleted")
	require.Equal(t, 2, count(t, f.pool, "SELECT count(*) FROM auth0_outbox WHERE locked_by IS NULL AND locked_until IS NULL"),
		"the others are released for another process at once")

	next := startProc(t, kindNotify, f.url, f.opts)
	require.Eventually(t, func() bool { return f.outbox(t) == 0 }, waitLong, pollEvery)
	for _, id := range ids {
		if id != first {
			require.Equal(t, 1, next.rec.runsOf(id))
		}
	}
}

func TestNotifyConfigErrors(t *testing.T) {
	t.Parallel()
	q := NewQueue(QueueConfig{Handler: func(context.Context, string) error { return nil }})
	err := NewNotifySource(nil, q, NotifyConfig{Lease: time.Millisecond}).Run(context.Background())
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "Lease", ce.Field)
	require.Error(t, NewNotifySource(nil, q, NotifyConfig{}).Run(context.Background()))
}
