package reconcile

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The fast path. Settling exists so that a mass change is counted as one
// batch however slowly its rows reach the workers; but it makes every leaver
// wait Settle, and a leaver's access should end at once. A deprovision can
// skip settling without weakening the guard when everything it could be part
// of is already visible to the guard's count:
//
//   - the rows of one commit are visible together, so the first of them to
//     reach a worker sees every other one as "waiting" (waitingSQL: inactive
//     rows with an unblocked account, deleted rows whose outbox row is not
//     handled yet);
//   - the deprovisions settling now, and those let through within Window,
//     are in the database.
//
// So a new deprovision is allowed at once when nothing is held and
// recent + settling + waiting (itself included) stays within half of the
// limit. A mass change in one transaction is over that half from its first
// row on, so every row of it settles and the batch is decided whole, as
// before. A mass change dripped over many transactions gets at most half the
// limit through at once; the rest settles, is counted with what went through
// (the window), and is held whole when over the limit.

// fastLimit is the most deprovisions the fast path lets the hour's count
// reach: half the limit, rounded down (0: never fast).
func (g *Guard) fastLimit(managed int) int {
	return g.cfg.Limit.of(managed) / 2
}

// fastAllow decides d at once if it may skip settling (see above), inside
// the guard's transaction; it reports whether it allowed d and recorded it
// as allowed (already queued: the reconcile asking carries it out now) and
// counted in the window.
func (g *Guard) fastAllow(ctx context.Context, tx pgx.Tx, d Deprovision) (bool, error) {
	if !g.cfg.Fast {
		return false, nil
	}
	var managed, recent, settling, waiting int
	err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM employees WHERE auth0_user_id IS NOT NULL),
			(SELECT count(*) FROM syncd_deprovision_window WHERE decided_at > $1),
			(SELECT count(*) FROM syncd_deprovisions WHERE state = 'settling'),
			(`+waitingSQL+`)`, g.cfg.Now().Add(-g.cfg.Window)).Scan(&managed, &recent, &settling, &waiting)
	if err != nil {
		return false, fmt.Errorf("count deprovisions: %w", err)
	}
	if managed == 0 || recent+settling+max(waiting, 1) > g.fastLimit(managed) {
		return false, nil
	}
	now := g.cfg.Now()
	if _, err := tx.Exec(ctx, `INSERT INTO syncd_deprovisions (key, kind, employee_id, auth0_user_id, email, state, requested_at, decided_at, queued_at)
		VALUES ($1, $2, $3, $4, $5, 'allowed', $6, $6, $6)`, d.key(), d.Kind, d.EmployeeID, nullable(d.UserID), nullable(d.Email), now); err != nil {
		return false, fmt.Errorf("record deprovision: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO syncd_deprovision_window (decided_at, key) VALUES ($1, $2)`, now, d.key()); err != nil {
		return false, fmt.Errorf("count deprovision: %w", err)
	}
	return true, nil
}
