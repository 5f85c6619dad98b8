// Package buildinfo says which syncd this is: the version (a release's, given
// at link time, or the one Go derives from the module and its VCS stamp), the
// commit it was built from and whether the tree had uncommitted changes.
//
// A release sets the version, and the commit and modified flag, at link time:
//
//	go build -ldflags "-X github.com/syncd/syncd/internal/buildinfo.version=v1.2.3
//	  -X github.com/syncd/syncd/internal/buildinfo.commit=$(git rev-parse HEAD)
//	  -X github.com/syncd/syncd/internal/buildinfo.modified=false"
//
// (`make release` and `make image` do). Without them, a `go build` in a clone
// of the repository stamps the commit and the modified flag by itself
// (-buildvcs=auto), but not in a git worktree (Go looks for a .git directory)
// nor with GOFLAGS=-buildvcs=false; `go run` and `go test` never do, and
// `syncd version` says so.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"time"
)

// Set by -ldflags -X for releases; empty otherwise. modified is "true" or "false".
var version, commit, modified string

// Info is what is known of this build.
type Info struct {
	// Version is the release version given at link time, else the main
	// module's version from the build information (for a `go build` in the
	// repository Go derives one from the commit, such as
	// v0.0.0-20261202013000-4156b1b12345+dirty), else "(devel)".
	Version string
	// Commit is the full VCS revision; empty when the build carries no VCS
	// stamp (go run, go test, a build outside the repository, -buildvcs=false).
	Commit string
	// CommitTime is the commit's time; zero when unknown.
	CommitTime time.Time
	// Modified reports uncommitted changes in the tree the build came from.
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
	// Platform is GOOS/GOARCH.
	Platform string
}

// Read returns this binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return from(bi, linked{version: version, commit: commit, modified: modified})
}

// linked is what the linker was told (-X); it wins over the VCS stamp.
type linked struct{ version, commit, modified string }

// from builds an Info from Go's build information (nil when the binary has
// none) and the link-time values.
func from(bi *debug.BuildInfo, l linked) (i Info) {
	i = Info{Version: l.version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	defer func() {
		if l.commit != "" {
			i.Commit, i.Modified = l.commit, l.modified == "true"
		}
	}()
	if bi == nil {
		if i.Version == "" {
			i.Version = "(devel)"
		}
		return i
	}
	if bi.GoVersion != "" {
		i.GoVersion = bi.GoVersion
	}
	if i.Version == "" {
		i.Version = bi.Main.Version
	}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Commit = s.Value
		case "vcs.time":
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
				i.CommitTime = t
			}
		case "vcs.modified":
			i.Modified = s.Value == "true"
		case "GOOS":
			if arch := setting(bi, "GOARCH"); arch != "" {
				i.Platform = s.Value + "/" + arch
			}
		}
	}
	return i
}

func setting(bi *debug.BuildInfo, key string) string {
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// ShortCommit is the first 12 characters of Commit, or "unknown".
func (i Info) ShortCommit() string {
	switch {
	case i.Commit == "":
		return "unknown"
	case len(i.Commit) > 12:
		return i.Commit[:12]
	default:
		return i.Commit
	}
}

// String is the one line `syncd version` prints after "syncd ".
func (i Info) String() string {
	tree := "clean tree"
	switch {
	case i.Commit == "":
		tree = "no VCS stamp: built by go run, go test or outside the repository"
	case i.Modified:
		tree = "modified tree"
	}
	return fmt.Sprintf("%s (commit %s, %s, %s, %s)", i.Version, i.ShortCommit(), tree, i.GoVersion, i.Platform)
}
