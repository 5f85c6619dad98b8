package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
)

// TestPlanTellsTheOperator: `syncd plan` says which rows it did not compare
// and why, does not call the account of a deleted row that syncd blocked an
// orphan (nor do the daemon's scans log it as drift), prints the command
// that applies it and what the guard holds, exits 2 on drift with
// --detailed-exitcode, and its JSON has lists (never null) and seconds.
func TestPlanTellsTheOperator(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	d := x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h", "--max-deprovision", "100%", "--deprovision-settle", "200ms")
	insert := func(name, email, role string) int64 {
		var id int64
		require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email, department, role_code) VALUES ($1, $2, 'Ops', $3) RETURNING id`,
			name, email, role).Scan(&id))
		return id
	}
	a, b, c := insert("Ann", "ann@example.com", "associate"), insert("Ben", "ben@example.com", "lead"), insert("Cy", "cy@example.com", "associate")
	f := insert("Fay", "not an email", "associate")
	uidA, uidC := x.waitStatus(a, "synced"), x.waitStatus(c, "synced")
	x.waitStatus(b, "synced")
	x.waitStatus(f, "failed")
	x.exec(`DELETE FROM employees WHERE id = $1`, c)
	require.True(t, assertEventually(func() bool {
		u := x.user(uidC)
		return u != nil && u["blocked"] == true && u["app_metadata"].(map[string]any)["sync_status"] == "terminated"
	}, 30*time.Second), "the deleted row's account is blocked")
	d.stop(t)

	// Scans after the deprovision do not log it as drift.
	from := len(x.logs.String())
	d = x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1s")
	require.True(t, assertEventually(func() bool {
		return strings.Count(x.logs.String()[from:], `"msg":"drift scan found nothing"`) >= 2
	}, 60*time.Second), "two drift scans")
	d.stop(t)
	require.NotContains(t, x.logs.String()[from:], "drift scan found drift")

	// Drift by hand; plan under the default roles (no lead).
	_, err := x.api.UpdateUser(x.ctx, uidA, auth0.UpdateUserRequest{AppMetadata: map[string]any{"department": "Hacked"}})
	require.NoError(t, err)
	environ := map[string]string{"DATABASE_URL": x.dbURL, "AUTH0_DOMAIN": x.emu.URL, "AUTH0_CLIENT_ID": emulator.DefaultClientID,
		"AUTH0_CLIENT_SECRET": emulator.DefaultClientSecret, "LOG_FORMAT": "json"}
	x.emu.Emulator.ResetCalls()
	code, stdout, stderr := runCLI(t, environ, "plan")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "Compared 1 of 3 employees with 3 managed Auth0 accounts in ")
	require.Contains(t, stdout, "Not compared (2):\n")
	require.Contains(t, stdout, fmt.Sprintf(`  1 row (employee %d): not an account under these settings: role_code: "lead" has no Auth0 role mapping (known: associate)`, b))
	require.Contains(t, stdout, fmt.Sprintf("  1 row (employee %d): failed: syncd waits for the row to change (`syncd status` says why)", f))
	require.Contains(t, stdout, "1 account of deleted rows deprovisioned by syncd (blocked): at rest, not drift.")
	require.NotContains(t, stdout, "orphan")
	require.Regexp(t, fmt.Sprintf(`(?m)^%d +%s +\[app_metadata\] +update app_metadata.department: "Hacked" → "Ops"`, a, uidA), stdout)
	require.Contains(t, stdout, fmt.Sprintf("To apply it now (a running syncd does; its next drift scan would too):\n  syncd resync --employee %d\n", a))
	require.EqualValues(t, 0, x.emu.Emulator.WriteCount(), "plan makes no write call")

	code, _, stderr = runCLI(t, environ, "plan", "--detailed-exitcode")
	require.Equal(t, 2, code, "drift: 2, %s", stderr)

	code, stdout, stderr = runCLI(t, environ, "plan", "--json")
	require.Equal(t, 0, code, stderr)
	var js map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(stdout), &js))
	var scan map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(js["scan"], &scan))
	require.NotContains(t, scan, "took", "no unlabelled nanoseconds")
	var took float64
	require.NoError(t, json.Unmarshal(scan["took_seconds"], &took))
	require.Greater(t, took, 0.0)
	require.Less(t, took, 3600.0, "seconds, not nanoseconds")
	require.JSONEq(t, `[]`, string(scan["orphans"]))
	require.JSONEq(t, `1`, string(scan["deprovisioned_accounts"]))
	require.JSONEq(t, fmt.Sprintf(`[{"reason": %q, "count": 1, "employee_ids": ["%d"]}, {"reason": %q, "count": 1, "employee_ids": ["%d"]}]`,
		"failed: syncd waits for the row to change (`syncd status` says why)", f,
		`not an account under these settings: role_code: "lead" has no Auth0 role mapping (known: associate)`, b), string(scan["not_compared"]))
	require.JSONEq(t, fmt.Sprintf(`"syncd resync --employee %d"`, a), string(js["apply"]))
	require.JSONEq(t, `true`, string(js["changes"]))
	require.JSONEq(t, `[]`, string(js["deprovisions_waiting"]))

	// What the guard holds is shown (set directly: the guard's own tests
	// make holds; here only plan's report of one is checked).
	x.exec(`INSERT INTO syncd_deprovisions (key, kind, employee_id, state, requested_at, decided_at, reason)
		VALUES ('employee:' || $1::text, 'inactive', $2, 'held', now(), now(), 'over the limit (test)')`, fmt.Sprint(f), f)
	code, stdout, _ = runCLI(t, environ, "plan")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "Deprovision guard: 1 deprovisions held since ")
	require.Contains(t, stdout, "over the limit (test)")
	require.Contains(t, stdout, "syncd guard release")
	require.Contains(t, stdout, fmt.Sprintf("(employee %d): a deprovision held by the mass-deprovision guard", f))
	x.exec(`DELETE FROM syncd_deprovisions`)

	// No drift: exit 0 with --detailed-exitcode, and "plan": [].
	_, err = x.api.UpdateUser(x.ctx, uidA, auth0.UpdateUserRequest{AppMetadata: map[string]any{"department": "Ops"}})
	require.NoError(t, err)
	code, stdout, stderr = runCLI(t, environ, "plan", "--detailed-exitcode")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "No drift: Auth0 matches the employees table.")
	require.NotContains(t, stdout, "syncd resync")
	code, stdout, _ = runCLI(t, environ, "plan", "--json", "--detailed-exitcode")
	require.Equal(t, 0, code)
	require.NoError(t, json.Unmarshal([]byte(stdout), &js))
	require.JSONEq(t, `[]`, string(js["plan"]))
	require.JSONEq(t, `""`, string(js["apply"]))
}
