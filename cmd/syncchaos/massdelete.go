package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/syncd/syncd/auth0/emulator"
)

// releasedBy is who the mass-delete scenario's operator says they are.
const releasedBy = "chaos-operator"

// runMassDelete checks the mass-deprovision guard (DESIGN.md invariant 7)
// with one syncd per change source: a DELETE of 40% of the employees is held
// whole at no cost (no Auth0 call, no audit row per cycle, the slot not held
// back), shown by `syncd status` and `syncd plan` (exit 2 with
// --detailed-exitcode), then carried out exactly once per account by `syncd
// guard release`, after which plan finds no drift and no orphan (the
// blocked accounts of deleted rows are at rest); a mass `active = false`
// undone before any release clears by itself, and a single leaver
// afterwards is blocked as usual.
func runMassDelete(ctx context.Context, s *suite, r *result) error {
	n := 500
	if s.cfg.Short {
		n = 60
	}
	var wg sync.WaitGroup
	sides := map[string]*result{}
	for _, source := range []string{"notify", "replication"} {
		sr := &result{name: source}
		sides[source] = sr
		wg.Go(func() {
			if err := massDeleteSide(ctx, s, sr, source, n); err != nil {
				sr.fail("%v", err)
			}
		})
	}
	wg.Wait()
	for _, source := range []string{"notify", "replication"} {
		sr := sides[source]
		for _, num := range sr.numbers {
			r.note("%s: %s", source, num)
		}
		for _, p := range sr.problems {
			r.fail("%s: %s", source, p)
		}
	}
	return nil
}

