package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/reconcile"
)

func init() {
	register("plan", "show the drift a scan would fix, without fixing it (makes no write call); --mapping F: what a change of the mapping would do; --detailed-exitcode: 2 when there is drift", cmdPlan)
}

// planEntry is one line of `syncd plan`.
type planEntry struct {
	EmployeeID string                `json:"employee_id,omitempty"`
	UserID     string                `json:"auth0_user_id,omitempty"`
	Drift      []reconcile.DriftKind `json:"drift"`
	Actions    reconcile.Plan        `json:"actions"`
	Note       string                `json:"note,omitempty"`
}

// planOutput is `syncd plan --json`.
type planOutput struct {
	Scan *reconcile.ScanResult `json:"scan"`
	Plan []planEntry           `json:"plan"`
	// Changes: applying the plan would change Auth0 (the exit status of
	// --detailed-exitcode is then 2).
	Changes bool `json:"changes"`
	// Apply is the command that applies the plan's row changes now; ""
	// when there are none.
	Apply string `json:"apply"`
	// Held lists the deprovisions the guard holds or lets settle.
	Held []reconcile.HeldDeprovision `json:"deprovisions_waiting"`
}

func cmdPlan(ctx context.Context, e *env, args []string) error {
	// With --detailed-exitcode, 2 means drift: every error, a mistyped
	// flag included, is then 1 (Terraform's convention). The flag is looked
	// for before parsing, so that it holds for a mistake in the parse too.
	detailed := slices.ContainsFunc(args, func(a string) bool {
		return a == "-detailed-exitcode" || a == "--detailed-exitcode" || a == "-detailed-exitcode=true" || a == "--detailed-exitcode=true"
	})
	err := plan(ctx, e, args)
	if detailed && err != nil && isUsage(err) && !errors.Is(err, errDrift) {
		for _, leaf := range leaves(err) {
			fmt.Fprintf(e.stderr, "syncd: %s\n", leaf)
		}
		return &exitStatus{code: exitError}
	}
	return err
}

// errDrift is plan's result with --detailed-exitcode when there is drift.
var errDrift = &exitStatus{code: exitChanges}

func plan(ctx context.Context, e *env, args []string) error {
	var (
		db       dbConfig
		a0       auth0Config
		client   clientConfig
		mapping  mappingConfig
		log      logConfig
		asJSON   bool
		detailed bool
		// mappingFile: plan a change of the mapping instead of drift.
		mappingFile string

		scanTimeout time.Duration
	)
	fs := newFlagSet(e, "plan")
	db.register(fs, e)
	a0.register(fs, e)
	client.register(fs, e)
	mapping.register(fs, e)
	log.register(fs, e)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	fs.BoolVar(&detailed, "detailed-exitcode", false, "exit status 0: no drift, 2: drift to fix, 1: an error (as terraform plan -detailed-exitcode)")
	scanTimeoutOK := registerScanTimeout(fs, e, &scanTimeout)
	registerMappingFile(fs, &mappingFile, "plan")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if mappingFile != "" {
		// No Auth0 call: the Auth0 settings do not matter.
		if err := e.check(fs, db.validate(), mapping.validate(), log.validate()); err != nil {
			return err
		}
		return planMapping(ctx, e, &db, &mapping, mappingFile, asJSON, detailed)
	}
	if err := e.check(fs, scanTimeoutOK(), validateScanTimeout(scanTimeout), db.validate(), a0.validate(), client.validate(), mapping.validate(), log.validate()); err != nil {
		return err
	}
	logger := log.logger(e.stderr)
	pool, err := pgxpool.New(ctx, db.URL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()
	api, err := newAuth0Client(&a0, &client, nil, logger)
	if err != nil {
		return err
	}
	rcfg := mapping.cfg
	rcfg.Logger, rcfg.Settings = logger, settingNames
	if err := api.Token(ctx); err != nil {
		return leadWithCause(err, rcfg)
	}
	rec, err := reconcile.New(pool, api, rcfg)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, scanTimeout)
	defer cancel()
	res, err := rec.Scan(sctx)
	if err != nil {
		if ctx.Err() == nil && errors.Is(sctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("drift scan timed out after %s (SYNCD_SCAN_TIMEOUT): %w", scanTimeout, err)
		}
		return leadWithCause(err, rec.Config())
	}
	out := planOutput{Scan: res, Plan: []planEntry{}, Changes: res.HasDrift()}
	var resync []string
	for _, d := range res.Drifted {
		p, _, err := rec.PlanFor(ctx, d.EmployeeID)
		ent := planEntry{EmployeeID: d.EmployeeID, UserID: d.UserID, Drift: d.Kinds, Actions: cmpPlan(p)}
		if err != nil {
			ent.Note = err.Error()
		}
		out.Plan = append(out.Plan, ent)
		resync = append(resync, d.EmployeeID)
	}
	for _, o := range res.Orphans {
		note := o.Reason
		if o.Blocked {
			note += "; blocked already: nothing to do"
		}
		out.Plan = append(out.Plan, planEntry{EmployeeID: o.EmployeeID, UserID: o.UserID, Drift: []reconcile.DriftKind{reconcile.DriftOrphan},
			Actions: cmpPlan(rec.OrphanPlan(o)), Note: note})
	}
	if len(resync) > 0 {
		out.Apply = "syncd resync --employee " + shellQuote(joinIDs(resync, ",", 0))
	}
	if out.Held, err = reconcile.Waiting(ctx, pool); err != nil {
		return err
	}
	if out.Held == nil {
		out.Held = []reconcile.HeldDeprovision{}
	}
	if asJSON {
		if err := printJSON(e, out); err != nil {
			return err
		}
	} else {
		printPlan(e, &out, mapping.Deprovision)
	}
	if detailed && out.Changes {
		return errDrift
	}
	return nil
}

