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

// demoSettings are the settings of `syncd run` that `syncd demo` offers,
// with the demo's defaults; the banner shows them, and where the demo's
// default differs from syncd run's, says so.
var demoSettings = []struct{ flag, def, runDef, usage string }{
	{"roles", "associate=production_associate,lead=production_lead", "associate=production_associate", "role mapping: comma-separated role_code=Auth0 role name (the emulator has production_associate and production_lead)"},
	{"deprovision", "block", "", "what happens to a leaver's account: block or delete"},
	{"max-deprovision", "50%", "10%", "most accounts blocked or deleted within an hour, a count or a share; a batch over it is held whole"},
	{"deprovision-settle", "10s", "", "how long a deprovision waits to be counted with the rest of its batch"},
	{"adopt", "conflict", "", "an existing account with the employee's email and no employee_id: conflict or adopt"},
	{"username", "off", "", "usernames: off or local-part"},
	{"workers", "4", "8", "reconciles run at once"},
	{"resync-interval", "1m", "15m", "time between drift scans (one runs at start)"},
	{"poll-interval", "1s", "5s", "outbox poll interval (notify source)"},
}

func cmdDemo(ctx context.Context, e *env, args []string) error {
	var (
		emuAddr, metrics, source, logLevel string
		summaryEvery                       time.Duration
		allowMass                          bool
	)
	fs := newFlagSet(e, "demo")
	fs.StringVar(&emuAddr, "emulator-addr", "127.0.0.1:8089", "where the Auth0 emulator listens (a free port is taken if it is busy)")
	fs.StringVar(&metrics, "metrics-addr", "127.0.0.1:9464", "where /metrics, /healthz and /readyz listen (a free port is taken if it is busy)")
	fs.StringVar(&source, "source", "notify", "change source: notify or replication")
	fs.StringVar(&logLevel, "log-level", "info", "log level")
	fs.DurationVar(&summaryEvery, "summary-every", 15*time.Second, "how often to look at the status counts (a line is printed when they changed)")
	values := make([]string, len(demoSettings))
	for i, st := range demoSettings {
		usage := st.usage + " (as syncd run's --" + st.flag
		if st.runDef != "" {
			usage += ", whose default is " + st.runDef
		}
		fs.StringVar(&values[i], st.flag, st.def, usage+")")
	}
	fs.BoolVar(&allowMass, "allow-mass-deprovision", false, "never hold deprovisions (as syncd run's)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	runArgs := []string{"--source", source, "--slot", "syncd_demo", "--log-format", "text", "--log-level", logLevel,
		"--allow-mass-deprovision=" + fmt.Sprint(allowMass)}
	for i, st := range demoSettings {
		runArgs = append(runArgs, "--"+st.flag, values[i])
	}
	// The settings are checked before anything starts.
	if _, err := parseRunConfig(&env{getenv: func(string) string { return "" }, stdout: e.stdout, stderr: e.stderr, flagOf: map[string]string{}},
		append(runArgs, "--database-url", "postgres://demo@127.0.0.1/demo", "--auth0-domain", "http://127.0.0.1:1",
			"--auth0-client-id", "demo", "--auth0-client-secret", "demo")); err != nil {
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

	runEnv := &env{getenv: func(string) string { return "" }, stdout: e.stdout, stderr: e.stderr, flagOf: map[string]string{}}
	c, err := parseRunConfig(runEnv, append(runArgs,
		"--database-url", dbURL, "--auth0-domain", emu.URL,
		"--auth0-client-id", emulator.DefaultClientID, "--auth0-client-secret", emulator.DefaultClientSecret,
		"--metrics-addr", metrics))
	if err != nil {
		return err
	}
	logger := c.log.logger(e.stderr)
	d, cleanup, err := newDaemon(ctx, c, logger)
	if err != nil {
		return err
	}
	defer cleanup()

	psql := fmt.Sprintf("psql '%s'", dbURL)
	fmt.Fprintf(e.stdout, `
Ready in %s. syncd is converging %d sample employees; watch the log below.

  Database  %s
  Auth0     %s  (emulator; client id %s, secret %s)
  Metrics   http://%s/metrics   health: /healthz, /readyz
  Settings  %s
            (syncd demo -h lists them; each is syncd run's flag of the same name)

Try it, in another terminal:
  %s -c "INSERT INTO employees (name, email, department) VALUES ('Barbara Liskov', 'barbara@example.com', 'Quality')"
  %s -c "UPDATE employees SET role_code = 'lead' WHERE email = 'grace@example.com'"
  %s -c "UPDATE employees SET active = false WHERE email = 'edsger@example.com'"
  %s -c "SELECT id, email, auth0_sync_status, auth0_user_id FROM employees ORDER BY id"

Ask syncd (make build puts it in bin/syncd):
  export DATABASE_URL='%s' AUTH0_DOMAIN=%s AUTH0_CLIENT_ID=%s AUTH0_CLIENT_SECRET=%s SYNCD_ROLES='%s'
  syncd status; syncd plan; syncd guard list

See the users in the emulator:
  TOKEN=$(curl -s %s/oauth/token -H 'content-type: application/json' \
    -d '{"grant_type":"client_credentials","client_id":"%s","client_secret":"%s","audience":"https://%s/api/v2/"}' \
    | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -s -H "Authorization: Bearer $TOKEN" %s/api/v2/users

Ctrl-C stops syncd and removes the database and the emulator.

`, formatDuration(time.Since(start)), len(demoEmployees), dbURL, emu.URL, emulator.DefaultClientID, emulator.DefaultClientSecret, metrics,
		demoSettingsLine(c), psql, psql, psql, psql,
		dbURL, emu.URL, emulator.DefaultClientID, emulator.DefaultClientSecret, c.mapping.Roles,
		emu.URL, emulator.DefaultClientID, emulator.DefaultClientSecret, strings.TrimPrefix(emu.URL, "http://"), emu.URL)

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

// demoSettingsLine is the demo's effective settings, wrapped, noting where
// the demo's default differs from syncd run's.
func demoSettingsLine(c *runConfig) string {
	runDef := map[string]string{}
	for _, st := range demoSettings {
		runDef[st.flag] = st.runDef
	}
	var parts []string
	for _, st := range c.settings() {
		switch st.Flag {
		case "database-url", "auth0-domain", "auth0-client-id", "auth0-client-secret", "metrics-addr":
			continue // shown above
		}
		part := "--" + st.Flag + "=" + st.Value
		if d := runDef[st.Flag]; d != "" && d != st.Value {
			part += " (syncd run's default: " + d + ")"
		}
		parts = append(parts, part)
	}
	var b strings.Builder
	width := 0
	for i, p := range parts {
		if i > 0 {
			if width+2+len(p) > 100 {
				b.WriteString("\n            ")
				width = 0
			} else {
				b.WriteString("  ")
				width += 2
			}
		}
		b.WriteString(p)
		width += len(p)
	}
	return b.String()
}

// demoSummary looks at the status counts every so often and prints them
// when they changed since the last line.
func demoSummary(ctx context.Context, e *env, dbURL string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var summary demoSummarizer
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
		if line, changed := summary.next(rep); changed {
			fmt.Fprintf(e.stdout, "── %s  employees: %s\n", time.Now().Format(time.TimeOnly), line)
		}
	}
}

// demoSummarizer remembers the last summary line printed.
type demoSummarizer struct{ last string }

// next returns rep's summary line and whether it differs from the last one.
func (s *demoSummarizer) next(rep *reconcile.StatusReport) (string, bool) {
	line := summaryLine(rep)
	if line == s.last {
		return line, false
	}
	s.last = line
	return line, true
}

// summaryLine is the non-zero status counts of rep, and what the guard holds.
func summaryLine(rep *reconcile.StatusReport) string {
	var parts []string
	for _, s := range reconcile.Statuses {
		if n := rep.Counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
		}
	}
	held := 0
	for _, d := range rep.Deprovisions {
		if d.State == reconcile.Held {
			held++
		}
	}
	if held > 0 {
		parts = append(parts, fmt.Sprintf("deprovisions held %d (syncd guard list)", held))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
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
