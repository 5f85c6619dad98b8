package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/reconcile"
)

func init() {
	register("status", "show sync status counts, oldest pending age, latest failures and slot lag", cmdStatus)
}

// cmdStatus is `syncd status`: the read model is reconcile's (ReadStatus);
// this only parses flags and formats it.
func cmdStatus(ctx context.Context, e *env, args []string) error {
	var (
		db     dbConfig
		asJSON bool
		limit  int
	)
	fs := newFlagSet(e, "status")
	db.register(fs, e)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	fs.IntVar(&limit, "limit", 10, "how many reasons (failures, conflicts and retries, identical ones grouped) to list")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if limit < 0 {
		return usagef("--limit: must be 0 or more, got %d", limit)
	}
	if err := e.check(fs, db.validate()); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rep, err := reconcile.ReadStatus(ctx, conn, limit)
	if err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(e, rep); err != nil {
			return err
		}
	} else {
		printStatus(e, rep)
	}
	// Rows that wait for a person make the exit status 3, for scripts.
	if rep.Counts[reconcile.StatusFailed]+rep.Counts[reconcile.StatusConflict] > 0 {
		return &exitStatus{code: exitAttention}
	}
	return nil
}

func printStatus(e *env, rep *reconcile.StatusReport) {
	failed, conflict, retrying := rep.Counts[reconcile.StatusFailed], rep.Counts[reconcile.StatusConflict], rep.Counts[reconcile.StatusRetrying]
	held := 0
	for _, d := range rep.Deprovisions {
		if d.State == reconcile.Held {
			held++
		}
	}
	var needs []string
	if len(rep.Holds) > 0 {
		needs = append(needs, "all work is held for a configuration fault (below)")
	}
	if failed+conflict > 0 {
		needs = append(needs, fmt.Sprintf("%d failed, %d conflict (exit status 3)", failed, conflict))
	}
	if held > 0 {
		needs = append(needs, plural(held, "deprovision", "deprovisions")+" held by the mass-deprovision guard")
	}
	headline := "Nothing needs a person"
	if len(needs) > 0 {
		headline = "Needs a person: " + strings.Join(needs, "; ")
	}
	if retrying > 0 {
		headline += fmt.Sprintf("; %d retrying by themselves", retrying)
	}
	fmt.Fprintf(e.stdout, "%s.\n\n", headline)
	printHolds(e, rep.Holds)
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STATUS\tEMPLOYEES")
	var total int64
	for _, s := range reconcile.Statuses {
		fmt.Fprintf(w, "%s\t%d\n", s, rep.Counts[s])
		total += rep.Counts[s]
	}
	fmt.Fprintf(w, "total\t%d\n", total)
	w.Flush()
	fmt.Fprintln(e.stdout)
	if rep.OldestPending != nil {
		fmt.Fprintf(e.stdout, "Pending work: %d outbox rows; oldest %s old (employee %s)\n", rep.OutboxRows,
			formatDuration(time.Duration(rep.OldestPending.AgeSeconds*float64(time.Second))), rep.OldestPending.EmployeeID)
	} else {
		fmt.Fprintln(e.stdout, "Pending work: none")
	}
	for _, s := range rep.Slots {
		state := "inactive"
		if s.Active {
			state = "active"
		}
		fmt.Fprintf(e.stdout, "Replication slot %q: %s, lag %d bytes, wal_status %s\n", s.Name, state, s.LagBytes, s.WALState)
	}
	printWaiting(e, rep.Deprovisions, false)
	printImportJobs(e, rep.ImportJobs)
	if len(rep.Reasons) == 0 {
		return
	}
	fmt.Fprintln(e.stdout, "\nFailures, conflicts and retries by reason (identical reasons grouped, latest first):")
	w = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STATUS\tROWS\tEMPLOYEES\tLATEST\tREASON")
	seen := map[string]bool{}
	for _, g := range rep.Reasons {
		// The reason is printed whole: its advice is at the end.
		reason := strings.Join(strings.Fields(g.Error), " ")
		emps := joinIDs(g.EmployeeIDs, ", ", 0)
		if g.Count > int64(len(g.EmployeeIDs)) {
			emps += fmt.Sprintf(" … %d more", g.Count-int64(len(g.EmployeeIDs)))
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", g.Status, g.Count, emps, g.Latest.Local().Format(time.DateTime), reason)
		seen[g.Status] = true
	}
	w.Flush()
	if seen[reconcile.StatusFailed] {
		fmt.Fprintln(e.stdout, "\nfailed: fix the row (the reason is Auth0's or syncd's word on the data); the change is picked up by itself.")
	}
	if seen[reconcile.StatusConflict] {
		fmt.Fprintln(e.stdout, "conflict: the email belongs to another Auth0 account; resolve it by hand, then `syncd resync --employee ID`.")
	}
	if seen[reconcile.StatusRetrying] {
		fmt.Fprintln(e.stdout, "retrying: transient; syncd tries again by itself (auth0_next_attempt_at).")
	}
}

// printWaiting says what the mass-deprovision guard holds: a headline with
// the reason (once, never cut) and how to act, then the deprovisions if all.
func printWaiting(e *env, waiting []reconcile.HeldDeprovision, all bool) {
	var held, settling []reconcile.HeldDeprovision
	for _, w := range waiting {
		if w.State == reconcile.Held {
			held = append(held, w)
		} else {
			settling = append(settling, w)
		}
	}
	if len(held) == 0 && len(settling) == 0 {
		if all {
			fmt.Fprintln(e.stdout, "The mass-deprovision guard holds nothing.")
		}
		return
	}
	if len(held) > 0 {
		fmt.Fprintf(e.stdout, "\nDeprovision guard: %d deprovisions held since %s: %s\n", len(held), held[0].Since.Local().Format(time.DateTime), held[0].Reason)
		fmt.Fprintln(e.stdout, "  Release them: `syncd guard release`; or set the rows active again (the hold clears by itself).")
	}
	if len(settling) > 0 {
		fmt.Fprintf(e.stdout, "Deprovision guard: %d deprovisions settling (counted as one batch within seconds).\n", len(settling))
	}
	if !all {
		if len(held) > 0 {
			fmt.Fprintln(e.stdout, "  List them: `syncd guard list`.")
		}
		return
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\nSTATE\tKIND\tEMPLOYEE\tAUTH0 USER\tSINCE")
	for _, h := range waiting {
		emp := "-"
		if h.EmployeeID != "" {
			emp = fmt.Sprint(h.EmployeeID)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", h.State, h.Kind, emp, cmp.Or(h.UserID, "-"), h.Since.Local().Format(time.DateTime))
	}
	w.Flush()
}

// printJSON writes v to standard output as the commands' --json prints it:
// indented, one document.
func printJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
