package emulator_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

func TestRoles(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{Roles: []string{"production_associate", "production_lead", "Admin"}})
	all := f.list(http.StatusOK, http.MethodGet, "/api/v2/roles", nil)
	require.Len(t, all, 3)
	for _, r := range all {
		m := r.(map[string]any)
		require.Regexp(t, `^rol_[A-Za-z0-9]{16}$`, m["id"])
		require.ElementsMatch(t, []string{"id", "name", "description"}, keys(m))
		require.Equal(t, f.e.RoleID(m["name"].(string)), m["id"])
	}
	// name_filter: case-insensitive.
	got := f.list(http.StatusOK, http.MethodGet, "/api/v2/roles?name_filter=PRODUCTION", nil)
	require.Len(t, got, 2)
	got = f.list(http.StatusOK, http.MethodGet, "/api/v2/roles?name_filter=production_associate", nil)
	require.Equal(t, f.e.RoleID("production_associate"), got[0].(map[string]any)["id"])
	// Totals shape (go-auth0 recording TestRoleManager_List).
	page := f.obj(http.StatusOK, http.MethodGet, "/api/v2/roles?include_totals=true&per_page=2&page=1", nil)
	require.Equal(t, map[string]any{"roles": page["roles"], "start": float64(2), "limit": float64(2), "total": float64(3)}, page)
	require.Len(t, page["roles"], 1)
	f.apiErr(http.StatusBadRequest, "invalid_query_string", "", http.MethodGet, "/api/v2/roles?per_page=0", nil)
	require.Empty(t, f.e.RoleID("nope"))
	require.Equal(t, f.e.RoleID("Admin"), f.e.AddRole("Admin"))
}

func TestUserRoles(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{Roles: []string{"production_associate", "production_lead"}})
	id := f.createUser("roles@example.com", nil)["user_id"].(string)
	assoc, lead := f.e.RoleID("production_associate"), f.e.RoleID("production_lead")
	path := userPath(id) + "/roles"

	// 204 with an empty body, idempotent.
	for range 2 {
		status, _, b := f.call(http.MethodPost, path, map[string]any{"roles": []string{assoc, lead}})
		require.Equal(t, http.StatusNoContent, status)
		require.Empty(t, b)
	}
	require.Equal(t, []string{"production_associate", "production_lead"}, f.e.UserRoles(id))
	got := f.list(http.StatusOK, http.MethodGet, path, nil)
	require.Len(t, got, 2)
	page := f.obj(http.StatusOK, http.MethodGet, path+"?include_totals=true&per_page=1", nil)
	require.Equal(t, float64(2), page["total"])
	require.Len(t, page["roles"], 1)

	status, _, b := f.call(http.MethodDelete, path, map[string]any{"roles": []string{lead}})
	require.Equal(t, http.StatusNoContent, status)
	require.Empty(t, b)
	require.Equal(t, []string{"production_associate"}, f.e.UserRoles(id))

	// Errors.
	f.apiErr(http.StatusNotFound, "inexistent_user", "The user does not exist.", http.MethodGet, userPath("auth0|nobody")+"/roles", nil)
	f.apiErr(http.StatusNotFound, "inexistent_user", "The user does not exist.", http.MethodPost, userPath("auth0|nobody")+"/roles", map[string]any{"roles": []string{assoc}})
	f.apiErr(http.StatusNotFound, "", "The role does not exist.", http.MethodPost, path, map[string]any{"roles": []string{assoc, "rol_0000000000000000"}})
	require.Equal(t, []string{"production_associate"}, f.e.UserRoles(id), "nothing applied")
	f.apiErr(http.StatusBadRequest, "invalid_body", "Payload validation error: 'Missing required property: roles'.", http.MethodPost, path, map[string]any{})
	f.apiErr(http.StatusBadRequest, "invalid_body", "Payload validation error: 'Array is too short (0), minimum 1' on property roles (List of roles IDs to associated with the user).", http.MethodPost, path, map[string]any{"roles": []string{}})
	f.apiErr(http.StatusBadRequest, "invalid_body", "Payload validation error: 'Additional properties not allowed: users'.", http.MethodDelete, path, map[string]any{"roles": []string{assoc}, "users": []string{}})
	f.apiErr(http.StatusBadRequest, "invalid_body", "", http.MethodPost, path, map[string]any{"roles": assoc})
	// Deleting the user ends its memberships.
	f.must(http.StatusNoContent, http.MethodDelete, userPath(id), nil)
	require.Empty(t, f.list(http.StatusOK, http.MethodGet, "/api/v2/roles/"+assoc+"/users", nil))
}

