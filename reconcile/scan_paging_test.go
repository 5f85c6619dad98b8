package reconcile_test

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/reconcile"
)

// pagingAPI runs between once, right after the scan has been handed the first
// page of the members of roleID and before the second page is asked for.
type pagingAPI struct {
	reconcile.Auth0
	roleID  string
	between func(firstPage []auth0.RoleMember)
	done    bool
}

func (p *pagingAPI) ListRoleUsers(ctx context.Context, roleID string, each func([]auth0.RoleMember) error) error {
	return p.Auth0.ListRoleUsers(ctx, roleID, func(page []auth0.RoleMember) error {
		if err := each(page); err != nil {
			return err
		}
		if roleID == p.roleID && !p.done {
			p.done = true
			p.between(page)
		}
		return nil
	})
}

// Roles assigned and removed while the drift scan pages through a role's
// members make no false drift, and what the scan misses the next scan
// reports, whether the members come in Auth0's order (by assignment) or by
// creation (issue 12).
func TestDriftScanRolesChangeBetweenPages(t *testing.T) {
	t.Parallel()
	for _, order := range []string{emulator.RoleMembersByAssignment, emulator.RoleMembersByCreation} {
		t.Run(order, func(t *testing.T) {
			t.Parallel()
			testRolesChangeBetweenPages(t, order)
		})
	}
}

func testRolesChangeBetweenPages(t *testing.T, order string) {
	const n = 150 // two pages of members (the client takes 100)
	b := setup(t, func(_ *reconcile.Config, o *emulator.Options) { o.RoleMembersOrder = order })
	b.exec(`INSERT INTO employees (name, email, department) SELECT 'Employee ' || g, 'p' || g || '@example.com', 'Dept' FROM generate_series(1, $1) g`, n)
	b.converge()

	employeeOf := map[string]string{}
	rows, err := b.pool.Query(b.ctx, `SELECT id::text, auth0_user_id FROM employees WHERE auth0_sync_status = 'synced'`)
	require.NoError(t, err)
	for rows.Next() {
		var (
			id     string
			userID string
		)
		require.NoError(t, rows.Scan(&id, &userID))
		employeeOf[userID] = id
	}
	require.NoError(t, rows.Err())
	require.Len(t, employeeOf, n)
	assoc, lead := b.emu.RoleID("production_associate"), b.emu.RoleID("production_lead")

	// x: the first account created loses its role by hand before the scan
	// and gets it back while the scan pages. By creation it sorts before
	// the checkpoint, so the listing does not see it again.
	x := b.emu.Users()[0]["user_id"].(string)
	require.NoError(t, b.api.RemoveUserRoles(b.ctx, x, []string{assoc}))

	var y, z, v, w string
	api := &pagingAPI{Auth0: b.api, roleID: assoc, between: func(first []auth0.RoleMember) {
		listed := map[string]bool{}
		for _, m := range first {
			listed[m.UserID] = true
		}
		require.False(t, listed[x])
		var rest []string
		for _, u := range b.emu.Users() {
			if id := u["user_id"].(string); !listed[id] && id != x {
				rest = append(rest, id)
			}
		}
		require.NotEmpty(t, rest, "a second page")
		y, w, v, z = first[0].UserID, first[1].UserID, first[2].UserID, rest[0]

		require.NoError(t, b.api.AssignUserRoles(b.ctx, x, []string{assoc}))           // drift fixed by hand
		require.NoError(t, b.api.RemoveUserRoles(b.ctx, y, []string{assoc}))           // listed already
		require.NoError(t, b.api.RemoveUserRoles(b.ctx, z, []string{assoc}))           // not listed yet
		require.NoError(t, b.api.AssignUserRoles(b.ctx, v, []string{lead}))            // a role not listed yet
		b.exec(`UPDATE employees SET role_code = 'lead' WHERE id = $1`, employeeOf[w]) // a worker's doing:
		require.Equal(t, "synced", b.reconcile(employeeOf[w]).Status)                  // assoc removed, lead assigned
		require.Equal(t, []string{"production_lead"}, b.emu.UserRoles(w))
	}}

	drift := func(res *reconcile.ScanResult) map[string][]reconcile.DriftKind {
		out := map[string][]reconcile.DriftKind{}
		for _, d := range res.Drifted {
			out[d.EmployeeID] = d.Kinds
		}
		return out
	}
	role := []reconcile.DriftKind{reconcile.DriftRole}

	res, err := b.reconciler(api).Scan(b.ctx)
	require.NoError(t, err)
	require.True(t, api.done)
	require.Equal(t, n, res.Compared)
	// No false drift: x has its role back, w was reconciled meanwhile. z's
	// removal and v's assignment were seen; y's removal came after y was
	// listed, so this scan misses it.
	require.Equal(t, map[string][]reconcile.DriftKind{employeeOf[z]: role, employeeOf[v]: role}, drift(res),
		"x=%d y=%d z=%d v=%d w=%d", employeeOf[x], employeeOf[y], employeeOf[z], employeeOf[v], employeeOf[w])

	// The next scan catches y.
	res, err = b.rec.Scan(b.ctx)
	require.NoError(t, err)
	require.Equal(t, map[string][]reconcile.DriftKind{employeeOf[y]: role, employeeOf[z]: role, employeeOf[v]: role}, drift(res))

	// Healing them leaves nothing for a third scan.
	var ids []string
	for id := range drift(res) {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	_, err = reconcile.Requeue(b.ctx, b.pool, ids, false)
	require.NoError(t, err)
	for _, id := range ids {
		require.Equal(t, "synced", b.reconcile(id).Status)
	}
	res, err = b.rec.Scan(b.ctx)
	require.NoError(t, err)
	require.Empty(t, res.Drifted)
}
