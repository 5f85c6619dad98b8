package reconcile_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// customMapping replaces the default view with one over first_name and
// last_name whose rows go wrong in every way a mapping can, one way per
// value of the column meta.
const customMapping = `
ALTER TABLE employees ADD COLUMN first_name text, ADD COLUMN last_name text,
	ADD COLUMN divisor integer NOT NULL DEFAULT 1, ADD COLUMN meta text NOT NULL DEFAULT '';
DROP VIEW syncd_desired;
CREATE VIEW syncd_desired AS
SELECT e.id,
       CASE WHEN e.meta = 'no-email' THEN NULL ELSE e.email END AS email,
       e.first_name || ' ' || e.last_name AS name,
       e.role_code,
       CASE WHEN e.meta = 'null-blocked' THEN NULL ELSE NOT e.active END AS blocked,
       CASE e.meta
           WHEN 'array' THEN '[1, 2]'::jsonb
           WHEN 'undeclared' THEN '{"favourite_color": "teal"}'::jsonb
           WHEN 'employee-id' THEN '{"employee_id": 999999}'::jsonb
           ELSE jsonb_build_object('department', e.department, 'internal_id', 100 / e.divisor)
       END AS app_metadata,
       jsonb_build_object('full_name', e.first_name || ' ' || e.last_name) AS user_metadata
  FROM employees e
 WHERE e.meta <> 'absent'
UNION ALL
SELECT e.id, e.email, 'Twin', e.role_code, false, '{}'::jsonb, '{}'::jsonb
  FROM employees e
 WHERE e.meta = 'twice';
`

// TestMappingBadRows: each row the mapping cannot turn into an account is
// failed with a reason a person understands, before any Auth0 call; every
// other row converges (eight workers, so that claims and outcomes go in
// groups: one bad row holds no group back).
func TestMappingBadRows(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(customMapping)
	insert := func(first, email, meta string, divisor int, role string) string {
		var id string
		require.NoError(t, b.pool.QueryRow(b.ctx, `INSERT INTO employees (name, email, first_name, last_name, department, meta, divisor, role_code)
			VALUES ('unused', $1, $2, 'Lovelace', 'Engines', $3, $4, $5) RETURNING id::text`, email, first, meta, divisor, role).Scan(&id))
		return id
	}
	good := insert("Ada", "ada@example.com", "", 1, "associate")
	good2 := insert("Augusta", "augusta@example.com", "", 2, "lead")
	teal := insert("Teal", "teal@example.com", "undeclared", 1, "associate")
	bad := map[string]string{
		teal: `app_metadata: key "favourite_color" is not declared in syncd_managed_keys (declared: connecteam_id, created_by, department, employee_id, internal_id, role_code, sync_status)`,
		insert("Zero", "zero@example.com", "", 0, "associate"):               `syncd_desired: division by zero`,
		insert("Array", "array@example.com", "array", 1, "associate"):        `app_metadata: is a JSON array, not a JSON object`,
		insert("Eid", "eid@example.com", "employee-id", 1, "associate"):      `app_metadata.employee_id: is syncd's`,
		insert("Twice", "twice@example.com", "twice", 1, "associate"):        `syncd_desired: syncd_desired has 2 rows for this employee; it must have one`,
		insert("Absent", "absent@example.com", "absent", 1, "associate"):     `syncd_desired: syncd_desired has no row for this employee`,
		insert("Nullb", "nullb@example.com", "null-blocked", 1, "associate"): `blocked: is NULL: the mapping must say true or false`,
		insert("Wiz", "wiz@example.com", "", 1, "wizard"):                    `role_code: "wizard" has no Auth0 role mapping (known: associate, lead)`,
		insert("NoMail", "nomail@example.com", "no-email", 1, "associate"):   `email: is empty`,
	}
	b.converge()

	for _, id := range []string{good, good2} {
		r := b.row(id)
		require.Equal(t, "synced", r.Status, r.Error)
		u := b.user(r.UserID)
		require.Equal(t, map[string]any{"full_name": map[bool]string{true: "Ada Lovelace", false: "Augusta Lovelace"}[id == good], "timezone": "America/Chicago"},
			u["user_metadata"], "the mapping's user_metadata, and the timezone set at creation")
		app := u["app_metadata"].(map[string]any)
		require.Equal(t, "Engines", app["department"])
		require.Equal(t, map[bool]float64{true: 100, false: 50}[id == good], app["internal_id"])
		require.Equal(t, "productivity_system", app["created_by"], "syncd's own keys are set whatever the mapping")
		require.Equal(t, jsonNumber(t, id), app["employee_id"])
		require.NotContains(t, app, "sync_status", "a managed key the mapping no longer gives is not set")
	}
	require.Equal(t, "Ada Lovelace", b.user(b.row(good).UserID)["name"])
	for id, reason := range bad {
		r := b.row(id)
		require.Equal(t, "failed", r.Status, "employee %s: %s", id, reason)
		require.Contains(t, r.Error, reason)
		require.Empty(t, r.UserID)
	}
	require.Len(t, b.emu.Users(), 2, "nothing was written to Auth0 for a row the mapping could not give")
	require.Zero(t, b.count(`SELECT count(*) FROM employees WHERE md5(syncd_desired_of(id)::text) IS DISTINCT FROM auth0_desired_hash`),
		"every outcome, failures too, records the hash of what it was decided from: a sweep marks nothing")

	// Declaring the key changes what the row reads (the declared keys come
	// with it), so a sweep would find it; the next reconcile sets it.
	b.exec(`INSERT INTO syncd_managed_keys (metadata, key) VALUES ('app_metadata', 'favourite_color')`)
	require.Equal(t, 1, b.count(`SELECT count(*) FROM employees WHERE id = $1 AND md5(syncd_desired_of(id)::text) IS DISTINCT FROM auth0_desired_hash`, teal))
	out := b.reconcile(teal)
	require.Equal(t, "synced", b.row(teal).Status, "%v", out.Err)
	require.Equal(t, "teal", b.user(b.row(teal).UserID)["app_metadata"].(map[string]any)["favourite_color"])
}

// TestMappingSetupFaultFailsNoRow: a fault of the setup rather than of a row
// (the view dropped, a column it needs gone) fails the reconcile, which is
// retried; no row is marked failed for it, and the row converges once the
// mapping is back.
func TestMappingSetupFaultFailsNoRow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insert("Ada Lovelace", "ada@example.com")
	var def string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT pg_get_viewdef('syncd_desired'::regclass)`).Scan(&def))
	b.exec(`DROP VIEW syncd_desired`)
	_, err := b.rec.Reconcile(b.ctx, id)
	require.ErrorContains(t, err, `relation "syncd_desired" does not exist`)
	require.Equal(t, "pending", b.row(id).Status)
	require.Empty(t, b.emu.Users())

	b.exec(`CREATE VIEW syncd_desired AS ` + def)
	out := b.reconcile(id)
	require.Equal(t, "synced", b.row(id).Status, "%v", out.Err)
	require.Len(t, b.emu.Users(), 1)
}