func TestRoleUsersPaging(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := setup(t, emulator.Options{Now: clock.Now})
	role := f.e.RoleID(emulator.DefaultRole)
	var want []string
	for i := range 250 {
		u := f.createUser(fmt.Sprintf("m%03d@example.com", i), nil)
		if i%50 == 0 {
			clock.Add(time.Millisecond) // several users share a millisecond, others do not
		}
		f.must(http.StatusNoContent, http.MethodPost, userPath(u["user_id"].(string))+"/roles", map[string]any{"roles": []string{role}})
		want = append(want, u["user_id"].(string))
	}
	f.createUser("outsider@example.com", nil)
	path := "/api/v2/roles/" + role + "/users"

	// Checkpoint paging: take, from, next absent on the last page.
	var got []string
	next, pages := "", 0
	for {
		q := "?take=100"
		if next != "" {
			q += "&from=" + next
		}
		page := f.obj(http.StatusOK, http.MethodGet, path+q, nil)
		pages++
		for _, u := range page["users"].([]any) {
			m := u.(map[string]any)
			require.ElementsMatch(t, []string{"user_id", "email", "picture", "name"}, keys(m))
			got = append(got, m["user_id"].(string))
		}
		n, ok := page["next"]
		if !ok {
			break
		}
		require.Len(t, page["users"], 100)
		next = n.(string)
		raw, err := base64.StdEncoding.DecodeString(next)
		require.NoError(t, err)
		require.Contains(t, string(raw), "UTC,auth0|")
	}
	require.Equal(t, 3, pages)
	require.ElementsMatch(t, want, got)
	require.Len(t, got, 250)

	// Exactly a page: no next.
	page := f.obj(http.StatusOK, http.MethodGet, path+"?take=50&from="+next, nil)
	require.Len(t, page["users"], 50)
	require.NotContains(t, page, "next")
	// take wins over per_page and include_totals.
	page = f.obj(http.StatusOK, http.MethodGet, path+"?take=10&per_page=5&include_totals=true", nil)
	require.ElementsMatch(t, []string{"users", "next"}, keys(page))
	require.Len(t, page["users"], 10)
	// Offset paging, with totals.
	page = f.obj(http.StatusOK, http.MethodGet, path+"?per_page=100&page=2&include_totals=true", nil)
	require.Equal(t, float64(250), page["total"])
	require.Len(t, page["users"], 50)
	require.Len(t, f.list(http.StatusOK, http.MethodGet, path, nil), 50)
	f.apiErr(http.StatusBadRequest, "invalid_paging", "Requesting page 20 exceeds the allowed maximum of 1000 records. To fetch results beyond 1000, use the checkpoint pagination method", http.MethodGet, path+"?page=20&per_page=50", nil)
	f.apiErr(http.StatusBadRequest, "invalid_query_string", "", http.MethodGet, path+"?take=101", nil)
	f.apiErr(http.StatusBadRequest, "invalid_query_string", "", http.MethodGet, path+"?from=!!!", nil)
	f.apiErr(http.StatusNotFound, "", "The role does not exist.", http.MethodGet, "/api/v2/roles/rol_0000000000000000/users", nil)

	// A checkpoint survives the deletion of the member it names.
	first := f.obj(http.StatusOK, http.MethodGet, path+"?take=10", nil)
	users := first["users"].([]any)
	f.must(http.StatusNoContent, http.MethodDelete, userPath(users[9].(map[string]any)["user_id"].(string)), nil)
	second := f.obj(http.StatusOK, http.MethodGet, path+"?take=10&from="+first["next"].(string), nil)
	seen := map[string]bool{}
	for _, u := range append(users, second["users"].([]any)...) {
		id := u.(map[string]any)["user_id"].(string)
		require.False(t, seen[id], "no member twice")
		seen[id] = true
	}
	require.True(t, strings.HasPrefix(second["users"].([]any)[0].(map[string]any)["email"].(string), "m"))
}

// POST /roles/{id}/users answers 200 {} where POST /users/{id}/roles answers
// 204 (go-auth0 recordings).
func TestAddRoleUsers(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	role := f.e.RoleID(emulator.DefaultRole)
	a := f.createUser("a@example.com", nil)["user_id"].(string)
	b := f.createUser("b@example.com", nil)["user_id"].(string)
	require.Equal(t, map[string]any{}, f.obj(http.StatusOK, http.MethodPost, "/api/v2/roles/"+role+"/users", map[string]any{"users": []string{a, b}}))
	require.Equal(t, []string{emulator.DefaultRole}, f.e.UserRoles(b))
	f.apiErr(http.StatusNotFound, "", "The role does not exist.", http.MethodPost, "/api/v2/roles/rol_0000000000000000/users", map[string]any{"users": []string{a}})
	c := f.createUser("c@example.com", nil)["user_id"].(string)
	f.apiErr(http.StatusNotFound, "", "One or more of the users do not exist.", http.MethodPost, "/api/v2/roles/"+role+"/users", map[string]any{"users": []string{c, "auth0|nobody"}})
	require.Empty(t, f.e.UserRoles(c), "all or nothing: no user of a refused call gets the role")
	f.apiErr(http.StatusBadRequest, "invalid_body", "", http.MethodPost, "/api/v2/roles/"+role+"/users", map[string]any{"users": []string{}})
	require.EqualValues(t, 4, f.e.CallCount("POST /api/v2/roles/{id}/users"))
}
