package auth0_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
)

func TestRevokeSessionsAndRefreshTokens(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{}, nil)
	ctx := context.Background()
	u := f.createUser(ctx, nil)
	require.True(t, f.e.Login(u.UserID))
	require.NoError(t, f.c.DeleteUserSessions(ctx, u.UserID))
	require.NoError(t, f.c.DeleteUserRefreshTokens(ctx, u.UserID))
	acc := f.e.Access(u.UserID)
	require.Zero(t, acc.Sessions+acc.RefreshTokens)
	require.EqualValues(t, 1, f.calls("DELETE /api/v2/users/{id}/sessions", 202))
	require.EqualValues(t, 1, f.calls("DELETE /api/v2/users/{id}/refresh-tokens", 202))
	// Idempotent: nothing left to end is still a 202.
	require.NoError(t, f.c.DeleteUserSessions(ctx, u.UserID))

	err := f.c.DeleteUserSessions(ctx, "auth0|000000000000000000000000")
	require.ErrorIs(t, err, auth0.ErrNotFound)
	require.Error(t, f.c.DeleteUserRefreshTokens(ctx, ""), "an empty id is refused before any request")
}

// A tenant whose plan lacks the endpoints answers 403 operation_not_supported:
// ErrFeatureUnavailable. A missing scope is a 403 too, and is not that.
func TestRevocationPlanRefusalAndMissingScope(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, plan := range []string{emulator.PlanFree, emulator.PlanProfessional} {
		f := setup(t, emulator.Options{Plan: plan}, nil)
		u := f.createUser(ctx, nil)
		for _, call := range []func(context.Context, string) error{f.c.DeleteUserSessions, f.c.DeleteUserRefreshTokens} {
			err := call(ctx, u.UserID)
			require.ErrorIs(t, err, auth0.ErrFeatureUnavailable, plan)
			require.ErrorIs(t, err, auth0.ErrForbidden)
			var ae *auth0.APIError
			require.True(t, errors.As(err, &ae))
			require.Equal(t, "operation_not_supported", ae.ErrorCode)
		}
	}
	f := setup(t, emulator.Options{Plan: emulator.PlanEnterprise, Scopes: []string{"create:users", "read:users"}}, nil)
	u := f.createUser(ctx, nil)
	err := f.c.DeleteUserSessions(ctx, u.UserID)
	require.ErrorIs(t, err, auth0.ErrForbidden)
	require.NotErrorIs(t, err, auth0.ErrFeatureUnavailable, "a missing grant is not the plan")
	require.Contains(t, err.Error(), "delete:sessions")
}
