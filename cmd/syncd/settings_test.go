package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// runEnv is a complete, valid environment for `syncd run` (no server is
// reached: these tests stop at the configuration).
func runEnv(extra map[string]string) map[string]string {
	environ := map[string]string{
		"DATABASE_URL": "postgres://syncd@127.0.0.1:5432/app", "AUTH0_DOMAIN": "tenant.us.auth0.com",
		"AUTH0_CLIENT_ID": "id", "AUTH0_CLIENT_SECRET": emulator.DefaultClientSecret,
	}
	for k, v := range extra {
		environ[k] = v
	}
	return environ
}

func parseRun(t *testing.T, environ map[string]string, args ...string) (*runConfig, error) {
	t.Helper()
	var stderr bytes.Buffer
	return parseRunConfig(&env{getenv: func(k string) string { return environ[k] }, stdout: &bytes.Buffer{}, stderr: &stderr}, args)
}

// TestRunSettingsRejected: each malformed setting of `syncd run` stops it
// with one line naming the setting, exit status 2, before anything is
// reached (the database URL points nowhere).
func TestRunSettingsRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		environ map[string]string
		args    []string
		want    string
	}{
		{"AUTH0_BURST not a number", map[string]string{"AUTH0_BURST": "lots"}, nil, `AUTH0_BURST: must be a whole number, got "lots"`},
		{"AUTH0_BURST negative", map[string]string{"AUTH0_BURST": "-1"}, nil, "AUTH0_BURST: must not be negative, got -1"},
		{"--auth0-burst negative", nil, []string{"--auth0-burst", "-5"}, "--auth0-burst: must not be negative, got -5"},
		{"AUTH0_RATE negative", map[string]string{"AUTH0_RATE": "-2"}, nil, "AUTH0_RATE: must not be negative"},
		{"SYNCD_OUTBOX_LEASE not a duration", map[string]string{"SYNCD_OUTBOX_LEASE": "forever"}, nil, `SYNCD_OUTBOX_LEASE: must be a duration like 30s or 15m, got "forever"`},
		{"SYNCD_OUTBOX_LEASE too short", map[string]string{"SYNCD_OUTBOX_LEASE": "500ms"}, nil, "SYNCD_OUTBOX_LEASE: must be at least 1s, got 500ms"},
		{"--outbox-lease too short", nil, []string{"--outbox-lease", "0s"}, "--outbox-lease: must be at least 1s, got 0s"},
		{"SYNCD_SLOT_LAG_WARN not a number", map[string]string{"SYNCD_SLOT_LAG_WARN": "1GiB"}, nil, `SYNCD_SLOT_LAG_WARN: must be a whole number, got "1GiB"`},
		{"SYNCD_SLOT_LAG_WARN negative", map[string]string{"SYNCD_SLOT_LAG_WARN": "-1"}, nil, "SYNCD_SLOT_LAG_WARN: must be a positive number of bytes, got -1"},
		{"--slot-lag-warn zero", nil, []string{"--slot-lag-warn", "0"}, "SYNCD_SLOT_LAG_WARN: must be a positive number of bytes, got 0"},
		{"SYNCD_ALLOW_MASS_DEPROVISION not a bool", map[string]string{"SYNCD_ALLOW_MASS_DEPROVISION": "sure"}, nil, `SYNCD_ALLOW_MASS_DEPROVISION: must be true or false, got "sure"`},
		{"--allow-mass-deprovision with a value", nil, []string{"--allow-mass-deprovision=maybe"}, `invalid boolean value "maybe" for --allow-mass-deprovision`},
		{"SYNCD_SLOT upper case", map[string]string{"SYNCD_SLOT": "Syncd"}, nil, `SYNCD_SLOT: must be 1 to 63 lower-case letters, digits or underscores, got "Syncd"`},
		{"--slot with a dash, notify source", nil, []string{"--source", "notify", "--slot", "my-slot"}, `SYNCD_SLOT: must be 1 to 63 lower-case letters, digits or underscores, got "my-slot"`},
		{"--slot too long", nil, []string{"--source", "replication", "--slot", strings.Repeat("s", 64)}, "SYNCD_SLOT: must be 1 to 63 lower-case letters, digits or underscores"},
		{"METRICS_ADDR without a port", map[string]string{"METRICS_ADDR": "localhost"}, nil, `METRICS_ADDR: must be host:port, got "localhost"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runCLI(t, runEnv(tt.environ), append([]string{"run"}, tt.args...)...)
			require.Equal(t, 2, code, stderr)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			require.Contains(t, lines[len(lines)-1], tt.want)
			require.NotContains(t, stderr, emulator.DefaultClientSecret)
		})
	}
}

// TestRunSettingsAccepted: the same settings, well formed, arrive where
// they are used; the flag wins over the environment.
func TestRunSettingsAccepted(t *testing.T) {
	t.Parallel()
	c, err := parseRun(t, runEnv(map[string]string{"AUTH0_RATE": "16", "AUTH0_BURST": "50", "SYNCD_OUTBOX_LEASE": "2m",
		"SYNCD_SLOT_LAG_WARN": "1048576", "SYNCD_ALLOW_MASS_DEPROVISION": "true", "SYNCD_SLOT": "syncd_b", "METRICS_ADDR": "127.0.0.1:0"}))
	require.NoError(t, err)
	require.Equal(t, 50, c.client.burst())
	require.Equal(t, "2m0s", c.OutboxLease.String())
	require.Equal(t, 1<<20, c.LagWarn)
	require.True(t, c.AllowMassDeprovision)
	require.Equal(t, "syncd_b", c.SlotName)
	require.Equal(t, "127.0.0.1:0", c.MetricsAddr)

	c, err = parseRun(t, runEnv(map[string]string{"AUTH0_BURST": "50", "SYNCD_ALLOW_MASS_DEPROVISION": "true", "SYNCD_SLOT": "syncd_b"}),
		"--auth0-burst", "7", "--allow-mass-deprovision=false", "--slot", "syncd_c", "--metrics-addr", "")
	require.NoError(t, err)
	require.Equal(t, 7, c.client.burst())
	require.False(t, c.AllowMassDeprovision)
	require.Equal(t, "syncd_c", c.SlotName)
	require.Empty(t, c.MetricsAddr, `--metrics-addr "" turns the HTTP server off`)

	// Defaults: burst follows the rate; the README's values.
	c, err = parseRun(t, runEnv(map[string]string{"AUTH0_RATE": "2.5"}))
	require.NoError(t, err)
	require.Equal(t, 2, c.client.burst())
	require.Equal(t, 256<<20, c.LagWarn)
	require.Equal(t, "1m0s", c.OutboxLease.String())
	require.False(t, c.AllowMassDeprovision)
	require.Equal(t, "syncd", c.SlotName)
	require.Equal(t, "127.0.0.1:9464", c.MetricsAddr)
	c, err = parseRun(t, runEnv(map[string]string{"AUTH0_RATE": "0.5"}))
	require.NoError(t, err)
	require.Equal(t, 1, c.client.burst(), "a rate under 1 still lets one request through")
	c, err = parseRun(t, runEnv(nil))
	require.NoError(t, err)
	require.Equal(t, 0, c.client.burst(), "no rate, no burst: no client-side limit")
}
