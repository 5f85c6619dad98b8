package reconcile_test

import (
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/reconcile"
)

// Auth0 keeps "user_metadata": {} after a PATCH that empties it, where an
// account whose keys were deleted one by one has none (issue 12). syncd
// treats the two alike: the same plan, the same drift, and once healed no
// write on a second reconcile and no drift in the scan.
func TestEmptyAndAbsentUserMetadataAlike(t *testing.T) {
	t.Parallel()
	b := setup(t)
	emptied := b.insert("Em Pty", "emptied@example.com")
	absent := b.insert("Ab Sent", "absent@example.com")
	for _, id := range []string{emptied, absent} {
		require.Equal(t, "synced", b.reconcile(id).Status)
	}
	emptiedUser, absentUser := b.row(emptied).UserID, b.row(absent).UserID

	// By hand: one account's user_metadata emptied with {} (the client
	// leaves an empty map out of a PATCH, so through the emulator's API),
	// the other's keys deleted one by one.
	b.emu.ResetCalls()
	patchEmpty(t, b, emptiedUser)
	nulls := map[string]any{}
	for k := range b.user(absentUser)["user_metadata"].(map[string]any) {
		nulls[k] = nil
	}
	_, err := b.api.UpdateUser(b.ctx, absentUser, auth0.UpdateUserRequest{UserMetadata: nulls})
	require.NoError(t, err)
	require.Equal(t, map[string]any{}, b.user(emptiedUser)["user_metadata"], "Auth0 keeps an emptied user_metadata as {}")
	require.NotContains(t, b.user(absentUser), "user_metadata")

	// The same plan for both: set every managed key.
	fields := func(id string) map[string]any {
		p, _, err := b.rec.PlanFor(b.ctx, id)
		require.NoError(t, err)
		out := map[string]any{}
		for _, a := range p {
			require.Equal(t, reconcile.ActionUpdate, a.Kind, "%s", p)
			require.Nil(t, a.From)
			out[a.Field] = a.To
		}
		return out
	}
	planEmptied, planAbsent := fields(emptied), fields(absent)
	require.Equal(t, []string{"user_metadata.department", "user_metadata.employee_id", "user_metadata.full_name", "user_metadata.phone_number"}, sortedKeys(planEmptied))
	require.Equal(t, sortedKeys(planEmptied), sortedKeys(planAbsent))

	// The same drift for both.
	res, err := b.rec.Scan(b.ctx)
	require.NoError(t, err)
	require.Len(t, res.Drifted, 2)
	for _, d := range res.Drifted {
		require.Equal(t, []reconcile.DriftKind{reconcile.DriftUserMetadata}, d.Kinds, "employee %d", d.EmployeeID)
	}

	// Healed once, then converged: reading Auth0 again writes nothing, and
	// the scan finds nothing.
	_, err = reconcile.Requeue(b.ctx, b.pool, []string{emptied, absent}, false)
	require.NoError(t, err)
	for _, id := range []string{emptied, absent} {
		require.Equal(t, "synced", b.reconcile(id).Status)
	}
	_, err = reconcile.Requeue(b.ctx, b.pool, []string{emptied, absent}, false)
	require.NoError(t, err)
	b.emu.ResetCalls()
	for _, id := range []string{emptied, absent} {
		require.Equal(t, "synced", b.reconcile(id).Status)
		require.Equal(t, "synced", b.reconcile(id).Status)
	}
	require.Zero(t, b.emu.WriteCount(), "%v", b.emu.Calls())
	res, err = b.rec.Scan(b.ctx)
	require.NoError(t, err)
	require.Empty(t, res.Drifted)
}

// patchEmpty sends PATCH {"user_metadata": {}} to the emulator.
func patchEmpty(t *testing.T, b *bundle, userID string) {
	t.Helper()
	tok := b.emu.IssueToken(strings.TrimPrefix(b.srv.URL, "http://"))
	req, err := http.NewRequestWithContext(b.ctx, http.MethodPatch, b.srv.URL+"/api/v2/users/"+url.PathEscape(userID), strings.NewReader(`{"user_metadata":{}}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }
