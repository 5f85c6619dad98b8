package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/reconcile"
)

func init() {
	register("resync", "mark employees pending so the running daemon redoes them (reading Auth0 first)", cmdResync)
}

// idList is a repeatable, comma-separated --employee flag.
type idList []int64

func (l *idList) String() string { return fmt.Sprint(*l) }

func (l *idList) Set(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
		if err != nil {
			return fmt.Errorf("not an employee id: %q", part)
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
	for _, id := range ids {
		if id < 1 {
			return usagef("--employee: employee ids are 1 or more, got %d", id)
		}
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var missing []int64
	if !all {
		// The ids that have no row are named first: a typo must not
		// scroll away behind what was done.
		if missing, err = reconcile.MissingEmployees(ctx, conn, ids); err != nil {
			return err
		}
		if len(missing) > 0 {
			fmt.Fprintf(e.stderr, "syncd: no employee row has id %s: not marked\n", joinIDs(missing, ", ", 0))
			ids = slices.DeleteFunc(ids, func(id int64) bool { return slices.Contains(missing, id) })
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
