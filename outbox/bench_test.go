package outbox

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers/pgtest"
)

// BenchmarkInsertToHandler measures the time from an INSERT INTO employees
// (started) to the handler being called for its key, one insert at a time,
// for each source; it reports the median and the 99th percentile.
func BenchmarkInsertToHandler(b *testing.B) {
	for _, kind := range kinds {
		b.Run(string(kind), func(b *testing.B) {
			url := pgtest.NewDatabase(b)
			pool := newPool(b, url)
			var slot string
			if kind == kindReplication {
				slot = newSlot(b, pool)
			}
			var (
				mu   sync.Mutex
				seen = make(map[string]time.Time)
				got  = make(chan struct{}, 1)
			)
			handler := func(_ context.Context, id string) error {
				mu.Lock()
				if _, ok := seen[id]; !ok {
					seen[id] = time.Now()
				}
				mu.Unlock()
				select {
				case got <- struct{}{}:
				default:
				}
				return nil
			}
			p := startProc(b, kind, url, procOptions{handler: handler, slot: slot, logger: discardLogger})
			if kind == kindReplication {
				require.Eventually(b, func() bool {
					return count(b, pool, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active AND confirmed_flush_lsn IS NOT NULL", slot) == 1
				}, waitLong, 5*time.Millisecond)
			}
			_ = p
			ctx := context.Background()
			// The test server commits asynchronously (the WAL writer flushes
			// every 200ms) and logical decoding waits for flushed WAL; a
			// production server commits synchronously, as this session does.
			writer, err := pool.Acquire(ctx)
			require.NoError(b, err)
			defer writer.Release()
			_, err = writer.Exec(ctx, "SET synchronous_commit = on")
			require.NoError(b, err)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				var id string
				require.NoError(b, writer.QueryRow(ctx, "INSERT INTO employees (name, email) VALUES ('Bench', 'bench@example.com') RETURNING id::text").Scan(&id))
				for {
					mu.Lock()
					at, ok := seen[id]
					mu.Unlock()
					if ok {
						lat = append(lat, at.Sub(start))
						break
					}
					select {
					case <-got:
					case <-time.After(waitLong):
						b.Fatalf("key %s never handled", id)
					}
				}
			}
			b.StopTimer()
			reportPercentiles(b, lat)
		})
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := min(len(lat)-1, int(float64(len(lat))*p))
		return float64(lat[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkClaim measures the claim statement alone: outbox rows leased per
// second, in batches of 500 over 5,000 employees.
func BenchmarkClaim(b *testing.B) {
	url := pgtest.NewDatabase(b)
	pool := newPool(b, url)
	ctx := context.Background()
	const rows = 20000
	claimed := 0
	var elapsed time.Duration
	for range b.N {
		exec(b, pool, "TRUNCATE auth0_outbox")
		exec(b, pool, "INSERT INTO auth0_outbox (employee_id, op) SELECT g % 5000, 'update' FROM generate_series(1, $1) g", rows)
		exec(b, pool, "VACUUM ANALYZE auth0_outbox")
		start := time.Now()
		for {
			got, err := claim(ctx, pool, "bench", 500, time.Minute)
			require.NoError(b, err)
			claimed += len(got)
			if len(got) == 0 {
				break
			}
		}
		elapsed += time.Since(start)
	}
	require.Equal(b, rows*b.N, claimed)
	b.ReportMetric(float64(claimed)/elapsed.Seconds(), "rows/s")
}

// BenchmarkDrain measures a source end to end with a handler that does
// nothing: 20,000 outbox rows over 20,000 employees claimed (or streamed),
// handed to the queue, handled and deleted; it reports rows per second.
func BenchmarkDrain(b *testing.B) {
	for _, kind := range kinds {
		b.Run(string(kind), func(b *testing.B) {
			url := pgtest.NewDatabase(b)
			pool := newPool(b, url)
			var slot string
			if kind == kindReplication {
				slot = newSlot(b, pool)
			}
			handler := func(context.Context, string) error { return nil }
			startProc(b, kind, url, procOptions{handler: handler, slot: slot, logger: discardLogger, workers: 8})
			if kind == kindReplication {
				require.Eventually(b, func() bool {
					return count(b, pool, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active AND confirmed_flush_lsn IS NOT NULL", slot) == 1
				}, waitLong, 5*time.Millisecond)
			}
			const rows = 20000
			var elapsed time.Duration
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				exec(b, pool, "INSERT INTO auth0_outbox (employee_id, op) SELECT g, 'update' FROM generate_series($1::bigint, $2::bigint) g",
					int64(i)*rows+1, int64(i+1)*rows)
				exec(b, pool, "NOTIFY auth0_outbox")
				for count(b, pool, "SELECT count(*) FROM auth0_outbox") > 0 {
					time.Sleep(time.Millisecond)
				}
				elapsed += time.Since(start)
			}
			b.StopTimer()
			b.ReportMetric(float64(rows*b.N)/elapsed.Seconds(), "rows/s")
		})
	}
}
