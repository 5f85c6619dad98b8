package deploy_test

import (
	"bufio"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const unitFile = "systemd/syncd.service"

// TestSystemdUnit checks deploy/systemd/syncd.service twice over.
//
// systemd-analyze verify: the unit file as shipped, byte for byte, under a
// --root that holds it at /etc/systemd/system, the syncd binary at the
// ExecStart path and the host's own system units. Any output fails the test:
// verify exits 0 on a setting it ignores.
//
// Then what the unit runs, as systemd would run it: this machine's PID 1 is
// not systemd (a container), so the test does not `systemctl start` it; it
// runs the ExecStart command line (its binary path pointing at the built
// syncd) with exactly the environment the EnvironmentFile gives, made from
// deploy/systemd/syncd.env.example filled in for a throwaway database and the
// emulator, sees an employee synced, sends the unit's KillSignal and expects
// a clean exit (status 0, "stopped"): syncd bounds its own drain by
// SYNCD_SHUTDOWN_TIMEOUT, which the unit's TimeoutStopSec must exceed.
func TestSystemdUnit(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("systemd units are for Linux")
	}
	t.Parallel()
	root := repoRoot(t)
	unit := parseUnit(t, "systemd/syncd.service")
	svc := unit["Service"]
	execStart := strings.Fields(svc["ExecStart"])
	require.NotEmpty(t, execStart)
	require.True(t, filepath.IsAbs(execStart[0]), "ExecStart starts with an absolute path")
	envFile := svc["EnvironmentFile"]
	require.Equal(t, "/etc/syncd/env", envFile, "the path the README documents; systemd allows no comment after a value")
	require.Equal(t, "exec", svc["Type"])

	dir := t.TempDir()
	bin := filepath.Join(dir, "syncd")
	buildSyncd(t, root, bin)

	t.Run("systemd-analyze verify", func(t *testing.T) {
		analyze, err := exec.LookPath("systemd-analyze")
		if err != nil {
			if requireTools {
				t.Fatal("systemd-analyze not found: install systemd (.ci/run does)")
			}
			t.Skip("systemd-analyze not found: install systemd to check the unit (.ci/run does)")
		}
		sysroot := filepath.Join(dir, "root")
		unitDir := filepath.Join(sysroot, "etc/systemd/system")
		require.NoError(t, os.MkdirAll(unitDir, 0o755))
		b, err := os.ReadFile(unitFile)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(unitDir, "syncd.service"), b, 0o644))
		binDir := filepath.Join(sysroot, filepath.Dir(execStart[0]))
		require.NoError(t, os.MkdirAll(binDir, 0o755))
		require.NoError(t, os.Link(bin, filepath.Join(sysroot, execStart[0])))
		hostUnits := ""
		for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
			if _, err := os.Stat(filepath.Join(d, "sysinit.target")); err == nil {
				hostUnits = d
				break
			}
		}
		require.NotEmpty(t, hostUnits, "the host's system units (sysinit.target)")
		copyUnits(t, hostUnits, filepath.Join(sysroot, "usr/lib/systemd/system"))
		out, err := exec.Command(analyze, "verify", "--root="+sysroot, "/etc/systemd/system/syncd.service").CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify has something to say")
	})

	t.Run("start and stop", func(t *testing.T) {
		// TimeoutStopSec must leave syncd its whole drain.
		help, _ := exec.Command(bin, "run", "-h").CombinedOutput()
		m := regexp.MustCompile(`(?s)-shutdown-timeout duration.*?\(default ([0-9a-z.]+)\)`).FindSubmatch(help)
		require.NotNil(t, m, "syncd run -h names the shutdown timeout's default:\n%s", help)
		drain, err := time.ParseDuration(string(m[1]))
		require.NoError(t, err)
		stopTimeout, err := time.ParseDuration(svc["TimeoutStopSec"] + "s")
		require.NoError(t, err)
		require.Greater(t, stopTimeout, drain, "TimeoutStopSec leaves syncd its shutdown timeout")

		sig := syscall.SIGTERM
		if name := svc["KillSignal"]; name != "" {
			require.Equal(t, "SIGTERM", name, "syncd drains on SIGTERM (or SIGINT)")
		}

		w := newWorld(t) // ExecStart has --migrate
		fill := w.settings()
		// Not the default port, which another process of this machine may hold.
		fill["METRICS_ADDR"] = "127.0.0.1:0"
		filled := filepath.Join(dir, "env")
		writeEnvFile(t, "systemd/syncd.env.example", filled, fill)
		env := readEnvFile(t, filled)
		for _, k := range []string{"DATABASE_URL", "AUTH0_DOMAIN", "AUTH0_CLIENT_ID", "AUTH0_CLIENT_SECRET"} {
			require.NotEmpty(t, env[k], "the example environment file sets %s", k)
		}

		p := startProc(t, "syncd (the unit's ExecStart)", bin, execStart[1:], environ(env))
		p.waitRunning(t)
		id := w.insert(t, "Ada Lovelace", "ada@example.com")
		w.waitSynced(t, id)
		require.Equal(t, 0, p.stop(t, sig), "a clean exit on %s", sig)
		require.Contains(t, p.logs.String(), `"msg":"stopped"`)
	})
}

// copyUnits copies the host's unit directory (files, and symlinks as
// they are) into the verify root: a symlink to the directory would be
// resolved inside the root and loop.
func copyUnits(t *testing.T, from, to string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, b, 0o644)
		}
		return nil
	}))
}

// parseUnit reads a unit file: section → key → value (the last one wins;
// syncd's unit repeats no key). It fails on what systemd would misread here:
// a comment after a value.
func parseUnit(t *testing.T, path string) map[string]map[string]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	unit := map[string]map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
			unit[section] = map[string]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%s:%d: not key=value", path, n)
			require.NotContains(t, v, " #", "%s:%d: systemd takes a comment after a value as part of it", path, n)
			require.NotNil(t, unit[section], "%s:%d: outside a section", path, n)
			unit[section][strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	require.NoError(t, sc.Err())
	return unit
}

// writeEnvFile copies the example environment file to dst, replacing the
// values of the keys in fill (and appending those it lacks).
func writeEnvFile(t *testing.T, example, dst string, fill map[string]string) {
	t.Helper()
	b, err := os.ReadFile(example)
	require.NoError(t, err)
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			if v, ok := fill[k]; ok {
				line, seen[k] = k+"="+v, true
			}
		}
		out = append(out, line)
	}
	for k, v := range fill {
		if !seen[k] {
			out = append(out, k+"="+v)
		}
	}
	require.NoError(t, os.WriteFile(dst, []byte(strings.Join(out, "\n")+"\n"), 0o600))
}

// readEnvFile reads an environment file as systemd's EnvironmentFile does,
// for what syncd's example uses: KEY=VALUE lines, blank lines and lines
// starting with # or ; ignored, surrounding whitespace and one pair of
// matching quotes removed.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	env := map[string]string{}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "%s:%d: not KEY=VALUE", path, n+1)
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		env[strings.TrimSpace(k)] = v
	}
	return env
}
