package outbox

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers/pgtest"
)

// The tests in this file run against both change sources: they must give
// the same keys and rely on the outbox rows alike.

var kinds = []sourceKind{kindNotify, kindReplication}

// fixture is a database with an admin pool and, for replication, a slot name
// that is dropped at the end.
type fixture struct {
	url  string
	pool *pgxpool.Pool
	opts procOptions
}

func newFixture(t *testing.T, kind sourceKind, url string) *fixture {
	t.Helper()
	f := &fixture{url: url, pool: newPool(t, url)}
	if kind == kindReplication {
		f.opts.slot = newSlot(t, f.pool)
	}
	return f
}

// outbox counts the outbox rows, -1 if the database cannot be reached.
func (f *fixture) outbox(t *testing.T) int {
	t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), "SELECT count(*) FROM auth0_outbox").Scan(&n); err != nil {
		return -1
	}
	return n
}

func TestSourceInsertIsHandledAndRowDeleted(t *testing.T) {
	t.Parallel()
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, kind, pgtest.NewDatabase(t))
			p := startProc(t, kind, f.url, f.opts)

			ids := insertEmployees(t, f.pool, 1)
			require.Equal(t, ids[0], recv(t, p.rec.seen))
			require.Eventually(t, func() bool { return f.outbox(t) == 0 }, waitLong, pollEvery, "the outbox row is gone after")
			require.Equal(t, 1, p.rec.runsOf(ids[0]))
			require.Equal(t, "E1", p.rec.nameOf(ids[0]))

			// A delete names the key too; the handler finds no row.
			exec(t, f.pool, "DELETE FROM employees WHERE id = $1", ids[0])
			require.Eventually(t, func() bool { return p.rec.runsOf(ids[0]) == 2 && f.outbox(t) == 0 }, waitLong, pollEvery)
		})
	}
}

// TestSourceBurstOfUpdatesIsCoalesced holds the key's first run while 1,000
// updates land, one transaction each, and releases it only once the source
// has handed every one of them to the queue: however fast or slow the
// machine, they are then coalesced into one further run, which sees the last
// state.
func TestSourceBurstOfUpdatesIsCoalesced(t *testing.T) {
	t.Parallel()
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, kind, pgtest.NewDatabase(t))
			rec := newRecorder(f.pool)
			release := make(chan struct{})
			started := make(chan struct{})
			var first atomic.Bool
			f.opts.handler = func(ctx context.Context, id string) error {
				if first.CompareAndSwap(false, true) {
					close(started)
					select {
					case <-release:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				return rec.handle(ctx, id)
			}
			p := startProc(t, kind, f.url, f.opts)

			id := insertEmployees(t, f.pool, 1)[0]
			recv(t, started)
			const updates = 1000
			for i := 1; i <= updates; i++ {
				exec(t, f.pool, "UPDATE employees SET name = $1 WHERE id = $2", fmt.Sprintf("v%04d", i), id)
			}
			// Every outbox row is in the queue's hands before the release.
			// (Replication may hand the insert's row twice, from the
			// catch-up scan and from the stream, so it is judged by the last
			// row: the stream hands rows out in commit order.)
			last := count(t, f.pool, "SELECT max(id) FROM auth0_outbox")
			require.Eventually(t, func() bool {
				if kind == kindReplication {
					p.repl.mu.Lock()
					defer p.repl.mu.Unlock()
					_, ok := p.repl.handed[int64(last)]
					return ok
				}
				return p.notif.Held() == updates+1
			}, waitLong, pollEvery)
			close(release)
			require.Eventually(t, func() bool { return f.outbox(t) == 0 }, waitLong, pollEvery)
			runs := rec.runsOf(id)
			t.Logf("%d updates handled in %d runs", updates, runs)
			require.LessOrEqual(t, runs, 2, "the held run, then one run for all the updates")
			require.Equal(t, fmt.Sprintf("v%04d", updates), rec.nameOf(id), "the last run saw the last state")
		})
	}
}

func TestSourceCatchesUpAfterItWasStopped(t *testing.T) {
	t.Parallel()
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, kind, pgtest.NewDatabase(t))
			first := startProc(t, kind, f.url, f.opts)
			ids := insertEmployees(t, f.pool, 10)
			require.Eventually(t, func() bool { return first.rec.handledAll(ids) && f.outbox(t) == 0 }, waitLong, pollEvery)
			first.stop(t)

			// 500 rows change while no process runs.
			exec(t, f.pool, "UPDATE employees SET department = 'Ops' WHERE id = ANY($1)", ids)
			ids = append(ids, insertEmployees(t, f.pool, 490)...)
			require.Equal(t, 500, f.outbox(t))

			second := startProc(t, kind, f.url, f.opts)
			require.Eventually(t, func() bool { return second.rec.handledAll(ids) && f.outbox(t) == 0 }, waitLong, pollEvery)
		})
	}
}

func TestSourceSurvivesPostgresRestart(t *testing.T) {
	t.Parallel()
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			srv := pgtest.NewServer(t)
			f := newFixture(t, kind, serverDatabase(t, srv))
			rec := newRecorder(f.pool)
			rec.delay = 2 * time.Millisecond
			f.opts.rec = rec
			startProc(t, kind, f.url, f.opts)

			ids := insertEmployees(t, f.pool, 100)
			require.Eventually(t, func() bool { return rec.total.Load() > 0 }, waitLong, time.Millisecond)
			// Postgres goes away while keys are being handled.
			require.NoError(t, srv.Stop())
			require.NoError(t, srv.Start(context.Background()))
			// The pool finds its connections dead on use: retry until it
			// has fresh ones (a statement that failed on a dead connection
			// never reached the new server).
			var more []string
			require.Eventually(t, func() bool {
				rows, err := f.pool.Query(context.Background(), `INSERT INTO employees (name, email)
					SELECT 'F' || g, 'f' || g || '@example.com' FROM generate_series(1, 100) g RETURNING id::text`)
				if err != nil {
					return false
				}
				more, err = pgx.CollectRows(rows, pgx.RowTo[string])
				return err == nil
			}, waitLong, 10*time.Millisecond)
			ids = append(ids, more...)

			require.Eventually(t, func() bool { return rec.handledAll(ids) && f.outbox(t) == 0 }, waitLong, 10*time.Millisecond,
				"every key handled and every row deleted after the restart")
		})
	}
}
