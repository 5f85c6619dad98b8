// Command syncchaos is syncd's failure suite (`make chaos`): it runs the real
// `syncd run` binary as subprocesses against a throwaway PostgreSQL server and
// the Auth0 emulator (in this process), breaks things — kill -9 mid-backfill
// (on a bigint, a uuid and a text employees key), a Postgres outage, two
// processes at once, a killed replication leader, bad rows, bad credentials,
// an unreachable or failing Auth0, a mass DELETE the deprovision guard must
// hold and release — and checks the end state: every
// employee exactly one account with the right role and app_metadata, no
// duplicates, no orphans, and no secret in any log line.
//
// It prints a summary table and exits 1 on any loss, duplicate or leak (2 on
// a bad command line). -short is the version `make test` runs.
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
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// errFailed says that at least one scenario failed; the table says which.
var errFailed = errors.New("chaos: at least one scenario failed")

// run parses args, runs the suite and prints the summary table on stdout
// (progress goes to stderr).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	s, err := newSuite(ctx, cfg, stdout, stderr)
	if err != nil {
		return err
	}
	results := s.Run(ctx)
	s.printSummary(results)
	closeErr := s.Close(failed(results))
	if failed(results) {
		return errFailed
	}
	return closeErr
}

func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "syncchaos:", err)
		return 2
	case errors.Is(err, errFailed):
		fmt.Fprintln(stderr, err)
		return 1
	default:
		fmt.Fprintln(stderr, "syncchaos:", err)
		return 1
	}
}
