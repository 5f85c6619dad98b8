package emulator_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

func TestSessionsAndRefreshTokens(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	id := f.createUser("ada@example.com", nil)["user_id"].(string)
	p := userPath(id)
	require.Empty(t, f.obj(http.StatusOK, http.MethodGet, p+"/sessions", nil)["sessions"])

	// Logins, through the admin endpoint.
	f.obj(http.StatusCreated, http.MethodPost, "/admin/users/"+id+"/logins", nil)
	require.True(t, f.e.Login(id))
	require.Len(t, f.obj(http.StatusOK, http.MethodGet, p+"/sessions", nil)["sessions"], 2)
	tokens := f.obj(http.StatusOK, http.MethodGet, p+"/refresh-tokens", nil)["tokens"].([]any)
	require.Len(t, tokens, 2)
	require.NotEmpty(t, tokens[0].(map[string]any)["session_id"])

	// Ending sessions leaves refresh tokens alive, as in Auth0.
	f.must(http.StatusAccepted, http.MethodDelete, p+"/sessions", nil)
	acc := f.e.Access(id)
	require.Equal(t, 0, acc.Sessions)
	require.Equal(t, 2, acc.RefreshTokens)
	f.must(http.StatusAccepted, http.MethodDelete, p+"/refresh-tokens", nil)
	f.must(http.StatusAccepted, http.MethodDelete, p+"/refresh-tokens", nil) // idempotent
	acc = f.e.Access(id)
	require.Zero(t, acc.RefreshTokens)
	require.Len(t, acc.Revoked, 1)
	require.Equal(t, 2, acc.Revoked[0].Ended)
	require.True(t, acc.Revoked[0].Delivered)
	require.Len(t, acc.TokensRevoked, 2)
	require.Equal(t, 0, acc.TokensRevoked[1].Ended)

	got := f.obj(http.StatusOK, http.MethodGet, "/admin/users/"+id+"/access", nil)
	require.EqualValues(t, 0, got["sessions"])
	require.Len(t, got["refresh_tokens_revoked"], 2)

	f.apiErr(http.StatusNotFound, "inexistent_user", "The user does not exist.", http.MethodDelete, userPath("auth0|000000000000000000000000")+"/sessions", nil)
	f.apiErr(http.StatusNotFound, "inexistent_user", "", http.MethodPost, "/admin/users/auth0|nobody/logins", nil)

	// Deleting the user ends what is left; its revocations stay on record.
	require.True(t, f.e.Login(id))
	f.must(http.StatusNoContent, http.MethodDelete, p, nil)
	acc = f.e.Access(id)
	require.Zero(t, acc.Sessions+acc.RefreshTokens)
	require.Len(t, acc.Revoked, 1)
}

func TestSessionsNeedScopesAndTheEnterprisePlan(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	id := f.createUser("ada@example.com", nil)["user_id"].(string)
	f.token = f.e.IssueToken(f.host(), "read:users")
	f.apiErr(http.StatusForbidden, "insufficient_scope", "Insufficient scope, expected any of: delete:sessions", http.MethodDelete, userPath(id)+"/sessions", nil)
	f.apiErr(http.StatusForbidden, "insufficient_scope", "Insufficient scope, expected any of: delete:refresh_tokens", http.MethodDelete, userPath(id)+"/refresh-tokens", nil)
	f.apiErr(http.StatusForbidden, "insufficient_scope", "Insufficient scope, expected any of: read:sessions", http.MethodGet, userPath(id)+"/sessions", nil)

	f.token = f.getToken(nil)
	for _, plan := range []string{emulator.PlanFree, emulator.PlanProfessional} {
		require.NoError(t, f.e.SetRate(plan, 1000, 1000))
		for _, m := range []string{http.MethodGet, http.MethodDelete} {
			for _, what := range []string{"/sessions", "/refresh-tokens"} {
				f.apiErr(http.StatusForbidden, "operation_not_supported", "The account is not allowed to perform this operation, please contact our support team.",
					m, userPath(id)+what, nil)
			}
		}
	}
	require.NoError(t, f.e.SetRate(emulator.PlanEnterprise, 1000, 1000))
	f.must(http.StatusAccepted, http.MethodDelete, userPath(id)+"/sessions", nil)
}

// A revocation whose answer is lost was carried out all the same, and says
// that its answer never reached the client.
func TestRevocationWithLostAnswer(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	id := f.createUser("ada@example.com", nil)["user_id"].(string)
	require.True(t, f.e.Login(id))
	f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "DELETE /api/v2/users/{id}/sessions", LoseAnswer: true}}})
	req, err := http.NewRequest(http.MethodDelete, f.srv.URL+userPath(id)+"/sessions", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+f.token)
	_, err = f.client.Do(req)
	require.Error(t, err, "no answer")
	acc := f.e.Access(id)
	require.Zero(t, acc.Sessions)
	require.Len(t, acc.Revoked, 1)
	require.False(t, acc.Revoked[0].Delivered)
}
