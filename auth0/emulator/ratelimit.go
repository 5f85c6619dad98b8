package emulator

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
)

// Rate-limit plans (auth0-api.md §3).
const (
	PlanUnlimited    = "unlimited"
	PlanFree         = "free"
	PlanProfessional = "professional"
	PlanEnterprise   = "enterprise"
)

// Plans lists the plan names SetRate accepts.
func Plans() []string {
	return []string{PlanUnlimited, PlanFree, PlanProfessional, PlanEnterprise}
}

// bucket is a token bucket refilled on fixed one-second windows, as Auth0
// describes its own: it starts full and gains rate tokens at the top of each
// second, up to burst.
type bucket struct {
	name    string
	burst   float64
	rate    float64 // tokens per second
	message string
	tokens  float64
	last    int64 // unix second of the last refill; 0 = not started
}

// rateAnswer is what a bucket said about one request.
type rateAnswer struct {
	ok        bool
	limit     int
	remaining int
	reset     int64 // unix seconds when tokens are next added
	message   string
}

func (b *bucket) take(sec int64) rateAnswer {
	if b.last == 0 {
		b.last, b.tokens = sec, b.burst
	}
	if sec > b.last {
		b.tokens = math.Min(b.burst, b.tokens+b.rate*float64(sec-b.last))
		b.last = sec
	}
	ans := rateAnswer{limit: int(b.burst), message: b.message}
	if b.tokens >= 1 {
		b.tokens--
		ans.ok = true
	}
	ans.remaining = int(b.tokens)
	ans.reset = sec + 1
	if b.tokens < 1 {
		ans.reset = sec + max(1, int64(math.Ceil((1-b.tokens)/b.rate-1e-9)))
	}
	return ans
}

// limiter holds the buckets of a plan.
type limiter struct {
	unlimited bool
	group     func(endpoint string) string
	buckets   map[string]*bucket
}

const unlimitedLimit = 1_000_000

func newLimiter(plan string, rate float64, burst int) (*limiter, error) {
	global := func(string) string { return "global" }
	one := func(burst, perSecond float64, msg string) map[string]*bucket {
		return map[string]*bucket{"global": {name: "global", burst: burst, rate: perSecond, message: msg}}
	}
	if rate > 0 {
		if burst <= 0 {
			burst = int(math.Ceil(rate))
		}
		return &limiter{group: global, buckets: one(float64(burst), rate, "Global limit has been reached")}, nil
	}
	if rate < 0 || burst < 0 {
		return nil, fmt.Errorf("rate and burst must not be negative")
	}
	switch plan {
	case "", PlanUnlimited:
		return &limiter{unlimited: true}, nil
	case PlanFree:
		return &limiter{group: global, buckets: one(2, 2, "Global limit has been reached")}, nil
	case PlanEnterprise:
		return &limiter{group: global, buckets: one(50, 16, "Global limit has been reached")}, nil
	case PlanProfessional:
		perMin := func(name string, burst, n float64) *bucket {
			return &bucket{name: name, burst: burst, rate: n / 60, message: "Global per minute " + name + " group limit has been reached"}
		}
		return &limiter{
			group: professionalGroup,
			buckets: map[string]*bucket{
				"users_read":   perMin("users_read", 40, 500),
				"users_write":  perMin("users_write", 20, 200),
				"users_delete": perMin("users_delete", 20, 200),
				"other":        perMin("other", 10, 150),
			},
		}, nil
	}
	return nil, fmt.Errorf("plan must be one of unlimited, free, professional, enterprise; got %q", plan)
}

// professionalGroup sorts endpoints into the Essentials/Professional buckets.
func professionalGroup(endpoint string) string {
	switch endpoint {
	case "GET /api/v2/users", "GET /api/v2/users/{id}", "GET /api/v2/users-by-email":
		return "users_read"
	case "POST /api/v2/users", "PATCH /api/v2/users/{id}":
		return "users_write"
	case "DELETE /api/v2/users/{id}":
		return "users_delete"
	}
	return "other"
}

func (e *Emulator) takeRate(endpoint string) rateAnswer {
	sec := e.now().Unix()
	e.rateMu.Lock()
	defer e.rateMu.Unlock()
	if e.limiter.unlimited {
		return rateAnswer{ok: true, limit: unlimitedLimit, remaining: unlimitedLimit, reset: sec + 1}
	}
	return e.limiter.buckets[e.limiter.group(endpoint)].take(sec)
}

func (e *Emulator) setRateHeaders(w http.ResponseWriter, a rateAnswer) {
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(a.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(a.remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(a.reset, 10))
}
