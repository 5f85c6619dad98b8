package emulator_test

// Conformance with real Auth0 where replayed traffic found the emulator
// answering differently (issue 12). Each test states the behaviour of Auth0
// it checks.

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// Auth0: after PATCH /api/v2/users/{id} with {"user_metadata": {},
// "app_metadata": {}}, the answer and every later GET carry "user_metadata":
// {} while app_metadata is gone from the body.
func TestPatchEmptyMetadataKeepsUserMetadata(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	u := f.createUser("empty@example.com", map[string]any{
		"app_metadata":  map[string]any{"employee_id": 7, "theme": "dark"},
		"user_metadata": map[string]any{"timezone": "America/Chicago", "full_name": "Em Pty"},
	})
	id := u["user_id"].(string)

	got := f.obj(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{"user_metadata": map[string]any{}, "app_metadata": map[string]any{}})
	require.Contains(t, got, "user_metadata")
	require.Equal(t, map[string]any{}, got["user_metadata"])
	require.NotContains(t, got, "app_metadata")
	again := f.obj(http.StatusOK, http.MethodGet, userPath(id), nil)
	require.Equal(t, got, again, "later GETs answer the same")
	require.Equal(t, map[string]any{}, f.e.User(id)["user_metadata"])

	// Keys set afterwards merge into the empty object as usual.
	got = f.obj(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{"user_metadata": map[string]any{"full_name": "Em"}})
	require.Equal(t, map[string]any{"full_name": "Em"}, got["user_metadata"])

	// An empty user_metadata is not indexed: search does not see it.
	f.must(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{"user_metadata": map[string]any{}})
	require.Empty(t, f.list(http.StatusOK, http.MethodGet, "/api/v2/users?q=_exists_:user_metadata", nil))
}

// Auth0: GET /api/v2/users/{id}/roles lists the roles by name, not by id
// and not in the order the roles were created.
func TestUserRolesByName(t *testing.T) {
	t.Parallel()
	names := []string{"production_lead", "billing_admin", "zz_auditor", "production_associate"} // creation order
	f := setup(t, emulator.Options{Roles: names})
	id := f.createUser("sorted@example.com", nil)["user_id"].(string)
	path := userPath(id) + "/roles"
	// Assigned in yet another order, in two requests.
	f.must(http.StatusNoContent, http.MethodPost, path, map[string]any{"roles": []string{f.e.RoleID("zz_auditor"), f.e.RoleID("production_lead")}})
	f.must(http.StatusNoContent, http.MethodPost, path, map[string]any{"roles": []string{f.e.RoleID("production_associate"), f.e.RoleID("billing_admin")}})

	want := []string{"billing_admin", "production_associate", "production_lead", "zz_auditor"}
	namesOf := func(roles []any) []string {
		var out []string
		for _, r := range roles {
			out = append(out, r.(map[string]any)["name"].(string))
		}
		return out
	}
	require.Equal(t, want, namesOf(f.list(http.StatusOK, http.MethodGet, path, nil)))
	// Offset pages follow the same order.
	var paged []string
	for page := range 4 {
		p := f.obj(http.StatusOK, http.MethodGet, path+"?include_totals=true&per_page=1&page="+strconv.Itoa(page), nil)
		paged = append(paged, namesOf(p["roles"].([]any))...)
	}
	require.Equal(t, want, paged)
}

// checkpointOf decodes a checkpoint: base64 of "<time>UTC,<user_id>".
func checkpointOf(t *testing.T, next string) (time.Time, string, string) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(next)
	require.NoError(t, err)
	ts, id, ok := strings.Cut(string(raw), "UTC,")
	require.True(t, ok, "checkpoint %q", raw)
	at, err := time.Parse("2006-01-02 15:04:05.000000", ts)
	require.NoError(t, err, "six fractional digits, as Auth0's %q", raw)
	return at, id, ts
}

