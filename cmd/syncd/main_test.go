package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	syncdsql "github.com/syncd/syncd/sql"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// runCLI runs syncd with args and the given environment and returns its exit
// status and output, as the process would.
func runCLI(t *testing.T, environ map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string { return environ[k] }
	err := run(context.Background(), args, getenv, &out, &errOut)
	code = exitCode(err, &errOut)
	return code, out.String(), errOut.String()
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	okDB := "postgres://syncd@127.0.0.1:5432/app"
	tests := []struct {
		name    string
		environ map[string]string
		args    []string
		want    string
	}{
		{"no command", nil, nil, "syncd: no command given"},
		{"unknown command", nil, []string{"frobnicate"}, `syncd: unknown command "frobnicate"`},
		{"missing DATABASE_URL", nil, []string{"migrate"}, "syncd: DATABASE_URL (--database-url): is required"},
		{"malformed DATABASE_URL", map[string]string{"DATABASE_URL": "postgres://u:hunter2@%zz"}, []string{"migrate"}, "syncd: DATABASE_URL: not a valid PostgreSQL connection string"},
		{"bad LOG_FORMAT", map[string]string{"DATABASE_URL": okDB, "LOG_FORMAT": "xml"}, []string{"migrate"}, `syncd: LOG_FORMAT: must be text or json, got "xml"`},
		{"bad LOG_LEVEL", map[string]string{"DATABASE_URL": okDB, "LOG_LEVEL": "loud"}, []string{"migrate"}, `syncd: LOG_LEVEL: must be debug, info, warn or error, got "loud"`},
		{"unknown flag", nil, []string{"migrate", "--frob"}, "syncd: unknown flag --frob; `syncd migrate -h` lists the flags"},
		{"stray argument", map[string]string{"DATABASE_URL": okDB}, []string{"migrate", "extra"}, `syncd: syncd migrate: unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runCLI(t, tt.environ, tt.args...)
			require.Equal(t, 2, code)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			require.Contains(t, lines[len(lines)-1], tt.want)
			require.NotContains(t, stderr, "hunter2")
		})
	}
}

func TestAuth0ConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  auth0Config
		want string
	}{
		{"missing domain", auth0Config{ClientID: "id", ClientSecret: "s"}, "AUTH0_DOMAIN: is required"},
		{"http to the network", auth0Config{Domain: "http://tenant.auth0.com", ClientID: "id", ClientSecret: "s"}, "AUTH0_DOMAIN: http:// is allowed only for a loopback host"},
		{"path", auth0Config{Domain: "https://tenant.auth0.com/api/v2", ClientID: "id", ClientSecret: "s"}, "AUTH0_DOMAIN: must be a host name or an https:// URL with no path"},
		{"scheme", auth0Config{Domain: "ftp://tenant.auth0.com", ClientID: "id", ClientSecret: "s"}, "AUTH0_DOMAIN: scheme must be https"},
		{"missing client id", auth0Config{Domain: "tenant.auth0.com", ClientSecret: "s"}, "AUTH0_CLIENT_ID: is required"},
		{"missing secret", auth0Config{Domain: "tenant.auth0.com", ClientID: "id"}, "AUTH0_CLIENT_SECRET: is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
			require.Equal(t, 2, exitCode(err, &bytes.Buffer{}))
		})
	}
	good := auth0Config{Domain: "http://127.0.0.1:8089", ClientID: "id", ClientSecret: "s"}
	require.NoError(t, good.validate())
	require.Equal(t, "http://127.0.0.1:8089", good.baseURL.String())
	bare := auth0Config{Domain: "tenant.eu.auth0.com", ClientID: "id", ClientSecret: "s"}
	require.NoError(t, bare.validate())
	require.Equal(t, "https://tenant.eu.auth0.com", bare.baseURL.String())
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	url := pgtest.NewEmptyDatabase(t)
	environ := map[string]string{"DATABASE_URL": url, "LOG_FORMAT": "json"}

	code, _, stderr := runCLI(t, environ, "migrate")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, `"msg":"schema migrated"`)

	code, _, stderr = runCLI(t, environ, "migrate")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, `"msg":"schema is current"`)

	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var v int32
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT version FROM "+syncdsql.VersionTable).Scan(&v))
	require.Equal(t, syncdsql.Latest(), v)
}

func TestMigrateUnreachableDatabase(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCLI(t, map[string]string{"DATABASE_URL": "postgres://u:hunter2@127.0.0.1:1/app?connect_timeout=2"}, "migrate")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "syncd: connect:")
	require.NotContains(t, stderr, "hunter2")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runCLI(t, nil, "version")
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(stdout, "syncd "))
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	t.Parallel()
	e := &env{getenv: func(k string) string {
		return map[string]string{"AUTH0_DOMAIN": "env.auth0.com", "AUTH0_CLIENT_ID": "env-id", "AUTH0_CLIENT_SECRET": "env-secret"}[k]
	}, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	var c auth0Config
	fs := newFlagSet(e, "x")
	c.register(fs, e)
	require.NoError(t, parseFlags(fs, []string{"--auth0-domain", "flag.auth0.com"}))
	require.NoError(t, c.validate())
	require.Equal(t, "https://flag.auth0.com", c.baseURL.String())
	require.Equal(t, "env-id", c.ClientID)
	require.Equal(t, "env-secret", c.ClientSecret)
}

func TestRunConfigErrors(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "postgres://syncd@127.0.0.1:5432/app", "AUTH0_DOMAIN": "tenant.auth0.com",
		"AUTH0_CLIENT_ID": "id", "AUTH0_CLIENT_SECRET": "hunter2"}
	tests := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"SYNCD_SOURCE": "kafka"}, nil, `SYNCD_SOURCE: must be notify or replication, got "kafka"`},
		{map[string]string{"SYNCD_WORKERS": "many"}, nil, `SYNCD_WORKERS: must be a whole number, got "many"`},
		{nil, []string{"--workers", "0"}, "--workers: must be 1..256, got 0"},
		{map[string]string{"SYNCD_RESYNC_INTERVAL": "often"}, nil, `SYNCD_RESYNC_INTERVAL: must be a duration like 30s or 15m, got "often"`},
		{nil, []string{"--resync-interval", "10ms"}, "--resync-interval: must be at least 1s"},
		{nil, []string{"--poll-interval", "1ms"}, "--poll-interval: must be at least 10ms"},
		{nil, []string{"--reconcile-timeout", "10ms"}, "--reconcile-timeout: must be at least 1s"},
		{nil, []string{"--shutdown-timeout", "0s"}, "--shutdown-timeout: must be positive"},
		{map[string]string{"SYNCD_MIGRATE": "perhaps"}, nil, `SYNCD_MIGRATE: must be true or false, got "perhaps"`},
		{map[string]string{"SYNCD_MAX_DEPROVISION": "lots"}, nil, `SYNCD_MAX_DEPROVISION: must be a count ≥ 1 or a percentage like 10%, got "lots"`},
		{map[string]string{"SYNCD_ROLES": "associate"}, nil, `SYNCD_ROLES: "associate": want role_code=Auth0 role name`},
		{map[string]string{"SYNCD_DEPROVISION": "shred"}, nil, `SYNCD_DEPROVISION: must be block or delete, got "shred"`},
		{map[string]string{"SYNCD_ADOPT": "maybe"}, nil, `SYNCD_ADOPT: must be conflict or adopt, got "maybe"`},
		{map[string]string{"SYNCD_USERNAME": "full"}, nil, `SYNCD_USERNAME: must be off or local-part, got "full"`},
		{map[string]string{"SYNCD_TIMEZONE": "Mars/Base"}, nil, `SYNCD_TIMEZONE: "Mars/Base" is not an IANA time zone`},
		{map[string]string{"AUTH0_RATE": "fast"}, nil, `AUTH0_RATE: must be a number, got "fast"`},
		{nil, []string{"--auth0-rate", "-1"}, "--auth0-rate: must not be negative"},
		{map[string]string{"METRICS_ADDR": "9464"}, nil, `METRICS_ADDR: must be host:port, got "9464"`},
		{map[string]string{"AUTH0_CLIENT_SECRET": ""}, nil, "AUTH0_CLIENT_SECRET (--auth0-client-secret): is required"},
		{map[string]string{"AUTH0_DOMAIN": "http://tenant.auth0.com"}, nil, "AUTH0_DOMAIN: http:// is allowed only for a loopback host"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			environ := map[string]string{}
			for k, v := range base {
				environ[k] = v
			}
			for k, v := range tt.env {
				environ[k] = v
			}
			code, _, stderr := runCLI(t, environ, append([]string{"run"}, tt.args...)...)
			require.Equal(t, 2, code, stderr)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			require.Equal(t, "syncd: "+tt.want, lines[len(lines)-1][:min(len(lines[len(lines)-1]), len("syncd: "+tt.want))])
			require.NotContains(t, stderr, "hunter2")
		})
	}
}
