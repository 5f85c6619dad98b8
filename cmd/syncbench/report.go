package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
)

// results is everything one run measured; bench.json is this struct.
type results struct {
	Machine   machine `json:"machine"`
	Date      string  `json:"date"`
	Command   string  `json:"command"`
	Quick     bool    `json:"quick"`
	DurationS float64 `json:"duration_s"`
	Sizes     sizes   `json:"sizes"`

	Latency     []*latencyResult `json:"latency,omitempty"`
	Changes     *changeResult    `json:"changes,omitempty"`
	Backfill    *backfillResult  `json:"backfill,omitempty"`
	Reference   *referenceResult `json:"reference_flow,omitempty"`
	RateLimited []*rateResult    `json:"rate_limited,omitempty"`
	Bulk        []*bulkResult    `json:"bulk_create,omitempty"`
	Drift       []*driftResult   `json:"drift_scan,omitempty"`
	Triggers    *triggerResult   `json:"trigger_overhead,omitempty"`
	Idle        []*idleResult    `json:"idle,omitempty"`
	Keys        []*keysResult    `json:"keys,omitempty"`
	Micro       []microResult    `json:"package_benchmarks,omitempty"`
	Offboard    *offboardResult  `json:"offboarding,omitempty"`
	Mapping     *mappingResult   `json:"mapping_change,omitempty"`

	Targets []target `json:"targets"`
	Errors  []string `json:"errors,omitempty"`
}

// machine is where the numbers were taken.
type machine struct {
	CPUs       int     `json:"nproc"`
	CPUModel   string  `json:"cpu_model"`
	MemoryGiB  float64 `json:"memory_gib"`
	Kernel     string  `json:"kernel"`
	Go         string  `json:"go"`
	Postgres   string  `json:"postgres"`
	LoadBefore string  `json:"loadavg_before"`
	LoadAfter  string  `json:"loadavg_after"`
}

// target is one of issue 7's aims and what this run got.
type target struct {
	Name   string  `json:"name"`
	Target string  `json:"target"`
	Value  float64 `json:"value"`
	Got    string  `json:"got"`
	Met    bool    `json:"met"`
}

func describeMachine(ctx context.Context, adminURL string) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadavg()}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				m.MemoryGiB = round(kb/(1<<20), 1)
			}
		}
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(raw))
	}
	if conn, err := pgx.Connect(ctx, adminURL); err == nil {
		_ = conn.QueryRow(ctx, "SHOW server_version").Scan(&m.Postgres)
		conn.Close(ctx)
	}
	return m
}