// massDeleteSide is runMassDelete for one change source.
func massDeleteSide(ctx context.Context, s *suite, r *result, source string, n int) error {
	w, err := s.newWorld(ctx, "mass-delete-"+source, r, s.cloner, &emulator.Options{})
	if err != nil {
		return err
	}
	defer w.close()
	if err := w.insertEmployees(ctx, "massdel", 1, n); err != nil {
		return err
	}
	// One drift scan at start, none later: a scan reads every account and
	// role member, which would hide what a held deprovision costs.
	p, err := w.start(ctx, "1", source, "--resync-interval", "1h", "--deprovision-settle", "1s")
	if err != nil {
		return err
	}
	if c, _, ok := w.waitSettled(ctx, 2*time.Minute); !ok {
		return fmt.Errorf("no convergence before the mass delete: %s", c)
	}
	if !eventually(ctx, time.Minute, func() bool {
		v, ok := p.metric("syncd_drift_scan_last_success_timestamp_seconds")
		return ok && v > 0
	}) {
		return fmt.Errorf("the drift scan at start did not finish within 1m")
	}

	// The mistake: 40% of the table deleted in one statement (limit 10%).
	k := n * 2 / 5
	deleted := map[string]bool{} // their accounts
	rows, err := w.pool.Query(ctx, `DELETE FROM employees WHERE id IN (SELECT id FROM employees ORDER BY id LIMIT $1) RETURNING auth0_user_id`, k)
	if err != nil {
		return fmt.Errorf("delete employees: %w", err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("delete employees: %w", err)
		}
		deleted[id] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("delete employees: %w", err)
	}
	before := w.emu.userCalls() // per account, just before the mistake
	var lsn string
	if err := w.pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		return fmt.Errorf("read wal position: %w", err)
	}

	if !eventually(ctx, 2*time.Minute, func() bool {
		held, settling := w.guardState(ctx)
		c, err := w.counts(ctx)
		return held == k && settling == 0 && err == nil && c.Outbox == 0
	}) {
		held, settling := w.guardState(ctx)
		c, _ := w.counts(ctx)
		return fmt.Errorf("the guard did not hold the %d deletions within 2m: %d held, %d settling; %s", k, held, settling, c)
	}
	w.logf("%d of %d employees deleted: %d held", k, n, k)
	r.check(p.logCount("mass-deprovision guard tripped") == 1, "the log says the guard tripped %d times, want once", p.logCount("mass-deprovision guard tripped"))
	r.check(w.audit(ctx, `status = 'held'`) == k, "%d audit rows say held, want one per deletion (%d)", w.audit(ctx, `status = 'held'`), k)
	if blocked := w.blockedOf(deleted); blocked != 0 {
		r.fail("%d accounts blocked while the batch is held (want none: held whole)", blocked)
	}
	if !eventually(ctx, time.Minute, func() bool {
		rz, err := p.readyz()
		v, ok := p.metric("syncd_deprovision_guard_tripped")
		return err == nil && rz.Code == 200 && strings.HasPrefix(rz.Checks["deprovision_guard"], "holding deprovisioning") && ok && v == 1
	}) {
		rz, _ := p.readyz()
		r.fail("/readyz (%d) and syncd_deprovision_guard_tripped do not say the guard holds: %v", rz.Code, rz.Checks)
	}
	if source == "replication" {
		r.check(w.slotPassed(ctx, lsn), "the slot's confirmed_flush_lsn did not pass the mass delete (%s) within 1m: held deprovisions hold the slot back", lsn)
	}

	// Held costs nothing per cycle: across several guard steps (and, with
	// notify, outbox polls) no Auth0 call and no audit row.
	calls, logs, err := w.heldWindow(ctx, p, source)
	if err != nil {
		return err
	}
	r.note("held %d of %d whole; while held %d Auth0 calls, %d audit rows", k, n, calls, logs)
	r.check(calls == 0, "%d Auth0 API calls while the batch was held", calls)
	r.check(logs == 0, "%d audit rows while the batch was held", logs)
	if source == "replication" {
		r.note("slot passed the DELETE")
	}

	// What the operator sees while it is held: status names the hold (exit
	// 0: no row is failed), plan shows the held deprovisions and exits 2
	// with --detailed-exitcode (the deleted rows' accounts are not blocked).
	out, code, err := w.syncdCmdCode(ctx, w.env(w.emu.URL, clientSecret), "status")
	if err != nil {
		return err
	}
	r.check(code == 0 && strings.Contains(out, fmt.Sprintf("Deprovision guard: %d deprovisions held since", k)),
		"status while held: exit %d, said %q", code, truncate(out, 600))
	out, code, err = w.syncdCmdCode(ctx, w.env(w.emu.URL, clientSecret), "plan", "--detailed-exitcode", "--roles", rolesFlag)
	if err != nil {
		return err
	}
	r.check(code == 2 && strings.Contains(out, fmt.Sprintf("Deprovision guard: %d deprovisions held since", k)) && strings.Contains(out, "syncd guard release"),
		"plan --detailed-exitcode while held: exit %d (want 2), said %q", code, truncate(out, 600))

	// The operator releases exactly these, as an operator would.
	out, err = w.syncdCmd(ctx, "guard", "release", "--by", releasedBy)
	if err != nil {
		return err
	}
	r.check(strings.Contains(out, fmt.Sprintf("Released %d held deprovisions", k)), "guard release said %q", out)
	released := time.Now()
	if !eventually(ctx, 2*time.Minute, func() bool { return w.blockedOf(deleted) == k && w.quiet(ctx, p) }) {
		return fmt.Errorf("%d of %d released accounts blocked within 2m", w.blockedOf(deleted), k)
	}
	w.logf("released: %d blocked %s after guard release", k, time.Since(released).Round(time.Millisecond))
	once, touched := writesSince(before, w.emu.userCalls(), deleted)
	r.check(once == k, "%d of %d deleted employees' accounts were blocked with exactly one PATCH (and no DELETE)", once, k)
	r.check(len(touched) == 0, "accounts no deletion names were touched: %v", touched)
	r.check(w.audit(ctx, `action = 'guard_release' AND response_data->>'released_by' = '`+releasedBy+`'`) == k,
		"%d guard_release audit rows name %s, want %d", w.audit(ctx, `action = 'guard_release' AND response_data->>'released_by' = '`+releasedBy+`'`), releasedBy, k)
	r.note("released: %d/%d blocked exactly once, %d other accounts touched", once, k, len(touched))

	// The accounts syncd blocked for deleted rows are at rest: plan shows
	// no drift and no orphan, and exits 0 with --detailed-exitcode.
	out, code, err = w.syncdCmdCode(ctx, w.env(w.emu.URL, clientSecret), "plan", "--detailed-exitcode", "--roles", rolesFlag)
	if err != nil {
		return err
	}
	r.check(code == 0 && strings.Contains(out, "No drift") && !strings.Contains(out, "orphan") &&
		strings.Contains(out, fmt.Sprintf("%d accounts of deleted rows deprovisioned by syncd (blocked): at rest, not drift.", k)),
		"plan after the release: exit %d (want 0), said %q", code, truncate(out, 600))

	// A mass `active = false` undone before any release: nothing is blocked
	// and the hold clears by itself.
	m := (n - k) * 2 / 5
	var undo []string
	if err := w.pool.QueryRow(ctx, `WITH x AS (UPDATE employees SET active = false WHERE id IN (SELECT id FROM employees ORDER BY id LIMIT $1) RETURNING id::text AS key)
		SELECT array_agg(key) FROM x`, m).Scan(&undo); err != nil {
		return fmt.Errorf("deactivate employees: %w", err)
	}
	before = w.emu.userCalls()
	if !eventually(ctx, 2*time.Minute, func() bool { held, settling := w.guardState(ctx); return held == m && settling == 0 }) {
		held, settling := w.guardState(ctx)
		return fmt.Errorf("the guard did not hold the %d deactivations within 2m: %d held, %d settling", m, held, settling)
	}
	if _, err := w.pool.Exec(ctx, `UPDATE employees SET active = true WHERE id::text = ANY($1::text[])`, undo); err != nil {
		return fmt.Errorf("reactivate employees: %w", err)
	}
	if !eventually(ctx, 2*time.Minute, func() bool {
		held, settling := w.guardState(ctx)
		rz, err := p.readyz()
		c, cerr := w.counts(ctx)
		return held+settling == 0 && err == nil && rz.Checks["deprovision_guard"] == "" && cerr == nil && c.settled() && w.quiet(ctx, p)
	}) {
		held, settling := w.guardState(ctx)
		rz, _ := p.readyz()
		return fmt.Errorf("the hold did not clear within 2m of the undo: %d held, %d settling, /readyz %v", held, settling, rz.Checks)
	}
	if out, err := w.syncdCmd(ctx, "guard", "list"); err != nil {
		return err
	} else {
		r.check(strings.Contains(out, "holds nothing"), "guard list after the undo said %q", out)
	}
	_, touched = writesSince(before, w.emu.userCalls(), nil)
	r.check(len(touched) == 0, "accounts written to by a mass deactivation undone before release: %v", touched)
	r.note("undo: %d deactivations held, cleared by themselves, %d accounts written", m, len(touched))

	// Then one legitimate leaver is blocked as usual.
	var leaver string
	var leaverAccount string
	// The calls are counted from before the commit: a single leaver takes
	// the guard's fast path and may be blocked before this goroutine runs
	// again after the UPDATE.
	before = w.emu.userCalls()
	if err := w.pool.QueryRow(ctx, `UPDATE employees SET active = false WHERE id = (SELECT id FROM employees ORDER BY id DESC LIMIT 1) RETURNING id::text, auth0_user_id`).Scan(&leaver, &leaverAccount); err != nil {
		return fmt.Errorf("deactivate a leaver: %w", err)
	}
	if !eventually(ctx, 2*time.Minute, func() bool {
		c, err := w.counts(ctx)
		return err == nil && c.Deprovisioned == 1 && c.settled() && w.quiet(ctx, p)
	}) {
		c, _ := w.counts(ctx)
		return fmt.Errorf("a single leaver was not blocked within 2m: %s", c)
	}
	once, touched = writesSince(before, w.emu.userCalls(), map[string]bool{leaverAccount: true})
	r.check(once == 1, "the leaver's account was not blocked with exactly one PATCH")
	r.check(len(touched) == 0, "accounts other than the leaver's were touched: %v", touched)
	r.check(w.blockedOf(map[string]bool{leaverAccount: true}) == 1, "the leaver's account is not blocked")

	r.check(p.alive(), "syncd exited: %s", tail(p.logPath, 2))
	w.stop(p)
	w.verify(ctx, expectations{status: map[string]string{leaver: "deprovisioned"}, foreign: deleted})
	return nil
}

