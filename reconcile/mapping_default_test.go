package reconcile

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers/pgtest"
)

// TestDefaultViewIsTheBuiltInMapping: the view syncd_desired that migration
// 10 creates gives, through DesiredFor, exactly what the mapping built into
// syncd before gave (testRow.employee is that mapping), for ordinary rows and
// awkward ones (white space of every kind, NULLs, blanks, leavers, a role
// with no mapping); and the md5 syncd records of what it read is the one
// PostgreSQL computes.
func TestDefaultViewIsTheBuiltInMapping(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	// A table that predates syncd may hold NULLs anywhere.
	_, err = conn.Exec(ctx, `ALTER TABLE employees ALTER COLUMN name DROP NOT NULL, ALTER COLUMN email DROP NOT NULL`)
	require.NoError(t, err)
	rows := []*testRow{
		testEmployee(),
		{Name: ptr("  Grace\tHopper \u00a0"), Email: ptr(" GRACE@Example.com\n"), Department: ptr("\u2003Navy\t"), PhoneNumber: ptr(" "),
			ConnecteamID: ptr("\u3000"), RoleCode: "lead", Active: true},
		{Name: ptr("Edsger"), Email: ptr("edsger@example.com"), RoleCode: "associate", Active: false},
		{Name: ptr("No Mail"), RoleCode: "associate", Active: true},
		{Name: ptr(" \t "), Email: ptr("blank@example.com"), RoleCode: "associate", Active: true},
		{Name: ptr("Wizard"), Email: ptr("wizard@example.com"), RoleCode: "wizard", Active: true},
		{Name: ptr("Zoë Ångström 🚀"), Email: ptr("zoe@example.com"), Department: ptr("R&D $pecial. dept."), RoleCode: "associate", Active: true},
	}
	for _, r := range rows {
		err := conn.QueryRow(ctx, `INSERT INTO employees (name, email, department, phone_number, connecteam_id, role_code, active)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id::text`,
			r.Name, r.Email, r.Department, r.PhoneNumber, r.ConnecteamID, r.RoleCode, r.Active).Scan(&r.ID)
		require.NoError(t, err)
	}
	for _, del := range []DeprovisionMode{DeprovisionBlock, DeprovisionDelete} {
		cfg := Config{Roles: map[string]string{"associate": "production_associate", "lead": "production_lead"}, Deprovision: del}.WithDefaults()
		for _, r := range rows {
			e, err := scanEmployee(conn.QueryRow(ctx, `SELECT `+employeeColumns+` FROM employees WHERE id = $1`, r.ID))
			require.NoError(t, err)
			got, gotErr := DesiredFor(e, cfg)
			want, wantErr := desiredOf(r, cfg)
			if wantErr != nil {
				require.EqualError(t, gotErr, wantErr.Error(), "row %+v", r)
				continue
			}
			require.NoError(t, gotErr, "row %+v", r)
			require.Equal(t, want, got, "row %+v", r)

			var sqlHash string
			require.NoError(t, conn.QueryRow(ctx, `SELECT md5(syncd_desired_of(id)::text) FROM employees WHERE id = $1`, r.ID).Scan(&sqlHash))
			require.Equal(t, sqlHash, *e.viewHash())
		}
	}
	var view map[string]any
	require.NoError(t, conn.QueryRow(ctx, `SELECT syncd_desired_of(id) FROM employees WHERE id = $1`, rows[0].ID).Scan(&view))
	require.Equal(t, map[string]any{"app_metadata": []any{"connecteam_id", "created_by", "department", "employee_id", "internal_id", "role_code", "sync_status"},
		"user_metadata": []any{"department", "employee_id", "full_name", "phone_number"}}, view["managed"], "the declared keys come with the row")
}
