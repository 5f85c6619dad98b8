package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/reconcile"
)

func init() {
	register("plan", "show the drift a scan would fix, without fixing it (makes no write call)", cmdPlan)
}

// planEntry is one line of `syncd plan`.
type planEntry struct {
	EmployeeID int64                 `json:"employee_id,omitempty"`
	UserID     string                `json:"auth0_user_id,omitempty"`
	Drift      []reconcile.DriftKind `json:"drift"`
	Actions    reconcile.Plan        `json:"actions"`
	Note       string                `json:"note,omitempty"`
}

func cmdPlan(ctx context.Context, e *env, args []string) error {
	var (
		db      dbConfig
		a0      auth0Config
		client  clientConfig
		mapping mappingConfig
		log     logConfig
		asJSON  bool

		scanTimeout time.Duration
	)
	fs := newFlagSet(e, "plan")
	db.register(fs, e)
	a0.register(fs, e)
	client.register(fs, e)
	mapping.register(fs, e)
	log.register(fs, e)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	scanTimeoutOK := registerScanTimeout(fs, e, &scanTimeout)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := firstErr(scanTimeoutOK(), validateScanTimeout(scanTimeout), db.validate(), a0.validate(), client.validate(), mapping.validate(), log.validate()); err != nil {
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
	var entries []planEntry
	for _, d := range res.Drifted {
		p, _, err := rec.PlanFor(ctx, d.EmployeeID)
		ent := planEntry{EmployeeID: d.EmployeeID, UserID: d.UserID, Drift: d.Kinds, Actions: p}
		if err != nil {
			ent.Note = err.Error()
		}
		entries = append(entries, ent)
	}
	for _, o := range res.Orphans {
		entries = append(entries, planEntry{EmployeeID: o.EmployeeID, UserID: o.UserID, Drift: []reconcile.DriftKind{reconcile.DriftOrphan},
			Actions: rec.OrphanPlan(o), Note: o.Reason})
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"scan": res, "plan": entries})
	}
	fmt.Fprintf(e.stdout, "Compared %d of %d employees with %d managed Auth0 accounts in %s.\n", res.Compared, res.Employees, res.ManagedUsers, formatDuration(res.Took))
	if len(entries) == 0 {
		fmt.Fprintln(e.stdout, "No drift: Auth0 matches the employees table.")
		return nil
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "EMPLOYEE\tAUTH0 USER\tDRIFT\tPLANNED ACTIONS")
	for _, ent := range entries {
		emp := "-"
		if ent.EmployeeID != 0 {
			emp = fmt.Sprint(ent.EmployeeID)
		}
		actions := ent.Actions.String()
		if ent.Note != "" {
			actions += " (" + ent.Note + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%v\t%s\n", emp, ent.UserID, ent.Drift, actions)
	}
	w.Flush()
	if n := res.Deprovisions(); n > 0 {
		fmt.Fprintf(e.stdout, "\n%d of these would block or delete an account (subject to --max-deprovision).\n", n)
	}
	return nil
}
