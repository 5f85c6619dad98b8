package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// microPackages hold the packages' own Go benchmarks (func Benchmark…):
// client calls/s and share of a plan's limit (issue 3), INSERT → handler
// latency and claim throughput of the change sources (issue 5), the
// emulator's own speed, the mapping sweep and apply over 10,000 rows
// (issue 15). syncbench runs them as they are and keeps their
// figures, rather than measuring the same things again.
var microPackages = []string{"./auth0", "./outbox", "./auth0/emulator", "./reconcile"}

// microResult is one line of `go test -bench` output.
type microResult struct {
	Package    string             `json:"package"`
	Name       string             `json:"name"`
	Iterations int64              `json:"iterations"`
	Metrics    map[string]float64 `json:"metrics"`
}

// runMicro runs the packages' benchmarks in the module root. Full runs set
// SYNCD_BENCH_LONG=1 (the rate-limit benchmarks then run 30 s each, as
// issue 3 asks).
func (b *bench) runMicro(ctx context.Context) ([]microResult, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-count", "1"}, microPackages...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = os.Environ()
	if !b.cfg.Quick {
		cmd.Env = append(cmd.Env, "SYNCD_BENCH_LONG=1")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return parseBench(stdout.String()), fmt.Errorf("go test -bench: %w: %s", err, lastLines(stdout.String()+stderr.String(), 10))
	}
	return parseBench(stdout.String()), nil
}

// parseBench reads the benchmark lines of `go test -bench` output.
func parseBench(out string) []microResult {
	var res []microResult
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(strings.TrimSpace(p), "github.com/syncd/syncd/")
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		r := microResult{Package: pkg, Name: name, Iterations: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			r.Metrics[f[i+1]] = v
		}
		res = append(res, r)
	}
	return res
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
