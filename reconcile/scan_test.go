package reconcile_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/reconcile"
)

// ids runs a query that returns one bigint column.
func (b *bundle) ids(query string) []string {
	b.t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT k::text FROM (`+query+`) AS q(k)`)
	require.NoError(b.t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(b.t, err)
	return ids
}

// converge reconciles every employee with 8 workers.
func (b *bundle) converge() {
	b.t.Helper()
	ids := b.ids(`SELECT id FROM employees ORDER BY id`)
	work := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if _, err := b.rec.Reconcile(b.ctx, id); err != nil {
					b.t.Error(err)
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
}

func TestDriftScan(t *testing.T) {
	t.Parallel()
	const n = 1000
	b := setup(t)
	b.exec(`INSERT INTO employees (name, email, department) SELECT 'Employee ' || g, 'e' || g || '@example.com', 'Dept ' || (g % 7) FROM generate_series(1, $1) g`, n)
	b.converge()
	var synced int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM employees WHERE auth0_sync_status = 'synced'`).Scan(&synced))
	require.Equal(t, n, synced)

	userOf := func(i int) string { return b.row(strconv.Itoa(i)).UserID }
	// Tamper by hand, as someone in the dashboard would.
	require.NoError(t, b.api.RemoveUserRoles(b.ctx, userOf(10), []string{b.emu.RoleID("production_associate")}))
	_, err := b.api.UpdateUser(b.ctx, userOf(20), auth0.UpdateUserRequest{AppMetadata: map[string]any{"department": "Hacked", "theme": "dark"}})
	require.NoError(t, err)
	blocked := true
	_, err = b.api.UpdateUser(b.ctx, userOf(30), auth0.UpdateUserRequest{Blocked: &blocked})
	require.NoError(t, err)
	require.NoError(t, b.api.DeleteUser(b.ctx, userOf(40)))
	_, err = b.api.UpdateUser(b.ctx, userOf(50), auth0.UpdateUserRequest{UserMetadata: map[string]any{"full_name": nil}})
	require.NoError(t, err)
	name := "Someone Else"
	_, err = b.api.UpdateUser(b.ctx, userOf(60), auth0.UpdateUserRequest{Name: &name})
	require.NoError(t, err)
	require.NoError(t, b.api.AssignUserRoles(b.ctx, userOf(70), []string{b.emu.RoleID("production_lead")}))
	require.NoError(t, b.api.AssignUserRoles(b.ctx, userOf(80), []string{b.emu.RoleID("billing_admin")})) // not ours: no drift
	orphan, err := b.api.CreateUser(b.ctx, auth0.CreateUserRequest{Connection: "Username-Password-Authentication", Email: "ghost@example.com",
		Password: "Str0ng!Passw0rd", AppMetadata: map[string]any{"employee_id": 999999, "created_by": "productivity_system"}})
	require.NoError(t, err)
	_, err = b.api.CreateUser(b.ctx, auth0.CreateUserRequest{Connection: "Username-Password-Authentication", Email: "stranger@example.com",
		Password: "Str0ng!Passw0rd", AppMetadata: map[string]any{"plan": "gold"}}) // not ours: ignored
	require.NoError(t, err)

	b.emu.ResetCalls()
	res, err := b.rec.Scan(b.ctx)
	require.NoError(t, err)
	calls := b.emu.CallCount("")
	t.Logf("drift scan of %d managed users: %d Auth0 calls (%v), %s", res.ManagedUsers, calls, b.emu.Calls(), res.Took)
	// How often the export job is polled depends on how fast the machine
	// is; every other call is fixed by the data.
	polls := b.emu.CallCount("GET /api/v2/jobs/{id}")
	require.LessOrEqual(t, calls-polls, int64(n/100+10), "calls besides waiting for the export job")
	require.EqualValues(t, 0, b.emu.WriteCount())
	require.Equal(t, n, res.Employees)
	require.Equal(t, n, res.Compared)
	require.Equal(t, n, res.ManagedUsers) // n - 1 deleted + 1 orphan

	kinds := map[string][]reconcile.DriftKind{}
	for _, d := range res.Drifted {
		kinds[d.EmployeeID] = d.Kinds
	}
	require.Equal(t, map[string][]reconcile.DriftKind{
		"10": {reconcile.DriftRole},
		"20": {reconcile.DriftAppMetadata},
		"30": {reconcile.DriftBlocked},
		"40": {reconcile.DriftMissing},
		"50": {reconcile.DriftUserMetadata},
		"60": {reconcile.DriftProfile},
		"70": {reconcile.DriftRole},
	}, kinds)
	require.Len(t, res.Orphans, 1)
	require.Equal(t, orphan.UserID, res.Orphans[0].UserID)
	require.Equal(t, "999999", res.Orphans[0].EmployeeID)
	require.Equal(t, 1, res.Deprovisions())

	// Heal: requeue the drifted rows and reconcile them; deprovision the orphan.
	var ids []string
	for id := range kinds {
		ids = append(ids, id)
	}
	marked, err := reconcile.Requeue(b.ctx, b.pool, ids, false)
	require.NoError(t, err)
	require.EqualValues(t, len(ids), marked)
	for _, id := range ids {
		out := b.reconcile(id)
		require.Equal(t, "synced", out.Status, "employee %d: %v", id, out.Err)
	}
	_, err = b.rec.DeprovisionOrphan(b.ctx, res.Orphans[0])
	require.NoError(t, err)
	require.Equal(t, true, b.user(orphan.UserID)["blocked"])
	require.Equal(t, "dark", b.user(userOf(20))["app_metadata"].(map[string]any)["theme"], "foreign key kept")

	res, err = b.rec.Scan(b.ctx)
	require.NoError(t, err)
	require.Empty(t, res.Drifted)
	require.Empty(t, res.Orphans, "an orphan syncd blocked is at rest, no orphan any more")
	require.Equal(t, 1, res.Deprovisioned)
	require.Equal(t, 0, res.Deprovisions(), "the orphan is blocked already")
}

