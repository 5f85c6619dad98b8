package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrMassDeprovision is wrapped by the error of an outcome whose deprovision
// waits for the guard (settling or held).
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

// DeprovisionKind says what asks for a deprovision.
type DeprovisionKind string

// Kinds of deprovision.
const (
	KindInactive DeprovisionKind = "inactive" // an employee row set active = false
	KindDeleted  DeprovisionKind = "deleted"  // a deleted employee row (its outbox row carried the account)
	KindOrphan   DeprovisionKind = "orphan"   // a managed account no row claims (drift scan)
)

// Deprovision is one account to be blocked or deleted, as the guard knows it.
type Deprovision struct {
	Kind       DeprovisionKind `json:"kind"`
	EmployeeID string          `json:"employee_id,omitempty"`
	UserID     string          `json:"auth0_user_id,omitempty"`
	// Email finds a deleted row's account when UserID is not known.
	Email string `json:"-"`
}

// key names the deprovision in syncd_deprovisions: one per employee, or per
// account for an orphan.
func (d Deprovision) key() string {
	if d.Kind == KindOrphan {
		return "account:" + d.UserID
	}
	return "employee:" + d.EmployeeID
}

// employeeKey is the employee syncd_deprovisions and the audit record for
// d: none for an orphan, whose employee_id comes from Auth0 and may be no
// key of the table's type.
func (d Deprovision) employeeKey() *string {
	if d.Kind == KindOrphan {
		return nil
	}
	return nullable(d.EmployeeID)
}

// syncd_deprovisions records "no employee" as syncd_no_employee(): 0 where
// the key is bigint (the column is NOT NULL there, as syncd before schema
// version 8 writes and reads it: an older replica keeps working), NULL for
// other keys. employeeOfDeprovision reads the column back, NULL for an orphan.
const employeeOfDeprovision = `CASE WHEN kind = 'orphan' THEN NULL ELSE employee_id END`

// Verdict is the guard's answer about one deprovision.
type Verdict string

// Verdicts.
const (
	// Allowed: carry it out now.
	Allowed Verdict = "allowed"
	// Settling: it waits for the settling window to end, then is counted with
	// every other deprovision asked for meanwhile, as one batch.
	Settling Verdict = "settling"
	// Held: its batch was over the limit (or the guard was holding already);
	// it waits for `syncd guard release` or for the row to stop asking.
	Held Verdict = "held"
)

// Decision is the guard's answer.
type Decision struct {
	Verdict Verdict
	// Reason says why a deprovision waits.
	Reason string
	// New: this request put the deprovision in its state (it was not known).
	New bool
}

// Guard is the mass-deprovision safeguard (like Okta's import safeguard and
// Entra's accidental-deletions threshold). Its state is in the database, so
// every replica shares one count and a restart forgets nothing:
//
//   - A deprovision asked for (a reconcile whose plan blocks or deletes) is
//     first settling: the reconcile records it and ends, costing nothing more.
//   - When the oldest settling deprovision is Settle old, the batch is
//     decided: every settling deprovision, plus the rows that ask for one and
//     have not reached a worker yet, plus the deprovisions the guard let
//     through within Window. At most Limit: the whole batch is allowed and
//     handed back to the work queue. Over it (or the employees table reads
//     empty): the whole batch is held, and so is every later deprovision
//     while anything is held.
//   - A deprovision that is no longer asked for (the row is active again)
//     is forgotten; when nothing is held any more the guard holds nothing.
//   - Release (syncd guard release) lets exactly the held deprovisions
//     through, recorded in auth0_sync_logs with who released them; released
//     deprovisions do not count against the window.
//
// Run decides batches and hands allowed deprovisions back; Request is what a
// reconcile asks.
type Guard struct {
	pool *pgxpool.Pool
	cfg  GuardConfig

	mu      sync.Mutex
	tripped string // why it holds, as last read; "" if it holds nothing
	held    int    // held deprovisions, as last read
}

