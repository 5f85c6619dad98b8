package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A hold is what a running syncd holds all its work for while the cause is
// the configuration, the credentials or Auth0 itself (its breaker is open):
// kept in syncd_holds, so that `syncd status`, another process, can say it.

// Hold is one running syncd's hold.
type Hold struct {
	Owner   string    `json:"owner"`
	Cause   string    `json:"cause"`
	Message string    `json:"message"`
	Since   time.Time `json:"since"`
}

// holdFresh is how recently a hold must have been renewed to be shown: a
// killed process's row goes stale (its renewals stop), and says nothing.
const holdFresh = time.Minute

// HoldRenewEvery is how often a running syncd renews its hold.
const HoldRenewEvery = holdFresh / 3

// Execer is what SaveHold and ClearHold need of a pool.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// SaveHold records (or renews) owner's hold; since is kept while the
// message stays the same.
func SaveHold(ctx context.Context, db Execer, h Hold) error {
	_, err := db.Exec(ctx, `INSERT INTO syncd_holds (owner, cause, message, since, renewed_at) VALUES ($1, $2, $3, $4, now())
		ON CONFLICT (owner) DO UPDATE SET cause = excluded.cause, renewed_at = now(),
			since = CASE WHEN syncd_holds.message = excluded.message THEN syncd_holds.since ELSE excluded.since END,
			message = excluded.message`, h.Owner, h.Cause, h.Message, h.Since)
	if err != nil {
		return fmt.Errorf("record hold: %w", err)
	}
	return nil
}

// ClearHold removes owner's hold.
func ClearHold(ctx context.Context, db Execer, owner string) error {
	if _, err := db.Exec(ctx, `DELETE FROM syncd_holds WHERE owner = $1`, owner); err != nil {
		return fmt.Errorf("clear hold: %w", err)
	}
	return nil
}

// Holds returns the holds renewed recently, oldest first.
func Holds(ctx context.Context, db StatusQuerier) ([]Hold, error) {
	rows, err := db.Query(ctx, `SELECT owner, cause, message, since FROM syncd_holds
		WHERE renewed_at > now() - make_interval(secs => $1) ORDER BY since, owner`, holdFresh.Seconds())
	if err != nil {
		return nil, fmt.Errorf("read holds: %w", err)
	}
	holds, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Hold])
	if err != nil {
		return nil, fmt.Errorf("read holds: %w", err)
	}
	if holds == nil {
		holds = []Hold{}
	}
	return holds, nil
}
