package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/reconcile"
)

// stderrLines splits a command's stderr into its lines.
func stderrLines(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// A mistyped flag is one line: what is wrong, the closest flag when there
// is one, and where the flags are listed; exit status 2, no usage dump.
func TestFlagMistakeIsOneLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--wokers", "3"}, "syncd: unknown flag --wokers (did you mean --workers?); `syncd run -h` lists the flags"},
		{[]string{"run", "--max-deprovison", "5"}, "syncd: unknown flag --max-deprovison (did you mean --max-deprovision?); `syncd run -h` lists the flags"},
		{[]string{"status", "--jsno"}, "syncd: unknown flag --jsno (did you mean --json?); `syncd status -h` lists the flags"},
		{[]string{"run", "--frobnicate"}, "syncd: unknown flag --frobnicate; `syncd run -h` lists the flags"},
		{[]string{"run", "--workers", "many"}, "syncd: invalid value \"many\" for --workers: parse error; `syncd run -h` lists the flags"},
		{[]string{"status", "--limit"}, "syncd: --limit needs a value; `syncd status -h` lists the flags"},
		{[]string{"run", "--migrate=maybe"}, "syncd: invalid boolean value \"maybe\" for --migrate: parse error; `syncd run -h` lists the flags"},
		{[]string{"stauts"}, "syncd: unknown command \"stauts\" (did you mean status?); `syncd help` lists the commands"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(t, nil, tt.args...)
			require.Equal(t, 2, code, stderr)
			require.Empty(t, stdout)
			require.Equal(t, []string{tt.want}, stderrLines(stderr))
		})
	}
}

func TestDidYouMean(t *testing.T) {
	t.Parallel()
	names := []string{"workers", "json", "limit", "max-deprovision", "resync-interval"}
	for typed, want := range map[string]string{
		"wokers":           " (did you mean --workers?)",
		"WORKERS":          " (did you mean --workers?)",
		"jsn":              " (did you mean --json?)",
		"resync-intervall": " (did you mean --resync-interval?)",
		"x":                "",
		"verbose":          "",
	} {
		require.Equal(t, want, didYouMean(typed, names, "--"), typed)
	}
	require.Equal(t, 0, levenshtein("abc", "abc"))
	require.Equal(t, 3, levenshtein("", "abc"))
	require.Equal(t, 2, levenshtein("wokers", "workers")+1)
	require.Equal(t, 3, levenshtein("kitten", "sitting"))
}

// Every missing setting is named in one run, one line each, with both the
// variable and the flag when neither was given.
func TestEveryMissingSettingAtOnce(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCLI(t, nil, "run")
	require.Equal(t, 2, code)
	require.Equal(t, []string{
		"syncd: DATABASE_URL (--database-url): is required (postgres://user:password@host:5432/db)",
		"syncd: AUTH0_DOMAIN (--auth0-domain): is required (your-tenant.us.auth0.com)",
		"syncd: AUTH0_CLIENT_ID (--auth0-client-id): is required",
		"syncd: AUTH0_CLIENT_SECRET (--auth0-client-secret): is required",
	}, stderrLines(stderr))

	// Missing and malformed together: all of them, still exit 2.
	code, _, stderr = runCLI(t, map[string]string{"SYNCD_SOURCE": "kafka"}, "plan", "--auth0-domain", "tenant.auth0.com", "--deprovision", "remove")
	require.Equal(t, 2, code)
	lines := stderrLines(stderr)
	require.Contains(t, lines, "syncd: DATABASE_URL (--database-url): is required (postgres://user:password@host:5432/db)")
	require.Contains(t, lines, "syncd: AUTH0_CLIENT_ID (--auth0-client-id): is required")
	require.Contains(t, lines, `syncd: --deprovision: must be block or delete, got "remove"`)
	require.Len(t, lines, 4) // and the secret; SYNCD_SOURCE is not a plan setting
}

