package auth0_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
)

// totalCalls counts every request the emulator received, of any route.
func totalCalls(e *emulator.Emulator) int64 {
	var n int64
	for _, c := range e.Calls() {
		n += c.Count
	}
	return n
}

// TestEmptyIDsSendNothing: a method given an empty id (or email) fails
// before any request. Without the guard, "/api/v2/users/" + "" is the list
// route, DELETE of it a request to a route that does not exist: the request
// count, not the error alone, tells.
func TestEmptyIDsSendNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := setup(t, emulator.Options{}, nil)
	require.NoError(t, f.c.Token(ctx))
	name := "Ada"
	for call, fn := range map[string]func() error{
		"GetUser":    func() error { _, err := f.c.GetUser(ctx, ""); return err },
		"UpdateUser": func() error { _, err := f.c.UpdateUser(ctx, "", auth0.UpdateUserRequest{Name: &name}); return err },
		"UpdateUser (empty request)": func() error {
			_, err := f.c.UpdateUser(ctx, "", auth0.UpdateUserRequest{})
			return err
		},
		"DeleteUser":      func() error { return f.c.DeleteUser(ctx, "") },
		"UsersByEmail":    func() error { _, err := f.c.UsersByEmail(ctx, " \t"); return err },
		"ListUserRoles":   func() error { _, err := f.c.ListUserRoles(ctx, ""); return err },
		"AssignUserRoles": func() error { return f.c.AssignUserRoles(ctx, "", []string{"rol_1"}) },
		"RemoveUserRoles": func() error { return f.c.RemoveUserRoles(ctx, "", []string{"rol_1"}) },
		"ListRoleUsers":   func() error { return f.c.ListRoleUsers(ctx, "", func([]auth0.RoleMember) error { return nil }) },
		"GetJob":          func() error { _, err := f.c.GetJob(ctx, ""); return err },
	} {
		before := totalCalls(f.e)
		require.Error(t, fn(), call)
		require.Equal(t, before, totalCalls(f.e), "%s with an empty id sent a request", call)
	}
	// No role ids: nothing to do, and no request either.
	before := totalCalls(f.e)
	require.NoError(t, f.c.AssignUserRoles(ctx, "auth0|1", nil))
	require.NoError(t, f.c.RemoveUserRoles(ctx, "auth0|1", nil))
	require.Equal(t, before, totalCalls(f.e))
}
