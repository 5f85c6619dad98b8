// Package pgtest gives each test of a package its own freshly migrated
// PostgreSQL database on one throwaway server per test binary.
//
// In TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// and in a test:
//
//	dbURL := pgtest.NewDatabase(t)
//
// The backend is chosen by the environment: SYNCD_TEST_DATABASE_URL uses an
// existing server (any database URL on it, as a superuser);
// SYNCD_TEST_POSTGRES=docker starts a container through testcontainers-go;
// otherwise the machine's own server binaries are used. With no backend the
// tests fail with one line that says how to install PostgreSQL.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/syncd/syncd/testcontainers"
	"github.com/syncd/syncd/testcontainers/docker"
)

var (
	mu      sync.Mutex
	cloner  *testcontainers.Cloner
	stopFns []func()
	initErr error
)

// testOptions: the tests' servers run with the production default,
// synchronous_commit = on. (An earlier version turned it off because the
// replication takeover tests missed their deadline under load: a streamed
// transaction's key was handed out before the transaction was visible, so
// its ack deleted no outbox row. The replication source now waits for
// visibility; see outbox/visibility.go.)
var testOptions = testcontainers.LocalOptions{}

// Main starts the server, runs the tests, stops the server and checks that no
// goroutine leaked. It does not return.
func Main(m *testing.M) {
	code := m.Run()
	mu.Lock()
	for i := len(stopFns) - 1; i >= 0; i-- {
		stopFns[i]()
	}
	mu.Unlock()
	if code == 0 {
		if err := goleak.Find(IgnoredGoroutines()...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// IgnoredGoroutines are goroutines that belong to libraries and outlive tests
// by design.
func IgnoredGoroutines() []goleak.Option {
	return []goleak.Option{
		// net/http's idle keep-alive connections close on their own.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	}
}

// server starts the backend once per test binary.
func server(tb testing.TB) *testcontainers.Cloner {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if cloner != nil || initErr != nil {
		if initErr != nil {
			tb.Fatal(initErr)
		}
		return cloner
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	switch {
	case os.Getenv("SYNCD_TEST_DATABASE_URL") != "":
		cloner = testcontainers.NewCloner(testcontainers.URLServer(os.Getenv("SYNCD_TEST_DATABASE_URL")))
	case os.Getenv("SYNCD_TEST_POSTGRES") == "docker":
		c, err := docker.Start(ctx)
		if err != nil {
			initErr = fmt.Errorf("SYNCD_TEST_POSTGRES=docker: %w", err)
			tb.Fatal(initErr)
		}
		stopFns = append(stopFns, func() { _ = c.Close(context.Background()) })
		cloner = testcontainers.NewCloner(c)
	default:
		p, err := testcontainers.StartLocal(ctx, testOptions)
		if err != nil {
			initErr = err
			tb.Fatal(initErr)
		}
		stopFns = append(stopFns, func() { _ = p.Close() })
		cloner = testcontainers.NewCloner(p)
	}
	return cloner
}

// NewDatabase returns the URL of a new, migrated database that is dropped when
// the test ends.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	c := server(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name, url, err := c.Create(ctx)
	if err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() { drop(tb, c, name) })
	return url
}

// NewEmptyDatabase returns the URL of a new database with no schema, dropped
// when the test ends.
func NewEmptyDatabase(tb testing.TB) string {
	tb.Helper()
	c := server(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name, url, err := c.CreateEmpty(ctx)
	if err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() { drop(tb, c, name) })
	return url
}

func drop(tb testing.TB, c *testcontainers.Cloner, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Drop(ctx, name); err != nil {
		tb.Logf("drop test database %s: %v", name, err)
	}
}

// NewServer starts a private local server for a test that stops and starts
// it (an outage must not hit the other tests of the binary). It is closed
// when the test ends.
func NewServer(tb testing.TB) *testcontainers.Postgres {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := testcontainers.StartLocal(ctx, testOptions)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return p
}