// An error names the setting the way the person gave it: the flag they
// typed, or the variable they set; a malformed variable does not matter
// when the flag is given.
func TestSettingNamedAsGiven(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "postgres://syncd:hunter2@127.0.0.1:1/app", "AUTH0_DOMAIN": "tenant.auth0.com",
		"AUTH0_CLIENT_ID": "id", "AUTH0_CLIENT_SECRET": "hunter2"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		environ map[string]string
		args    []string
		want    []string
	}{
		{base, []string{"run", "--deprovision", "remove"}, []string{`syncd: --deprovision: must be block or delete, got "remove"`}},
		{with("SYNCD_DEPROVISION", "remove"), []string{"run"}, []string{`syncd: SYNCD_DEPROVISION: must be block or delete, got "remove"`}},
		{with("SYNCD_WORKERS", "0"), []string{"run"}, []string{`syncd: SYNCD_WORKERS: must be 1..256, got 0`}},
		{with("SYNCD_WORKERS", "many"), []string{"run", "--workers", "0", "--source", "kafka"},
			[]string{`syncd: --source: must be notify or replication, got "kafka"`, `syncd: --workers: must be 1..256, got 0`}},
		{with("AUTH0_DOMAIN", ""), []string{"plan", "--roles", "associate"},
			[]string{`syncd: AUTH0_DOMAIN (--auth0-domain): is required (your-tenant.us.auth0.com)`, `syncd: --roles: "associate": want role_code=Auth0 role name`}},
		{with("LOG_LEVEL", "loud"), []string{"migrate", "--log-format", "xml"},
			[]string{`syncd: --log-format: must be text or json, got "xml"`, `syncd: LOG_LEVEL: must be debug, info, warn or error, got "loud"`}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runCLI(t, tt.environ, tt.args...)
			require.Equal(t, 2, code, stderr)
			require.Equal(t, tt.want, stderrLines(stderr))
			require.NotContains(t, stderr, "hunter2")
		})
	}
}

// Flags are checked before any SQL: the database is a closed port, so a
// query would end in a connection error (exit 1) instead.
func TestFlagsCheckedBeforeSQL(t *testing.T) {
	t.Parallel()
	closed := map[string]string{"DATABASE_URL": "postgres://syncd@127.0.0.1:1/app?connect_timeout=1"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--limit", "-1"}, "syncd: --limit: must be 0 or more, got -1"},
		{[]string{"resync", "--employee", "3", "--all"}, "syncd: resync: give --employee ID or --all (not both)"},
		{[]string{"resync", "--employee", "3,"}, "syncd: invalid value \"3,\" for --employee: empty employee id in \"3,\"; `syncd resync -h` lists the flags"},
		{[]string{"guard", "release", "--by", " "}, "syncd: guard release: --by must name who releases"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(t, closed, tt.args...)
			require.Equal(t, 2, code, stderr)
			require.Empty(t, stdout)
			require.Equal(t, []string{tt.want}, stderrLines(stderr))
		})
	}
}

// --detailed-exitcode makes every error 1 (2 is drift), a flag mistake too.
func TestPlanDetailedExitCodeErrors(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCLI(t, nil, "plan", "--detailed-exitcode", "--bogus")
	require.Equal(t, 1, code, stderr)
	require.Equal(t, []string{"syncd: unknown flag --bogus; `syncd plan -h` lists the flags"}, stderrLines(stderr))
	code, _, stderr = runCLI(t, nil, "plan", "--detailed-exitcode")
	require.Equal(t, 1, code, stderr)
	require.Len(t, stderrLines(stderr), 4, "every missing setting, still")
	code, _, _ = runCLI(t, nil, "plan", "--bogus")
	require.Equal(t, 2, code, "without the flag a mistake is a usage error")
}

// `syncd demo -h` offers the settings of syncd run that the demo uses, and a
// bad one stops the demo before it starts anything, naming the flag.
func TestDemoSettings(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCLI(t, nil, "demo", "-h")
	require.Equal(t, 0, code)
	for _, flag := range []string{"-roles", "-max-deprovision", "-deprovision-settle", "-deprovision", "-workers", "-resync-interval", "-allow-mass-deprovision"} {
		require.Regexp(t, `(?m)^  `+flag+`( |$)`, stderr)
	}
	require.Contains(t, stderr, `(default "50%")`)
	require.Contains(t, stderr, "whose default is 10%")

	code, stdout, stderr := runCLI(t, nil, "demo", "--max-deprovision", "lots")
	require.Equal(t, 2, code, stderr)
	require.Empty(t, stdout, "nothing started")
	require.Equal(t, []string{`syncd: --max-deprovision: must be a count ≥ 1 or a percentage like 10%, got "lots"`}, stderrLines(stderr))

	// The banner's settings line: every effective setting but the
	// connection ones, and where the demo differs from syncd run.
	c, err := parseRunConfig(&env{getenv: func(string) string { return "" }}, []string{
		"--database-url", "postgres://demo:DBPASSWORD@127.0.0.1/demo", "--auth0-domain", "http://127.0.0.1:1",
		"--auth0-client-id", "demo", "--auth0-client-secret", "TOPSECRET", "--roles", "associate=production_associate,lead=production_lead",
		"--max-deprovision", "50%"})
	require.NoError(t, err)
	line := demoSettingsLine(c)
	require.Contains(t, line, "--roles=associate=production_associate,lead=production_lead (syncd run's default: associate=production_associate)")
	require.Contains(t, line, "--max-deprovision=50% (syncd run's default: 10%)")
	require.Contains(t, line, "--deprovision=block")
	require.NotContains(t, line, "TOPSECRET")
	require.NotContains(t, line, "DBPASSWORD")
}

