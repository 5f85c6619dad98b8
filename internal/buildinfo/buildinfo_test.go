package buildinfo

import (
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFrom(t *testing.T) {
	t.Parallel()
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/syncd/syncd", Version: "v0.0.0-20261202013000-4156b1b12345+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "GOARCH", Value: "arm64"}, {Key: "GOOS", Value: "linux"},
			{Key: "vcs.revision", Value: "4156b1b123456789abcdef0123456789abcdef01"},
			{Key: "vcs.time", Value: "2026-12-02T01:30:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}
	tests := []struct {
		name   string
		bi     *debug.BuildInfo
		linked linked
		want   Info
		line   string
	}{
		{
			name: "go build in the repository", bi: stamped,
			want: Info{Version: "v0.0.0-20261202013000-4156b1b12345+dirty", Commit: "4156b1b123456789abcdef0123456789abcdef01",
				CommitTime: time.Date(2026, 12, 2, 1, 30, 0, 0, time.UTC), Modified: true, GoVersion: "go1.26.8", Platform: "linux/arm64"},
			line: "v0.0.0-20261202013000-4156b1b12345+dirty (commit 4156b1b12345, modified tree, go1.26.8, linux/arm64)",
		},
		{
			name: "release", bi: stamped, linked: linked{version: "v1.2.3"},
			want: Info{Version: "v1.2.3", Commit: "4156b1b123456789abcdef0123456789abcdef01",
				CommitTime: time.Date(2026, 12, 2, 1, 30, 0, 0, time.UTC), Modified: true, GoVersion: "go1.26.8", Platform: "linux/arm64"},
			line: "v1.2.3 (commit 4156b1b12345, modified tree, go1.26.8, linux/arm64)",
		},
		{
			name: "release from a worktree (no VCS stamp)", bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/syncd/syncd", Version: "(devel)"},
				Settings: []debug.BuildSetting{{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "amd64"}}},
			linked: linked{version: "v1.2.3", commit: "105540b1c748fa8c82983f639de75b60e0c7a114", modified: "false"},
			want:   Info{Version: "v1.2.3", Commit: "105540b1c748fa8c82983f639de75b60e0c7a114", GoVersion: "go1.26.8", Platform: "linux/amd64"},
			line:   "v1.2.3 (commit 105540b1c748, clean tree, go1.26.8, linux/amd64)",
		},
		{
			name: "go run", bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/syncd/syncd", Version: "(devel)"},
				Settings: []debug.BuildSetting{{Key: "GOOS", Value: "darwin"}, {Key: "GOARCH", Value: "arm64"}}},
			want: Info{Version: "(devel)", GoVersion: "go1.26.8", Platform: "darwin/arm64"},
			line: "(devel) (commit unknown, no VCS stamp: built by go run, go test or outside the repository, go1.26.8, darwin/arm64)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := from(tt.bi, tt.linked)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.line, got.String())
		})
	}
}

func TestFromWithoutBuildInfo(t *testing.T) {
	t.Parallel()
	got := from(nil, linked{})
	require.Equal(t, "(devel)", got.Version)
	require.Empty(t, got.Commit)
	require.Equal(t, "unknown", got.ShortCommit())
	require.Equal(t, "v9.9.9", from(nil, linked{version: "v9.9.9"}).Version)
}
