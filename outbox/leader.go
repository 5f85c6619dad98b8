package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Leadership is a lease in the syncd_leader table, as River elects its
// leader: a row per name, inserted by whoever finds none (or an expired one),
// renewed by its holder well before it expires, deleted on resignation. Times
// are the database's, so replicas' clocks do not matter. The lease is what
// keeps followers away; Postgres itself refuses a second walsender on one
// slot, which covers a leader that lost its lease without noticing.

// electSQL takes or renews the lease named $1 for $2 for $3 seconds; it
// affects a row only if $2 holds the lease now or the lease has expired.
const electSQL = `
INSERT INTO syncd_leader AS l (name, leader_id, elected_at, expires_at)
VALUES ($1, $2, now(), now() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE
   SET leader_id  = EXCLUDED.leader_id,
       elected_at = CASE WHEN l.leader_id = EXCLUDED.leader_id THEN l.elected_at ELSE now() END,
       expires_at = EXCLUDED.expires_at
 WHERE l.leader_id = EXCLUDED.leader_id OR l.expires_at < now()`

// errLeadershipLost says another process holds the lease now.
var errLeadershipLost = errors.New("leadership lost: another process holds the lease")

// errLeadershipExpired says the lease could not be renewed before it expired.
var errLeadershipExpired = errors.New("leadership lease could not be renewed before it expired")

type leaderLease struct {
	pool *pgxpool.Pool
	name string
	id   string
	ttl  time.Duration
}

// attempt takes or renews the lease; it reports whether id holds it now.
func (l *leaderLease) attempt(ctx context.Context) (bool, error) {
	tag, err := l.pool.Exec(ctx, electSQL, l.name, l.id, l.ttl.Seconds())
	if err != nil {
		return false, fmt.Errorf("elect leader: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// resign gives the lease up so that a follower takes over at its next attempt.
func (l *leaderLease) resign(ctx context.Context) error {
	if _, err := l.pool.Exec(ctx, "DELETE FROM syncd_leader WHERE name = $1 AND leader_id = $2", l.name, l.id); err != nil {
		return fmt.Errorf("resign leadership: %w", err)
	}
	return nil
}
