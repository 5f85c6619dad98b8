package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// readmeSQL is the README's SQL block whose first line is `-- mapping
// example: name`, written to a file, so that the examples tested are the
// README's, word for word.
func readmeSQL(t *testing.T, name string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	re := regexp.MustCompile("(?s)```sql\n(-- mapping example: " + regexp.QuoteMeta(name) + "\n.*?)```")
	m := re.FindSubmatch(readme)
	require.NotNil(t, m, "README has the mapping example %q", name)
	f := filepath.Join(t.TempDir(), strings.ReplaceAll(name, " ", "-")+".sql")
	require.NoError(t, os.WriteFile(f, m[1], 0o600))
	return f
}

// readmeBlock is the README's SQL block that follows the line that starts
// with intro (the tables an example needs).
func readmeBlock(t *testing.T, intro string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	re := regexp.MustCompile("(?s)\n" + regexp.QuoteMeta(intro) + "[^\n]*\n.*?```sql\n(.*?)```")
	m := re.FindSubmatch(readme)
	require.NotNil(t, m, "README has a SQL block after %q", intro)
	return string(m[1])
}

func (x *e2e) app(userID string) map[string]any {
	app, _ := x.user(userID)["app_metadata"].(map[string]any)
	return app
}

// roles are the role names the emulator gives userID.
func (x *e2e) roles(userID string) []string {
	x.t.Helper()
	roles, err := x.api.ListUserRoles(x.ctx, userID)
	require.NoError(x.t, err)
	var names []string
	for _, r := range roles {
		names = append(names, r.Name)
	}
	return names
}

