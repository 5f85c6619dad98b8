package reconcile_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/reconcile"
)

// TestScanAccountsAtRest: the account of a deleted row that syncd blocked
// is neither drift nor an orphan (it is counted as deprovisioned); an
// orphan someone else blocked is listed but needs nothing; and every row
// not compared is listed with why.
func TestScanAccountsAtRest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a, lead, gone, blockedByHand := b.insert("A", "a@example.com"), b.insert("L", "l@example.com"), b.insert("G", "g@example.com"), b.insert("H", "h@example.com")
	b.exec(`UPDATE employees SET role_code = 'lead' WHERE id = $1`, lead)
	for _, id := range []string{a, lead, gone, blockedByHand} {
		b.reconcile(id)
		require.Equal(t, "synced", b.row(id).Status)
	}
	bad := b.insert("B", "not an email")
	b.reconcile(bad)
	require.Equal(t, "failed", b.row(bad).Status)
	goneUser, handUser := b.row(gone).UserID, b.row(blockedByHand).UserID

	// A deleted row: syncd blocks its account.
	b.exec(`DELETE FROM employees WHERE id = $1`, gone)
	out, err := b.rec.Reconcile(b.ctx, gone)
	require.NoError(t, err)
	require.Equal(t, reconcile.StatusDeprovisioned, out.Status)
	require.Equal(t, true, b.user(goneUser)["blocked"])
	// Another deleted row whose account someone blocked by hand first.
	b.exec(`DELETE FROM auth0_outbox`)
	b.exec(`DELETE FROM employees WHERE id = $1`, blockedByHand)
	blocked := true
	_, err = b.api.UpdateUser(b.ctx, handUser, auth0.UpdateUserRequest{Blocked: &blocked})
	require.NoError(t, err)
	// A row in flight.
	pending := b.insert("P", "p@example.com")

	res, err := b.rec.Scan(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, res.Deprovisioned, "the deleted row's account syncd blocked is at rest")
	require.Len(t, res.Orphans, 1)
	require.Equal(t, handUser, res.Orphans[0].UserID)
	require.True(t, res.Orphans[0].Blocked)
	require.Empty(t, res.Drifted)
	require.False(t, res.HasDrift(), "nothing to change")
	require.Zero(t, res.ActionableOrphans())
	require.Zero(t, res.Deprovisions())

	// Scanned under a mapping without lead: that row is not an account.
	cfg := b.cfg
	cfg.Roles = map[string]string{"associate": "production_associate"}
	rec, err := reconcile.New(b.pool, b.api, cfg)
	require.NoError(t, err)
	res, err = rec.Scan(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 4, res.Employees)
	require.Equal(t, 1, res.Compared)
	require.ElementsMatch(t, []reconcile.NotCompared{
		{Reason: "failed: syncd waits for the row to change (`syncd status` says why)", Count: 1, EmployeeIDs: []string{bad}},
		{Reason: "in flight (pending): syncd is working on it", Count: 1, EmployeeIDs: []string{pending}},
		{Reason: `not an account under these settings: role_code: "lead" has no Auth0 role mapping (known: associate)`, Count: 1, EmployeeIDs: []string{lead}},
	}, res.NotCompared)
	require.Greater(t, res.TookSeconds, 0.0)
}
