package emulator_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

func TestSmoke(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	u := f.createUser("Chuck@Example.com", nil)
	id := u["user_id"].(string)
	require.Regexp(t, `^auth0\|[0-9a-f]{24}$`, id)
	require.Equal(t, "chuck@example.com", u["email"])
	got := f.obj(http.StatusOK, http.MethodGet, userPath(id), nil)
	require.Equal(t, u, got)
	f.must(http.StatusNoContent, http.MethodDelete, userPath(id), nil)
	f.apiErr(http.StatusNotFound, "inexistent_user", "The user does not exist.", http.MethodGet, userPath(id), nil)
	require.EqualValues(t, 1, f.e.CallCount("POST /api/v2/users"))
	require.EqualValues(t, 1, f.e.CallCount(emulator.EndpointToken))
}