// heldWindow watches a held batch across several guard steps (each reads
// syncd_deprovisions a few times; the statistics say when they ran) and,
// with notify, several outbox polls, and returns the Auth0 API calls and
// audit rows made meanwhile. Nothing here reads syncd_deprovisions.
func (w *world) heldWindow(ctx context.Context, p *proc, source string) (calls int64, logs int, err error) {
	if !eventually(ctx, time.Minute, func() bool { return w.quiet(ctx, p) }) {
		return 0, 0, fmt.Errorf("reconciles still running a minute after the batch was held")
	}
	guardScans, outboxScans := w.tableScans(ctx, "syncd_deprovisions"), w.tableScans(ctx, "auth0_outbox")
	callsBefore, logsBefore := w.emu.Calls(), w.audit(ctx, "true")
	// At least 25 reads of the guard's table: at least ~5 guard steps.
	const guardReads, outboxReads = 25, 5
	if !eventually(ctx, 2*time.Minute, func() bool {
		ok := w.tableScans(ctx, "syncd_deprovisions") >= guardScans+guardReads
		if source == "notify" {
			ok = ok && w.tableScans(ctx, "auth0_outbox") >= outboxScans+outboxReads
		}
		return ok
	}) {
		return 0, 0, fmt.Errorf("the guard did not step (or the outbox was not polled) within 2m while holding")
	}
	for _, c := range w.emu.Calls() {
		if !strings.Contains(c.Endpoint, "/api/v2/") {
			continue
		}
		i := slices.IndexFunc(callsBefore, func(b emulator.Call) bool { return b.Endpoint == c.Endpoint && b.Status == c.Status })
		if i < 0 {
			calls += c.Count
		} else {
			calls += c.Count - callsBefore[i].Count
		}
	}
	w.logf("held window: %d guard-table reads, %d outbox reads, %d Auth0 calls",
		w.tableScans(ctx, "syncd_deprovisions")-guardScans, w.tableScans(ctx, "auth0_outbox")-outboxScans, calls)
	return calls, w.audit(ctx, "true") - logsBefore, nil
}