func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// evaluate lists every target of issue 7 against what was measured.
func (r *results) evaluate() {
	var t []target
	add := func(name, goal string, v float64, got string, met bool) {
		t = append(t, target{Name: name, Target: goal, Value: v, Got: got, Met: met})
	}
	for _, l := range r.Latency {
		add("latency p50, "+l.Source, "≤ 5 ms", l.P50, fmt.Sprintf("%.2f ms", l.P50), l.P50 <= 5)
		add("latency p99, "+l.Source, "≤ 25 ms", l.P99, fmt.Sprintf("%.2f ms", l.P99), l.P99 <= 25)
		add("inserts never synced, "+l.Source, "0 (nothing lost)", float64(l.Lost), fmt.Sprintf("%d of %d", l.Lost, l.Inserts), l.Lost == 0)
	}
	if o := r.Offboard; o != nil {
		add("offboarding p50 (commit → sessions and refresh tokens revoked)", "≤ 10 ms", o.P50, fmt.Sprintf("%.2f ms", o.P50), o.P50 <= 10)
		add("offboarding calls per leaver", "3 (block + 2)", o.CallsPerLeaver, fmt.Sprintf("%.2f", o.CallsPerLeaver), o.CallsPerLeaver <= 3)
	}
	if b := r.Backfill; b != nil {
		add(fmt.Sprintf("backfill, %d employees", b.Employees), "≥ 3,000 employees/s", b.PerSecond, fmt.Sprintf("%.0f employees/s", b.PerSecond), b.PerSecond >= 3000)
		add("backfill, database transactions per employee", "≤ 1.5", b.XactsPerEmp, fmt.Sprintf("%.2f", b.XactsPerEmp), b.XactsPerEmp <= 1.5)
	}
	r.evaluateReference(add)
	for _, q := range r.RateLimited {
		add(fmt.Sprintf("rate-limited %s (%g/s, burst %d), %d employees", q.Plan, q.Rate, q.Burst, q.Employees), "≥ 97 % of the limit", q.Share,
			fmt.Sprintf("%.1f %% (%.2f req/s)", 100*q.Share, q.AchievedRate), q.Share >= 0.97)
		add(fmt.Sprintf("429s, %s", q.Plan), "< 0.5 % of requests", q.TooManyPct, fmt.Sprintf("%.2f %% (%d)", q.TooManyPct, q.TooMany), q.TooManyPct < 0.5)
	}
	r.evaluateBulk(add)
	for _, m := range r.Micro {
		if m.Package != "auth0" || (m.Name != "RateEnterprise" && m.Name != "RateFree") {
			continue
		}
		share, pct := m.Metrics["share_of_limit"], m.Metrics["429_pct"]
		add(fmt.Sprintf("auth0 client alone, %s (go test -bench)", m.Name), "≥ 97 % of the limit", share, fmt.Sprintf("%.1f %%", 100*share), share >= 0.97)
		add(fmt.Sprintf("auth0 client alone, %s 429s", m.Name), "< 0.5 % of requests", pct, fmt.Sprintf("%.2f %% (%.0f)", pct, m.Metrics["429s"]), pct < 0.5)
	}
	for _, l := range r.Latency {
		if l.Source == "notify" {
			add("Auth0 calls per new employee", "2", l.CallsPerNew, fmt.Sprintf("%.3f", l.CallsPerNew), l.CallsPerNew <= 2)
		}
	}
	if b := r.Backfill; b != nil {
		add("Auth0 calls per new employee (backfill)", "2", b.CallsPerEmp, fmt.Sprintf("%.3f", b.CallsPerEmp), b.CallsPerEmp <= 2)
	}
	if c := r.Changes; c != nil {
		add("Auth0 calls per single-field change", "≤ 1", c.FieldChangeCalls, fmt.Sprintf("%.3f", c.FieldChangeCalls), c.FieldChangeCalls <= 1)
		add("Auth0 calls per converged employee", "0", c.ConvergedCalls, fmt.Sprintf("%.3f", c.ConvergedCalls), c.ConvergedCalls == 0)
	}
	for _, d := range r.Drift {
		limit := float64(d.Users)/100 + 10
		add(fmt.Sprintf("drift scan calls, %d users", d.Users), fmt.Sprintf("≤ N/100 + 10 = %.0f", limit), float64(d.Calls),
			fmt.Sprintf("%d (%d to /api/v2)", d.Calls, d.APICalls), float64(d.Calls) <= limit)
		if d.Users >= 100000 {
			add(fmt.Sprintf("drift scan peak RSS, %d users", d.Users), "≤ 100 MiB", d.PeakRSSMiB, fmt.Sprintf("%.1f MiB", d.PeakRSSMiB), d.PeakRSSMiB <= 100)
		}
	}
	r.evaluateMapping(add)
	if tr := r.Triggers; tr != nil {
		for _, c := range tr.Cases {
			add("trigger overhead, "+c.Workload, "≤ 15 %", c.OverheadPct, fmt.Sprintf("%.1f %%", c.OverheadPct), c.OverheadPct <= 15)
		}
	}
	r.Targets = t
}

func (r *results) writeJSON(path string) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}

