package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	syncdsql "github.com/syncd/syncd/sql"
)

// CheckReplication checks what the replication source needs of PostgreSQL
// before it streams: wal_level = logical, a role with REPLICATION, a
// publication, a free slot (unless its own exists) and WAL sender, and a
// replication connection that pg_hba.conf lets in. Each missing piece is one
// line naming the setting to change and how; none is an error of the check
// itself (that is err: the database cannot be asked).
func CheckReplication(ctx context.Context, pool *pgxpool.Pool, replURL, slot string) (problems []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	var (
		walLevel, user, db      string
		replicationRole         bool
		publication, slotExists bool
		slots, maxSlots         int
		senders, maxSenders     int
	)
	err = pool.QueryRow(ctx, `SELECT current_setting('wal_level'), current_user, current_database(),
			(SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user),
			EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1),
			EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $2),
			(SELECT count(*) FROM pg_replication_slots), current_setting('max_replication_slots')::int,
			(SELECT count(*) FROM pg_stat_replication), current_setting('max_wal_senders')::int`,
		syncdsql.Publication, slot).Scan(&walLevel, &user, &db, &replicationRole, &publication, &slotExists,
		&slots, &maxSlots, &senders, &maxSenders)
	if err != nil {
		return nil, fmt.Errorf("check replication prerequisites: %w", err)
	}
	if walLevel != "logical" {
		problems = append(problems, fmt.Sprintf("wal_level is %s, logical decoding needs logical: set wal_level = logical "+
			"(ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL", walLevel))
	}
	if !replicationRole {
		problems = append(problems, fmt.Sprintf("the role %s lacks the REPLICATION attribute: ALTER ROLE %s REPLICATION",
			quoteIdent(user), quoteIdent(user)))
	}
	if !publication {
		problems = append(problems, fmt.Sprintf("the publication %s does not exist: run `syncd migrate` (or start syncd with --migrate)", syncdsql.Publication))
	}
	if !slotExists && slots >= maxSlots {
		problems = append(problems, fmt.Sprintf("no free replication slot (%d of max_replication_slots = %d in use): "+
			"drop an unused one (SELECT pg_drop_replication_slot('…')) or raise max_replication_slots and restart PostgreSQL", slots, maxSlots))
	}
	if senders >= maxSenders {
		problems = append(problems, fmt.Sprintf("no free WAL sender (%d of max_wal_senders = %d in use): raise max_wal_senders and restart PostgreSQL",
			senders, maxSenders))
	}
	if walLevel == "logical" && replicationRole {
		if p := checkReplicationConnection(ctx, replURL, user, db); p != "" {
			problems = append(problems, p)
		}
	}
	return problems, nil
}

// checkReplicationConnection opens (and closes) one replication connection,
// as the source will.
func checkReplicationConnection(ctx context.Context, replURL, user, db string) string {
	cfg, err := pgconn.ParseConfig(replURL)
	if err != nil {
		return "DATABASE_URL: not a valid PostgreSQL connection string"
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = replicationAppName
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, cfg)
	if err == nil {
		_ = conn.Close(cctx)
		return ""
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "28000" {
		return fmt.Sprintf("pg_hba.conf refuses syncd's replication connection (%s): add a line that lets %s connect to database %s "+
			"(a logical replication connection matches the database name, not the keyword replication) and reload PostgreSQL",
			pe.Message, quoteIdent(user), quoteIdent(db))
	}
	if errors.As(err, &pe) {
		return fmt.Sprintf("PostgreSQL refuses syncd's replication connection: %s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	return ""
}

func quoteIdent(s string) string {
	return `"` + s + `"`
}
