package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

// Without python3 the reference scenario says so and reports nothing else;
// it does not fail the bench, and no ratio target is added.
func TestReferenceSkippedWithoutPython(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	b := &bench{cfg: &config{Sizes: sizes{Backfill: 10}}, tmp: t.TempDir()}
	ref, err := b.runReference(context.Background())
	require.NoError(t, err)
	require.Equal(t, "python3 not found", ref.Skipped)
	require.Zero(t, ref.PerSecond)

	r := &results{Backfill: &backfillResult{Employees: 10, PerSecond: 100}, Reference: ref}
	r.evaluate()
	for _, tg := range r.Targets {
		require.NotContains(t, tg.Name, "reference")
	}
	require.Contains(t, string(r.markdown()), "Not run: python3 not found.")
}

// With python3 and requests, the guide's flow creates every employee with
// its role, at 3 calls each (it looks the role up every time), and the
// ratio to the backfill is reported.
func TestReferenceFlowRuns(t *testing.T) {
	t.Parallel()
	if err := exec.Command("python3", "-c", "import requests").Run(); err != nil {
		t.Skip("python3 with requests is not installed: " + err.Error())
	}
	b := &bench{cfg: &config{Sizes: sizes{Backfill: 20}}, tmp: t.TempDir()}
	ref, err := b.runReference(context.Background())
	require.NoError(t, err)
	require.Empty(t, ref.Skipped)
	require.True(t, ref.Verified)
	require.Equal(t, 20, ref.Created)
	require.InDelta(t, 3, ref.CallsPerEmp, 0.001)
	require.EqualValues(t, 1, ref.TokenCalls)
	require.Positive(t, ref.PerSecond)

	r := &results{Backfill: &backfillResult{Employees: 20, PerSecond: 10 * ref.PerSecond}, Reference: ref}
	r.evaluate()
	var found bool
	for _, tg := range r.Targets {
		if tg.Target == "≥ 10×" {
			found = true
			require.True(t, tg.Met, tg.Got)
		}
	}
	require.True(t, found, "the ratio target is listed")
	var md bytes.Buffer
	md.Write(r.markdown())
	require.Contains(t, md.String(), fmt.Sprintf("| 20 | %.2f s |", ref.Seconds))
}
