package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/internal/buildinfo"
)

func init() {
	register("version", "print the version, the commit and whether the tree was modified (also: syncd --version, -v)", func(_ context.Context, e *env, args []string) error {
		if err := parseFlags(newFlagSet(e, "version"), args); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "syncd", buildinfo.Read())
		return nil
	})
}

// isVersionFlag reports the spellings of `syncd version` as a top-level flag.
func isVersionFlag(arg string) bool {
	switch arg {
	case "--version", "-version", "-v":
		return true
	}
	return false
}

// buildAttrs are the build's log attributes, for `syncd run`'s first line.
func buildAttrs() []any {
	b := buildinfo.Read()
	return []any{"version", b.Version, "commit", b.ShortCommit(), "modified", b.Modified}
}

// newBuildInfoGauge is syncd_build_info: always 1, its labels say which build runs.
func newBuildInfoGauge() prometheus.Collector {
	b := buildinfo.Read()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "syncd_build_info",
		Help: "Always 1; the labels say which syncd runs: version, commit (full revision, empty without a VCS stamp), modified (uncommitted changes), goversion.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit,
			"modified": strconv.FormatBool(b.Modified), "goversion": b.GoVersion}})
	g.Set(1)
	return g
}
