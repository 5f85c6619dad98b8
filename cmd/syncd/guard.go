package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/reconcile"
)

func init() {
	register("guard", "list the deprovisions the mass-deprovision guard holds, or release them (guard release)", cmdGuard)
}

// cmdGuard is `syncd guard [list|release]`: wiring only, the guard's rules
// are reconcile's.
func cmdGuard(ctx context.Context, e *env, args []string) error {
	action := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	var (
		db     dbConfig
		by     string
		asJSON bool
	)
	fs := newFlagSet(e, "guard "+action)
	db.register(fs, e)
	switch action {
	case "list":
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	case "release":
		def := e.getenv("USER")
		if def == "" {
			def = "operator"
		}
		fs.StringVar(&by, "by", def, "who releases, recorded in auth0_sync_logs (default: $USER)")
	default:
		return usagef("guard: unknown action %q (want list or release)", action)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := e.check(fs, db.validate()); err != nil {
		return err
	}
	if action == "release" && strings.TrimSpace(by) == "" {
		return usagef("guard release: --by must name who releases")
	}
	pool, err := pgxpool.New(ctx, db.URL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()
	if action == "release" {
		released, err := reconcile.Release(ctx, pool, by)
		if err != nil {
			return err
		}
		if len(released) == 0 {
			fmt.Fprintln(e.stdout, "Nothing is held.")
			return nil
		}
		fmt.Fprintf(e.stdout, "Released %d held deprovisions (recorded in auth0_sync_logs as released by %s); a running syncd carries them out now (orphan accounts at its next drift scan).\n", len(released), by)
		return nil
	}
	waiting, err := reconcile.Waiting(ctx, pool)
	if err != nil {
		return err
	}
	if asJSON {
		if waiting == nil {
			waiting = []reconcile.HeldDeprovision{}
		}
		return printJSON(e, waiting)
	}
	printWaiting(e, waiting, true)
	return nil
}