// Auth0: GET /api/v2/roles/{id}/users with checkpoint paging lists members
// in the order they were assigned the role (then by user_id, for members
// assigned together), and next encodes the assignment time to the
// microsecond, later than the member's created_at. So a member assigned
// while a client pages comes after the pages already served, however early
// the user was created.
func TestRoleUsersAssignmentOrder(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := setup(t, emulator.Options{Now: clock.Now})
	role := f.e.RoleID(emulator.DefaultRole)
	path := "/api/v2/roles/" + role + "/users"
	users := map[string]string{}
	for _, name := range []string{"early", "a", "b", "c"} {
		users[name] = f.createUser(name+"@example.com", nil)["user_id"].(string)
		clock.Add(time.Millisecond)
	}
	assign := func(names ...string) {
		t.Helper()
		var ids []string
		for _, n := range names {
			ids = append(ids, users[n])
		}
		f.obj(http.StatusOK, http.MethodPost, path, map[string]any{"users": ids})
	}
	ids := func(page map[string]any) []string {
		var out []string
		for _, u := range page["users"].([]any) {
			out = append(out, u.(map[string]any)["user_id"].(string))
		}
		return out
	}
	clock.Add(time.Second + 1500*time.Nanosecond)
	assign("c") // created last, assigned first
	clock.Add(time.Microsecond)
	assign("b", "a") // one request: one assignment time, then by user_id
	ab := []string{users["a"], users["b"]}
	if ab[0] > ab[1] {
		ab[0], ab[1] = ab[1], ab[0]
	}

	first := f.obj(http.StatusOK, http.MethodGet, path+"?take=2", nil)
	require.Equal(t, []string{users["c"], ab[0]}, ids(first))
	at, last, raw := checkpointOf(t, first["next"].(string))
	require.Equal(t, ab[0], last)
	require.Equal(t, "2025-12-14 14:30:01.004002", raw, "the assignment time, microseconds kept")
	require.True(t, at.After(time.Date(2025, 12, 14, 14, 30, 0, 3e6, time.UTC)), "later than every created_at")

	// Between pages: a user created before all of them is assigned, and c
	// (already served) loses the role and gets it back.
	clock.Add(time.Microsecond)
	assign("early")
	clock.Add(time.Microsecond)
	f.must(http.StatusNoContent, http.MethodDelete, userPath(users["c"])+"/roles", map[string]any{"roles": []string{role}})
	f.must(http.StatusNoContent, http.MethodPost, userPath(users["c"])+"/roles", map[string]any{"roles": []string{role}})
	second := f.obj(http.StatusOK, http.MethodGet, path+"?take=2&from="+first["next"].(string), nil)
	require.Equal(t, []string{ab[1], users["early"]}, ids(second))
	third := f.obj(http.StatusOK, http.MethodGet, path+"?take=2&from="+second["next"].(string), nil)
	require.Equal(t, []string{users["c"]}, ids(third), "re-assigned: at the end")
	require.NotContains(t, third, "next")

	// Assigning a role the user has changes nothing.
	clock.Add(time.Microsecond)
	assign("c")
	all := f.obj(http.StatusOK, http.MethodGet, path+"?take=10", nil)
	require.Equal(t, []string{ab[0], ab[1], users["early"], users["c"]}, ids(all))
	// Offset paging lists the same order.
	var offset []string
	for _, u := range f.list(http.StatusOK, http.MethodGet, path+"?per_page=10", nil) {
		offset = append(offset, u.(map[string]any)["user_id"].(string))
	}
	require.Equal(t, ids(all), offset)
}

// RoleMembersByCreation keeps the emulator's former order (created_at to the
// millisecond, then user_id), for tests that check a client under both.
func TestRoleUsersCreationOrder(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := setup(t, emulator.Options{Now: clock.Now, RoleMembersOrder: emulator.RoleMembersByCreation})
	role := f.e.RoleID(emulator.DefaultRole)
	var created []string
	for _, name := range []string{"x", "y", "z"} {
		created = append(created, f.createUser(name+"@example.com", nil)["user_id"].(string))
		clock.Add(time.Millisecond)
	}
	for i := len(created) - 1; i >= 0; i-- {
		clock.Add(time.Second)
		f.must(http.StatusNoContent, http.MethodPost, userPath(created[i])+"/roles", map[string]any{"roles": []string{role}})
	}
	page := f.obj(http.StatusOK, http.MethodGet, "/api/v2/roles/"+role+"/users?take=2", nil)
	var got []string
	for _, u := range page["users"].([]any) {
		got = append(got, u.(map[string]any)["user_id"].(string))
	}
	require.Equal(t, created[:2], got)
	at, id, _ := checkpointOf(t, page["next"].(string))
	require.Equal(t, created[1], id)
	require.Equal(t, time.Date(2025, 12, 14, 14, 30, 0, 1e6, time.UTC), at)
	rest := f.obj(http.StatusOK, http.MethodGet, "/api/v2/roles/"+role+"/users?take=2&from="+page["next"].(string), nil)
	require.Len(t, rest["users"], 1)
	require.Equal(t, created[2], rest["users"].([]any)[0].(map[string]any)["user_id"])
}
