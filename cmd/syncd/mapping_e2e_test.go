package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// A mapping change against a running syncd, as an operator makes it:
// `mapping check`, `plan --mapping`, `mapping apply`. Only the rows whose
// desired state changed are written to Auth0, one PATCH each and no read;
// a column the view no longer reads costs nothing; a change to a table the
// view joins is found by the mapping sweep.
func TestMappingEndToEnd(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	x.exec(`CREATE TABLE departments (code text PRIMARY KEY, title text NOT NULL)`)
	x.exec(`INSERT INTO departments VALUES ('ops', 'Operations')`)
	ids := x.insertN(20)
	x.exec(`UPDATE employees SET department = 'ops' WHERE id = ANY($1)`, ids[:2])
	d := x.start("notify", emulator.DefaultClientSecret, "--mapping-sweep-interval", "1s")
	defer d.stop(t)
	users := map[int64]string{}
	for _, id := range ids {
		users[id] = x.waitStatus(id, "synced")
	}
	// Every outcome recorded, and no sweep finds anything to do.
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, x.pool.QueryRow(x.ctx, `SELECT count(*) FROM employees WHERE auth0_sync_status <> 'synced'
			OR auth0_desired_hash IS DISTINCT FROM md5(syncd_desired_of(id)::text)`).Scan(&n))
		return n == 0
	}, time.Minute, 20*time.Millisecond)
	// The drift scan at start is done (the next is 15 minutes away): from
	// here on, every Auth0 request is the mapping change's.
	require.Eventually(t, func() bool { return x.metric(`syncd_drift_scans_total{result="success"}`) >= 1 }, time.Minute, 20*time.Millisecond)
	x.emu.Emulator.ResetCalls()

	// The department's title from the departments table; no phone number.
	file := writeFile(t, "departments.sql", `CREATE OR REPLACE VIEW syncd_desired AS
SELECT e.id, e.email, e.name, e.role_code, NOT e.active AS blocked,
       jsonb_strip_nulls(jsonb_build_object(
           'internal_id', to_jsonb(e.id), 'role_code', e.role_code,
           'department', (SELECT d.title FROM departments d WHERE d.code = e.department),
           'connecteam_id', nullif(btrim(e.connecteam_id), ''),
           'sync_status', CASE WHEN e.active THEN 'active' ELSE 'terminated' END)) AS app_metadata,
       jsonb_strip_nulls(jsonb_build_object(
           'employee_id', to_jsonb(e.id), 'full_name', btrim(e.name), 'department', nullif(btrim(e.department), ''))) AS user_metadata
  FROM employees e;
`)
	out, err := x.cli("mapping", "check", "--file", file)
	require.NoError(t, err, out)
	require.Contains(t, out, fmt.Sprintf("Desired state changed for 2 rows (employees %d, %d)", ids[0], ids[1]))
	require.Contains(t, out, "it reads the tables departments")
	out, err = x.cli("plan", "--mapping", file)
	require.NoError(t, err, out)
	require.Equal(t, 2, strings.Count(out, `update app_metadata.department: "ops" → "Operations"`), out)

	out, err = x.cli("mapping", "apply", "--file", file)
	require.NoError(t, err, out)
	require.Contains(t, out, "2 rows marked pending")
	department := func(id int64) any {
		u := x.user(users[id])
		app, _ := u["app_metadata"].(map[string]any)
		return app["department"]
	}
	require.Eventually(t, func() bool { return department(ids[0]) == "Operations" && department(ids[1]) == "Operations" },
		time.Minute, 20*time.Millisecond)
	x.waitStatus(ids[0], "synced")
	x.waitStatus(ids[1], "synced")
	require.EqualValues(t, 2, x.emu.Emulator.CallCount("PATCH /api/v2/users/{id}"))
	require.EqualValues(t, 2, x.emu.Emulator.CallCount(""), "two writes, no read: %v", x.emu.Emulator.Calls())

	// A column the view no longer reads: nothing at all (the outbox may
	// still hold the handled rows of the reconciles above: the notify source
	// deletes them in the background).
	var before, after int64
	require.NoError(t, x.pool.QueryRow(x.ctx, `SELECT coalesce(max(id), 0) FROM auth0_outbox`).Scan(&before))
	x.exec(`UPDATE employees SET phone_number = '+15550199'`)
	require.NoError(t, x.pool.QueryRow(x.ctx, `SELECT count(*) FROM auth0_outbox WHERE id > $1`, before).Scan(&after))
	require.Zero(t, after, "no outbox row")
	require.Zero(t, x.countStatus("pending"))

	// The joined table changes: the sweep finds the two rows.
	x.exec(`UPDATE departments SET title = 'Ops & Logistics' WHERE code = 'ops'`)
	require.Eventually(t, func() bool {
		return department(ids[0]) == "Ops & Logistics" && department(ids[1]) == "Ops & Logistics"
	}, time.Minute, 20*time.Millisecond)
	require.Eventually(t, func() bool { return x.metric("syncd_mapping_sweep_marked_total") >= 2 }, time.Minute, 20*time.Millisecond)
	require.EqualValues(t, 4, x.emu.Emulator.CallCount(""))
}
