package reconcile

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrMassDeprovision is returned (wrapped) when the guard holds a deprovision.
var ErrMassDeprovision = errors.New("mass deprovision guard")

// Limit is a number of accounts, absolute or a share of the managed ones.
type Limit struct {
	Percent float64 // if > 0, a share of managed accounts (10 means 10 %)
	Count   int     // else an absolute count
}

// ParseLimit parses "10%" or "25".
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v <= 0 || v > 100 {
			return Limit{}, fmt.Errorf("must be a percentage in (0, 100], got %q", s)
		}
		return Limit{Percent: v}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return Limit{}, fmt.Errorf("must be a count ≥ 1 or a percentage like 10%%, got %q", s)
	}
	return Limit{Count: n}, nil
}

func (l Limit) String() string {
	if l.Percent > 0 {
		return strconv.FormatFloat(l.Percent, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(l.Count)
}

// of returns the limit for managed accounts (at least 1).
func (l Limit) of(managed int) int {
	if l.Percent > 0 {
		return max(1, int(math.Floor(float64(managed)*l.Percent/100)))
	}
	return l.Count
}

// Guard is the mass-deprovision safeguard (like Okta's import safeguard): it
// allows at most Limit deprovisions within Window, and none while the
// employees table reads empty. Once tripped it holds every further
// deprovision until the process restarts with AllowMass (an operator's
// decision), while every other change goes on.
type Guard struct {
	pool      *pgxpool.Pool
	limit     Limit
	window    time.Duration
	allowMass bool
	now       func() time.Time

	mu      sync.Mutex
	recent  []time.Time // allowed deprovisions within window
	managed int
	counted time.Time
	tripped string // why, once tripped
	onTrip  func(reason string)
}

// GuardConfig configures a Guard.
type GuardConfig struct {
	Limit     Limit         // default 10 %
	Window    time.Duration // default 1h
	AllowMass bool          // --allow-mass-deprovision: never hold
	// OnTrip is called once, when the guard trips (to log and expose why).
	OnTrip func(reason string)
	Now    func() time.Time
}

// NewGuard returns a Guard counting managed accounts in pool.
func NewGuard(pool *pgxpool.Pool, cfg GuardConfig) *Guard {
	if cfg.Limit == (Limit{}) {
		cfg.Limit = Limit{Percent: 10}
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnTrip == nil {
		cfg.OnTrip = func(string) {}
	}
	return &Guard{pool: pool, limit: cfg.Limit, window: cfg.Window, allowMass: cfg.AllowMass, now: cfg.Now, onTrip: cfg.OnTrip}
}

// Tripped returns why the guard holds deprovisioning, "" if it does not.
func (g *Guard) Tripped() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tripped
}

// Check decides about n deprovisions at once (a drift scan's): it trips the
// guard if they exceed the limit.
func (g *Guard) Check(ctx context.Context, n int) error {
	if g.allowMass || n == 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.refresh(ctx, true); err != nil {
		return err
	}
	return g.decide(n)
}

// AllowDeprovision implements DeprovisionGuard.
func (g *Guard) AllowDeprovision(ctx context.Context, _ int64) error {
	if g.allowMass {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.refresh(ctx, false); err != nil {
		return err
	}
	if err := g.decide(1); err != nil {
		return err
	}
	g.recent = append(g.recent, g.now())
	return nil
}

// decide returns an error if n more deprovisions are too many; g.mu is held.
func (g *Guard) decide(n int) error {
	if g.tripped != "" {
		return fmt.Errorf("%w: %s; deprovisioning is held until syncd restarts with --allow-mass-deprovision", ErrMassDeprovision, g.tripped)
	}
	cutoff := g.now().Add(-g.window)
	for len(g.recent) > 0 && g.recent[0].Before(cutoff) {
		g.recent = g.recent[1:]
	}
	var reason string
	switch limit := g.limit.of(g.managed); {
	case g.managed == 0:
		reason = "the employees table reads empty (or no account is linked): refusing to deprovision anyone"
	case len(g.recent)+n > limit:
		reason = fmt.Sprintf("%d deprovisions within %s would exceed --max-deprovision=%s (limit %d with %d managed accounts)",
			len(g.recent)+n, g.window, g.limit, limit, g.managed)
	default:
		return nil
	}
	g.tripped = reason
	g.onTrip(reason)
	return fmt.Errorf("%w: %s; deprovisioning is held until syncd restarts with --allow-mass-deprovision", ErrMassDeprovision, reason)
}

// refresh counts managed accounts (rows linked to one), now or if the count
// is older than a few seconds. An empty employees table counts as zero,
// whatever Auth0 holds.
func (g *Guard) refresh(ctx context.Context, now bool) error {
	if !now && !g.counted.IsZero() && g.now().Sub(g.counted) < 3*time.Second {
		return nil
	}
	var n int
	if err := g.pool.QueryRow(ctx, `SELECT count(*) FROM employees WHERE auth0_user_id IS NOT NULL`).Scan(&n); err != nil {
		return fmt.Errorf("count managed accounts: %w", err)
	}
	g.managed, g.counted = n, g.now()
	return nil
}
