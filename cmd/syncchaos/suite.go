package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/syncd/syncd/testcontainers"
)

var discardLog = log.New(io.Discard, "", 0)

// suite is one run of syncchaos: the work dir, the syncd binary, the shared
// PostgreSQL server, the secrets seen, and every subprocess started.
type suite struct {
	cfg      config
	stdout   io.Writer
	stderr   io.Writer
	workDir  string
	ownDir   bool // workDir is ours to remove
	syncdBin string
	start    time.Time

	pg     *testcontainers.Postgres
	cloner *testcontainers.Cloner

	secrets *secretSet
	// dbPassword is put into every DATABASE_URL (the test server trusts
	// loopback, so it is never checked) to see whether syncd logs it.
	dbPassword string

	outMu   sync.Mutex
	rngMu   sync.Mutex
	rng     *mrand.Rand
	procSeq atomic.Int64
	procMu  sync.Mutex
	procs   []*proc
}

// scenario is one row of the summary table.
type scenario struct {
	name string
	what string
	run  func(ctx context.Context, s *suite, r *result) error
}

// scenarios in the order of the table.
var scenarios = []scenario{
	{"kill", "kill -9 of syncd run during a backfill, with 5xx, drops and lost answers", runKill},
	{"kill-uuid", "the kill scenario on an employees table keyed by uuid", runKillUUID},
	{"kill-text", "the kill scenario on an employees table keyed by text (E-00001, …)", runKillText},
	{"outage", "Postgres stopped mid-run, notify and replication", runOutage},
	{"two-notify", "two syncd run processes at once (notify)", runTwoNotify},
	{"two-replication", "two syncd run processes (replication), the leader killed", runTwoReplication},
	{"bad-rows", "a catalogue of bad rows among good ones", runBadRows},
	{"bad-credentials", "a wrong client secret", runBadCredentials},
	{"unreachable", "AUTH0_DOMAIN on a closed port, then the tenant appears", runUnreachable},
	{"auth0-down", "every Auth0 call answered 503 for a while", runAuth0Down},
	{"mass-delete", "40% of employees deleted (held whole, shown by status and plan, released), a mass deactivation undone, a leaver, notify and replication", runMassDelete},
	{"bulk", "kill -9 during a bulk backfill through import jobs, with lost 202s and jobs failing whole", runBulk},
}

func newSuite(ctx context.Context, cfg config, stdout, stderr io.Writer) (*suite, error) {
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano() % 1_000_000_007
	}
	s := &suite{cfg: cfg, stdout: stdout, stderr: stderr, start: time.Now(), secrets: newSecretSet(),
		rng: mrand.New(mrand.NewPCG(uint64(cfg.Seed), 0x5eed))}
	s.dbPassword = "chaos-db-" + randomHex(12)
	s.secrets.addFixed(s.dbPassword, "the password in DATABASE_URL")
	s.secrets.addFixed(clientSecret, "the client secret")
	s.secrets.addFixed(wrongSecret, "the (wrong) client secret of the bad-credentials scenario")
	ok := false
	defer func() {
		if !ok {
			_ = s.Close(true)
		}
	}()
	if cfg.WorkDir != "" {
		if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
			return nil, fmt.Errorf("make work dir: %w", err)
		}
		s.workDir = cfg.WorkDir
	} else {
		dir, err := os.MkdirTemp("", "syncchaos-")
		if err != nil {
			return nil, fmt.Errorf("make work dir: %w", err)
		}
		s.workDir, s.ownDir = dir, true
	}
	s.logf("suite", "seed %d, logs in %s", cfg.Seed, s.workDir)
	s.syncdBin = cfg.Syncd
	if s.syncdBin == "" {
		bin, err := buildSyncd(ctx, s.workDir)
		if err != nil {
			return nil, err
		}
		s.syncdBin = bin
	}
	pg, err := testcontainers.StartLocal(ctx, testcontainers.LocalOptions{})
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s.pg, s.cloner = pg, testcontainers.NewCloner(pg)
	ok = true
	return s, nil
}

// buildSyncd builds ./cmd/syncd of the module this program belongs to.
func buildSyncd(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("find the syncd module (run from its checkout, or pass -syncd): %v", err)
	}
	bin := filepath.Join(dir, "syncd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/syncd")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/syncd: %w: %s", err, b)
	}
	return bin, nil
}

// Run runs the selected scenarios, then searches every log for secrets.
func (s *suite) Run(ctx context.Context) []*result {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var results []*result
	var wg sync.WaitGroup
	for _, sc := range scenarios {
		if !s.cfg.runs(sc.name) {
			continue
		}
		r := &result{name: sc.name, what: sc.what}
		results = append(results, r)
		do := func() {
			start := time.Now()
			s.logf(sc.name, "start: %s", sc.what)
			defer func() {
				if p := recover(); p != nil {
					r.fail("harness panic: %v", p)
				}
				r.took = time.Since(start)
				s.logf(sc.name, "done in %s: %s", r.took.Round(time.Millisecond), r.verdict())
			}()
			if err := sc.run(ctx, s, r); err != nil {
				r.fail("%v", err)
			}
		}
		if s.cfg.Parallel {
			wg.Go(do)
		} else {
			do()
		}
	}
	wg.Wait()
	s.killAll()
	results = append(results, s.scanLogs())
	return results
}