// GuardConfig configures a Guard.
type GuardConfig struct {
	Limit     Limit         // default 10 %
	Window    time.Duration // default 1h
	AllowMass bool          // --allow-mass-deprovision: never hold, and let through what is held
	// Settle is how long a deprovision waits to be counted with the rest of
	// its batch (default 10s).
	Settle time.Duration
	// Tick is how often Run decides and hands back (default Settle/5, at
	// least 100ms, at most 2s).
	Tick time.Duration
	// Fast lets a deprovision skip settling when nothing is held and the
	// hour's count, plus everything settling, plus every row asking that has
	// not reached a worker yet, stays within half of Limit (guard_fast.go).
	// Off by default; the daemon turns it on.
	Fast bool
	// OnTrip is called once per trip, by the process that decided it: a
	// batch was held (to log why).
	OnTrip func(reason string, held int)
	// OnChange is called when this process sees the guard start or stop
	// holding (to expose it).
	OnChange func(holding bool)
	// OnHeld is called with the number of deprovisions newly held.
	OnHeld func(n int)
	Logger *slog.Logger
	// Now is the clock that requests, decisions and the window use.
	Now func() time.Time
}

// guardLockKey serialises the guard's decisions across processes ("syncdgrd").
const guardLockKey int64 = 0x73796e6364677264

// NewGuard returns a Guard keeping its state in pool.
func NewGuard(pool *pgxpool.Pool, cfg GuardConfig) *Guard {
	if cfg.Limit == (Limit{}) {
		cfg.Limit = Limit{Percent: 10}
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Hour
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 10 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = min(max(cfg.Settle/5, 100*time.Millisecond), 2*time.Second)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnTrip == nil {
		cfg.OnTrip = func(string, int) {}
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func(bool) {}
	}
	if cfg.OnHeld == nil {
		cfg.OnHeld = func(int) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Guard{pool: pool, cfg: cfg}
}

// Tripped returns why the guard holds deprovisioning, "" if it holds
// nothing, as of its last look at the database (Run looks every Tick).
func (g *Guard) Tripped() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tripped
}

// HeldCount returns how many deprovisions are held, as of the last look.
func (g *Guard) HeldCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

func (g *Guard) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, g.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, guardLockKey); err != nil {
			return fmt.Errorf("lock deprovision guard: %w", err)
		}
		return fn(tx)
	})
}

// settlingReason is what a settling row says while it waits.
func (g *Guard) settlingReason() string {
	return fmt.Sprintf("waits up to %s to be counted with the rest of its batch against --max-deprovision=%s", g.cfg.Settle, g.cfg.Limit)
}

// Request asks to deprovision d. A deprovision the guard does not know yet
// starts settling, or is held if the guard holds anything; one it knows gets
// its recorded verdict. It costs one short transaction and no Auth0 call.
func (g *Guard) Request(ctx context.Context, d Deprovision) (Decision, error) {
	if g.cfg.AllowMass {
		return Decision{Verdict: Allowed}, nil
	}
	if g.cfg.Fast {
		fast, err := g.requestFast(ctx, d)
		if err != nil {
			return Decision{}, err
		}
		if fast {
			return Decision{Verdict: Allowed, New: true}, nil
		}
	}
	var dec Decision
	err := g.inTx(ctx, func(tx pgx.Tx) error {
		dec = Decision{}
		var state, reason string
		err := tx.QueryRow(ctx, `UPDATE syncd_deprovisions SET kind = $2, auth0_user_id = coalesce($3, auth0_user_id), email = coalesce($4, email)
			WHERE key = $1 RETURNING state, coalesce(reason, '')`, d.key(), d.Kind, nullable(d.UserID), nullable(d.Email)).Scan(&state, &reason)
		if err == nil {
			dec = Decision{Verdict: Verdict(state), Reason: reason}
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read deprovision: %w", err)
		}
		tripped, err := heldReason(ctx, tx)
		if err != nil {
			return err
		}
		dec = Decision{Verdict: Settling, Reason: g.settlingReason(), New: true}
		var decided any
		if tripped != "" {
			dec = Decision{Verdict: Held, Reason: tripped, New: true}
			decided = g.cfg.Now()
		}
		_, err = tx.Exec(ctx, `INSERT INTO syncd_deprovisions (key, kind, employee_id, auth0_user_id, email, state, requested_at, decided_at, reason)
			VALUES ($1, $2, coalesce($3, syncd_no_employee()), $4, $5, $6, $7, $8, $9)`,
			d.key(), d.Kind, d.employeeKey(), nullable(d.UserID), nullable(d.Email), dec.Verdict, g.cfg.Now(), decided, dec.Reason)
		if err != nil {
			return fmt.Errorf("record deprovision: %w", err)
		}
		return nil
	})
	if err != nil {
		return Decision{}, err
	}
	if dec.New && dec.Verdict == Held {
		g.cfg.OnHeld(1)
	}
	return dec, nil
}

