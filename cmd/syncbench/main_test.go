package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The drift scan runs in a subprocess of this binary.
	if os.Getenv(childEnv) == scanChildCommand {
		if err := run(context.Background(), []string{scanChildCommand}, os.Getenv, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "syncbench scan-child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// TestQuick runs the whole program with -quick, end to end: syncd is built
// and run as a subprocess against a throwaway PostgreSQL and the emulator,
// every scenario runs at smoke-test sizes, and both outputs are written.
// It checks that the program works and that its figures are sane, not how
// fast anything is.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("builds syncd and runs every scenario (about 20 s)")
	}
	dir := t.TempDir()
	out, md := filepath.Join(dir, "bench.json"), filepath.Join(dir, "BENCHMARKS.md")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-quick", "-out", out, "-md", md}, os.Getenv, &stdout, &stderr)
	require.NoError(t, err, "stderr:\n%s", stderr.String())

	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	var r results
	require.NoError(t, json.Unmarshal(raw, &r))
	require.True(t, r.Quick)
	require.Empty(t, r.Errors)
	require.Len(t, r.Latency, 2, "both sources measured")
	for _, l := range r.Latency {
		require.True(t, l.Verified, l.Source)
		require.Greater(t, l.P50, 0.0, l.Source)
		require.GreaterOrEqual(t, l.P99, l.P50, l.Source)
		require.InDelta(t, 2, l.CallsPerNew, 0.01, "a new employee costs a create and a role assignment (%s)", l.Source)
	}
	require.NotNil(t, r.Changes)
	require.InDelta(t, 1, r.Changes.FieldChangeCalls, 0.01)
	require.Zero(t, r.Changes.ConvergedCalls)
	require.NotNil(t, r.Backfill)
	require.True(t, r.Backfill.Verified)
	require.Greater(t, r.Backfill.PerSecond, 0.0)
	require.Greater(t, r.Backfill.RoundTripsPer, 0.0)
	require.Len(t, r.RateLimited, 2)
	for _, q := range r.RateLimited {
		require.True(t, q.Verified, q.Plan)
		// How much of the limit was used depends on the machine's load;
		// make bench reports it. Here: a figure was computed.
		require.Positive(t, q.Share, q.Plan)
	}
	require.Len(t, r.Drift, 1)
	require.True(t, r.Drift[0].Verified)
	require.Equal(t, r.Drift[0].Drifted, r.Drift[0].Found)
	require.Greater(t, r.Drift[0].PeakRSSMiB, 1.0)
	require.NotNil(t, r.Triggers)
	require.Len(t, r.Triggers.Cases, 5)
	require.Len(t, r.Idle, 2)
	for _, i := range r.Idle {
		require.Greater(t, i.RSSMiB, 1.0, i.Source)
	}
	require.NotNil(t, r.Offboard)
	require.True(t, r.Offboard.Verified)
	require.InDelta(t, 3, r.Offboard.CallsPerLeaver, 0.01, "a leaver costs the block and two revocations")
	m := r.Mapping
	require.NotNil(t, m)
	require.True(t, m.Verified, "the affected accounts changed, no other")
	require.Positive(t, m.Affected)
	require.Equal(t, int64(m.Affected), m.MarkedPending, "the apply marks pending the rows whose desired state changed")
	require.True(t, m.MarkedExact, "and exactly those")
	require.Equal(t, int64(m.Affected), m.Writes, "one write per affected employee")
	require.Zero(t, m.Reads, "a mapping change reads nothing from Auth0")
	require.Equal(t, int64(m.Employees), m.UnreadRows)
	require.Zero(t, m.UnreadOutbox, "a column the view does not read queues nothing")
	require.Zero(t, m.UnreadPending, "nor marks a row pending")
	require.Zero(t, m.UnreadCalls, "nor calls Auth0")
	require.NotEmpty(t, r.Targets)

	doc, err := os.ReadFile(md)
	require.NoError(t, err)
	for _, want := range []string{"# syncd benchmarks", "-quick run", "## Targets (issue 7)", "## 1. Latency", "## 2. Backfill",
		"## 3. Rate-limited", "## 4. Drift scan", "## 5. Trigger overhead", "## 6. Idle cost", "## Offboarding", "## Mapping change"} {
		require.Contains(t, string(doc), want)
	}
	require.Contains(t, stdout.String(), "MEASURE")
	require.NotContains(t, stdout.String()+stderr.String()+string(doc)+string(raw), "syncd-emulator-secret")
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-only", "nope"}, {"-drift-users", "5"}, {"stray"}, {"-frob"}} {
		var stderr bytes.Buffer
		err := run(context.Background(), args, os.Getenv, &bytes.Buffer{}, &stderr)
		var u usageError
		require.ErrorAs(t, err, &u, "%v", args)
	}
}

func TestKeptNotes(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	require.Equal(t, "new\n", string(withKeptNotes([]byte("new\n"), path)), "no file yet")
	require.NoError(t, os.WriteFile(path, []byte("old figures\n\n"+keptMarker+"\n\n## Causes\n\nwhy\n"), 0o644))
	require.Equal(t, "new\n\n"+keptMarker+"\n\n## Causes\n\nwhy\n", string(withKeptNotes([]byte("new\n"), path)))
	require.NoError(t, os.WriteFile(path, []byte("old figures only\n"), 0o644))
	require.Equal(t, "new\n", string(withKeptNotes([]byte("new\n"), path)))
}