// summary prints the targets as a plain table.
func (r *results) summary(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEASURE\tTARGET\tRESULT\tMET")
	for _, t := range r.Targets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Target, t.Got, yesNo(t.Met))
	}
	tw.Flush()
	for _, e := range r.Errors {
		fmt.Fprintln(w, "ERROR:", e)
	}
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// markdown renders BENCHMARKS.md.
func (r *results) markdown() []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.Machine
	p("# syncd benchmarks\n\n")
	p("Written by `make bench` (cmd/syncbench); bench.json holds the same figures. Everything runs on one machine:\n")
	p("a throwaway PostgreSQL (fsync off, synchronous_commit on), the Auth0 emulator served by syncbench on loopback,\n")
	p("and `syncd run` built from this tree and started as a subprocess, as an operator runs it (default flags unless a row says otherwise).\n")
	p("Sections 7, 1, 2 and 5 run one at a time; then 3, 4 and 6 run together (paced by rate limits, the emulator or the clock;\n")
	p("each of their figures is its own process's). Each scenario has its own database and emulator.\n\n")
	if r.Quick {
		p("**This is a -quick run: the sizes are a smoke test, not a measurement.**\n\n")
	}
	p("| | |\n|---|---|\n")
	p("| machine | %d × %s, %.1f GiB RAM, %s |\n", m.CPUs, m.CPUModel, m.MemoryGiB, m.Kernel)
	p("| software | %s, PostgreSQL %s |\n", m.Go, m.Postgres)
	p("| date | %s |\n", r.Date)
	p("| command | `%s` |\n", r.Command)
	p("| run time | %s |\n", (time.Duration(r.DurationS) * time.Second).String())
	p("| load average before / after | %s / %s |\n\n", m.LoadBefore, m.LoadAfter)

	p("## Targets (issue 7)\n\n| measure | target | result | met |\n|---|---|---|---|\n")
	for _, t := range r.Targets {
		p("| %s | %s | %s | %s |\n", t.Name, t.Target, t.Got, yesNo(t.Met))
	}
	if notes := r.notes(); len(notes) > 0 {
		p("\n**What the numbers say** (derived from this run's figures):\n\n")
		for _, n := range notes {
			p("- %s\n", n)
		}
	}
	if len(r.Errors) > 0 {
		p("\n**Scenarios that failed:**\n\n")
		for _, e := range r.Errors {
			p("- %s\n", e)
		}
	}

	if o := r.Offboard; o != nil {
		p("\n## Offboarding: a leaver's access ended (issue 17)\n\n")
		p("%d employees synced, each leaver with one login (a session and a refresh token); one `UPDATE … SET active = false` at a time,\n", o.Employees)
		p("`syncd run` with its defaults (`--max-deprovision=10%%`, the guard's fast path, `--revoke-sessions`). The clock starts when the\n")
		p("UPDATE's commit returns and stops at the later of the emulator's two revocations (its own clock, this process).\n\n")
		p("| leavers | p50 | p95 | p99 | max | block p50 | calls / leaver | blocks / sessions / refresh-token revocations per leaver | verified |\n")
		p("|---|---|---|---|---|---|---|---|---|\n")
		p("| %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f | %.2f / %.2f / %.2f | %s |\n", o.Leavers, o.P50, o.P95, o.P99, o.Max, o.BlockP50,
			o.CallsPerLeaver, o.BlocksPerLeaver, o.SessionsPerLeaver, o.TokensPerLeaver, yesNo(o.Verified))
	}
	if len(r.Latency) > 0 {
		p("\n## 1. Latency: INSERT → synced\n\n")
		p("One single-row INSERT at a time; the clock starts when the INSERT is sent and stops when a poll of the row reads `synced`\n")
		p("(the account and its role are in the emulator before that; every account is checked afterwards). Legs are medians:\n")
		p("pickup = INSERT sent → first Auth0 request; Auth0 = first request → role assigned; record = role assigned → `synced` read.\n\n")
		p("| source | inserts | never synced | p50 | p95 | p99 | max | mean | pickup p50 / p99 | Auth0 p50 | record p50 | calls / new employee | writes / new employee |\n")
		p("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, l := range r.Latency {
			p("| %s | %d | %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f / %.2f ms | %.2f ms | %.2f ms | %.3f | %.3f |\n",
				l.Source, l.Inserts, l.Lost, l.P50, l.P95, l.P99, l.Max, l.Mean, l.PickupP50, l.PickupP99, l.Auth0P50, l.RecordP50, l.CallsPerNew, l.WritesPerNew)
		}
		for _, l := range r.Latency {
			if l.Lost > 0 {
				p("\n**%s: %d of %d inserts were never synced** (no reconcile within %s; percentiles are over the others): %s.\n",
					l.Source, l.Lost, l.Inserts, lostAfter, strings.Join(l.LostKeys, "; "))
			}
		}
	}
	if c := r.Changes; c != nil {
		p("\n## Auth0 calls per change (notify source, %d employees each)\n\n", c.Sample)
		p("| change | calls / employee | writes / employee |\n|---|---|---|\n")
		p("| one UPDATE of `department` (single-field change) | %.2f | %.2f |\n", c.FieldChangeCalls, c.FieldChangeWrites)
		p("| converged employee woken by an outbox row (a duplicate or stray event) | %.2f | %.2f |\n", c.ConvergedCalls, c.ConvergedWrites)
		p("| converged employee requeued (`reconcile.Requeue`, as the drift scan does: reads Auth0) | %.2f | %.2f |\n", c.RequeueCalls, c.RequeueWrites)
	}
	if f := r.Backfill; f != nil {
		p("\n## 2. Backfill\n\n")
		p("%d employees in one INSERT (%.0f ms, outbox rows written by the triggers in the same statement) → all `synced`, notify source, 8 workers.\n\n", f.Employees, f.InsertMS)
		p("| employees | time | employees/s | Auth0 calls / employee | writes / employee | DB transactions / employee | CPU s: syncd / PostgreSQL / emulator+driver |\n|---|---|---|---|---|---|---|\n")
		p("| %d | %.2f s | %.0f | %.2f | %.2f | %.2f | %.2f / %.2f / %.2f |\n\n", f.Employees, f.Seconds, f.PerSecond, f.CallsPerEmp, f.WritesPerEmp, f.XactsPerEmp, f.CPU.Syncd, f.CPU.Postgres, f.CPU.Bench)
		p("Database round trips: a second backfill of %d employees with syncd connected through a counting TCP proxy: **%.2f client→server sends per employee**\n", f.RTEmployees, f.RoundTripsPer)
		p("(each send is one burst of protocol messages the client wrote before waiting: a query, a pipelined batch; %.2f server→client bursts;\n", f.ServerBursts)
		p("%d connections; %.0f employees/s through the proxy). Transactions per employee are the database's `xact_commit + xact_rollback` delta\n", f.RTConnections, f.RTPerSecond)
		p("(pg_stat_database, read after syncd exited), minus syncbench's own; both include syncd's background polls during the run.\n")
		if f.ClaimGroup > 0 {
			p("syncd's group commits carried %.2f employees per claim transaction and %.2f per outcome transaction.\n", f.ClaimGroup, f.RecordGroup)
		}
		p("syncd logged %d warnings and %d errors during the backfill.\n", f.WarnLogLines, f.ErrorLogLines)
	}
	r.markdownReference(p)
	if len(r.RateLimited) > 0 {
		p("\n## 3. Rate-limited\n\n")
		p("Emulator on a plan; `syncd run --auth0-rate R --auth0-burst B` sized to it; one INSERT of every row after both buckets refilled.\n")
		p("Share of the limit = requests admitted / (burst + rate × one-second refills during the run), as the emulator's buckets refill.\n\n")
		p("| plan | employees | time to converge | admitted | achieved | share of limit | 429s | calls / employee |\n|---|---|---|---|---|---|---|---|\n")
		for _, q := range r.RateLimited {
			p("| %s (%g/s, burst %d) | %d | %.1f s | %d | %.2f req/s | %.1f %% | %d (%.2f %%) | %.2f |\n",
				q.Plan, q.Rate, q.Burst, q.Employees, q.Seconds, q.Admitted, q.AchievedRate, 100*q.Share, q.TooMany, q.TooManyPct, q.CallsPerEmp)
		}
	}
	r.markdownBulk(p)
	if len(r.Drift) > 0 {
		p("\n## 4. Drift scan\n\n")
		p("Accounts seeded through the emulator's API as the reconciler creates them, rows inserted linked and `synced` with their\n")
		p("last-applied record; 1 %% tampered by hand (department, blocked, role removed, name, phone in turn). `reconcile.Scan` runs in a\n")
		p("subprocess (`syncbench scan-child`) so that its peak RSS (VmHWM from /proc/self/status, read by the child when the scan is done) is its own. Calls count every request (token, /api/v2, export download).\n\n")
		p("| managed users | drifted made / found | orphans | calls | wall (process) | scan | CPU | peak RSS |\n|---|---|---|---|---|---|---|---|\n")
		for _, d := range r.Drift {
			p("| %d | %d / %d | %d | %d (%d /api/v2) | %.2f s | %.2f s | %.2f s | %.1f MiB |\n", d.Users, d.Drifted, d.Found, d.Orphans, d.Calls, d.APICalls, d.WallS, d.ScanS, d.CPUS, d.PeakRSSMiB)
		}
	}
	if tr := r.Triggers; tr != nil {
		p("\n## 5. Trigger overhead\n\n")
		p("The same statements, one connection, on two clones of the schema: with syncd's triggers on `employees` (%s) and with them dropped (same indexes).\n", strings.Join(tr.Triggers, ", "))
		p("Best of %d alternating rounds each; overhead = extra time per row (rate without / rate with − 1). No daemon runs.\n\n", tr.Rounds)
		p("| workload | with triggers | without | overhead | extra time per row |\n|---|---|---|---|---|\n")
		for _, c := range tr.Cases {
			p("| %s | %.0f %s | %.0f %s | %.1f %% | %.1f µs |\n", c.Workload, c.With, c.Unit, c.Without, c.Unit, c.OverheadPct, c.ExtraMicros)
		}
	}
	if len(r.Idle) > 0 {
		p("\n## 6. Idle cost\n\n")
		p("`syncd run` on an empty table, after its start-up drift scan; CPU from /proc/PID/stat (10 ms ticks), RSS from /proc/PID/status.\n\n")
		p("| source | window | CPU | CPU share of a core | RSS | peak RSS | Auth0 calls | DB transactions |\n|---|---|---|---|---|---|---|---|\n")
		for _, i := range r.Idle {
			p("| %s | %.0f s | %.2f s | %.3f %% | %.1f MiB | %.1f MiB | %d | %d |\n", i.Source, i.Seconds, i.CPUS, i.CPUPct, i.RSSMiB, i.PeakRSSMiB, i.Auth0Calls, i.DBXacts)
		}
	}
	r.markdownMapping(p)
	if len(r.Keys) > 0 {
		p("\n## Employee keys: bigint, uuid, text (issue 18)\n\n")
		p("The same backfill (unlimited emulator, notify, default flags) and the same single-row INSERT → `synced` latency (one at a time, polled every millisecond)\n")
		p("on an `employees` table keyed by `bigint` (the table syncd creates), `uuid` (`gen_random_uuid()`) and `text` (`E-00001`, …), in one run.\n\n")
		p("| key | employees | backfill | employees/s | Auth0 calls per employee | inserts | latency p50 | latency p99 | verified |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, k := range r.Keys {
			p("| %s | %d | %.1f s | %.0f | %.3f | %d | %.2f ms | %.2f ms | %v |\n", k.Key, k.Employees, k.Seconds, k.PerSecond, k.CallsPerEmp, k.Inserts, k.LatencyP50MS, k.LatencyP99MS, k.Verified)
		}
	}
	if len(r.Micro) > 0 {
		p("\n## 7. Package benchmarks\n\n")
		p("The packages' own `func Benchmark…` (`go test -run '^$' -bench . %s`", strings.Join(microPackages, " "))
		if !r.Quick {
			p(", with SYNCD_BENCH_LONG=1: the rate-limit ones run 30 s")
		}
		p("): the Auth0 client alone against the emulator (calls/s unlimited; share of a plan's limit, with its limiter and with the headers only),\n")
		p("the change sources with a handler that does nothing (INSERT → handler latency, claim and drain throughput), the emulator itself.\n\n")
		p("| package | benchmark | figures |\n|---|---|---|\n")
		for _, m := range r.Micro {
			keys := make([]string, 0, len(m.Metrics))
			for k := range m.Metrics {
				if k != "ns/op" {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s %s", strconv.FormatFloat(m.Metrics[k], 'f', -1, 64), k))
			}
			p("| %s | %s | %s |\n", m.Package, m.Name, strings.Join(parts, ", "))
		}
	}
	return b.Bytes()
}