// eventually polls cond every 50 ms until it holds (true), ctx ends or
// timeout passes (false). The timeout only bounds a check that converges.
func eventually(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		sleep(ctx, 50*time.Millisecond)
	}
}

// guardState counts held and settling deprovisions.
func (w *world) guardState(ctx context.Context) (held, settling int) {
	_ = w.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'held'), count(*) FILTER (WHERE state = 'settling') FROM syncd_deprovisions`).Scan(&held, &settling)
	return held, settling
}

// quiet says whether no reconcile runs and nothing waits in the outbox or
// in the guard's allowed-but-not-done list.
func (w *world) quiet(ctx context.Context, p *proc) bool {
	running, ok := p.metric("syncd_reconciles_running")
	var outbox, allowed int
	err := w.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM auth0_outbox), (SELECT count(*) FROM syncd_deprovisions WHERE state = 'allowed')`).Scan(&outbox, &allowed)
	return ok && running == 0 && err == nil && outbox == 0 && allowed == 0
}

// audit counts auth0_sync_logs rows matching where.
func (w *world) audit(ctx context.Context, where string) int {
	n := -1
	_ = w.pool.QueryRow(ctx, `SELECT count(*) FROM auth0_sync_logs WHERE `+where).Scan(&n)
	return n
}

// tableScans is how often table has been read (sequential plus index
// scans), as the statistics collector knows it.
func (w *world) tableScans(ctx context.Context, table string) int64 {
	var n int64
	_ = w.pool.QueryRow(ctx, `SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = $1`, table).Scan(&n)
	return n
}

// slotPassed waits (up to 1m) for the world's slot to confirm lsn.
func (w *world) slotPassed(ctx context.Context, lsn string) bool {
	return eventually(ctx, time.Minute, func() bool {
		var passed bool
		err := w.pool.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn >= $1::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = $2`, lsn, w.slot).Scan(&passed)
		return err == nil && passed
	})
}

// blockedOf counts the accounts among ids that are blocked.
func (w *world) blockedOf(ids map[string]bool) int {
	n := 0
	for id := range ids {
		if b, _ := w.emu.User(id)["blocked"].(bool); b {
			n++
		}
	}
	return n
}

// writesSince compares per-account calls: it returns how many accounts of
// want got exactly one PATCH and no DELETE of the account (their sessions and
// refresh tokens revoked once each is expected), and every other account that
// was written to (PATCH, DELETE, POST) or any request that touched an
// account outside want.
func writesSince(before, after map[string]int64, want map[string]bool) (once int, touched []string) {
	patches := map[string]int64{}
	for key, n := range after {
		d := n - before[key]
		if d == 0 {
			continue
		}
		method, rest, _ := strings.Cut(key, " ")
		id, _, _ := strings.Cut(rest, "/")
		switch {
		case want[id] && method == "PATCH" && rest == id:
			patches[id] += d
		case want[id] && method == "GET":
			// reading the account before blocking it is allowed
		case want[id] && method == "DELETE" && d == 1 && (rest == id+"/sessions" || rest == id+"/refresh-tokens"):
			// ending its access after the block, once each (issue 17)
		default:
			touched = append(touched, fmt.Sprintf("%s ×%d", key, d))
		}
	}
	for id := range want {
		if patches[id] == 1 {
			once++
		}
	}
	slices.Sort(touched)
	return once, touched
}

// syncdCmdCode runs a syncd subcommand with environ, as an operator
// would, and returns its output (stdout and stderr) and exit status; err
// only when it could not run.
func (w *world) syncdCmdCode(ctx context.Context, environ map[string]string, args ...string) (string, int, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, w.s.syncdBin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range environ {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode(), nil
	case err != nil:
		return "", 0, fmt.Errorf("syncd %s: %w", strings.Join(args, " "), err)
	}
	return string(out), 0, nil
}

// syncdCmd runs a syncd subcommand against the world's database, as an
// operator would, and returns its output.
func (w *world) syncdCmd(ctx context.Context, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, w.s.syncdBin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "DATABASE_URL=" + w.dbURL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("syncd %s: %w: %s", strings.Join(args, " "), err, truncate(string(out), 300))
	}
	return string(out), nil
}