// scanLogs is the last row: every log line of the suite searched for secrets.
func (s *suite) scanLogs() *result {
	r := &result{name: "secrets", what: "every log line, /metrics and auth0_sync_logs searched for secrets"}
	start := time.Now()
	files, _ := filepath.Glob(filepath.Join(s.workDir, "*.log"))
	metrics, _ := filepath.Glob(filepath.Join(s.workDir, "*.metrics"))
	audit, _ := filepath.Glob(filepath.Join(s.workDir, "*.audit"))
	var lines, bad, size int
	for _, f := range append(append(files, metrics...), audit...) {
		b, err := os.ReadFile(f)
		if err != nil {
			r.fail("read %s: %v", f, err)
			continue
		}
		size += len(b)
		for _, l := range s.secrets.scan(filepath.Base(f), b) {
			r.fail("leak: %s", l)
		}
		if strings.HasSuffix(f, ".log") {
			n, nb, samples := jsonLines(b)
			lines += n
			bad += nb
			for _, sm := range samples {
				r.fail("%s: a log line that is not JSON: %s", filepath.Base(f), sm)
			}
		}
	}
	tokens, passwords := s.secrets.counts()
	if passwords == 0 || tokens == 0 {
		r.fail("the emulator saw %d passwords and %d tokens: nothing to search for", passwords, tokens)
	}
	r.note("%d processes, %d log lines (%.1f MB)", len(files), lines, float64(size)/1e6)
	r.note("searched for %d passwords, %d tokens, 3 fixed secrets, eyJ, \"password\"", passwords, tokens)
	if bad > 0 {
		r.note("%d non-JSON lines", bad)
	}
	r.took = time.Since(start)
	s.logf("secrets", "done in %s: %s", r.took.Round(time.Millisecond), r.verdict())
	return r
}

// track remembers a subprocess so that none outlives the suite.
func (s *suite) track(p *proc) {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	s.procs = append(s.procs, p)
}

func (s *suite) killAll() {
	s.procMu.Lock()
	procs := append([]*proc(nil), s.procs...)
	s.procMu.Unlock()
	for _, p := range procs {
		p.kill()
	}
}

// Close kills what is left, stops Postgres and removes the work dir unless
// something failed (or -keep).
func (s *suite) Close(failed bool) error {
	s.killAll()
	var err error
	if s.pg != nil {
		err = s.pg.Close()
	}
	if s.ownDir && !failed && !s.cfg.Keep {
		_ = os.RemoveAll(s.workDir)
	} else if s.workDir != "" {
		s.logf("suite", "logs kept in %s", s.workDir)
	}
	return err
}

// logf prints one progress line on stderr.
func (s *suite) logf(scenario, format string, args ...any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	fmt.Fprintf(s.stderr, "%7.1fs %-16s %s\n", time.Since(s.start).Seconds(), scenario, fmt.Sprintf(format, args...))
}

// randFloat returns a seeded uniform number in [lo, hi).
func (s *suite) randFloat(lo, hi float64) float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return lo + s.rng.Float64()*(hi-lo)
}

func (s *suite) shuffle(n int, swap func(i, j int)) {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	s.rng.Shuffle(n, swap)
}

// printSummary prints the table on stdout.
func (s *suite) printSummary(results []*result) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	fmt.Fprintf(s.stdout, "\nsyncchaos summary (seed %d, short %v, %s)\n", s.cfg.Seed, s.cfg.Short, time.Since(s.start).Round(time.Second))
	tw := tabwriter.NewWriter(s.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tRESULT\tTIME\tNUMBERS")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name, r.verdict(), r.took.Round(100*time.Millisecond), strings.Join(r.numbers, "; "))
	}
	_ = tw.Flush()
	for _, r := range results {
		if len(r.details) > 0 {
			fmt.Fprintf(s.stdout, "\n%s:\n", r.name)
			for _, d := range r.details {
				fmt.Fprintf(s.stdout, "  %s\n", strings.ReplaceAll(d, "\n", `\n`))
			}
		}
	}
	for _, r := range results {
		for _, p := range r.problems {
			fmt.Fprintf(s.stdout, "FAIL %s: %s\n", r.name, p)
		}
	}
}

// result is one scenario's row: its numbers and what went wrong.
type result struct {
	name, what string
	mu         sync.Mutex
	numbers    []string
	problems   []string
	details    []string // printed under the table
	took       time.Duration
}

func (r *result) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.numbers = append(r.numbers, fmt.Sprintf(format, args...))
}

// detail adds a line printed under the summary table.
func (r *result) detail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.details = append(r.details, fmt.Sprintf(format, args...))
}

func (r *result) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// check fails with msg unless ok.
func (r *result) check(ok bool, format string, args ...any) {
	if !ok {
		r.fail(format, args...)
	}
}

func (r *result) ok() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.problems) == 0
}

func (r *result) verdict() string {
	if r.ok() {
		return "ok"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("FAIL (%d)", len(r.problems))
}

func failed(results []*result) bool {
	for _, r := range results {
		if !r.ok() {
			return true
		}
	}
	return false
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
