package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/reconcile"
)

func init() {
	register("resync", "mark employees pending so the running daemon redoes them (reading Auth0 first)", cmdResync)
}

// idList is a repeatable, comma-separated --employee flag: the table's own
// keys (integers, uuids or text), checked against the table.
type idList []string

func (l *idList) String() string { return strings.Join(*l, ",") }

func (l *idList) Set(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		id := strings.TrimSpace(part)
		if id == "" {
			return fmt.Errorf("empty employee id in %q", s)
		}
		*l = append(*l, id)
	}
	return nil
}

func cmdResync(ctx context.Context, e *env, args []string) error {
	var (
		db  dbConfig
		ids idList
		all bool
	)
	fs := newFlagSet(e, "resync")
	db.register(fs, e)
	fs.Var(&ids, "employee", "employee id to resync (repeatable, or comma-separated)")
	fs.BoolVar(&all, "all", false, "resync every employee")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := e.check(fs, db.validate()); err != nil {
		return err
	}
	if all == (len(ids) > 0) {
		return usagef("resync: give --employee ID or --all (not both)")
	}
	slices.SortFunc(ids, reconcile.CompareKeys)
	ids = slices.Compact(ids)
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var missing []string
	if !all {
		// Texts that are no key of the table's type are a usage error; the
		// ids that have no row are named first: a typo must not scroll away
		// behind what was done.
		var bad *reconcile.NotAKeyError
		if missing, err = reconcile.MissingEmployees(ctx, conn, ids); errors.As(err, &bad) {
			return usagef("--employee: %s", bad)
		} else if err != nil {
			return err
		}
		if len(missing) > 0 {
			fmt.Fprintf(e.stderr, "syncd: no employee row has id %s: not marked\n", joinIDs(missing, ", ", 0))
			ids = slices.DeleteFunc(ids, func(id string) bool { return slices.Contains(missing, id) })
		}
	}
	if all || len(ids) > 0 {
		n, err := reconcile.Requeue(ctx, conn, ids, all)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "marked %s pending; the running daemon reconciles them (reading Auth0 first)\n", plural(int(n), "employee", "employees"))
	}
	if len(missing) > 0 {
		return &exitStatus{code: exitError} // said above
	}
	return nil
}