// RequestBatch asks for deprovisions known together (a drift scan's
// orphans), decided at once as one batch: it returns those allowed. Known
// ones keep their verdict; new ones are all allowed or all held.
func (g *Guard) RequestBatch(ctx context.Context, ds []Deprovision) ([]Deprovision, error) {
	if g.cfg.AllowMass || len(ds) == 0 {
		return ds, nil
	}
	var (
		allowed []Deprovision
		held    int
		tripped string
	)
	err := g.inTx(ctx, func(tx pgx.Tx) error {
		allowed, held, tripped = nil, 0, ""
		var fresh []Deprovision
		for _, d := range ds {
			var state string
			err := tx.QueryRow(ctx, `SELECT state FROM syncd_deprovisions WHERE key = $1`, d.key()).Scan(&state)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				fresh = append(fresh, d)
			case err != nil:
				return fmt.Errorf("read deprovision: %w", err)
			case state == string(Allowed):
				allowed = append(allowed, d)
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		now := g.cfg.Now()
		reason, err := heldReason(ctx, tx)
		if err != nil {
			return err
		}
		if reason == "" {
			if reason, err = g.overLimit(ctx, tx, len(fresh), 0); err != nil {
				return err
			}
			tripped = reason
		}
		verdict := Allowed
		if reason != "" {
			verdict, held = Held, len(fresh)
		}
		for _, d := range fresh {
			if _, err := tx.Exec(ctx, `INSERT INTO syncd_deprovisions (key, kind, employee_id, auth0_user_id, state, requested_at, decided_at, reason)
				VALUES ($1, $2, coalesce($3, syncd_no_employee()), $4, $5, $6, $6, $7)`, d.key(), d.Kind, d.employeeKey(), nullable(d.UserID), verdict, now, nullable(reason)); err != nil {
				return fmt.Errorf("record deprovision: %w", err)
			}
			if verdict == Held {
				if _, err := tx.Exec(ctx, `INSERT INTO auth0_sync_logs (employee_id, auth0_user_id, action, status, response_data, error)
					VALUES ($1, $2, 'guard_hold', 'held', jsonb_build_object('kind', $3::text, 'held_because', $4::text), $5)`,
					d.employeeKey(), nullable(d.UserID), d.Kind, reason, heldError(reason)); err != nil {
					return fmt.Errorf("audit held deprovision: %w", err)
				}
			}
			if verdict == Allowed {
				if _, err := tx.Exec(ctx, `INSERT INTO syncd_deprovision_window (decided_at, key) VALUES ($1, $2)`, now, d.key()); err != nil {
					return fmt.Errorf("count deprovision: %w", err)
				}
				allowed = append(allowed, d)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	g.reportHeld(tripped, held)
	return allowed, nil
}

func (g *Guard) reportHeld(tripped string, held int) {
	if tripped != "" {
		g.cfg.OnTrip(tripped, held)
	}
	if held > 0 {
		g.cfg.OnHeld(held)
	}
}

// heldError is the audit row's error of a deprovision the guard holds.
func heldError(reason string) string {
	return fmt.Sprintf("%s: deprovision held: %s; `syncd guard release` lets it through, setting the row active again cancels it", ErrMassDeprovision, reason)
}

// heldReason returns the reason of the oldest held deprovision, "" if none
// is held.
func heldReason(ctx context.Context, tx pgx.Tx) (string, error) {
	var reason string
	err := tx.QueryRow(ctx, `SELECT coalesce(reason, '') FROM syncd_deprovisions WHERE state = 'held' ORDER BY decided_at, key LIMIT 1`).Scan(&reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read held deprovisions: %w", err)
	}
	if reason == "" {
		reason = "deprovisioning is held"
	}
	return reason, nil
}

// overLimit says why n more deprovisions (and waiting more that have not
// asked yet) are too many, "" if they are not.
func (g *Guard) overLimit(ctx context.Context, tx pgx.Tx, n, waiting int) (string, error) {
	var managed, recent int
	err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM employees WHERE auth0_user_id IS NOT NULL),
			(SELECT count(*) FROM syncd_deprovision_window WHERE decided_at > $1)`, g.cfg.Now().Add(-g.cfg.Window)).Scan(&managed, &recent)
	if err != nil {
		return "", fmt.Errorf("count managed accounts: %w", err)
	}
	limit := g.cfg.Limit.of(managed)
	switch total := recent + n + waiting; {
	case managed == 0:
		return "the employees table reads empty (or no account is linked): refusing to deprovision anyone", nil
	case total > limit:
		return fmt.Sprintf("%d deprovisions within %s would exceed --max-deprovision=%s (limit %d with %d managed accounts: %d asked at once, %d more waiting for a worker, %d already done)",
			total, g.cfg.Window, g.cfg.Limit, limit, managed, n, waiting, recent), nil
	}
	return "", nil
}

// waitingSQL counts deprovisions that rows ask for but that have not reached
// the guard yet (no worker has reconciled them): inactive rows with an
// account syncd has not blocked, and deleted rows with an account whose
// outbox row is not handled yet. Counting them keeps a mass change one batch
// however slowly the workers get to it.
const waitingSQL = `SELECT
	(SELECT count(*) FROM employees e
	  WHERE e.auth0_user_id IS NOT NULL
	    AND e.auth0_sync_status IN ('pending', 'syncing', 'retrying')
	    AND coalesce((e.auth0_synced_state->>'blocked')::bool, false) = false
	    AND NOT EXISTS (SELECT 1 FROM syncd_deprovisions d WHERE d.key = 'employee:' || e.id)
	    AND coalesce((syncd_desired_of(e.id)->>'blocked')::bool, false))
	+ (SELECT count(DISTINCT o.employee_id) FROM auth0_outbox o
	  WHERE o.op = 'delete' AND o.auth0_user_id IS NOT NULL
	    AND NOT EXISTS (SELECT 1 FROM employees e WHERE e.id = o.employee_id)
	    AND NOT EXISTS (SELECT 1 FROM syncd_deprovisions d WHERE d.key = 'employee:' || o.employee_id))`

// Step is one round of Run: forget deprovisions no longer asked for, decide
// the settling batch once it has settled, hand allowed deprovisions back to
// the work queue, and refresh what Tripped and HeldCount say.
func (g *Guard) Step(ctx context.Context) error {
	var (
		tripped      string
		newlyHeld    int
		held         int
		heldNowWhy   string
		handedBack   int
		forgotten    int64
		releasedMass int64
	)
	err := g.inTx(ctx, func(tx pgx.Tx) error {
		tripped, newlyHeld, handedBack = "", 0, 0
		now := g.cfg.Now()
		// A row that is active again (its mapping no longer blocks it) asks
		// for nothing: its hold clears.
		tag, err := tx.Exec(ctx, `DELETE FROM syncd_deprovisions d USING employees e
			WHERE d.kind IN ('inactive', 'deleted') AND e.id = d.employee_id
			  AND NOT coalesce((syncd_desired_of(e.id)->>'blocked')::bool, true)`)
		if err != nil {
			return fmt.Errorf("forget deprovisions no longer asked for: %w", err)
		}
		forgotten = tag.RowsAffected()
		if _, err := tx.Exec(ctx, `DELETE FROM syncd_deprovision_window WHERE decided_at <= $1`, now.Add(-g.cfg.Window)); err != nil {
			return fmt.Errorf("expire deprovision window: %w", err)
		}
		if g.cfg.AllowMass {
			tag, err := tx.Exec(ctx, `UPDATE syncd_deprovisions SET state = 'allowed', decided_at = $1, released_by = '--allow-mass-deprovision', queued_at = NULL
				WHERE state IN ('held', 'settling')`, now)
			if err != nil {
				return fmt.Errorf("let held deprovisions through: %w", err)
			}
			releasedMass = tag.RowsAffected()
		}

		var settling int
		var oldest *time.Time
		if err := tx.QueryRow(ctx, `SELECT count(*), min(requested_at) FROM syncd_deprovisions WHERE state = 'settling'`).Scan(&settling, &oldest); err != nil {
			return fmt.Errorf("read settling deprovisions: %w", err)
		}
		if settling > 0 && now.Sub(*oldest) >= g.cfg.Settle {
			reason, err := heldReason(ctx, tx)
			if err != nil {
				return err
			}
			if reason == "" {
				var waiting int
				if err := tx.QueryRow(ctx, waitingSQL).Scan(&waiting); err != nil {
					return fmt.Errorf("count waiting deprovisions: %w", err)
				}
				if reason, err = g.overLimit(ctx, tx, settling, waiting); err != nil {
					return err
				}
				tripped = reason
			}
			if reason != "" {
				// One audit row per held deprovision, when it is held (not
				// per cycle): the batch was settling, so no reconcile wrote it.
				if _, err := tx.Exec(ctx, `WITH held AS (
						UPDATE syncd_deprovisions SET state = 'held', decided_at = $1, reason = $2 WHERE state = 'settling'
						RETURNING kind, employee_id, auth0_user_id)
					INSERT INTO auth0_sync_logs (employee_id, auth0_user_id, action, status, response_data, error)
					SELECT `+employeeOfDeprovision+`, auth0_user_id, 'guard_hold', 'held', jsonb_build_object('kind', kind, 'held_because', $2::text), $3
					  FROM held`, now, reason, heldError(reason)); err != nil {
					return fmt.Errorf("hold deprovisions: %w", err)
				}
				newlyHeld = settling
			} else {
				if _, err := tx.Exec(ctx, `WITH allowed AS (
						UPDATE syncd_deprovisions SET state = 'allowed', decided_at = $1, reason = NULL WHERE state = 'settling' RETURNING key)
					INSERT INTO syncd_deprovision_window (decided_at, key) SELECT $1, key FROM allowed`, now); err != nil {
					return fmt.Errorf("allow deprovisions: %w", err)
				}
			}
		}

		// Allowed deprovisions of rows go back to the work queue as outbox
		// rows (a deleted row's carries its account); an orphan's is carried
		// out by the next drift scan.
		tag, err = tx.Exec(ctx, `WITH queued AS (
				UPDATE syncd_deprovisions SET queued_at = $1
				 WHERE state = 'allowed' AND queued_at IS NULL AND kind IN ('inactive', 'deleted')
				RETURNING kind, employee_id, auth0_user_id, email)
			INSERT INTO auth0_outbox (employee_id, op, auth0_user_id, email)
			SELECT employee_id, CASE kind WHEN 'deleted' THEN 'delete' ELSE 'resync' END,
				CASE kind WHEN 'deleted' THEN auth0_user_id END, CASE kind WHEN 'deleted' THEN email END
			  FROM queued ORDER BY employee_id`, now)
		if err != nil {
			return fmt.Errorf("hand allowed deprovisions back: %w", err)
		}
		handedBack = int(tag.RowsAffected())
		if handedBack > 0 {
			if _, err := tx.Exec(ctx, `SELECT pg_notify('auth0_outbox', '')`); err != nil {
				return fmt.Errorf("notify: %w", err)
			}
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM syncd_deprovisions WHERE state = 'held'`).Scan(&held); err != nil {
			return fmt.Errorf("count held deprovisions: %w", err)
		}
		heldNowWhy, err = heldReason(ctx, tx)
		return err
	})
	if err != nil {
		return err
	}
	if releasedMass > 0 {
		g.cfg.Logger.InfoContext(ctx, "--allow-mass-deprovision: held deprovisions let through", "deprovisions", releasedMass)
	}
	if forgotten > 0 {
		g.cfg.Logger.DebugContext(ctx, "deprovisions no longer asked for are forgotten", "deprovisions", forgotten)
	}
	if handedBack > 0 {
		g.cfg.Logger.DebugContext(ctx, "allowed deprovisions handed to the work queue", "deprovisions", handedBack)
	}
	g.reportHeld(tripped, newlyHeld)
	g.mu.Lock()
	was := g.tripped != ""
	g.tripped, g.held = heldNowWhy, held
	g.mu.Unlock()
	if now := heldNowWhy != ""; now != was {
		g.cfg.OnChange(now)
		if !now {
			g.cfg.Logger.InfoContext(ctx, "mass-deprovision guard holds nothing any more (released, or the rows no longer ask)")
		}
	}
	return nil
}

// Run calls Step every Tick until ctx is done. A failed step is logged once
// per streak of failures and tried again.
func (g *Guard) Run(ctx context.Context) error {
	t := time.NewTicker(g.cfg.Tick)
	defer t.Stop()
	failing := false
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := g.Step(sctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			g.cfg.Logger.WarnContext(ctx, "deprovision guard step failed; will try again", "error", err)
			failing = true
		case err == nil:
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// forget removes what the guard knows of the deprovision named by key: it
// was carried out, or is no longer asked for.
func (g *Guard) forget(ctx context.Context, d Deprovision) error {
	if _, err := g.pool.Exec(ctx, `DELETE FROM syncd_deprovisions WHERE key = $1`, d.key()); err != nil {
		return fmt.Errorf("forget deprovision: %w", err)
	}
	return nil
}

// forgetOrphansExcept forgets held or allowed orphan deprovisions whose
// account a drift scan no longer finds an unblocked orphan.
func (g *Guard) forgetOrphansExcept(ctx context.Context, ds []Deprovision) error {
	keys := make([]string, 0, len(ds))
	for _, d := range ds {
		keys = append(keys, d.key())
	}
	if _, err := g.pool.Exec(ctx, `DELETE FROM syncd_deprovisions WHERE kind = 'orphan' AND NOT key = ANY($1)`, keys); err != nil {
		return fmt.Errorf("forget orphan deprovisions: %w", err)
	}
	return nil
}

// HeldDeprovision is a deprovision the guard holds or lets settle.
type HeldDeprovision struct {
	Deprovision
	State  Verdict   `json:"state"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// Querier is what the read functions need of a connection or pool.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Waiting lists the deprovisions the guard holds or lets settle, oldest
// first (for `syncd status` and `syncd guard`).
func Waiting(ctx context.Context, db Querier) ([]HeldDeprovision, error) {
	rows, err := db.Query(ctx, `SELECT kind, coalesce((`+employeeOfDeprovision+`)::text, ''), coalesce(auth0_user_id, ''), state, coalesce(reason, ''), coalesce(decided_at, requested_at)
		FROM syncd_deprovisions WHERE state IN ('held', 'settling') ORDER BY requested_at, key`)
	if err != nil {
		return nil, fmt.Errorf("read held deprovisions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (HeldDeprovision, error) {
		var h HeldDeprovision
		err := r.Scan(&h.Kind, &h.EmployeeID, &h.UserID, &h.State, &h.Reason, &h.Since)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("read held deprovisions: %w", err)
	}
	return out, nil
}

// Release lets exactly the deprovisions the guard holds now through, without
// lifting the limit for later ones: they become allowed (a running daemon
// hands them to its workers within a Tick; held orphans go at the next drift
// scan), are not counted against the window, and each gets an audit row
// (action guard_release) naming who released it. It returns them.
func Release(ctx context.Context, pool *pgxpool.Pool, by string) ([]Deprovision, error) {
	if strings.TrimSpace(by) == "" {
		return nil, errors.New("release: say who releases (--by)")
	}
	var out []Deprovision
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, guardLockKey); err != nil {
			return fmt.Errorf("lock deprovision guard: %w", err)
		}
		rows, err := tx.Query(ctx, `WITH released AS (
				UPDATE syncd_deprovisions SET state = 'allowed', released_by = $1, decided_at = now(), queued_at = NULL
				 WHERE state = 'held' RETURNING kind, employee_id, coalesce(auth0_user_id, '') AS auth0_user_id, reason)
			INSERT INTO auth0_sync_logs (employee_id, auth0_user_id, action, status, response_data)
			SELECT `+employeeOfDeprovision+`, nullif(auth0_user_id, ''), 'guard_release', 'success',
				jsonb_build_object('released_by', $1::text, 'kind', kind, 'held_because', reason)
			  FROM released
			RETURNING (response_data->>'kind'), coalesce(employee_id::text, ''), coalesce(auth0_user_id, '')`, by)
		if err != nil {
			return fmt.Errorf("release held deprovisions: %w", err)
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Deprovision, error) {
			var d Deprovision
			err := r.Scan(&d.Kind, &d.EmployeeID, &d.UserID)
			return d, err
		})
		if err != nil {
			return fmt.Errorf("release held deprovisions: %w", err)
		}
		return nil
	})
	return out, err
}
