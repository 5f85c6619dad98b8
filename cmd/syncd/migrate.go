package main

import (
	"context"
	"time"

	syncdsql "github.com/syncd/syncd/sql"
)

func init() {
	register("migrate", "create or update syncd's tables, triggers and publication (idempotent, additive)", cmdMigrate)
}

func cmdMigrate(ctx context.Context, e *env, args []string) error {
	var (
		db  dbConfig
		log logConfig
	)
	fs := newFlagSet(e, "migrate")
	db.register(fs, e)
	log.register(fs, e)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := e.check(fs, db.validate(), log.validate()); err != nil {
		return err
	}
	logger := log.logger(e.stderr)
	start := time.Now()
	res, err := syncdsql.MigrateURL(ctx, db.URL)
	if err != nil {
		return err
	}
	if res.From == res.To {
		logger.InfoContext(ctx, "schema is current", "version", res.To)
		return nil
	}
	logger.InfoContext(ctx, "schema migrated", "from", res.From, "to", res.To, "took", formatDuration(time.Since(start)))
	return nil
}
