package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/auth0/emulator"
	syncdsql "github.com/syncd/syncd/sql"
	"github.com/syncd/syncd/testcontainers"
)

// bench is what every scenario shares: one throwaway PostgreSQL server
// (each scenario clones its own migrated database), the syncd binary, a
// temporary directory and the progress log.
type bench struct {
	cfg    *config
	log    *slog.Logger
	pg     *testcontainers.Postgres
	cloner *testcontainers.Cloner
	syncd  string // the syncd binary
	self   string // this program's binary (for scan-child)
	tmp    string
	pgPID  int // the postmaster, for CPU accounting
}

func newBench(ctx context.Context, cfg *config, stderr io.Writer) (*bench, func(), error) {
	b := &bench{cfg: cfg, log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	tmp, err := os.MkdirTemp("", "syncbench-")
	if err != nil {
		return nil, nil, fmt.Errorf("temp dir: %w", err)
	}
	b.tmp = tmp
	removeTmp := func() {
		if cfg.Keep {
			b.log.Info("kept the temporary directory", "path", tmp)
			return
		}
		_ = os.RemoveAll(tmp)
	}
	cleanup := removeTmp
	if b.self, err = os.Executable(); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("find own binary: %w", err)
	}
	b.syncd = cfg.SyncdBin
	if b.syncd == "" {
		start := time.Now()
		if b.syncd, err = buildSyncd(ctx, tmp); err != nil {
			cleanup()
			return nil, nil, err
		}
		b.log.Info("built syncd", "path", b.syncd, "took", time.Since(start).Round(time.Millisecond))
	}
	pg, err := testcontainers.StartLocal(ctx, testcontainers.LocalOptions{})
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("start postgres: %w", err)
	}
	b.pg = pg
	b.cloner = testcontainers.NewCloner(pg)
	cleanup = func() {
		_ = pg.Close()
		removeTmp()
	}
	b.pgPID, err = postmasterPID(ctx, pg.AdminURL())
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return b, cleanup, nil
}

// moduleRoot is the directory of the syncd module this program is run in.
func moduleRoot(ctx context.Context) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module (go env GOMOD): %w", err)
	}
	path := strings.TrimSpace(string(gomod))
	if path == "" || path == os.DevNull {
		return "", errors.New("run syncbench inside the syncd module (go env GOMOD is empty)")
	}
	return filepath.Dir(path), nil
}

// buildSyncd builds ./cmd/syncd of the module this program belongs to.
func buildSyncd(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", fmt.Errorf("%w, or pass -syncd", err)
	}
	out := filepath.Join(dir, "syncd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/syncd")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/syncd: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// postmasterPID finds the server's postmaster: the parent of a backend.
func postmasterPID(ctx context.Context, adminURL string) (int, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return 0, fmt.Errorf("backend pid: %w", err)
	}
	st, err := readProcStat(backend)
	if err != nil {
		return 0, err
	}
	return st.ppid, nil
}

// database is one freshly migrated database with a pool.
type database struct {
	name string
	url  string
	pool *pgxpool.Pool
}

func (b *bench) newDatabase(ctx context.Context) (*database, func(), error) {
	return b.newKeyedDatabase(ctx, syncdsql.KeyBigint)
}

// newKeyedDatabase is newDatabase with an employees table keyed by key
// (syncdsql.KeyBigint, KeyUUID or KeyText).
func (b *bench) newKeyedDatabase(ctx context.Context, key string) (*database, func(), error) {
	name, url, err := b.cloner.CreateKeyed(ctx, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create database: %w", err)
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, nil, fmt.Errorf("parse database url: %w", err)
	}
	pcfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	db := &database{name: name, url: url, pool: pool}
	return db, func() {
		pool.Close()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = b.cloner.Drop(dctx, name)
	}, nil
}

func (db *database) exec(ctx context.Context, sql string, args ...any) error {
	_, err := db.pool.Exec(ctx, sql, args...)
	return err
}

func (db *database) count(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := db.pool.QueryRow(ctx, sql, args...).Scan(&n)
	return n, err
}

// apiEvent is one request the emulator answered.
type apiEvent struct {
	method, path string
	status       int
	start, end   time.Time
}

// emu is the emulator served by this process behind a hook that sees every
// request (the latency scenario times the Auth0 leg with it).
type emu struct {
	*emulator.Emulator
	URL  string
	srv  *http.Server
	done chan error
	hook atomic.Pointer[func(apiEvent)]
}

func startEmulator(opts emulator.Options) (*emu, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	e := &emu{Emulator: emulator.New(opts), URL: "http://" + ln.Addr().String(), done: make(chan error, 1)}
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serve), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelDebug)}
	go func() { e.done <- e.srv.Serve(ln) }()
	return e, nil
}

func (e *emu) serve(w http.ResponseWriter, r *http.Request) {
	h := e.hook.Load()
	if h == nil {
		e.Emulator.ServeHTTP(w, r)
		return
	}
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	start := time.Now()
	e.Emulator.ServeHTTP(rw, r)
	(*h)(apiEvent{method: r.Method, path: r.URL.Path, status: rw.status, start: start, end: time.Now()})
}

// setHook installs f (nil removes it).
func (e *emu) setHook(f func(apiEvent)) {
	if f == nil {
		e.hook.Store(nil)
		return
	}
	e.hook.Store(&f)
}

func (e *emu) Close() {
	_ = e.srv.Close()
	<-e.done
}

// apiCalls is every /api/v2 request, whatever its answer.
func (e *emu) apiCalls() int64 { return e.CallCount("") }

// allCalls is every request: token, /api/v2 and export downloads.
func (e *emu) allCalls() int64 {
	var n int64
	for _, c := range e.Calls() {
		n += c.Count
	}
	return n
}

// apiStatus counts /api/v2 requests answered with status (0 = no answer).
func (e *emu) apiStatus(status int) int64 {
	var n int64
	for _, c := range e.Calls() {
		if c.Status == status && strings.Contains(c.Endpoint, " /api/v2/") {
			n += c.Count
		}
	}
	return n
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// replaceHostPort points a connection URL at another host:port.
func replaceHostPort(dbURL, hostport string) string {
	i := strings.Index(dbURL, "@")
	if i < 0 {
		i = strings.Index(dbURL, "://") + 2
	}
	rest := dbURL[i+1:]
	j := strings.IndexAny(rest, "/?")
	if j < 0 {
		j = len(rest)
	}
	return dbURL[:i+1] + hostport + rest[j:]
}

// startStack is what most scenarios start with: a database whose employees
// key is of kind key, an unlimited emulator, and `syncd run` on both with
// its defaults (source notify or replication), ready. stop kills syncd,
// closes the emulator and drops the database.
func (b *bench) startStack(ctx context.Context, key, name, source string) (db *database, e *emu, p *syncdProc, stop func(), err error) {
	db, dropDB, err := b.newKeyedDatabase(ctx, key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if e, err = startEmulator(emulator.Options{}); err != nil {
		dropDB()
		return nil, nil, nil, nil, err
	}
	if p, err = b.startSyncd(ctx, daemonOptions{name: name, dbURL: db.url, emuURL: e.URL, source: source}); err != nil {
		e.Close()
		dropDB()
		return nil, nil, nil, nil, err
	}
	return db, e, p, func() {
		p.kill()
		e.Close()
		dropDB()
	}, nil
}
