package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers/pgtest"
)

// statusDB is a migrated database with employees in the given statuses
// (set directly: status is a read model), returning their ids in order.
func statusDB(t *testing.T, rows ...[2]string) (string, []int64) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var ids []int64
	for i, r := range rows {
		var id int64
		require.NoError(t, conn.QueryRow(ctx, `INSERT INTO employees (name, email) VALUES ($1, $2) RETURNING id`,
			fmt.Sprint("E", i), fmt.Sprintf("e%d@example.com", i)).Scan(&id))
		_, err := conn.Exec(ctx, `UPDATE employees SET auth0_sync_status = $2, auth0_sync_error = nullif($3, '') WHERE id = $1`, id, r[0], r[1])
		require.NoError(t, err)
		ids = append(ids, id)
	}
	_, err = conn.Exec(ctx, `DELETE FROM auth0_outbox`)
	require.NoError(t, err)
	return url, ids
}

// `syncd status` groups identical reasons with a count, prints every reason
// whole (the advice is at its end), has a headline, and exits 3 while rows
// are failed or conflict; --json shows the same counts, zeros included.
func TestStatusGroupsReasonsAndExits3(t *testing.T) {
	t.Parallel()
	long := "email: Auth0 rejected the row (400 invalid_body: Object didn't pass validation for format email: not an email); " +
		strings.Repeat("the row stays failed until it changes; ", 4) + "ADVICE: fix employees.email"
	url, ids := statusDB(t,
		[2]string{"failed", long}, [2]string{"failed", long}, [2]string{"failed", long},
		[2]string{"failed", "name: is empty"},
		[2]string{"conflict", "the email belongs to another account"},
		[2]string{"retrying", "auth0: 503"}, [2]string{"retrying", "auth0: 503"},
		[2]string{"synced", ""})
	environ := map[string]string{"DATABASE_URL": url}

	code, stdout, stderr := runCLI(t, environ, "status")
	require.Equal(t, 3, code, stderr)
	require.Empty(t, stderr)
	require.True(t, strings.HasPrefix(stdout, "Needs a person: 4 failed, 1 conflict (exit status 3); 2 retrying by themselves.\n"), stdout)

	// A held deprovision needs a person too (the exit status stays 3 for
	// failed and conflict rows only).
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `INSERT INTO syncd_deprovisions (key, kind, employee_id, state, requested_at, decided_at, reason)
		VALUES ('employee:' || $1::text, 'inactive', $2, 'held', now(), now(), 'over the limit (test)')`, fmt.Sprint(ids[7]), ids[7])
	require.NoError(t, err)
	code, stdout, _ = runCLI(t, environ, "status")
	require.Equal(t, 3, code)
	require.True(t, strings.HasPrefix(stdout, "Needs a person: 4 failed, 1 conflict (exit status 3); 1 deprovision held by the mass-deprovision guard; 2 retrying by themselves.\n"), stdout)
	require.Contains(t, stdout, "Deprovision guard: 1 deprovisions held since ")
	require.Contains(t, stdout, "over the limit (test)")
	require.Contains(t, stdout, "ADVICE: fix employees.email", "the reason is never cut")
	require.Equal(t, 1, strings.Count(stdout, long), "identical reasons are one line")
	require.Regexp(t, fmt.Sprintf(`(?m)^failed +3 +%d, %d, %d +`, ids[0], ids[1], ids[2]), stdout)
	require.Regexp(t, fmt.Sprintf(`(?m)^retrying +2 +%d, %d +`, ids[5], ids[6]), stdout)
	require.Regexp(t, `(?m)^deprovisioned +0$`, stdout)

	code, stdout, _ = runCLI(t, environ, "status", "--json")
	require.Equal(t, 3, code)
	var js struct {
		Counts  map[string]int64 `json:"counts"`
		Reasons []struct {
			Status      string   `json:"status"`
			Error       string   `json:"error"`
			Count       int64    `json:"count"`
			EmployeeIDs []string `json:"employee_ids"`
		} `json:"reasons"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &js))
	require.Equal(t, map[string]int64{"synced": 1, "pending": 0, "syncing": 0, "retrying": 2, "failed": 4, "conflict": 1, "deprovisioned": 0}, js.Counts)
	require.Len(t, js.Reasons, 4)
	var found bool
	for _, r := range js.Reasons {
		if r.Error == long {
			found = true
			require.Equal(t, "failed", r.Status)
			require.EqualValues(t, 3, r.Count)
			require.Equal(t, keyTexts(ids[:3]), r.EmployeeIDs, "keys in JSON are the table's key as text")
		}
	}
	require.True(t, found)

	// --limit bounds the groups listed, not the counts.
	code, stdout, _ = runCLI(t, environ, "status", "--limit", "1")
	require.Equal(t, 3, code)
	require.Len(t, regexp.MustCompile(`(?m)^(failed|conflict|retrying) +\d+ +[\d, ]+ +\d{4}-`).FindAllString(stdout, -1), 1, stdout)
}

func TestStatusExitsZeroWhenNothingNeedsAPerson(t *testing.T) {
	t.Parallel()
	url, _ := statusDB(t, [2]string{"synced", ""}, [2]string{"retrying", "auth0: 503"})
	code, stdout, stderr := runCLI(t, map[string]string{"DATABASE_URL": url}, "status")
	require.Equal(t, 0, code, stderr)
	require.True(t, strings.HasPrefix(stdout, "Nothing needs a person; 1 retrying by themselves.\n"), stdout)
	url2, ids := statusDB(t, [2]string{"pending", ""})
	held := map[string]string{"DATABASE_URL": url2}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url2)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `INSERT INTO syncd_deprovisions (key, kind, employee_id, state, requested_at, decided_at, reason)
		VALUES ('employee:' || $1::text, 'inactive', $2, 'held', now(), now(), 'over the limit (test)')`, fmt.Sprint(ids[0]), ids[0])
	require.NoError(t, err)
	code, stdout, _ = runCLI(t, held, "status")
	require.Equal(t, 0, code, "held deprovisions alone: 0")
	require.True(t, strings.HasPrefix(stdout, "Needs a person: 1 deprovision held by the mass-deprovision guard.\n"), stdout)
	code, stdout, _ = runCLI(t, map[string]string{"DATABASE_URL": url}, "status", "--json")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, `"failed": 0`)
	require.Contains(t, stdout, `"conflict": 0`)
	require.Contains(t, stdout, `"problems": [`)
}

// resync names the ids that have no row, before anything else, marks the
// others, and exits 1.
func TestResyncNamesMissingIDsFirst(t *testing.T) {
	t.Parallel()
	url, ids := statusDB(t, [2]string{"synced", ""}, [2]string{"synced", ""})
	environ := map[string]string{"DATABASE_URL": url}
	var out bytes.Buffer // stdout and stderr together, in the order written
	err := run(context.Background(), []string{"resync", "--employee", fmt.Sprintf("%d,9999,8888", ids[0])}, func(k string) string { return environ[k] }, &out, &out)
	require.Equal(t, 1, exitCode(err, &out))
	require.Equal(t, []string{
		"syncd: no employee row has id 8888, 9999: not marked",
		"marked 1 employee pending; the running daemon reconciles them (reading Auth0 first)",
	}, stderrLines(out.String()))
	st, _ := employeeStatus(t, url, ids[0])
	require.Equal(t, "pending", st)
	st, _ = employeeStatus(t, url, ids[1])
	require.Equal(t, "synced", st)

	code, stdout, stderr := runCLI(t, environ, "resync", "--employee", "9999")
	require.Equal(t, 1, code)
	require.Empty(t, stdout, "nothing marked, nothing said about marking")
	require.Equal(t, []string{"syncd: no employee row has id 9999: not marked"}, stderrLines(stderr))

	code, stdout, _ = runCLI(t, environ, "resync", "--employee", fmt.Sprint(ids[1]), "--employee", fmt.Sprint(ids[1]))
	require.Equal(t, 0, code)
	require.Equal(t, "marked 1 employee pending; the running daemon reconciles them (reading Auth0 first)\n", stdout)
}

func employeeStatus(t *testing.T, url string, id int64) (string, string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var st, e string
	require.NoError(t, conn.QueryRow(ctx, `SELECT auth0_sync_status, coalesce(auth0_sync_error, '') FROM employees WHERE id = $1`, id).Scan(&st, &e))
	return st, e
}
