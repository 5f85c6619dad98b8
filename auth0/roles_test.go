package auth0_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
)

func TestRoles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	names := []string{"production_associate", "Team Lead", "lead_auditor"}
	for i := range 130 { // more than one page of roles
		names = append(names, fmt.Sprintf("extra_%03d", i))
	}
	f := setup(t, emulator.Options{Roles: names}, nil)

	all, err := f.c.ListRoles(ctx, "")
	require.NoError(t, err)
	require.Len(t, all, len(names))
	require.EqualValues(t, 2, f.e.CallCount("GET /api/v2/roles"), "two pages of 100")
	for _, r := range all {
		require.Regexp(t, `^rol_[A-Za-z0-9]{16}$`, r.ID)
		require.Equal(t, f.e.RoleID(r.Name), r.ID)
	}

	leads, err := f.c.ListRoles(ctx, "LEAD")
	require.NoError(t, err)
	var leadNames []string
	for _, r := range leads {
		leadNames = append(leadNames, r.Name)
	}
	slices.Sort(leadNames)
	require.Equal(t, []string{"Team Lead", "lead_auditor"}, leadNames)

	u := f.createUser(ctx, nil)
	roles, err := f.c.ListUserRoles(ctx, u.UserID)
	require.NoError(t, err)
	require.Empty(t, roles)

	var ids []string
	for _, r := range all {
		ids = append(ids, r.ID)
	}
	require.NoError(t, f.c.AssignUserRoles(ctx, u.UserID, ids))
	require.NoError(t, f.c.AssignUserRoles(ctx, u.UserID, ids[:1]), "assigning again is a no-op")
	f.e.ResetCalls()
	roles, err = f.c.ListUserRoles(ctx, u.UserID)
	require.NoError(t, err)
	require.Len(t, roles, len(names), "every page")
	require.EqualValues(t, 2, f.e.CallCount("GET /api/v2/users/{id}/roles"))

	require.NoError(t, f.c.RemoveUserRoles(ctx, u.UserID, ids[1:]))
	require.Equal(t, []string{"production_associate"}, f.e.UserRoles(u.UserID))
	roles, err = f.c.ListUserRoles(ctx, u.UserID)
	require.NoError(t, err)
	require.Equal(t, []auth0.Role{{ID: ids[0], Name: "production_associate", Description: roles[0].Description}}, roles)

	// No role ids: nothing to do, no request.
	f.e.ResetCalls()
	require.NoError(t, f.c.AssignUserRoles(ctx, u.UserID, nil))
	require.NoError(t, f.c.RemoveUserRoles(ctx, u.UserID, []string{}))
	require.Zero(t, f.e.CallCount(""))

	err = f.c.AssignUserRoles(ctx, "auth0|000000000000000000000000", ids[:1])
	require.ErrorIs(t, err, auth0.ErrNotFound)
}

func TestListRoleUsersPages(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := setup(t, emulator.Options{}, nil)
	roleID := f.e.RoleID(emulator.DefaultRole)

	want := map[string]bool{}
	for range 250 {
		u := f.createUser(ctx, nil)
		require.NoError(t, f.c.AssignUserRoles(ctx, u.UserID, []string{roleID}))
		want[u.UserID] = true
	}
	f.createUser(ctx, nil) // not a member

	f.e.ResetCalls()
	got := map[string]bool{}
	var pages []int
	err := f.c.ListRoleUsers(ctx, roleID, func(ms []auth0.RoleMember) error {
		pages = append(pages, len(ms))
		for _, m := range ms {
			require.False(t, got[m.UserID], "each member once")
			got[m.UserID] = true
			require.NotEmpty(t, m.Email)
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, []int{100, 100, 50}, pages)
	require.EqualValues(t, 3, f.e.CallCount("GET /api/v2/roles/{id}/users"))

	// An error from each stops the listing and comes back as it is.
	stop := errors.New("stop here")
	f.e.ResetCalls()
	err = f.c.ListRoleUsers(ctx, roleID, func([]auth0.RoleMember) error { return stop })
	require.Equal(t, stop, err)
	require.EqualValues(t, 1, f.e.CallCount("GET /api/v2/roles/{id}/users"))

	// A role with no members: each is not called.
	empty := f.e.AddRole("nobody")
	err = f.c.ListRoleUsers(ctx, empty, func([]auth0.RoleMember) error { t.Fatal("called"); return nil })
	require.NoError(t, err)

	err = f.c.ListRoleUsers(ctx, "rol_0000000000000000", func([]auth0.RoleMember) error { return nil })
	require.ErrorIs(t, err, auth0.ErrNotFound)
}

func TestSearchUsers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := setup(t, emulator.Options{}, nil)
	for i := range 7 {
		f.createUser(ctx, map[string]any{"department": map[bool]string{true: "ops", false: "sales"}[i%2 == 0]})
	}

	page, err := f.c.SearchUsers(ctx, auth0.SearchUsersRequest{Query: `app_metadata.department:"ops"`, PerPage: 2, Page: 1})
	require.NoError(t, err)
	require.Equal(t, 4, page.Total)
	require.Equal(t, 2, page.Start)
	require.Equal(t, 2, page.Limit)
	require.Len(t, page.Users, 2)
	for _, u := range page.Users {
		require.Equal(t, "ops", u.AppMetadata["department"])
	}

	page, err = f.c.SearchUsers(ctx, auth0.SearchUsersRequest{Fields: []string{"user_id", "email"}})
	require.NoError(t, err)
	require.Equal(t, 7, page.Total)
	require.Len(t, page.Users, 7)
	for _, u := range page.Users {
		require.NotEmpty(t, u.UserID)
		require.NotEmpty(t, u.Email)
		require.Empty(t, u.Name, "only the fields asked for")
	}

	_, err = f.c.SearchUsers(ctx, auth0.SearchUsersRequest{PerPage: 101})
	require.ErrorIs(t, err, auth0.ErrBadRequest)
}
