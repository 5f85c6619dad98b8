package main

import (
	"context"
	"fmt"
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
	if err := db.validate(); err != nil {
		return err
	}
	if all == (len(ids) > 0) {
		return usagef("resync: give --employee ID or --all (not both)")
	}
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	n, err := reconcile.Requeue(ctx, conn, ids, all)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "marked %d employees pending; the running daemon reconciles them (reading Auth0 first)\n", n)
	if !all && n < int64(len(ids)) {
		return fmt.Errorf("%d of the %d employee ids given have no row", int64(len(ids))-n, len(ids))
	}
	return nil
}