// maxApplyIDs is the most ids the text output puts on its resync line; the
// JSON's apply has them all.
const maxApplyIDs = 50

// cmpPlan makes an empty plan [] in JSON.
func cmpPlan(p reconcile.Plan) reconcile.Plan {
	if p == nil {
		return reconcile.Plan{}
	}
	return p
}

func printPlan(e *env, out *planOutput, deprovision string) {
	res := out.Scan
	fmt.Fprintf(e.stdout, "Compared %d of %d employees with %d managed Auth0 accounts in %s.\n", res.Compared, res.Employees, res.ManagedUsers, formatDuration(res.Took))
	if len(res.NotCompared) > 0 {
		fmt.Fprintf(e.stdout, "Not compared (%d):\n", res.Employees-res.Compared)
		for _, g := range res.NotCompared {
			fmt.Fprintf(e.stdout, "  %s %s: %s\n", plural(g.Count, "row", "rows"), idsPhrase(g.EmployeeIDs), g.Reason)
		}
	}
	if res.Deprovisioned > 0 {
		fmt.Fprintf(e.stdout, "%s of deleted rows deprovisioned by syncd (blocked): at rest, not drift.\n", plural(res.Deprovisioned, "account", "accounts"))
	}
	if len(out.Plan) == 0 {
		fmt.Fprintln(e.stdout, "No drift: Auth0 matches the employees table.")
	} else {
		fmt.Fprintln(e.stdout)
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "EMPLOYEE\tAUTH0 USER\tDRIFT\tPLANNED ACTIONS")
		for _, ent := range out.Plan {
			emp := "-"
			if ent.EmployeeID != "" {
				emp = fmt.Sprint(ent.EmployeeID)
			}
			actions := ent.Actions.String()
			if len(ent.Actions) == 0 {
				actions = "none"
			}
			if ent.Note != "" {
				actions += " (" + ent.Note + ")"
			}
			fmt.Fprintf(w, "%s\t%s\t%v\t%s\n", emp, ent.UserID, ent.Drift, actions)
		}
		w.Flush()
		if n := res.Deprovisions(); n > 0 {
			fmt.Fprintf(e.stdout, "\n%d of these would %s an account (subject to --max-deprovision).\n", n, deprovision)
		}
		fmt.Fprintln(e.stdout)
		switch n := len(res.Drifted); {
		case n > maxApplyIDs:
			fmt.Fprintf(e.stdout, "To apply it now (a running syncd does; its next drift scan would too), for the %d drifted rows:\n"+
				"  syncd plan --json | jq -r .apply | sh     (or syncd resync --all, which redoes every row)\n", n)
		case out.Apply != "":
			fmt.Fprintf(e.stdout, "To apply it now (a running syncd does; its next drift scan would too):\n  %s\n", out.Apply)
		}
		if n := res.ActionableOrphans(); n > 0 {
			fmt.Fprintf(e.stdout, "%s: a running syncd's next drift scan %ss them, under the mass-deprovision guard.\n", plural(n, "orphan account", "orphan accounts"), deprovision)
		}
	}
	if len(out.Held) > 0 {
		printWaiting(e, out.Held, false)
	}
}

// plural says "1 row" or "3 rows".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// idsPhrase is "(employee 4)" or "(employees 3, 6, … 8 more)".
func idsPhrase(ids []string) string {
	if len(ids) == 1 {
		return "(employee " + ids[0] + ")"
	}
	return "(employees " + joinIDs(ids, ", ", 10) + ")"
}

// joinIDs joins ids with sep, at most limit of them (0: all) and then
// "… N more".
func joinIDs(ids []string, sep string, limit int) string {
	var b strings.Builder
	for i, id := range ids {
		if limit > 0 && i == limit {
			fmt.Fprintf(&b, " … %d more", len(ids)-limit)
			break
		}
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(id)
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it holds anything but the
// characters keys and their separators usually have.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
