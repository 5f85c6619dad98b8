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

// requestFast decides a new deprovision d at once if it may skip settling
// (see above). It is one round trip: a pipelined transaction that takes the
// guard's lock and then, in one statement whose snapshot follows the lock,
// counts, decides, records d as allowed (already queued: the reconcile
// asking carries it out now) and counts it in the window. It reports whether
// it allowed d; a d the guard knows already, or one that must settle, is
// left to Request's transaction.
func (g *Guard) requestFast(ctx context.Context, d Deprovision) (bool, error) {
	now := g.cfg.Now()
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, guardLockKey)
	// The limit as Limit.of computes it (a share, at least 1, or a count); half of it.
	b.Queue(`WITH c AS (
			SELECT (SELECT count(*) FROM employees WHERE auth0_user_id IS NOT NULL) AS managed,
				(SELECT count(*) FROM syncd_deprovision_window WHERE decided_at > $6) AS recent,
				(SELECT count(*) FROM syncd_deprovisions WHERE state = 'settling') AS settling,
				(`+waitingSQL+`) AS waiting,
				EXISTS (SELECT 1 FROM syncd_deprovisions WHERE state = 'held' OR key = $1) AS busy),
		ok AS (SELECT 1 FROM c WHERE NOT busy AND managed > 0
			AND recent + settling + greatest(waiting, 1) <= (CASE WHEN $7::float8 > 0 THEN greatest(1, floor(managed * $7::float8 / 100))::bigint ELSE $8::bigint END) / 2),
		ins AS (INSERT INTO syncd_deprovisions (key, kind, employee_id, auth0_user_id, email, state, requested_at, decided_at, queued_at)
			SELECT $1, $2, $3, $4, $5, 'allowed', $9, $9, $9 FROM ok RETURNING key),
		win AS (INSERT INTO syncd_deprovision_window (decided_at, key) SELECT $9, key FROM ins)
		SELECT EXISTS (SELECT 1 FROM ins)`,
		d.key(), d.Kind, d.employeeKey(), nullable(d.UserID), nullable(d.Email), now.Add(-g.cfg.Window),
		g.cfg.Limit.Percent, g.cfg.Limit.Count, now)
	b.Queue(`COMMIT`)
	res := g.pool.SendBatch(ctx, b)
	defer res.Close()
	var allowed bool
	for i := range 4 {
		var err error
		if i == 2 {
			err = res.QueryRow().Scan(&allowed)
		} else {
			_, err = res.Exec()
		}
		if err != nil {
			return false, fmt.Errorf("decide deprovision at once: %w", err)
		}
	}
	if err := res.Close(); err != nil {
		return false, fmt.Errorf("decide deprovision at once: %w", err)
	}
	return allowed, nil
}
