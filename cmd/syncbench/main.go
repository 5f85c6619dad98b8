// Command syncbench is `make bench`: it measures syncd end to end on a
// throwaway PostgreSQL and the Auth0 emulator on loopback, and writes the
// figures to a JSON file and a Markdown table.
//
//	go run ./cmd/syncbench -out bench.json -md BENCHMARKS.md
//	go run ./cmd/syncbench -quick            # small sizes: a smoke test
//
// The daemon is measured as operators run it: ./cmd/syncd is built into a
// temporary directory and `syncd run` is started as a subprocess against
// the throwaway database and an emulator served by this process. The drift
// scan runs in a subprocess of its own (this binary, `syncbench scan-child`)
// so that its peak RSS is its own.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	args := os.Args[1:]
	if os.Getenv(childEnv) == scanChildCommand {
		args = []string{scanChildCommand}
	}
	err := run(ctx, args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "syncbench:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// childEnv marks a subprocess of syncbench (this binary, or a test binary
// that runs it): its value names what the child does.
const childEnv = "SYNCBENCH_CHILD"

// run is the whole program; main only maps its error to an exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == scanChildCommand {
		return runScanChild(ctx, getenv, stdout)
	}
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	return runBench(ctx, cfg, stdout, stderr)
}
