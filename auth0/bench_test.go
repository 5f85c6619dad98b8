package auth0_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
)

// BenchmarkGetUserUnlimited measures client calls per second against the
// unlimited emulator on loopback, 32 callers at once.
func BenchmarkGetUserUnlimited(b *testing.B) {
	f := setup(b, emulator.Options{}, func(c *auth0.Config) { c.Logger = nil; c.Observer = nil })
	u := f.createUser(b.Context(), nil)
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.c.GetUser(context.Background(), u.UserID); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

// The rate-limited benchmarks run workers flat out against an emulator on a
// plan, with the client's limiter sized to that plan, for a fixed time: 3 s by
// default, 30 s with SYNCD_BENCH_LONG=1. They report the requests the server
// admitted as a share of what its bucket could admit over the run (burst +
// rate × one-second refills that happened), and the 429s.

func BenchmarkRateEnterprise(b *testing.B) { benchPlan(b, emulator.PlanEnterprise, 16, 50, true) }
func BenchmarkRateFree(b *testing.B)       { benchPlan(b, emulator.PlanFree, 2, 2, true) }

// The same with no client-side limiter: the X-RateLimit-* headers alone.
func BenchmarkRateEnterpriseHeadersOnly(b *testing.B) {
	benchPlan(b, emulator.PlanEnterprise, 16, 50, false)
}
func BenchmarkRateFreeHeadersOnly(b *testing.B) { benchPlan(b, emulator.PlanFree, 2, 2, false) }

func benchPlan(b *testing.B, plan string, rate float64, burst int, clientLimiter bool) {
	d := 3 * time.Second
	if os.Getenv("SYNCD_BENCH_LONG") == "1" {
		d = 30 * time.Second
	}
	const workers = 16
	var admitted, limited, capacity float64
	var elapsed time.Duration
	for range b.N {
		f := setup(b, emulator.Options{}, func(c *auth0.Config) {
			c.Logger = nil
			if clientLimiter {
				c.Rate = rate
				c.Burst = burst
			}
			c.MaxElapsed = 10 * time.Minute
			c.MaxAttempts = 100
		})
		u := f.createUser(b.Context(), nil)
		require.NoError(b, f.e.SetRate(plan, 0, 0)) // a full bucket from now
		// A client that has seen nothing of the unlimited plan's headers.
		c := f.newClient(func(*auth0.Config) {})
		require.NoError(b, c.Token(b.Context()))
		f.e.ResetCalls()

		ctx, cancel := context.WithTimeout(b.Context(), d)
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for ctx.Err() == nil {
					if _, err := c.GetUser(ctx, u.UserID); err != nil && ctx.Err() == nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		end := time.Now()
		cancel()
		ok := f.calls("GET /api/v2/users/{id}", 200)
		tooMany := f.calls("GET /api/v2/users/{id}", 429)
		refills := end.Unix() - start.Unix() // top-of-second refills during the run
		admitted += float64(ok)
		limited += float64(tooMany)
		capacity += float64(burst) + rate*float64(refills)
		elapsed += end.Sub(start)
	}
	b.ReportMetric(admitted/capacity, "share_of_limit")
	b.ReportMetric(limited, "429s")
	b.ReportMetric(100*limited/max(1, admitted+limited), "429_pct")
	b.ReportMetric(admitted/elapsed.Seconds(), "admitted/s")
}