// TestMappingExampleJobCodes is the README's first mapping example, end to
// end: an install on the default mapping takes the job-code mapping through
// check, plan and apply; the name and role come from it; a column it no
// longer reads costs nothing, one it reads is applied at once, and a change
// of the job-code table is found by the mapping sweep.
func TestMappingExampleJobCodes(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	x.exec(readmeBlock(t, "Your table has `first_name`, `last_name` and a `job_code`"))
	var ada, grace, con int64
	insert := func(first, last, job string) int64 {
		var id int64
		require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email, first_name, last_name, job_code, department)
			VALUES ($1 || ' ' || $2, lower($1) || '@example.com', $1, $2, $3, 'Engines') RETURNING id`, first, last, job).Scan(&id))
		return id
	}
	ada, grace, con = insert("Ada", "Lovelace", "ENG1"), insert("Grace", "Hopper", "ENG2"), insert("Con", "Tractor", "CONTRACTOR")
	d := x.start("notify", emulator.DefaultClientSecret, "--mapping-sweep-interval", "200ms")
	defer d.stop(t)
	uid := map[int64]string{}
	for _, id := range []int64{ada, grace, con} {
		uid[id] = x.waitStatus(id, "synced")
		require.Equal(t, []string{"production_associate"}, x.roles(uid[id]), "the default mapping: role_code associate")
	}

	file := readmeSQL(t, "job codes")
	out, err := x.cli("mapping", "check", "--file", file, "--roles", "associate=production_associate,lead=production_lead")
	require.NoError(t, err, out)
	require.Regexp(t, `Columns of employees it reads, which the update triggers watch: .*\bfirst_name\b.*`, out)
	require.Contains(t, out, "job_codes")
	out, err = x.cli("plan", "--mapping", file, "--roles", "associate=production_associate,lead=production_lead")
	require.NoError(t, err, out)
	require.Contains(t, out, `production_lead`, "Grace's job code gives her the lead role")

	out, err = x.cli("mapping", "apply", "--file", file, "--roles", "associate=production_associate,lead=production_lead")
	require.NoError(t, err, out)
	want := map[int64][]string{ada: {"production_associate"}, grace: {"production_lead"}, con: nil}
	require.True(t, assertEventually(func() bool {
		for id, roles := range want {
			if s, _, _ := x.status(id); s != "synced" || !equalSets(x.roles(uid[id]), roles) || x.app(uid[id])["job_code"] == nil {
				return false
			}
		}
		return true
	}, time.Minute), "every row took the new mapping: %s", out)
	require.Equal(t, "Ada Lovelace", x.user(uid[ada])["name"])
	require.Equal(t, "ENG2", x.app(uid[grace])["job_code"])
	require.NotContains(t, x.app(uid[ada]), "department", "a managed key the mapping no longer gives is removed")
	require.Equal(t, map[string]any{"full_name": "Con Tractor", "timezone": "America/Chicago"}, x.user(uid[con])["user_metadata"])

	// A column the view does not read: the update marks nothing pending and
	// writes no outbox row (seen inside its own transaction, before any
	// worker could hide either).
	tx, err := x.pool.Begin(x.ctx)
	require.NoError(t, err)
	// A failed assertion below must not leave the transaction open: the
	// pool's Close in the cleanup would wait for its connection for ever.
	defer tx.Rollback(x.ctx) //nolint:errcheck // a no-op after Commit
	var before, after int64
	require.NoError(t, tx.QueryRow(x.ctx, `SELECT coalesce(max(id), 0) FROM auth0_outbox`).Scan(&before))
	rows, err := tx.Query(x.ctx, `UPDATE employees SET department = 'Looms', phone_number = '+15550199' RETURNING auth0_sync_status`)
	require.NoError(t, err)
	statuses, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"synced", "synced", "synced"}, statuses, "not marked pending")
	// Rows written since, not max(id): the notify source deletes handled
	// rows in the background, so the max may go down meanwhile.
	require.NoError(t, tx.QueryRow(x.ctx, `SELECT count(*) FROM auth0_outbox WHERE id > $1`, before).Scan(&after))
	require.Zero(t, after, "no outbox row")
	require.NoError(t, tx.Commit(x.ctx))

	// A column it reads: applied at once.
	x.exec(`UPDATE employees SET last_name = 'King' WHERE id = $1`, ada)
	require.True(t, assertEventually(func() bool { return x.user(uid[ada])["name"] == "Ada King" }, time.Minute))

	// The job-code table changed: no trigger sees it, the sweep does.
	x.exec(`UPDATE job_codes SET role_code = 'lead' WHERE job_code = 'ENG1'`)
	require.True(t, assertEventually(func() bool { return equalSets(x.roles(uid[ada]), []string{"production_lead"}) }, time.Minute),
		"the sweep found the promotion")
	x.waitStatus(ada, "synced")
}

// TestMappingExampleEndDate is the README's second mapping example: an
// end_date blocks the account once it has passed, not on the day itself;
// moving it back to the future unblocks it.
func TestMappingExampleEndDate(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	x.exec(readmeBlock(t, "### Example: block the account the day after `end_date`"))
	ids := x.insertN(3)
	// One leaver of three is a third of the accounts: over the guard's
	// default share, which TestMassDeprovisionGuard covers.
	d := x.start("notify", emulator.DefaultClientSecret, "--mapping-sweep-interval", "200ms", "--max-deprovision", "3")
	defer d.stop(t)
	uid := map[int64]string{}
	for _, id := range ids {
		uid[id] = x.waitStatus(id, "synced")
	}
	file := readmeSQL(t, "end date")
	out, err := x.cli("mapping", "check", "--file", file)
	require.NoError(t, err, out)
	out, err = x.cli("mapping", "apply", "--file", file)
	require.NoError(t, err, out)

	today, yesterday, none := ids[0], ids[1], ids[2]
	x.exec(`UPDATE employees SET end_date = current_date WHERE id = $1`, today)
	x.exec(`UPDATE employees SET end_date = current_date - 1 WHERE id = $1`, yesterday)
	x.waitStatus(yesterday, "deprovisioned")
	require.Equal(t, true, x.user(uid[yesterday])["blocked"])
	require.Equal(t, "terminated", x.app(uid[yesterday])["sync_status"])
	require.True(t, assertEventually(func() bool { return x.app(uid[today])["end_date"] != nil }, time.Minute))
	x.waitStatus(today, "synced")
	require.NotEqual(t, true, x.user(uid[today])["blocked"], "the last day is still a working day")
	require.Equal(t, "active", x.app(uid[today])["sync_status"])
	require.NotContains(t, x.app(uid[none]), "end_date")

	x.exec(`UPDATE employees SET end_date = current_date + 30 WHERE id = $1`, yesterday)
	x.waitStatus(yesterday, "synced")
	require.NotEqual(t, true, x.user(uid[yesterday])["blocked"], "a moved end date unblocks the account")
}

func equalSets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, s := range a {
		seen[s] = true
	}
	for _, s := range b {
		if !seen[s] {
			return false
		}
	}
	return true
}
