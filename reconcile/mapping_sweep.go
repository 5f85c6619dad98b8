package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// sweepTurn is the syncd_leader row whose lease is the turn to sweep (a
// name no replication slot can have: slot names have no hyphen).
const sweepTurn = "mapping-sweep"

// MappingSweepDB is what the sweep needs of the database: a pool.
type MappingSweepDB interface {
	MappingBeginner
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// MappingSweepConfig configures a MappingSweep.
type MappingSweepConfig struct {
	// Every is the time between sweeps; one runs at start (default 1m).
	Every time.Duration
	// Owner names this process in the turn's lease (default: a random id).
	Owner string
	// OnSweep, if set, hears every sweep this process ran: the rows it
	// marked, its error, how long it took.
	OnSweep func(marked int64, err error, took time.Duration)
	// Logger; nil is slog.Default().
	Logger *slog.Logger
}

// MappingSweep runs MarkChanged every Every. Every replica runs one; a turn
// (a lease of Every×0.9 in syncd_leader, taken only once the last one
// expired) lets one of them sweep per interval, so that N replicas do not
// read the view N times. A sweep is idempotent, so a turn taken by a
// process that dies costs only that interval's sweep.
type MappingSweep struct {
	db  MappingSweepDB
	cfg MappingSweepConfig
}

// NewMappingSweep returns the mapping sweep over db.
func NewMappingSweep(db MappingSweepDB, cfg MappingSweepConfig) *MappingSweep {
	if cfg.Every <= 0 {
		cfg.Every = time.Minute
	}
	if cfg.Owner == "" {
		cfg.Owner = "sweep-" + newReconcileID()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.OnSweep == nil {
		cfg.OnSweep = func(int64, error, time.Duration) {}
	}
	return &MappingSweep{db: db, cfg: cfg}
}

// Run sweeps at start (when it is this process's turn) and every Every
// until ctx is done. A failure is logged when its cause changes, not on
// every attempt.
func (s *MappingSweep) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Every)
	defer t.Stop()
	lastCause := ""
	for {
		err := s.Once(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if cause := err.Error(); cause != lastCause {
				s.cfg.Logger.WarnContext(ctx, "mapping sweep failed; will try again", keyError, err)
				lastCause = cause
			}
		case err == nil && lastCause != "":
			s.cfg.Logger.InfoContext(ctx, "mapping sweep works again")
			lastCause = ""
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Once takes the turn and, if it got it, sweeps.
func (s *MappingSweep) Once(ctx context.Context) error {
	mine, err := s.takeTurn(ctx)
	if err != nil || !mine {
		return err
	}
	start := time.Now()
	n, err := MarkChanged(ctx, s.db)
	took := time.Since(start)
	s.cfg.OnSweep(n, err, took)
	if err != nil {
		return err
	}
	if n > 0 {
		s.cfg.Logger.InfoContext(ctx, "mapping sweep marked rows pending: their desired state changed where no trigger sees (a table the view joins, the date)",
			"rows", n, "took", took.Round(time.Millisecond))
	} else {
		s.cfg.Logger.DebugContext(ctx, "mapping sweep found nothing changed", "took", took.Round(time.Millisecond))
	}
	return nil
}

// takeTurn takes the sweep's lease if the last one expired.
func (s *MappingSweep) takeTurn(ctx context.Context) (bool, error) {
	ttl := s.cfg.Every * 9 / 10
	tag, err := s.db.Exec(ctx, `
		INSERT INTO syncd_leader AS l (name, leader_id, elected_at, expires_at)
		VALUES ($1, $2, now(), now() + make_interval(secs => $3))
		ON CONFLICT (name) DO UPDATE
		   SET leader_id = EXCLUDED.leader_id, elected_at = now(), expires_at = EXCLUDED.expires_at
		 WHERE l.expires_at <= now()`, sweepTurn, s.cfg.Owner, ttl.Seconds())
	if err != nil {
		return false, fmt.Errorf("take the mapping sweep's turn: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}
