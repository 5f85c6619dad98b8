package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// watchSlot measures the slot's lag every StatusInterval, warns above
// LagWarnBytes and retries deletes that failed.
func (s *ReplicationSource) watchSlot(ctx context.Context) {
	t := time.NewTicker(s.cfg.StatusInterval)
	defer t.Stop()
	var lastWarn time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, dbTimeout)
		var lag int64
		err := s.pool.QueryRow(qctx, `SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint
			FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.SlotName).Scan(&lag)
		if err == nil {
			s.lag.Store(lag)
			if lag > s.cfg.LagWarnBytes && time.Since(lastWarn) > time.Minute {
				lastWarn = time.Now()
				s.log.WarnContext(ctx, "replication slot lags; WAL is retained until syncd catches up", keyLagBytes, lag)
			}
		}
		s.mu.Lock()
		undeleted := s.undeleted
		s.undeleted = nil
		s.mu.Unlock()
		if len(undeleted) > 0 {
			if err := deleteRows(qctx, s.pool, undeleted); err != nil {
				s.mu.Lock()
				s.undeleted = append(s.undeleted, undeleted...)
				s.mu.Unlock()
			}
		}
		cancel()
	}
}

// slotInfo is what pg_replication_slots says of the slot.
type slotInfo struct {
	exists    bool
	database  string
	plugin    string
	walStatus string
	confirmed pglogrepl.LSN
}

func (s *ReplicationSource) readSlot(ctx context.Context) (slotInfo, error) {
	var (
		info      slotInfo
		db        *string
		plugin    *string
		walStatus *string
		confirmed *string
	)
	err := s.pool.QueryRow(ctx, `SELECT database, plugin, wal_status, confirmed_flush_lsn::text
		FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.SlotName).Scan(&db, &plugin, &walStatus, &confirmed)
	if errors.Is(err, pgx.ErrNoRows) {
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("read replication slot: %w", err)
	}
	info.exists = true
	info.database, info.plugin, info.walStatus = deref(db), deref(plugin), deref(walStatus)
	if confirmed != nil {
		if info.confirmed, err = pglogrepl.ParseLSN(*confirmed); err != nil {
			return info, fmt.Errorf("read replication slot: %w", err)
		}
	}
	return info, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// ensureSlot makes sure the slot exists and is usable, recreating one that
// Postgres invalidated, and returns its confirmed position.
func (s *ReplicationSource) ensureSlot(ctx context.Context, conn *pgconn.PgConn) (pglogrepl.LSN, error) {
	info, err := s.readSlot(ctx)
	if err != nil {
		return 0, err
	}
	if info.exists {
		var current string
		if err := s.pool.QueryRow(ctx, "SELECT current_database()").Scan(&current); err != nil {
			return 0, fmt.Errorf("read database name: %w", err)
		}
		switch {
		case info.database != current:
			return 0, fmt.Errorf("replication slot %s belongs to database %q, not %q: choose another slot name", s.cfg.SlotName, info.database, current)
		case info.plugin != "pgoutput":
			return 0, fmt.Errorf("replication slot %s uses plugin %q, not pgoutput: choose another slot name", s.cfg.SlotName, info.plugin)
		case info.walStatus == "lost":
			s.log.WarnContext(ctx, "replication slot was invalidated by Postgres (wal_status lost); recreating it and scanning the outbox")
			if _, err := s.pool.Exec(ctx, "SELECT pg_drop_replication_slot($1)", s.cfg.SlotName); err != nil {
				return 0, fmt.Errorf("drop lost replication slot: %w", err)
			}
		default:
			return info.confirmed, nil
		}
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, s.cfg.SlotName, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object: made meanwhile
		info, err := s.readSlot(ctx)
		return info.confirmed, err
	}
	if err != nil {
		return 0, fmt.Errorf("create replication slot: %w", err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, fmt.Errorf("create replication slot: %w", err)
	}
	s.log.InfoContext(ctx, "created replication slot", keyLSN, lsn.String())
	return lsn, nil
}
