package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/reconcile"
	syncdsql "github.com/syncd/syncd/sql"
	"github.com/syncd/syncd/testcontainers"
)

func init() {
	register("demo", "start a throwaway Postgres, the Auth0 emulator, sample employees and the daemon", cmdDemo)
}

var demoEmployees = []struct{ name, email, dept, role string }{
	{"Ada Lovelace", "ada@example.com", "Heat Press", "associate"},
	{"Grace Hopper", "grace@example.com", "Shipping", "associate"},
	{"Alan Turing", "alan@example.com", "Heat Press", "lead"},
	{"Katherine Johnson", "katherine@example.com", "Quality", "associate"},
	{"Edsger Dijkstra", "edsger@example.com", "Shipping", "associate"},
}

func cmdDemo(ctx context.Context, e *env, args []string) error {
	var (
		emuAddr, metrics, source, logLevel string
		summaryEvery                       time.Duration
	)
	fs := newFlagSet(e, "demo")
	fs.StringVar(&emuAddr, "emulator-addr", "127.0.0.1:8089", "where the Auth0 emulator listens (a free port is taken if it is busy)")
	fs.StringVar(&metrics, "metrics-addr", "127.0.0.1:9464", "where /metrics, /healthz and /readyz listen (a free port is taken if it is busy)")
	fs.StringVar(&source, "source", "notify", "change source: notify or replication")
	fs.StringVar(&logLevel, "log-level", "info", "log level")
	fs.DurationVar(&summaryEvery, "summary-every", 15*time.Second, "how often to print a status summary")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	start := time.Now()
	fmt.Fprintln(e.stdout, "syncd demo: starting a throwaway PostgreSQL and the Auth0 emulator…")
	pg, err := testcontainers.StartLocal(ctx, testcontainers.LocalOptions{})
	if err != nil {
		return err
	}
	defer pg.Close()
	admin, err := pgx.Connect(ctx, pg.AdminURL())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE syncd_demo")
	admin.Close(ctx)
	if err != nil {
		return fmt.Errorf("create demo database: %w", err)
	}
	dbURL := pg.URL("syncd_demo")
	if _, err := syncdsql.MigrateURL(ctx, dbURL); err != nil {
		return err
	}
	emu, err := emulator.Listen(freeOr(emuAddr), emulator.Options{Roles: []string{"production_associate", "production_lead"}})
	if err != nil {
		return fmt.Errorf("start emulator: %w", err)
	}
	defer emu.Close()
	if err := seedDemo(ctx, dbURL); err != nil {
		return err
	}
	metrics = freeOr(metrics)
	consoleAddr, consoleToken := freeOr(defaultConsoleAddr), demoConsoleToken()

	runEnv := &env{getenv: func(string) string { return "" }, stdout: e.stdout, stderr: e.stderr}
	c, err := parseRunConfig(runEnv, []string{
		"--database-url", dbURL, "--auth0-domain", emu.URL,
		"--auth0-client-id", emulator.DefaultClientID, "--auth0-client-secret", emulator.DefaultClientSecret,
		"--roles", "associate=production_associate,lead=production_lead",
		"--source", source, "--slot", "syncd_demo", "--workers", "4", "--poll-interval", "1s", "--resync-interval", "1m",
		"--metrics-addr", metrics, "--log-format", "text", "--log-level", logLevel, "--max-deprovision", "50%",
		"--console-addr", consoleAddr, "--console-token", consoleToken,
	})
	if err != nil {
		return err
	}
	logger := c.log.logger(e.stderr)
	d, cleanup, err := newDaemon(ctx, c, logger)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := seedDemoProblems(ctx, dbURL, d.api); err != nil {
		return err
	}

	psql := fmt.Sprintf("psql '%s'", dbURL)
	fmt.Fprintf(e.stdout, `
Ready in %s. syncd is converging %d sample employees; watch the log below.

  Database  %s
  Auth0     %s  (emulator; client id %s, secret %s)
  Metrics   http://%s/metrics   health: /healthz, /readyz
  Console   http://%s/   token %s
            (one employee fails and one is in conflict: find them there, see why, fix them)

Try it, in another terminal:
  %s -c "INSERT INTO employees (name, email, department) VALUES ('Barbara Liskov', 'barbara@example.com', 'Quality')"
  %s -c "UPDATE employees SET role_code = 'lead' WHERE email = 'grace@example.com'"
  %s -c "UPDATE employees SET active = false WHERE email = 'edsger@example.com'"
  %s -c "SELECT id, email, auth0_sync_status, auth0_user_id FROM employees ORDER BY id"

See the users in the emulator:
  TOKEN=$(curl -s %s/oauth/token -H 'content-type: application/json' \
    -d '{"grant_type":"client_credentials","client_id":"%s","client_secret":"%s","audience":"https://%s/api/v2/"}' \
    | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -s -H "Authorization: Bearer $TOKEN" %s/api/v2/users

Ctrl-C stops syncd and removes the database and the emulator.

`, formatDuration(time.Since(start)), len(demoEmployees)+demoProblemEmployees, dbURL, emu.URL, emulator.DefaultClientID, emulator.DefaultClientSecret, metrics, consoleAddr, consoleToken,
		psql, psql, psql, psql, emu.URL, emulator.DefaultClientID, emulator.DefaultClientSecret, strings.TrimPrefix(emu.URL, "http://"), emu.URL)

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go demoSummary(sctx, e, dbURL, summaryEvery)
	err = d.Run(ctx)
	fmt.Fprintln(e.stdout, "\nsyncd demo: stopped; removing the database and the emulator.")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func seedDemo(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	for _, emp := range demoEmployees {
		if _, err := conn.Exec(ctx, `INSERT INTO employees (name, email, department, role_code) VALUES ($1, $2, $3, $4)`,
			emp.name, emp.email, emp.dept, emp.role); err != nil {
			return fmt.Errorf("seed employees: %w", err)
		}
	}
	return nil
}

// demoSummary prints status counts every so often.
func demoSummary(ctx context.Context, e *env, dbURL string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			continue
		}
		rep, err := reconcile.ReadStatus(ctx, conn, 0)
		conn.Close(ctx)
		if err != nil {
			continue
		}
		var parts []string
		for _, s := range []string{reconcile.StatusSynced, reconcile.StatusPending, reconcile.StatusSyncing, reconcile.StatusRetrying,
			reconcile.StatusFailed, reconcile.StatusConflict, reconcile.StatusDeprovisioned} {
			if n := rep.Counts[s]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", s, n))
			}
		}
		fmt.Fprintf(e.stdout, "── %s  employees: %s\n", time.Now().Format(time.TimeOnly), strings.Join(parts, ", "))
	}
}

// freeOr returns addr if it can be listened on, else the same host on a free port.
func freeOr(addr string) string {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		ln.Close()
		return addr
	}
	host, _, _ := net.SplitHostPort(addr)
	ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return addr
	}
	defer ln.Close()
	return ln.Addr().String()
}