// notes interprets the figures where a number alone would mislead: why a
// target is missed, where time went. Each note is computed from this run.
func (r *results) notes() []string {
	var out []string
	if f := r.Backfill; f != nil && f.PerSecond > 0 {
		n := float64(f.Employees)
		cores := float64(r.Machine.CPUs)
		busy := f.CPU.Syncd + f.CPU.Postgres + f.CPU.Bench
		perSyncd, perPG, perBench := 1000*f.CPU.Syncd/n, 1000*f.CPU.Postgres/n, 1000*f.CPU.Bench/n
		out = append(out, fmt.Sprintf("Backfill: the machine was %.0f %% busy (%.1f of %.1f core-seconds); CPU per employee: syncd %.2f ms, PostgreSQL %.2f ms, "+
			"emulator and driver %.2f ms. On %d cores that caps the rate at %.0f employees/s with everything on one machine, %.0f with Auth0 elsewhere.",
			100*busy/(cores*f.Seconds), busy, cores*f.Seconds, perSyncd, perPG, perBench, r.Machine.CPUs,
			cores*1000/(perSyncd+perPG+perBench), cores*1000/(perSyncd+perPG)))
	}
	for _, l := range r.Latency {
		if l.Lost > 0 {
			out = append(out, fmt.Sprintf("%s: %d of %d inserts were never reconciled (their rows stay pending): a key was lost.", l.Source, l.Lost, l.Inserts))
		}
	}
	for _, d := range r.Drift {
		if d.WallS > 5 && d.CPUS < 0.25*d.WallS {
			out = append(out, fmt.Sprintf("Drift scan of %d users: the scan process used %.1f s of CPU in %.0f s; the rest it waited on the emulator, "+
				"whose paging of role members (GET /api/v2/roles/{id}/users) costs it O(members) per page (`-profile` shows it).", d.Users, d.CPUS, d.WallS))
		}
	}
	if t := r.Triggers; t != nil && len(t.Cases) == 5 {
		after, fresh := t.Cases[3], t.Cases[4]
		if after.With > 0 && fresh.With > 5*after.With {
			out = append(out, fmt.Sprintf("Trigger overhead: a 10,000-row UPDATE runs at %.0f rows/s as a connection's first statement but %.0f rows/s right after a single-row UPDATE on it: "+
				"PL/pgSQL plans the outbox trigger's join of the transition tables once per session, for the row count of its first call, "+
				"so after a one-row UPDATE the cached nested loop makes a batch quadratic.", fresh.With, after.With))
		}
	}
	return out
}

// keptMarker starts the part of BENCHMARKS.md that people write (causes,
// decisions); make bench regenerates everything above it and keeps the rest.
const keptMarker = "<!-- Written by hand below this line: make bench keeps it. -->"

// withKeptNotes appends the hand-written part of the file at path, if it
// has one, to the generated document.
func withKeptNotes(doc []byte, path string) []byte {
	old, err := os.ReadFile(path)
	if err != nil {
		return doc
	}
	i := bytes.Index(old, []byte(keptMarker))
	if i < 0 {
		return doc
	}
	return append(append(bytes.TrimRight(doc, "\n"), "\n\n"...), old[i:]...)
}
