package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// config is the command line of syncchaos. Zero sizes take the defaults of
// the full suite, or of the short one with -short.
type config struct {
	// Short is the version `make test` runs: fewer employees and kills,
	// shorter outages, scenarios in parallel.
	Short bool
	// Seed drives every random choice (kill moments, row order); 0 = from the clock.
	Seed int64
	// Employees is the size of the kill -9 backfill (default 2,000; 300 short).
	Employees int
	// Kills is how many times `syncd run` is killed during it (default 5; 2 short).
	Kills int
	// KeyEmployees is the size of the kill -9 backfills on a uuid and a text
	// key (default: Employees; 100 short).
	KeyEmployees int
	// BulkEmployees is the size of the bulk (import jobs) backfill (default 5,000; 400 short).
	BulkEmployees int
	// Good is the number of good rows the bad rows are mixed into (default 1,000; 100 short).
	Good int
	// Outage is how long Postgres stays stopped (default 10s; 5s short).
	Outage time.Duration
	// Auth0Down is how long every Auth0 call fails (default 60s; 10s short).
	Auth0Down time.Duration
	// FastLeases expires a killed process's outbox and employee leases at
	// once (by SQL, as if the lease time had passed) instead of waiting ~1
	// min per kill: `syncd run` has no flag for the outbox lease. Default on
	// with -short.
	FastLeases bool
	// Parallel runs the scenarios at once (default with -short).
	Parallel bool
	// Only runs these scenarios (comma-separated names).
	Only []string
	// Syncd is a built syncd binary; "" builds ./cmd/syncd into the work dir.
	Syncd string
	// WorkDir keeps every log; "" = a temporary directory, removed when
	// everything passed unless Keep.
	WorkDir string
	Keep    bool
	// Timeout bounds the whole suite.
	Timeout time.Duration
}

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// Scenario names, in the order they run.
var scenarioNames = []string{"kill", "kill-uuid", "kill-text", "outage", "two-notify", "two-replication", "bad-rows", "bad-credentials", "unreachable", "auth0-down", "mass-delete", "bulk"}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	var only, fast, parallel string
	fs := flag.NewFlagSet("syncchaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.Short, "short", false, "the short version (make test): fewer employees and kills, shorter outages, in parallel")
	fs.Int64Var(&c.Seed, "seed", 0, "seed of every random choice (0: from the clock; printed, so a run can be repeated)")
	fs.IntVar(&c.Employees, "employees", 0, "employees in the kill -9 backfill (default 2000; 300 with -short)")
	fs.IntVar(&c.KeyEmployees, "key-employees", 0, "employees in the kill -9 backfills on a uuid and a text key (default: -employees; 100 with -short)")
	fs.IntVar(&c.Kills, "kills", 0, "kill -9s during the backfill (default 5; 2 with -short)")
	fs.IntVar(&c.BulkEmployees, "bulk-employees", 0, "employees in the bulk backfill through import jobs (default 5000; 400 with -short)")
	fs.IntVar(&c.Good, "good", 0, "good rows the bad rows are mixed into (default 1000; 100 with -short)")
	fs.DurationVar(&c.Outage, "outage", 0, "how long Postgres stays stopped (default 10s; 5s with -short)")
	fs.DurationVar(&c.Auth0Down, "auth0-down", 0, "how long every Auth0 call fails (default 60s; 10s with -short)")
	fs.StringVar(&fast, "fast-leases", "", "true: expire a killed process's leases by SQL instead of waiting ~1m per kill (default: true with -short)")
	fs.StringVar(&parallel, "parallel", "", "true: run the scenarios at once (default: true with -short)")
	fs.StringVar(&only, "only", "", "comma-separated scenarios to run: "+strings.Join(scenarioNames, ", "))
	fs.StringVar(&c.Syncd, "syncd", "", "a built syncd binary (default: go build ./cmd/syncd)")
	fs.StringVar(&c.WorkDir, "workdir", "", "directory for the logs (default: a temporary one, removed if everything passed)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the logs even if everything passed")
	fs.DurationVar(&c.Timeout, "timeout", 0, "bound of the whole suite (default 25m; 4m with -short)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return c, &usageError{msg: "help requested"}
		}
		return c, &usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return c, &usageError{msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	pick := func(full, short int) int {
		if c.Short {
			return short
		}
		return full
	}
	pickD := func(full, short time.Duration) time.Duration {
		if c.Short {
			return short
		}
		return full
	}
	c.Employees = cmp.Or(c.Employees, pick(2000, 300))
	c.KeyEmployees = cmp.Or(c.KeyEmployees, pick(c.Employees, 100))
	c.Kills = cmp.Or(c.Kills, pick(5, 2))
	c.BulkEmployees = cmp.Or(c.BulkEmployees, pick(5000, 400))
	c.Good = cmp.Or(c.Good, pick(1000, 100))
	c.Outage = cmp.Or(c.Outage, pickD(10*time.Second, 5*time.Second))
	c.Auth0Down = cmp.Or(c.Auth0Down, pickD(60*time.Second, 10*time.Second))
	c.Timeout = cmp.Or(c.Timeout, pickD(25*time.Minute, 4*time.Minute))
	var err error
	if c.FastLeases, err = parseBoolDefault("-fast-leases", fast, c.Short); err != nil {
		return c, err
	}
	if c.Parallel, err = parseBoolDefault("-parallel", parallel, c.Short); err != nil {
		return c, err
	}
	for name := range strings.SplitSeq(only, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if !slices.Contains(scenarioNames, name) {
			return c, &usageError{msg: fmt.Sprintf("-only: unknown scenario %q (known: %s)", name, strings.Join(scenarioNames, ", "))}
		}
		c.Only = append(c.Only, name)
	}
	switch {
	case c.Employees < 10:
		return c, &usageError{msg: fmt.Sprintf("-employees: must be at least 10, got %d", c.Employees)}
	case c.KeyEmployees < 10:
		return c, &usageError{msg: fmt.Sprintf("-key-employees: must be at least 10, got %d", c.KeyEmployees)}
	case c.BulkEmployees < 200:
		return c, &usageError{msg: fmt.Sprintf("-bulk-employees: must be at least 200, got %d", c.BulkEmployees)}
	case c.Kills < 0:
		return c, &usageError{msg: fmt.Sprintf("-kills: must not be negative, got %d", c.Kills)}
	case c.Good < 10:
		return c, &usageError{msg: fmt.Sprintf("-good: must be at least 10, got %d", c.Good)}
	case c.Outage < time.Second || c.Auth0Down < time.Second:
		return c, &usageError{msg: "-outage, -auth0-down: must be at least 1s"}
	}
	return c, nil
}

func parseBoolDefault(name, s string, def bool) (bool, error) {
	switch strings.ToLower(s) {
	case "":
		return def, nil
	case "true", "1", "yes":
		return true, nil
	case "false", "0", "no":
		return false, nil
	}
	return false, &usageError{msg: fmt.Sprintf("%s: must be true or false, got %q", name, s)}
}

func (c config) runs(name string) bool {
	return len(c.Only) == 0 || slices.Contains(c.Only, name)
}
