package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestChaosShort runs `syncchaos -short`, the failure suite's short version,
// against a syncd built without the race detector (this test binary has it).
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the short failure suite (one to two minutes); make test runs it")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "syncd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/syncd/syncd/cmd/syncd").CombinedOutput()
	require.NoError(t, err, "go build ./cmd/syncd: %s", out)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err = run(ctx, []string{"-short", "-syncd", bin, "-workdir", filepath.Join(dir, "logs")}, &stdout, &stderr)
	t.Logf("progress:\n%s", stderr.String())
	t.Logf("summary:\n%s", stdout.String())
	require.NoError(t, err)
	for _, name := range append(append([]string{}, scenarioNames...), "secrets") {
		require.Regexp(t, `(?m)^`+name+` +ok `, stdout.String(), "scenario %s in the table", name)
	}
}

// The leak search must find each kind of secret, and say where without
// repeating it.
func TestSecretScan(t *testing.T) {
	t.Parallel()
	s := newSecretSet()
	s.addFixed("the-client-secret", "the client secret")
	s.addToken("tok.en.value")
	s.addPassword("Pa$$word-1234567890abcd")
	s.addPassword("short!A1")
	clean := []byte(`{"msg":"employee converged","employee_id":1}` + "\n" + `{"msg":"token refreshed"}` + "\n")
	require.Empty(t, s.scan("clean.log", clean))
	for _, tc := range []struct{ line, what string }{
		{`{"msg":"x","secret":"the-client-secret"}`, "the client secret"},
		{`{"msg":"x","auth":"Bearer tok.en.value"}`, "an access token issued by the emulator"},
		{`{"msg":"x","jwt":"eyJhbGciOi"}`, `a JWT ("eyJ…")`},
		{`{"msg":"x","body":{"Password":"…"}}`, `a "password" key`},
		{`{"msg":"x","req":"…Pa$$word-1234567890abcd…"}`, "a generated password sent to Auth0"},
		{`{"msg":"short!A1"}`, "a generated password sent to Auth0"},
	} {
		data := append(append([]byte{}, clean...), tc.line...)
		leaks := s.scan("x.log", data)
		require.Len(t, leaks, 1, tc.line)
		require.Equal(t, tc.what, leaks[0].What)
		require.Equal(t, 3, leaks[0].Line)
		require.NotContains(t, leaks[0].String(), "Pa$$word")
	}
	lines, bad, samples := jsonLines([]byte("{\"a\":1}\npanic: boom\n\n{\"b\":2}\n{broken\n"))
	require.Equal(t, 4, lines)
	require.Equal(t, 2, bad)
	require.Equal(t, []string{"panic: boom", "{broken"}, samples)
}

// accountProblems is the end-state check: it must see every way an account
// can be wrong.
func TestAccountProblems(t *testing.T) {
	t.Parallel()
	dept := "Packing"
	e := row{ID: "7", Key: 7.0, Name: " Ada ", Email: " Ada@Example.COM", Department: &dept, RoleCode: "lead", Active: true, Status: "synced"}
	u := map[string]any{
		"email": "ada@example.com", "name": "Ada",
		"app_metadata": map[string]any{"employee_id": 7.0, "internal_id": 7.0, "role_code": "lead", "created_by": "productivity_system",
			"sync_status": "active", "department": "Packing", "created_at": "2026-01-01T00:00:00Z"},
		"user_metadata": map[string]any{"employee_id": 7.0, "full_name": "Ada", "department": "Packing", "timezone": "America/Chicago"},
	}
	require.Empty(t, accountProblems(e, u, []string{"production_lead"}))
	require.Equal(t, []string{`roles is []string{"production_associate", "production_lead"}, want []string{"production_lead"}`},
		accountProblems(e, u, []string{"production_lead", "production_associate"}))
	u["blocked"] = true
	u["app_metadata"].(map[string]any)["connecteam_id"] = "ct-1"
	got := accountProblems(e, u, []string{"production_lead"})
	require.Len(t, got, 2)
	require.Contains(t, got[0], "blocked is true")
	require.True(t, strings.HasPrefix(got[1], "app_metadata.connecteam_id is"), got[1])

	// The key is compared by its JSON type too: the text of an integer key
	// is not its number, and a uuid or text key is a string.
	delete(u, "blocked")
	delete(u["app_metadata"].(map[string]any), "connecteam_id")
	require.Empty(t, accountProblems(e, u, []string{"production_lead"}))
	u["app_metadata"].(map[string]any)["employee_id"] = "7"
	require.Equal(t, []string{`app_metadata.employee_id is "7", want 7`}, accountProblems(e, u, []string{"production_lead"}))
	const uuid = "0b6f3c1e-8d8a-4a57-9a3e-2f1c6b7d9e01"
	e.ID, e.Key = uuid, uuid
	for _, m := range []string{"app_metadata", "user_metadata"} {
		u[m].(map[string]any)["employee_id"] = uuid
	}
	u["app_metadata"].(map[string]any)["internal_id"] = uuid
	require.Empty(t, accountProblems(e, u, []string{"production_lead"}))
	u["user_metadata"].(map[string]any)["employee_id"] = "E-00007"
	require.Equal(t, []string{`user_metadata.employee_id is "E-00007", want "0b6f3c1e-8d8a-4a57-9a3e-2f1c6b7d9e01"`},
		accountProblems(e, u, []string{"production_lead"}))
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	c, err := parseConfig([]string{"-short"}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 300, c.Employees)
	require.Equal(t, 100, c.KeyEmployees)
	require.True(t, c.FastLeases)
	require.True(t, c.Parallel)
	c, err = parseConfig([]string{"-fast-leases=false", "-only", "kill,bad-rows"}, &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 2000, c.Employees)
	require.Equal(t, 2000, c.KeyEmployees)
	require.Equal(t, 5, c.Kills)
	require.False(t, c.FastLeases)
	require.False(t, c.Parallel)
	require.Equal(t, []string{"kill", "bad-rows"}, c.Only)
	for _, args := range [][]string{{"-only", "nope"}, {"-employees", "3"}, {"-key-employees", "9"}, {"-parallel", "maybe"}, {"extra"}} {
		_, err := parseConfig(args, &bytes.Buffer{})
		var ue *usageError
		require.ErrorAs(t, err, &ue, "%v", args)
	}
}
