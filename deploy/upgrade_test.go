package deploy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	syncdsql "github.com/syncd/syncd/sql"
)

// TestRollingUpgrade: an older syncd runs against a database it migrated;
// a newer one starts with --migrate while the older one keeps running,
// migrates the schema forward, and both converge employees; with the newer
// one stopped, the older one still converges new and changed rows on the
// newer schema (migrations are additive). One Auth0 account per employee
// throughout.
//
// The older syncd is built from git history: the commit just before the
// newest migration arrived (the first parent of the newest first-parent
// commit whose parent had fewer migrations), so the upgrade crosses at least
// one real migration. The test is skipped, saying why, outside a full git
// clone.
func TestRollingUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("builds syncd twice, once from git history")
	}
	t.Parallel()
	root := repoRoot(t)
	old, oldKnows := olderCommit(t, root)
	t.Logf("older syncd: commit %s (%d migrations); newer: this tree (%d)", old, oldKnows, syncdsql.Latest())

	dir := t.TempDir()
	src := filepath.Join(dir, "old-src")
	require.NoError(t, os.Mkdir(src, 0o755))
	archive := exec.Command("sh", "-c", `git archive --format=tar "$1" | tar -x -C "$2"`, "sh", old, src)
	archive.Dir = root
	out, err := archive.CombinedOutput()
	require.NoError(t, err, "git archive %s: %s", old, out)
	oldBin, newBin := filepath.Join(dir, "syncd-old"), filepath.Join(dir, "syncd-new")
	buildSyncd(t, src, oldBin)
	buildSyncd(t, root, newBin)

	w := newWorld(t)
	env := w.settings()
	env["LOG_FORMAT"], env["METRICS_ADDR"], env["SYNCD_POLL_INTERVAL"] = "json", "127.0.0.1:0", "200ms"

	older := startProc(t, "older syncd", oldBin, []string{"run", "--migrate"}, environ(env))
	older.waitRunning(t)
	require.Equal(t, oldKnows, w.schemaVersion(t))
	ada := w.insert(t, "Ada Lovelace", "ada@example.com")
	adaUser := w.waitSynced(t, ada)

	newer := startProc(t, "newer syncd", newBin, []string{"run", "--migrate"}, environ(env))
	newer.waitRunning(t)
	require.Equal(t, syncdsql.Latest(), w.schemaVersion(t))
	require.Contains(t, newer.logs.String(), `"msg":"schema migrated","from":`+strconv.Itoa(int(oldKnows)))
	grace := w.insert(t, "Grace Hopper", "grace@example.com")
	w.waitSynced(t, grace)

	require.Equal(t, 0, newer.stop(t, syscall.SIGTERM), "the newer syncd stops cleanly")
	// Only the older syncd runs now, on the newer schema.
	alan := w.insert(t, "Alan Turing", "alan@example.com")
	w.waitSynced(t, alan)
	_, err = w.pool.Exec(context.Background(), `UPDATE employees SET name = 'Ada King' WHERE id = $1`, ada)
	require.NoError(t, err)
	waitUntil(t, "the older syncd applies a change on the newer schema", func() bool {
		u := w.emuUser(adaUser)
		return u != nil && u["name"] == "Ada King"
	})
	require.Equal(t, 0, older.stop(t, syscall.SIGTERM), "the older syncd stops cleanly")
	require.Len(t, w.emu.Emulator.Users(), 3, "one account per employee")
}

// olderCommit finds the newest commit whose migrations are fewer than this
// tree's, and how many it has.
func olderCommit(t *testing.T, root string) (string, int32) {
	t.Helper()
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	if shallow, err := git("rev-parse", "--is-shallow-repository"); err != nil || shallow != "false" {
		t.Skipf("needs a full git clone to build an older syncd (git rev-parse: %q, %v)", shallow, err)
	}
	count := func(commit string) int32 {
		out, err := git("ls-tree", "--name-only", commit, "sql/migrations/")
		require.NoError(t, err)
		var n int32
		for _, f := range strings.Fields(out) {
			if strings.HasSuffix(f, ".sql") {
				n++
			}
		}
		return n
	}
	commits, err := git("rev-list", "--first-parent", "HEAD", "--", "sql/migrations")
	require.NoError(t, err)
	for _, c := range strings.Fields(commits) {
		parent, err := git("rev-parse", "--verify", "--quiet", c+"^1")
		if err != nil {
			break // the first commit: no older syncd
		}
		if n := count(parent); n < syncdsql.Latest() && n > 0 {
			return parent, n
		}
	}
	t.Skip("no commit in this history has fewer migrations than this tree")
	return "", 0
}
