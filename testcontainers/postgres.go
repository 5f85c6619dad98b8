// Package testcontainers starts throwaway infrastructure for tests, benchmarks
// and `syncd demo`: a PostgreSQL server from the machine's own binaries and
// databases cloned from a migrated template.
//
// The Docker backend lives in the docker subpackage so that the syncd binary
// never links a Docker client; test code picks a backend through pgtest.
package testcontainers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoPostgres says that no PostgreSQL server binaries were found.
var ErrNoPostgres = errors.New("no PostgreSQL server binaries found (initdb, postgres): install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@15), put their directory on PATH, or set SYNCD_TEST_DATABASE_URL to a server you own")

// dirPrefix names every data directory this package makes, so that directories
// left by a process that was killed can be found and removed.
const dirPrefix = "syncd-pg-"

// Postgres is a PostgreSQL server in a temporary directory, listening on a free
// loopback port, run by the machine's server binaries.
type Postgres struct {
	binDir  string
	dir     string // the data directory's parent, removed by Close
	dataDir string
	port    int
	cred    *syscall.Credential
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile *os.File
}

// LocalOptions tunes StartLocal.
type LocalOptions struct {
	// Settings are extra server settings (name → value) on top of the defaults.
	Settings map[string]string
}

// StartLocal initialises a cluster in a temporary directory and starts it with
// wal_level=logical, replication enabled and fsync off. As root it runs the
// server as the "postgres" user (or "nobody"), since the server refuses root.
// The server is killed if this process dies; call Close to stop it and remove
// its files.
func StartLocal(ctx context.Context, opts LocalOptions) (*Postgres, error) {
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	removeStaleDirs()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("make temp dir: %w", err)
	}
	p := &Postgres{binDir: binDir, dir: dir, dataDir: filepath.Join(dir, "data")}
	ok := false
	defer func() {
		if !ok {
			_ = p.Close()
		}
	}()
	if os.Geteuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			return nil, err
		}
		p.cred = cred
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("chown %s: %w", dir, err)
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"-D", p.dataDir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, lastLines(out, 5))
	}
	conf := map[string]string{
		"listen_addresses":        "'127.0.0.1'",
		"unix_socket_directories": "''",
		"fsync":                   "off",
		// on: with fsync off it costs nothing, and off would delay the WAL
		// sender (and so replication mode) by the WAL writer's 200 ms.
		"synchronous_commit":        "on",
		"full_page_writes":          "off",
		"wal_level":                 "logical",
		"max_wal_senders":           "20",
		"max_replication_slots":     "20",
		"max_connections":           "300",
		"shared_buffers":            "128MB",
		"log_min_messages":          "warning",
		"wal_sender_timeout":        "60s",
		"max_slot_wal_keep_size":    "-1",
		"idle_session_timeout":      "0",
		"log_line_prefix":           "'%m [%p] '",
		"logging_collector":         "off",
		"max_locks_per_transaction": "256",
	}
	for k, v := range opts.Settings {
		conf[k] = v
	}
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, conf[k])
	}
	f, err := os.OpenFile(filepath.Join(p.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open postgresql.conf: %w", err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write postgresql.conf: %w", err)
	}
	hba := "local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(p.dataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return nil, fmt.Errorf("write pg_hba.conf: %w", err)
	}
	if p.cred != nil {
		_ = os.Chown(filepath.Join(p.dataDir, "pg_hba.conf"), int(p.cred.Uid), int(p.cred.Gid))
	}
	p.port, err = freePort()
	if err != nil {
		return nil, err
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// Start starts the server (again) on its port and waits until it accepts
// connections. StartLocal calls it; tests call it after Stop to simulate an
// outage.
func (p *Postgres) Start(ctx context.Context) error {
	if p.cmd != nil {
		return errors.New("postgres: already running")
	}
	logFile, err := os.OpenFile(filepath.Join(p.dir, "postgres.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	cmd := exec.Command(filepath.Join(p.binDir, "postgres"), "-D", p.dataDir, "-p", strconv.Itoa(p.port))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = serverProcAttr(p.cred)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	p.cmd, p.logFile, p.exited = cmd, logFile, make(chan struct{})
	go func(exited chan struct{}) { _ = cmd.Wait(); close(exited) }(p.exited)

	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, p.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-p.exited:
			p.cmd = nil
			return fmt.Errorf("postgres exited at start: %s", p.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within 30s: %s", p.logTail())
		}
	}
}

// Stop shuts the server down fast (SIGINT: active transactions are rolled
// back, connections are cut) and waits for it to exit. Data stays; Start
// brings it back.
func (p *Postgres) Stop() error {
	if p.cmd == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
	p.logFile.Close()
	return nil
}

// Close stops the server and removes its files.
func (p *Postgres) Close() error {
	err := p.Stop()
	if rerr := os.RemoveAll(p.dir); err == nil {
		err = rerr
	}
	return err
}

// Port is the loopback TCP port the server listens on.
func (p *Postgres) Port() int { return p.port }

// URL is the connection string of database db as the superuser "postgres".
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

// AdminURL is the connection string of the "postgres" maintenance database.
func (p *Postgres) AdminURL() string { return p.URL("postgres") }

func (p *Postgres) logTail() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "postgres.log"))
	return lastLines(b, 5)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// debianGlob is where Debian and Ubuntu install server binaries.
var debianGlob = "/usr/lib/postgresql/*/bin/initdb"

// findBinDir finds initdb and postgres: on PATH first, then in the newest
// /usr/lib/postgresql/*/bin.
func findBinDir() (string, error) {
	if p, err := exec.LookPath("postgres"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob(debianGlob)
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	for _, m := range matches {
		dir := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	return "", ErrNoPostgres
}

func versionOf(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

// unprivileged returns the credential the server runs under when we are root.
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and no unprivileged user (postgres, nobody) to run the PostgreSQL server as")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// removeStaleDirs removes data directories of servers whose owner was killed
// before it could clean up (the server itself died with it: Pdeathsig).
func removeStaleDirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range matches {
		pid, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
		if err == nil {
			first, _, _ := bytes.Cut(pid, []byte("\n"))
			if n, err := strconv.Atoi(string(first)); err == nil && syscall.Kill(n, 0) == nil {
				continue // still running
			}
		}
		info, err := os.Stat(dir)
		if err != nil || time.Since(info.ModTime()) < time.Minute {
			continue // maybe being set up right now
		}
		_ = os.RemoveAll(dir)
	}
}
