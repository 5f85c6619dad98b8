package reconcile

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The pure helpers around Diff and the guard, asserted on literal values
// (they are what make mutate exercises without a database).

func TestLimit(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		limit   Limit
		managed int
		want    int
	}{
		{Limit{Percent: 10}, 95, 9}, // rounded down
		{Limit{Percent: 10}, 100, 10},
		{Limit{Percent: 10}, 5, 1}, // at least one
		{Limit{Percent: 10}, 0, 1},
		{Limit{Percent: 2.5}, 1000, 25},
		{Limit{Percent: 100}, 7, 7},
		{Limit{Count: 25}, 3, 25}, // a count is absolute
	} {
		require.Equal(t, tt.want, tt.limit.of(tt.managed), "%s of %d", tt.limit, tt.managed)
	}
	require.Equal(t, "10%", Limit{Percent: 10}.String())
	require.Equal(t, "2.5%", Limit{Percent: 2.5}.String())
	require.Equal(t, "25", Limit{Count: 25}.String())
	for in, want := range map[string]Limit{"100%": {Percent: 100}, "1": {Count: 1}, "0.5%": {Percent: 0.5}} {
		got, err := ParseLimit(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got)
	}
	for _, bad := range []string{"100.5%", "-1%", "x%", "1.5", "%"} {
		_, err := ParseLimit(bad)
		require.Error(t, err, bad)
	}
}

func TestDeprovisionKey(t *testing.T) {
	t.Parallel()
	require.Equal(t, "account:auth0|x", Deprovision{Kind: KindOrphan, EmployeeID: "4", UserID: "auth0|x"}.key())
	require.Equal(t, "employee:42", Deprovision{Kind: KindInactive, EmployeeID: "42", UserID: "auth0|x"}.key())
	require.Equal(t, "employee:7", Deprovision{Kind: KindDeleted, EmployeeID: "7"}.key())
}

func TestPlanText(t *testing.T) {
	t.Parallel()
	p := Plan{
		{Kind: ActionLink, UserID: "auth0|1"},
		{Kind: ActionUpdate, Field: "app_metadata.department", From: "A", To: "B"},
		{Kind: ActionUpdate, Field: "user_metadata.phone_number", From: nil, To: "+1"},
		{Kind: ActionRemoveKey, Field: "app_metadata.connecteam_id", From: "ct-1"},
		{Kind: ActionAssignRole, Role: "lead"},
		{Kind: ActionRemoveRole, Role: "associate"},
		{Kind: ActionUnblock},
	}
	require.Equal(t, `link auth0|1; update app_metadata.department: "A" → "B"; update user_metadata.phone_number: ∅ → "+1"; `+
		`remove app_metadata.connecteam_id (was "ct-1"); assign_role lead; remove_role associate; unblock`, p.String())
	require.Equal(t, "link, update app_metadata.department, update user_metadata.phone_number, remove_key app_metadata.connecteam_id, "+
		"assign_role lead, remove_role associate, unblock", p.Names(), "names, never values")
	require.True(t, p.Has(ActionUnblock))
	require.False(t, p.Has(ActionCreate))
	require.False(t, p.Deprovisions())
	require.True(t, Plan{{Kind: ActionBlock}}.Deprovisions())
	require.True(t, Plan{{Kind: ActionDelete, UserID: "auth0|1"}}.Deprovisions())
	require.Equal(t, "delete auth0|1", Plan{{Kind: ActionDelete, UserID: "auth0|1"}}.String())
	require.Empty(t, Plan(nil).String())
}

func TestManagedOnly(t *testing.T) {
	t.Parallel()
	got := managedOnly(map[string]any{"employee_id": 42, "department": nil, "billing_plan": "gold", "role_code": "lead"}, DefaultManagedKeys.withOwn().App)
	require.Equal(t, map[string]any{"employee_id": 42.0, "role_code": "lead"}, got, "managed keys with a value, numbers as JSON decodes them")
	require.Equal(t, map[string]any{}, managedOnly(nil, DefaultManagedKeys.withOwn().User))
	require.Nil(t, normalizeMap(nil))
}

func TestConfigDefaultsAndLimits(t *testing.T) {
	t.Parallel()
	c := Config{}.WithDefaults()
	require.Equal(t, "Username-Password-Authentication", c.Connection)
	require.Equal(t, UsernameOff, c.Username)
	require.Equal(t, 15, c.UsernameMaxLength)
	require.Equal(t, DefaultRoles, c.Roles)
	require.Equal(t, "America/Chicago", c.Timezone)
	require.Equal(t, "productivity_system", c.CreatedBy)
	require.Equal(t, DeprovisionBlock, c.Deprovision)
	require.Equal(t, AdoptConflict, c.Adopt)
	require.Equal(t, 2*time.Second, c.RetryBase)
	require.Equal(t, 10*time.Minute, c.RetryMax)
	require.Equal(t, 30*time.Second, c.Timeout)
	require.Equal(t, 10*time.Second, c.BusyWait)
	require.NotNil(t, c.Logger)
	require.NotNil(t, c.Now)

	for _, n := range []int{1, 128} {
		c := Config{UsernameMaxLength: n}.WithDefaults()
		require.NoError(t, c.Validate(), n)
	}
	for _, n := range []int{-1, 129} {
		c := Config{UsernameMaxLength: n}.WithDefaults()
		require.ErrorContains(t, c.Validate(), "UsernameMaxLength: must be 1..128", n)
	}
	c = Config{RetryBase: time.Second, RetryMax: time.Second}.WithDefaults()
	require.NoError(t, c.Validate(), "base = max is allowed")
	c = Config{RetryBase: 2 * time.Second, RetryMax: time.Second}.WithDefaults()
	require.ErrorContains(t, c.Validate(), "RetryBase: need 0 < base <= max")
	c = Config{RetryBase: -time.Second}.WithDefaults()
	require.ErrorContains(t, c.Validate(), "RetryBase: need 0 < base <= max")
	c = Config{}.WithDefaults()
	c.RetryBase = 0 // Validate alone refuses a zero base (WithDefaults would have filled it)
	require.ErrorContains(t, c.Validate(), "RetryBase: need 0 < base <= max")
	c = Config{Roles: map[string]string{"lead": " "}}.WithDefaults()
	require.ErrorContains(t, c.Validate(), `Roles: "lead"=" ": role code and role name must not be empty`)
	c = Config{Roles: map[string]string{"a": "r1", "b": "r1", "c": "r0"}}.WithDefaults()
	require.Equal(t, []string{"r0", "r1"}, c.managedRoles())
}
