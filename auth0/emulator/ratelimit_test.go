package emulator_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// countOf reads one counter from Calls.
func countOf(e *emulator.Emulator, endpoint string, status int) int64 {
	for _, c := range e.Calls() {
		if c.Endpoint == endpoint && c.Status == status {
			return c.Count
		}
	}
	return 0
}

type rateHeaders struct {
	limit, remaining int
	reset            int64
}

func rateOf(t *testing.T, h http.Header) rateHeaders {
	t.Helper()
	var r rateHeaders
	var err error
	r.limit, err = strconv.Atoi(h.Get("X-RateLimit-Limit"))
	require.NoError(t, err)
	r.remaining, err = strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	require.NoError(t, err)
	r.reset, err = strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	require.NoError(t, err)
	return r
}

func TestRateLimitFree(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := setup(t, emulator.Options{Now: clock.Now, Plan: emulator.PlanFree})
	now := clock.Now().Unix()
	status, h, _ := f.call(http.MethodGet, "/api/v2/roles", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, rateHeaders{2, 1, now + 1}, rateOf(t, h))
	status, h, _ = f.call(http.MethodGet, userPath("auth0|nobody"), nil)
	require.Equal(t, http.StatusNotFound, status)
	require.Equal(t, rateHeaders{2, 0, now + 1}, rateOf(t, h), "headers on error answers too")
	status, h, b := f.call(http.MethodGet, "/api/v2/roles", nil)
	require.Equal(t, http.StatusTooManyRequests, status)
	require.JSONEq(t, `{"statusCode":429,"error":"Too Many Requests","message":"Global limit has been reached","errorCode":"too_many_requests"}`, string(b))
	require.Equal(t, rateHeaders{2, 0, now + 1}, rateOf(t, h))
	require.Empty(t, h.Get("Retry-After"))
	// Writes refused by the limit are not applied.
	status, _, _ = f.call(http.MethodPost, "/api/v2/users", map[string]any{"connection": emulator.DefaultConnection, "email": "x@example.com", "password": goodPassword})
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Empty(t, f.e.Users())
	// The top of the next second adds 2 tokens.
	clock.Add(time.Second)
	for range 2 {
		status, _, _ = f.call(http.MethodGet, "/api/v2/roles", nil)
		require.Equal(t, http.StatusOK, status)
	}
	status, _, _ = f.call(http.MethodGet, "/api/v2/roles", nil)
	require.Equal(t, http.StatusTooManyRequests, status)
	// The token endpoint has its own limits.
	f.getToken(nil)
	require.EqualValues(t, 3, countOf(f.e, "GET /api/v2/roles", http.StatusOK))
	require.EqualValues(t, 2, countOf(f.e, "GET /api/v2/roles", http.StatusTooManyRequests))
	require.EqualValues(t, 2, countOf(f.e, emulator.EndpointToken, http.StatusOK))
}

func TestRateLimitEnterpriseAndRetryAfter(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := setup(t, emulator.Options{Now: clock.Now, Plan: emulator.PlanEnterprise, RetryAfter: true})
	ok := 0
	var last http.Header
	for range 60 {
		status, h, _ := f.call(http.MethodGet, "/api/v2/roles", nil)
		if status == http.StatusOK {
			ok++
		} else {
			require.Equal(t, http.StatusTooManyRequests, status)
			last = h
		}
	}
	require.Equal(t, 50, ok)
	require.Equal(t, "1", last.Get("Retry-After"))
	require.Equal(t, 50, rateOf(t, last).limit)
	clock.Add(time.Second)
	ok = 0
	for range 20 {
		if status, _, _ := f.call(http.MethodGet, "/api/v2/roles", nil); status == http.StatusOK {
			ok++
		}
	}
	require.Equal(t, 16, ok)
}

func TestRateLimitProfessionalBuckets(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := setup(t, emulator.Options{Now: clock.Now, Plan: emulator.PlanProfessional})
	create := func(i int) (int, http.Header) {
		status, h, _ := f.call(http.MethodPost, "/api/v2/users", map[string]any{"connection": emulator.DefaultConnection, "email": "p" + strconv.Itoa(i) + "@example.com", "password": goodPassword})
		return status, h
	}
	for i := range 20 {
		status, h := create(i)
		require.Equal(t, http.StatusCreated, status)
		require.Equal(t, 20, rateOf(t, h).limit)
	}
	status, h := create(20)
	require.Equal(t, http.StatusTooManyRequests, status)
	// 200/min: the next token comes within the second.
	require.Equal(t, rateHeaders{20, 0, clock.Now().Unix() + 1}, rateOf(t, h))
	// Reads and deletes have buckets of their own.
	status, h, _ = f.call(http.MethodGet, "/api/v2/users", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 40, rateOf(t, h).limit)
	status, h, _ = f.call(http.MethodDelete, userPath("auth0|x"), nil)
	require.Equal(t, http.StatusNoContent, status)
	require.Equal(t, 20, rateOf(t, h).limit)
	// Everything else shares 10.
	_, h, _ = f.call(http.MethodGet, "/api/v2/roles", nil)
	require.Equal(t, rateHeaders{10, 9, clock.Now().Unix() + 1}, rateOf(t, h))
	// 200/min is 3⅓ per second.
	clock.Add(time.Second)
	ok := 0
	for i := range 5 {
		if status, _ := create(100 + i); status == http.StatusCreated {
			ok++
		}
	}
	require.Equal(t, 3, ok)
}

func TestRateLimitExplicitAndSetRate(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := setup(t, emulator.Options{Now: clock.Now, Rate: 0.5, Burst: 1, Plan: emulator.PlanFree})
	now := clock.Now().Unix()
	status, h, _ := f.call(http.MethodGet, "/api/v2/roles", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, rateHeaders{1, 0, now + 2}, rateOf(t, h), "half a token a second: the next one in 2 s")
	status, _, _ = f.call(http.MethodGet, "/api/v2/roles", nil)
	require.Equal(t, http.StatusTooManyRequests, status)
	clock.Add(time.Second)
	status, _, _ = f.call(http.MethodGet, "/api/v2/roles", nil)
	require.Equal(t, http.StatusTooManyRequests, status)
	clock.Add(time.Second)
	status, _, _ = f.call(http.MethodGet, "/api/v2/roles", nil)
	require.Equal(t, http.StatusOK, status)

	require.Error(t, f.e.SetRate("platinum", 0, 0))
	require.Error(t, f.e.SetRate("", -1, 0))
	require.NoError(t, f.e.SetRate(emulator.PlanUnlimited, 0, 0))
	for range 100 {
		status, h, _ = f.call(http.MethodGet, "/api/v2/roles", nil)
		require.Equal(t, http.StatusOK, status)
	}
	require.Equal(t, 1_000_000, rateOf(t, h).limit)
	require.NoError(t, f.e.SetRate("", 10, 0))
	_, h, _ = f.call(http.MethodGet, "/api/v2/roles", nil)
	require.Equal(t, rateHeaders{10, 9, clock.Now().Unix() + 1}, rateOf(t, h), "burst defaults to the rate")
}
