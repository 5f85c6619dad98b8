// Command testrepeat runs the whole test suite several times and says, per
// test, how often it failed: a suite that is green once proves little, and
// a test that fails one run in ten is a bug to find. With -load it keeps
// every core busy with a CPU hog while the suite runs, as a loaded CI
// machine or a busy neighbour would.
//
//	go run ./cmd/testrepeat -n 10
//	go run ./cmd/testrepeat -n 3 -load
//
// Each run is `go test -race -count=1 -json` over the packages (no cached
// result is reused). It exits 1 if any run failed.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "testrepeat:", err)
		os.Exit(1)
	}
}

// event is one line of go test -json.
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// runResult is what one run of the suite gave.
type runResult struct {
	wall   time.Duration
	failed []string // "pkg Test" of each failed test (or package)
	passed int
	err    error
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("testrepeat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 10, "how many runs")
	load := fs.Bool("load", os.Getenv("LOAD") == "1", "keep every core busy with a CPU hog meanwhile (also LOAD=1)")
	pkgs := fs.String("pkgs", "./...", "packages to test")
	timeout := fs.String("timeout", "15m", "go test -timeout of each run")
	logDir := fs.String("logs", "", "keep each run's output (go test -json) in this directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 {
		return errors.New("-n must be at least 1")
	}
	if *logDir != "" {
		if err := os.MkdirAll(*logDir, 0o755); err != nil {
			return err
		}
	}
	if *load {
		hctx, cancel := context.WithCancel(ctx)
		defer cancel()
		hog(hctx, runtime.NumCPU())
		fmt.Fprintf(stderr, "testrepeat: %d CPU hogs running\n", runtime.NumCPU())
	}

	var results []runResult
	for i := 1; i <= *n && ctx.Err() == nil; i++ {
		fmt.Fprintf(stderr, "testrepeat: run %d of %d…\n", i, *n)
		var log io.Writer = io.Discard
		if *logDir != "" {
			f, err := os.Create(fmt.Sprintf("%s/run-%02d.json", *logDir, i))
			if err != nil {
				return err
			}
			defer f.Close()
			log = f
		}
		r := once(ctx, *pkgs, *timeout, log)
		results = append(results, r)
		status := "ok"
		if len(r.failed) > 0 || r.err != nil {
			status = fmt.Sprintf("FAIL %s", strings.Join(r.failed, ", "))
		}
		fmt.Fprintf(stderr, "testrepeat: run %d: %s in %s\n", i, status, r.wall.Round(time.Second))
	}
	return report(stdout, results, *load)
}

// once runs the suite one time.
func once(ctx context.Context, pkgs, timeout string, log io.Writer) runResult {
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "test", "-race", "-count=1", "-json", "-timeout", timeout, pkgs)
	cmd.Stderr = log
	out, err := cmd.StdoutPipe()
	if err != nil {
		return runResult{err: err}
	}
	if err := cmd.Start(); err != nil {
		return runResult{err: err}
	}
	var r runResult
	sc := bufio.NewScanner(io.TeeReader(out, log))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch {
		case e.Action == "fail" && e.Test != "":
			r.failed = append(r.failed, short(e.Package)+" "+e.Test)
		case e.Action == "fail":
			// A package that failed without a failing test (build error,
			// panic, goleak, timeout) is named by itself.
			if !slices.ContainsFunc(r.failed, func(s string) bool { return strings.HasPrefix(s, short(e.Package)+" ") }) {
				r.failed = append(r.failed, short(e.Package)+" (package)")
			}
		case e.Action == "pass" && e.Test != "":
			r.passed++
		}
	}
	werr := cmd.Wait()
	r.wall = time.Since(start)
	if werr != nil && len(r.failed) == 0 {
		r.err = werr
		r.failed = append(r.failed, "go test: "+werr.Error())
	}
	// Subtests fail their parents too: keep the leaves.
	r.failed = leaves(r.failed)
	return r
}

// leaves drops a test whose subtest also failed.
func leaves(failed []string) []string {
	var out []string
	for _, f := range failed {
		if !slices.ContainsFunc(failed, func(g string) bool { return strings.HasPrefix(g, f+"/") }) {
			out = append(out, f)
		}
	}
	return out
}

func short(pkg string) string {
	if i := strings.Index(pkg, "/syncd/"); i >= 0 {
		return pkg[i+len("/syncd/"):]
	}
	return pkg
}

func report(w io.Writer, results []runResult, load bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	mode := "idle machine"
	if load {
		mode = "every core busy (LOAD=1)"
	}
	fmt.Fprintf(tw, "\n%d runs of the suite, %s\n\nRUN\tWALL\tTESTS PASSED\tRESULT\n", len(results), mode)
	counts := map[string]int{}
	failedRuns := 0
	for i, r := range results {
		res := "ok"
		if len(r.failed) > 0 {
			res = "FAIL"
			failedRuns++
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", i+1, r.wall.Round(time.Second), r.passed, res)
		for _, f := range r.failed {
			counts[f]++
		}
	}
	if len(counts) > 0 {
		fmt.Fprintf(tw, "\nTEST\tFAILED\n")
		names := make([]string, 0, len(counts))
		for k := range counts {
			names = append(names, k)
		}
		slices.SortFunc(names, func(a, b string) int { return counts[b] - counts[a] })
		for _, k := range names {
			fmt.Fprintf(tw, "%s\t%d of %d\n", k, counts[k], len(results))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d passed, %d failed\n", len(results)-failedRuns, failedRuns)
	if failedRuns > 0 {
		return fmt.Errorf("%d of %d runs failed", failedRuns, len(results))
	}
	return nil
}

// hog keeps n goroutines spinning until ctx is done.
func hog(ctx context.Context, n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			x := uint64(1)
			for ctx.Err() == nil {
				for range 1 << 20 {
					x = x*6364136223846793005 + 1442695040888963407
				}
			}
			_ = x
		})
	}
	go func() { <-ctx.Done(); wg.Wait() }()
}