// The demo's periodic line is printed only when something changed.
func TestDemoSummaryOnlyOnChange(t *testing.T) {
	t.Parallel()
	rep := func(synced, pending int64, held int) *reconcile.StatusReport {
		r := &reconcile.StatusReport{Counts: map[string]int64{"synced": synced, "pending": pending}}
		for range held {
			r.Deprovisions = append(r.Deprovisions, reconcile.HeldDeprovision{State: reconcile.Held})
		}
		return r
	}
	var s demoSummarizer
	line, changed := s.next(rep(5, 0, 0))
	require.True(t, changed)
	require.Equal(t, "synced 5", line)
	_, changed = s.next(rep(5, 0, 0))
	require.False(t, changed, "nothing changed: no line")
	line, changed = s.next(rep(5, 1, 0))
	require.True(t, changed)
	require.Equal(t, "synced 5, pending 1", line)
	line, changed = s.next(rep(5, 1, 2))
	require.True(t, changed)
	require.Equal(t, "synced 5, pending 1, deprovisions held 2 (syncd guard list)", line)
}

// `syncd run`'s first log line holds the effective settings, secrets masked.
func TestRunLogsSettingsFirst(t *testing.T) {
	t.Parallel()
	environ := map[string]string{"DATABASE_URL": "postgres://syncd:DBPASSWORD@127.0.0.1:1/app?connect_timeout=1", "AUTH0_DOMAIN": "tenant.auth0.com",
		"AUTH0_CLIENT_ID": "id", "AUTH0_CLIENT_SECRET": "TOPSECRET", "LOG_FORMAT": "json", "METRICS_ADDR": ""}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"run", "--max-deprovision", "25", "--roles", "associate=production_associate,lead=production_lead"},
			func(k string) string { return environ[k] }, &syncBuffer{}, logs)
	}()
	require.True(t, assertEventually(func() bool { return strings.Contains(logs.String(), "\n") }, 60*time.Second), "a first log line")
	cancel()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("syncd run did not end")
	}
	first, _, _ := strings.Cut(logs.String(), "\n")
	var line struct {
		Msg      string            `json:"msg"`
		Settings map[string]string `json:"settings"`
	}
	require.NoError(t, json.Unmarshal([]byte(first), &line), first)
	require.Equal(t, "syncd starting", line.Msg)
	require.Equal(t, "25", line.Settings["max_deprovision"])
	require.Equal(t, "associate=production_associate,lead=production_lead", line.Settings["roles"])
	require.Equal(t, "block", line.Settings["deprovision"])
	require.Equal(t, "8", line.Settings["workers"])
	require.Equal(t, "(set)", line.Settings["auth0_client_secret"])
	require.Equal(t, "postgres://syncd:xxxxx@127.0.0.1:1/app?connect_timeout=1", line.Settings["database_url"])
	require.NotContains(t, logs.String(), "TOPSECRET")
	require.NotContains(t, logs.String(), "DBPASSWORD")
}

func TestMaskDatabaseURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u:secret@h:5432/db":                 "postgres://u:xxxxx@h:5432/db",
		"postgresql://u@h/db?password=secret&sslmode=x": "postgresql://u@h/db?password=xxxxx&sslmode=x",
		"host=h user=u password=secret dbname=d":        "host=h user=u password=xxxxx dbname=d",
		"host=h password='se cret' dbname=d":            "host=h password=xxxxx dbname=d",
	} {
		require.Equal(t, want, maskDatabaseURL(in))
	}
}

// A JSON log line gives a duration with its unit, never bare nanoseconds.
func TestJSONLogDurationsHaveUnits(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	c := logConfig{Format: "json", Level: "info"}
	c.logger(&buf).Info("employee converged", "took", 1500*time.Millisecond, slog.Group("g", "timeout", 10*time.Second))
	require.Contains(t, buf.String(), `"took":"1.5s"`)
	require.Contains(t, buf.String(), `"g":{"timeout":"10s"}`)
}