// hookedAPI runs a hook before the first ListRoleUsers call: between the
// scan's read of the employees and its read of Auth0.
type hookedAPI struct {
	reconcile.Auth0
	once sync.Once
	hook func()
}

func (h *hookedAPI) ListRoleUsers(ctx context.Context, roleID string, each func([]auth0.RoleMember) error) error {
	h.once.Do(h.hook)
	return h.Auth0.ListRoleUsers(ctx, roleID, each)
}

// An account created for a new row while a scan runs (by another worker or
// process) is not an orphan: found by syncchaos, where a second process's
// first scan blocked new hires' accounts while their rows said synced.
func TestDriftScanDuringBackfill(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ids []string
	api := &hookedAPI{Auth0: b.api, hook: func() {
		for i := range 3 {
			id := b.insert(fmt.Sprintf("New Hire %d", i), fmt.Sprintf("new%d@example.com", i))
			require.Equal(t, "synced", b.reconcile(id).Status)
			ids = append(ids, id)
		}
		// One more, in flight: its account exists, the row is not linked yet.
		id := b.insert("In Flight", "inflight@example.com")
		_, err := b.api.CreateUser(b.ctx, auth0.CreateUserRequest{Connection: "Username-Password-Authentication", Email: "inflight@example.com",
			Password: "Str0ng!Passw0rd", AppMetadata: map[string]any{"employee_id": id, "created_by": "productivity_system"}})
		require.NoError(t, err)
	}}
	res, err := b.reconciler(api).Scan(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 0, res.Employees, "the rows came after the scan read the table")
	require.Equal(t, 4, res.ManagedUsers)
	require.Empty(t, res.Orphans)
	require.Equal(t, 0, res.Deprovisions())
}
