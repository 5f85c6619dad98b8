//go:build image

package deploy_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers"
)

// podmanArgs are the global podman flags this test passes: what a host
// needs, never baked into the image. On this CI machine podman runs with
// runc and the cgroupfs cgroup manager (no systemd); SYNCD_TEST_PODMAN_FLAGS
// replaces them elsewhere.
func podmanArgs() []string {
	if f, ok := os.LookupEnv("SYNCD_TEST_PODMAN_FLAGS"); ok {
		return strings.Fields(f)
	}
	return []string{"--runtime", "runc", "--cgroup-manager", "cgroupfs"}
}

func podman(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("podman", append(podmanArgs(), args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func mustPodman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := podman(t, args...)
	require.NoError(t, err, "podman %s: %s", strings.Join(args, " "), out)
	return out
}

// ulimits are the --ulimit flags: the sandbox this runs in refuses podman's
// defaults (a nofile limit above its hard limit), and refuses a container
// nproc limit near the host's own. syncd needs a few hundred descriptors
// (connections, listeners) and a few dozen threads, so it gets 8192 and
// 4096, or this process's own hard limits if lower.
func ulimits(t *testing.T) []string {
	t.Helper()
	var flags []string
	for _, l := range []struct {
		name string
		res  int
		want uint64
	}{{"nofile", syscall.RLIMIT_NOFILE, 8192}, {"nproc", 6 /* RLIMIT_NPROC */, 4096}} {
		var r syscall.Rlimit
		require.NoError(t, syscall.Getrlimit(l.res, &r))
		n := strconv.FormatUint(min(l.want, r.Max), 10)
		flags = append(flags, "--ulimit", l.name+"="+n+":"+n)
	}
	return flags
}

// TestImage starts the image `make test-image` built (SYNCD_TEST_IMAGE)
// against a throwaway PostgreSQL and the emulator on the host's loopback
// (--network host), with its default command (`run`) and SYNCD_MIGRATE on an
// empty database: an employee inserted gets synced. The process runs as the
// image's non-root user, the image has no shell, and SIGTERM stops it by
// itself, cleanly: exit status 0 and "stopped" (syncd bounds its drain by
// SYNCD_SHUTDOWN_TIMEOUT and exits 1 past it; `podman wait` waits for the
// event).
func TestImage(t *testing.T) {
	image := os.Getenv("SYNCD_TEST_IMAGE")
	if image == "" {
		t.Fatal("SYNCD_TEST_IMAGE names the image to test: run `make test-image`")
	}
	_, err := exec.LookPath("podman")
	require.NoError(t, err, "podman is needed (.ci/run installs it)")

	// The image as built: user, entrypoint, command, no healthcheck, labels.
	cfg := mustPodman(t, "image", "inspect", "--format",
		`{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.Healthcheck}}|{{index .Labels "org.opencontainers.image.revision"}}|{{index .Labels "org.opencontainers.image.title"}}|{{.Size}}`, image)
	f := strings.Split(cfg, "|")
	require.Len(t, f, 7, cfg)
	require.Equal(t, "65532:65532", f[0], "a numeric non-root user")
	require.Equal(t, `["/syncd"]`, f[1])
	require.Equal(t, `["run"]`, f[2])
	require.Equal(t, "null", f[3], "no HEALTHCHECK: the orchestrator probes /healthz and /readyz")
	require.Equal(t, "syncd", f[5])
	revision := f[4]
	require.Len(t, revision, 40, "the label org.opencontainers.image.revision is the commit")
	t.Logf("image %s: %s bytes", image, f[6])

	common := append([]string{"run", "--network", "host"}, ulimits(t)...)
	out := mustPodman(t, append(append([]string{}, common...), "--rm", image, "version")...)
	require.Contains(t, out, "(commit "+revision[:12], "syncd version in the image names the commit")

	out, err = podman(t, append(append([]string{}, common...), "--rm", "--entrypoint", "/bin/sh", image, "-c", "true")...)
	require.Error(t, err, "the image has no shell: %s", out)
	require.Contains(t, out, "/bin/sh", "podman says /bin/sh is missing: %s", out)

	w := newWorld(t)
	name := fmt.Sprintf("syncd-test-%d", time.Now().UnixNano())
	env := w.settings()
	env["METRICS_ADDR"] = "127.0.0.1:0" // the host's network: not the image's :9464, which another process may hold
	env["SYNCD_MIGRATE"] = "true"
	env["SYNCD_POLL_INTERVAL"] = "200ms"
	args := append(append([]string{}, common...), "-d", "--name", name)
	for k, v := range env {
		args = append(args, "-e", k+"="+v)
	}
	mustPodman(t, append(args, image)...)
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := podman(t, "logs", name)
			t.Logf("container logs:\n%s", tail(logs, 40))
		}
		_, _ = podman(t, "rm", "-f", "-t", "0", name)
	})

	var addr string
	waitUntil(t, "the container logs "+testcontainers.RunningMsg, func() bool {
		logs, err := podman(t, "logs", name)
		require.NoError(t, err, logs)
		addr = testcontainers.ListeningAddr([]byte(logs), 0)
		if addr == "" {
			state := mustPodman(t, "inspect", "--format", "{{.State.Status}}", name)
			require.Equal(t, "running", state, "the container exited: %s", logs)
		}
		return addr != ""
	})
	resp, err := http.Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	id := w.insert(t, "Ada Lovelace", "ada@example.com")
	uid := w.waitSynced(t, id)
	require.NotNil(t, w.emuUser(uid))

	// Non-root: the process's real, effective, saved and filesystem uids.
	pid := mustPodman(t, "inspect", "--format", "{{.State.Pid}}", name)
	status, err := os.ReadFile("/proc/" + pid + "/status")
	require.NoError(t, err)
	var uids, gids string
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			uids = strings.Join(strings.Fields(v), " ")
		}
		if v, ok := strings.CutPrefix(line, "Gid:"); ok {
			gids = strings.Join(strings.Fields(v), " ")
		}
	}
	require.Equal(t, "65532 65532 65532 65532", uids)
	require.Equal(t, "65532 65532 65532 65532", gids)

	mustPodman(t, "kill", "--signal", "TERM", name)
	code := mustPodman(t, "wait", name)
	logs, _ := podman(t, "logs", name)
	require.Equal(t, "0", code, "a clean exit on SIGTERM:\n%s", tail(logs, 20))
	require.Contains(t, logs, `"msg":"stopped"`)
}
