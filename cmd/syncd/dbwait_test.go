package main

import (
	"context"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// switchProxy stands between syncd and PostgreSQL: while down it accepts
// and closes every connection (the database is not there), and cut closes
// the connections it forwards (the database was lost).
type switchProxy struct {
	ln       net.Listener
	target   string
	up       atomic.Bool
	attempts atomic.Int64 // connections refused while down

	mu    sync.Mutex
	conns []net.Conn
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &switchProxy{ln: ln, target: target}
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	go p.serve()
	return p
}

func (p *switchProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.up.Load() {
			p.attempts.Add(1)
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
		go func() { _, _ = io.Copy(c, s); _ = c.Close() }()
	}
}

// cut takes the database away: new connections are refused, open ones end.
func (p *switchProxy) cut() {
	p.up.Store(false)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// through returns dbURL with its host replaced by the proxy's.
func (p *switchProxy) through(t *testing.T, dbURL string) string {
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	u.Host = p.ln.Addr().String()
	return u.String()
}

func TestWaitsForTheDatabaseAtStartAndAfterLosingIt(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	x.exec(`INSERT INTO employees (name, email) SELECT 'E' || g, 'e' || g || '@example.com' FROM generate_series(1, 5) g`)
	u, err := url.Parse(x.dbURL)
	require.NoError(t, err)
	proxy := newSwitchProxy(t, u.Host)
	environ := map[string]string{
		"DATABASE_URL": proxy.through(t, x.dbURL), "AUTH0_DOMAIN": x.emu.URL, "AUTH0_CLIENT_ID": emulator.DefaultClientID,
		"AUTH0_CLIENT_SECRET": emulator.DefaultClientSecret, "LOG_FORMAT": "json", "LOG_LEVEL": "debug", "METRICS_ADDR": "127.0.0.1:0",
	}
	ctx, cancel := context.WithCancel(x.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"run", "--poll-interval", "200ms", "--resync-interval", "1h"}, func(k string) string { return environ[k] }, io.Discard, x.logs)
	}()

	// Down at start: syncd runs, waits, says why on /readyz and once in the log.
	waiting := `"msg":"waiting for the database (syncd starts once it answers) fails`
	require.True(t, assertEventually(func() bool { return strings.Contains(x.logs.String(), waiting) }, 60*time.Second), "syncd says it waits")
	for _, l := range strings.Split(x.logs.String(), "\n") {
		if strings.Contains(l, waiting) {
			_, after, _ := strings.Cut(l, `"metrics_addr":"`)
			x.metrics, _, _ = strings.Cut(after, `"`)
		}
	}
	require.NotEmpty(t, x.metrics)
	code, _ := x.get("/healthz")
	require.Equal(t, 200, code)
	code, checks := x.readyz()
	require.Equal(t, 503, code)
	require.Contains(t, checks["database"], "unreachable")
	require.True(t, assertEventually(func() bool { return proxy.attempts.Load() >= 4 }, 60*time.Second), "syncd keeps trying")
	require.Equal(t, 1, strings.Count(x.logs.String(), waiting), "said once, not per try")
	require.Equal(t, 5, x.countStatus("pending"))

	// The database comes: syncd starts by itself and converges.
	started := strings.Count(x.logs.String(), `"msg":"syncd running"`)
	proxy.up.Store(true)
	require.True(t, assertEventually(func() bool { return strings.Count(x.logs.String(), `"msg":"syncd running"`) > started }, 90*time.Second))
	require.Contains(t, x.logs.String(), `"msg":"waiting for the database (syncd starts once it answers) works again"`)
	require.True(t, assertEventually(func() bool {
		for _, l := range strings.Split(x.logs.String(), "\n") {
			if strings.Contains(l, `"msg":"syncd running"`) {
				_, after, _ := strings.Cut(l, `"metrics_addr":"`)
				x.metrics, _, _ = strings.Cut(after, `"`)
			}
		}
		return x.countStatus("synced") == 5
	}, 60*time.Second))

	// Lost while running: said once, /readyz names it, and back by itself.
	proxy.cut()
	lost := `"msg":"database unreachable: syncd waits for it; work resumes by itself"`
	require.True(t, assertEventually(func() bool { return strings.Contains(x.logs.String(), lost) }, 60*time.Second))
	code, checks = x.readyz()
	require.Equal(t, 503, code)
	require.Contains(t, checks["database"], "unreachable")
	require.True(t, assertEventually(func() bool { return proxy.attempts.Load() >= 20 }, 60*time.Second), "syncd keeps trying")
	require.Equal(t, 1, strings.Count(x.logs.String(), lost), "said once")
	proxy.up.Store(true)
	require.True(t, assertEventually(func() bool { return strings.Contains(x.logs.String(), `"msg":"database reachable again"`) }, 60*time.Second))
	var before time.Time
	require.NoError(t, x.pool.QueryRow(x.ctx, `SELECT now()`).Scan(&before))
	x.exec(`UPDATE employees SET department = 'Night'`)
	require.True(t, assertEventually(func() bool {
		var n int
		require.NoError(t, x.pool.QueryRow(x.ctx, `SELECT count(*) FROM employees WHERE auth0_sync_status = 'synced' AND auth0_synced_at > $1`, before).Scan(&n))
		return n == 5
	}, 90*time.Second), "every change after the outage converges")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("syncd run did not stop")
	}
}

func TestStopsAtOnceWhileWaitingForTheDatabase(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	logs := &syncBuffer{}
	environ := map[string]string{
		"DATABASE_URL": "postgres://syncd@" + ln.Addr().String() + "/syncd?sslmode=disable", "AUTH0_DOMAIN": "http://127.0.0.1:1",
		"AUTH0_CLIENT_ID": "id", "AUTH0_CLIENT_SECRET": "secret", "LOG_FORMAT": "json", "METRICS_ADDR": "",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"run"}, func(k string) string { return environ[k] }, io.Discard, logs)
	}()
	require.True(t, assertEventually(func() bool { return strings.Contains(logs.String(), "waiting for the database") }, 60*time.Second))
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "SIGTERM while waiting is a clean stop")
	case <-time.After(30 * time.Second):
		t.Fatal("syncd run did not stop while waiting for the database")
	}
}
