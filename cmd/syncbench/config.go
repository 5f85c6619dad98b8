package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// usageError is a bad flag: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// The scenarios, in the order they run.
const (
	scLatency   = "latency"
	scBackfill  = "backfill"
	scDrift     = "drift"
	scTriggers  = "triggers"
	scRateLimit = "ratelimit"
	scIdle      = "idle"
	scMicro     = "micro"
	scBulk      = "bulk"
	scOffboard  = "offboard"
	scReference = "reference"
	scKeys      = "keys"
	scMapping   = "mapping"
)

var allScenarios = []string{scMicro, scLatency, scOffboard, scBackfill, scReference, scDrift, scTriggers, scRateLimit, scBulk, scIdle, scKeys, scMapping}

// config is every setting of one benchmark run.
type config struct {
	Out      string
	MD       string
	Quick    bool
	Only     []string
	SyncdBin string
	Command  string
	Sizes    sizes
	Keep     bool
	LogLevel string
	// ProfileDir, if set, receives pprof profiles: this process (the
	// emulator and the load drivers) and each drift scan subprocess.
	ProfileDir string
}

// sizes are the workloads; -quick shrinks them to a smoke test.
type sizes struct {
	LatencyInserts   int           `json:"latency_inserts"`
	ChangeSample     int           `json:"change_sample"`
	Backfill         int           `json:"backfill"`
	BackfillRT       int           `json:"backfill_round_trips"`
	Enterprise       int           `json:"rate_enterprise_employees"`
	Free             int           `json:"rate_free_employees"`
	BulkEnterprise   int           `json:"bulk_enterprise_employees"`
	BulkFree         int           `json:"bulk_free_employees"`
	Drift            []int         `json:"drift_users"`
	TriggerRows      int           `json:"trigger_single_rows"`
	TriggerBatch     int           `json:"trigger_batch_rows"`
	TriggerBatches   int           `json:"trigger_batches"`
	TriggerRounds    int           `json:"trigger_rounds"`
	Idle             time.Duration `json:"-"`
	IdleSeconds      float64       `json:"idle_seconds"`
	ConvergeTimeout  time.Duration `json:"-"`
	DriftSeedWorkers int           `json:"-"`
	// Offboarding: employees synced, of whom Leavers leave one at a time.
	OffboardEmployees int `json:"offboard_employees"`
	OffboardLeavers   int `json:"offboard_leavers"`
	// Keys: the backfill and single-row inserts on each key type.
	KeysBackfill int `json:"keys_backfill"`
	KeysInserts  int `json:"keys_latency_inserts"`
	// Mapping: employees synced, of whom a mapping change affects
	// MappingAffected.
	MappingEmployees int `json:"mapping_employees"`
	MappingAffected  int `json:"mapping_affected"`
}

func fullSizes() sizes {
	return sizes{
		LatencyInserts: 1000, ChangeSample: 200, Backfill: 10000, BackfillRT: 2000,
		Enterprise: 2000, Free: 200, BulkEnterprise: 10000, BulkFree: 2000, Drift: []int{10000, 100000},
		TriggerRows: 10000, TriggerBatch: 10000, TriggerBatches: 2, TriggerRounds: 3,
		Idle: 60 * time.Second, ConvergeTimeout: 10 * time.Minute, DriftSeedWorkers: 8,
		OffboardEmployees: 2500, OffboardLeavers: 100, KeysBackfill: 5000, KeysInserts: 200,
		MappingEmployees: 10000, MappingAffected: 100,
	}
}

func quickSizes() sizes {
	return sizes{
		LatencyInserts: 20, ChangeSample: 10, Backfill: 300, BackfillRT: 100,
		Enterprise: 40, Free: 2, BulkEnterprise: 400, BulkFree: 250, Drift: []int{2000},
		TriggerRows: 300, TriggerBatch: 1000, TriggerBatches: 2, TriggerRounds: 1,
		Idle: 3 * time.Second, ConvergeTimeout: 2 * time.Minute, DriftSeedWorkers: 4,
		OffboardEmployees: 300, OffboardLeavers: 10, KeysBackfill: 200, KeysInserts: 10,
		MappingEmployees: 300, MappingAffected: 10,
	}
}

func parseConfig(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("syncbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var only, driftUsers string
	fs.StringVar(&c.Out, "out", "", "write the results as JSON to this file (empty: none)")
	fs.StringVar(&c.MD, "md", "", "write the results as a Markdown table to this file (empty: none)")
	fs.BoolVar(&c.Quick, "quick", false, "small sizes: a smoke test of the program, not a measurement")
	fs.StringVar(&only, "only", "", "comma-separated scenarios to run (default all; -quick: all but micro): "+strings.Join(allScenarios, ","))
	fs.BoolVar(&c.Keep, "keep", false, "keep the temporary directory (syncd logs) and print its path")
	fs.StringVar(&c.LogLevel, "syncd-log-level", "info", "LOG_LEVEL of the syncd processes (their logs are in the temporary directory; see -keep)")
	fs.StringVar(&c.ProfileDir, "profile", "", "write pprof CPU and heap profiles of syncbench (emulator, drivers) and of each drift scan into this directory")
	fs.StringVar(&driftUsers, "drift-users", "", "comma-separated sizes of the drift scan (default 10000,100000; -quick 2000)")
	fs.StringVar(&c.SyncdBin, "syncd", "", "a syncd binary to measure (default: build ./cmd/syncd)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, usageError{"help requested"}
		}
		return nil, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	c.Only = allScenarios
	if c.Quick {
		c.Only = slices.DeleteFunc(slices.Clone(allScenarios), func(s string) bool { return s == scMicro })
	}
	if only != "" {
		c.Only = nil
		for _, s := range strings.Split(only, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(allScenarios, s) {
				return nil, usageError{fmt.Sprintf("-only: unknown scenario %q (known: %s)", s, strings.Join(allScenarios, ","))}
			}
			c.Only = append(c.Only, s)
		}
	}
	c.Sizes = fullSizes()
	if c.Quick {
		c.Sizes = quickSizes()
	}
	if driftUsers != "" {
		c.Sizes.Drift = nil
		for _, v := range strings.Split(driftUsers, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 100 {
				return nil, usageError{fmt.Sprintf("-drift-users: want sizes of at least 100, got %q", v)}
			}
			c.Sizes.Drift = append(c.Sizes.Drift, n)
		}
	}
	c.Sizes.IdleSeconds = c.Sizes.Idle.Seconds()
	c.Command = "go run ./cmd/syncbench"
	if len(args) > 0 {
		c.Command += " " + strings.Join(args, " ")
	}
	return c, nil
}

func (c *config) runs(s string) bool { return slices.Contains(c.Only, s) }
