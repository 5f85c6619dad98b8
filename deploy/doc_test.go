// Package deploy_test checks what ships: the release binary's imports, the
// systemd unit (deploy/systemd), upgrades between syncd versions, and (with
// -tags image, run by `make test-image`) the container image built from
// Containerfile. Each drives real syncd binaries against a throwaway
// PostgreSQL and the Auth0 emulator.
package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/testcontainers"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// waitFor is the deadline of every wait for an event: ten times and more
// what it takes on a loaded machine; the tests never assert a duration.
const waitFor = 2 * time.Minute

// repoRoot is the module's root directory (the tests run in deploy/).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err, "deploy's tests run from deploy/ in the repository")
	return root
}

// buildSyncd builds ./cmd/syncd of the module in dir into out.
func buildSyncd(t *testing.T, dir, out string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", out, "./cmd/syncd")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build in %s: %s", dir, b)
}

// syncBuffer collects a process's output safely across goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a running syncd process.
type proc struct {
	name string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
	err  error
}

// startProc starts bin with args and exactly the environment env.
func startProc(t *testing.T, name, bin string, args, env []string) *proc {
	t.Helper()
	p := &proc{name: name, logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s's output:\n%s", p.name, tail(p.logs.String(), 40))
		}
	})
	return p
}

// waitRunning waits for the "syncd running" log line.
func (p *proc) waitRunning(t *testing.T) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%s logs %q", p.name, testcontainers.RunningMsg), func() bool {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it ran: %v", p.name, p.err)
		default:
		}
		return strings.Contains(p.logs.String(), `"msg":"`+testcontainers.RunningMsg+`"`)
	})
}

// stop sends sig and waits for the process to exit by itself; it returns
// the exit code.
func (p *proc) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
	select {
	case <-p.done:
	case <-time.After(waitFor):
		t.Fatalf("%s did not exit after %s", p.name, sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// world is a throwaway database and the emulator.
type world struct {
	dbURL string
	pool  *pgxpool.Pool
	emu   *emulator.Server
}

// newWorld starts the emulator and creates an empty database: what is tested
// migrates it (--migrate).
func newWorld(t *testing.T) *world {
	t.Helper()
	emu, err := testcontainers.StartEmulator(emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = emu.Close() })
	dbURL := pgtest.NewEmptyDatabase(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return &world{dbURL: dbURL, pool: pool, emu: emu}
}

// settings are the environment variables syncd needs for this world.
func (w *world) settings() map[string]string {
	return map[string]string{"DATABASE_URL": w.dbURL, "AUTH0_DOMAIN": w.emu.URL,
		"AUTH0_CLIENT_ID": emulator.DefaultClientID, "AUTH0_CLIENT_SECRET": emulator.DefaultClientSecret}
}

func environ(m map[string]string) []string {
	var env []string
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	return env
}

func (w *world) insert(t *testing.T, name, email string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, w.pool.QueryRow(context.Background(),
		`INSERT INTO employees (name, email) VALUES ($1, $2) RETURNING id`, name, email).Scan(&id))
	return id
}

// waitSynced waits for the employee's row to be synced and returns its Auth0 user id.
func (w *world) waitSynced(t *testing.T, id int64) string {
	t.Helper()
	var status, uid, serr string
	waitUntil(t, fmt.Sprintf("employee %d synced (last: %q %s)", id, status, serr), func() bool {
		require.NoError(t, w.pool.QueryRow(context.Background(), `SELECT auth0_sync_status, coalesce(auth0_user_id, ''), coalesce(auth0_sync_error, '')
			FROM employees WHERE id = $1`, id).Scan(&status, &uid, &serr))
		return status == "synced"
	})
	return uid
}

// emuUser returns the emulator's user with this id, or nil.
func (w *world) emuUser(id string) map[string]any {
	for _, u := range w.emu.Emulator.Users() {
		if u["user_id"] == id {
			return u
		}
	}
	return nil
}

func (w *world) schemaVersion(t *testing.T) int32 {
	t.Helper()
	var v int32
	require.NoError(t, w.pool.QueryRow(context.Background(), "SELECT coalesce(max(version), 0) FROM public.syncd_schema_version").Scan(&v))
	return v
}
