package emulator_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// The 201 answer has the shape of go-auth0's recording TestUserManager_Create.
func TestCreateUserShape(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	u := f.createUser("Chuck@Example.com", nil)
	id := u["user_id"].(string)
	require.Regexp(t, `^auth0\|[0-9a-f]{24}$`, id)
	require.ElementsMatch(t, []string{"created_at", "email", "email_verified", "identities", "name", "nickname", "picture", "updated_at", "user_id"}, keys(u))
	require.Equal(t, "chuck@example.com", u["email"])
	require.Equal(t, false, u["email_verified"])
	require.Equal(t, "chuck@example.com", u["name"])
	require.Equal(t, "chuck", u["nickname"])
	require.True(t, strings.HasPrefix(u["picture"].(string), "https://s.gravatar.com/avatar/"))
	require.Equal(t, []any{map[string]any{"connection": "Username-Password-Authentication", "user_id": strings.TrimPrefix(id, "auth0|"), "provider": "auth0", "isSocial": false}}, u["identities"])
	require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`, u["created_at"])
	require.Equal(t, u["created_at"], u["updated_at"])
	require.NotContains(t, u, "password")
	require.NotContains(t, u, "blocked")

	full := f.createUser("full@example.com", map[string]any{
		"name": "Full Name", "nickname": "fully", "given_name": "Full", "family_name": "Name", "blocked": false,
		"email_verified": true, "verify_email": false,
		"app_metadata": map[string]any{"employee_id": 42, "nested": map[string]any{"a": 1}}, "user_metadata": map[string]any{"timezone": "America/Chicago"},
	})
	require.Equal(t, "Full Name", full["name"])
	require.Equal(t, "fully", full["nickname"])
	require.Equal(t, false, full["blocked"])
	require.Equal(t, true, full["email_verified"])
	require.Equal(t, map[string]any{"employee_id": float64(42), "nested": map[string]any{"a": float64(1)}}, full["app_metadata"])
	require.NotContains(t, full, "verify_email")
	require.Equal(t, full, f.e.User(full["user_id"].(string)))
	require.Len(t, f.e.Users(), 2)
	require.Equal(t, "auth0|custom1", f.createUser("custom@example.com", map[string]any{"user_id": "custom1"})["user_id"])
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCreateUserValidation(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	base := func(kv ...any) map[string]any {
		b := map[string]any{"connection": emulator.DefaultConnection, "email": "v@example.com", "password": goodPassword}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(b, kv[i].(string))
			} else {
				b[kv[i].(string)] = kv[i+1]
			}
		}
		return b
	}
	tests := []struct {
		name         string
		body         any
		status       int
		code, expect string
	}{
		{"not json", "{", 400, "", "Invalid request payload JSON format"},
		{"not an object", `[1]`, 400, "invalid_body", "Payload validation error: 'Expected type object but found type array'."},
		{"no connection", base("connection", nil), 400, "invalid_body", "Payload validation error: 'Missing required property: connection'."},
		{"unknown connection", base("connection", "Other"), 400, "", "Connection does not exist."},
		{"extra property", base("department", "x"), 400, "invalid_body", "Payload validation error: 'Additional properties not allowed: department'."},
		{"no password", base("password", nil), 400, "invalid_body", "Payload validation error: 'Missing required property: password'."},
		{"short password", base("password", "Ab1!"), 400, "", "PasswordStrengthError: Password is too weak"},
		{"two classes", base("password", "abcdefgh12"), 400, "", "PasswordStrengthError: Password is too weak"},
		{"no email", base("email", nil), 400, "invalid_body", "Payload validation error: 'Missing required property: email'."},
		{"bad email", base("email", "not-an-email"), 400, "invalid_body", "Payload validation error: 'Object didn't pass validation for format email: not-an-email' on property email (The user's email)."},
		{"email with space", base("email", "a b@example.com"), 400, "invalid_body", ""},
		{"email type", base("email", 5), 400, "invalid_body", "Payload validation error: 'Expected type string but found type number' on property email (The user's email)."},
		{"long name", base("name", strings.Repeat("n", 301)), 400, "invalid_body", "Payload validation error: 'String is too long (301 chars), maximum 300' on property name (The user's full name)."},
		{"empty name", base("name", ""), 400, "invalid_body", "Payload validation error: 'String is too short (0 chars), minimum 1' on property name (The user's full name)."},
		{"long given name", base("given_name", strings.Repeat("g", 151)), 400, "invalid_body", ""},
		{"blocked type", base("blocked", "yes"), 400, "invalid_body", "Payload validation error: 'Expected type boolean but found type string' on property blocked."},
		{"metadata type", base("app_metadata", "x"), 400, "invalid_body", "Payload validation error: 'Expected type object but found type string' on property app_metadata."},
		{"metadata key with dot", base("app_metadata", map[string]any{"a.b": 1}), 400, "invalid_body", ""},
		{"metadata key with dollar", base("user_metadata", map[string]any{"$a": 1}), 400, "invalid_body", ""},
		{"phone", base("phone_number", "555-1234"), 400, "invalid_body", ""},
		{"username without requires_username", base("username", "username"), 400, "", "Cannot set username for connection without requires_username."},
		{"null email", base("email", nil, "name", nil, "nickname", nil, "given_name", nil), 400, "invalid_body", "Payload validation error: 'Missing required property: email'."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.apiErr(tt.status, tt.code, tt.expect, http.MethodPost, "/api/v2/users", tt.body)
		})
	}
	require.Empty(t, f.e.Users())
	f.apiErr(http.StatusRequestEntityTooLarge, "", "", http.MethodPost, "/api/v2/users", base("app_metadata", map[string]any{"big": strings.Repeat("x", 1<<20)}))
}

// The guide's create-user request sends a username; on the default
// connection Auth0 refuses it, on one that requires usernames it is created.
func TestCreateUserAsInTheGuide(t *testing.T) {
	t.Parallel()
	body := map[string]any{
		"email": "user@example.com", "password": "Secure123!", "username": "username",
		"user_metadata": map[string]any{"employee_id": 42}, "app_metadata": map[string]any{"role_code": "associate"},
		"connection": "Username-Password-Authentication", "verify_email": true,
	}
	f := setup(t, emulator.Options{})
	f.apiErr(http.StatusBadRequest, "", "Cannot set username for connection without requires_username.", http.MethodPost, "/api/v2/users", body)

	fu := setup(t, emulator.Options{RequiresUsername: true})
	u := fu.obj(http.StatusCreated, http.MethodPost, "/api/v2/users", body)
	require.Equal(t, "user@example.com", u["email"])
	require.Equal(t, "username", u["username"])
	require.NotEmpty(t, u["created_at"])
	// The guide's flow then looks the role up and assigns it: 204.
	roles := fu.list(http.StatusOK, http.MethodGet, "/api/v2/roles?name_filter=production_associate", nil)
	require.Len(t, roles, 1)
	roleID := roles[0].(map[string]any)["id"].(string)
	status, _, b := fu.call(http.MethodPost, userPath(u["user_id"].(string))+"/roles", map[string]any{"roles": []string{roleID}})
	require.Equal(t, http.StatusNoContent, status)
	require.Empty(t, b)
	// And updates app_metadata: 200.
	got := fu.obj(http.StatusOK, http.MethodPatch, userPath(u["user_id"].(string)), map[string]any{"app_metadata": map[string]any{"sync_status": "active"}})
	require.Equal(t, map[string]any{"role_code": "associate", "sync_status": "active"}, got["app_metadata"])
}

func TestUsernameRules(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{RequiresUsername: true})
	body := func(email, username string) map[string]any {
		b := map[string]any{"connection": emulator.DefaultConnection, "email": email, "password": goodPassword}
		if username != "" {
			b["username"] = username
		}
		return b
	}
	f.apiErr(http.StatusBadRequest, "invalid_body", "Payload validation error: 'Missing required property: username'.", http.MethodPost, "/api/v2/users", body("a@example.com", ""))
	f.apiErr(http.StatusBadRequest, "", "The username must be between 1 and 15 characters long.", http.MethodPost, "/api/v2/users", body("a@example.com", "abcdefghijklmnop"))
	f.apiErr(http.StatusBadRequest, "", "The username cannot be an email address.", http.MethodPost, "/api/v2/users", body("a@example.com", "a@b.co"))
	f.apiErr(http.StatusBadRequest, "", "", http.MethodPost, "/api/v2/users", body("a@example.com", "has space"))
	f.apiErr(http.StatusBadRequest, "", "", http.MethodPost, "/api/v2/users", body("a@example.com", "ümlaut"))
	u := f.obj(http.StatusCreated, http.MethodPost, "/api/v2/users", body("a@example.com", "Jane.Doe_1"))
	require.Equal(t, "jane.doe_1", u["username"])
	f.apiErr(http.StatusBadRequest, "auth0_idp_error", "The username provided is in use already.", http.MethodPost, "/api/v2/users", body("b@example.com", "JANE.DOE_1"))
	// A username alone is enough on such a connection.
	v := f.obj(http.StatusCreated, http.MethodPost, "/api/v2/users", map[string]any{"connection": emulator.DefaultConnection, "username": "solo", "password": goodPassword})
	require.Equal(t, "solo", v["name"])
	require.NotContains(t, v, "email")
	// PATCH username: its rules, its conflicts.
	id := u["user_id"].(string)
	f.apiErr(http.StatusBadRequest, "auth0_idp_error", "The username provided is in use already.", http.MethodPatch, userPath(id), map[string]any{"username": "solo"})
	require.Equal(t, "jane2", f.obj(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{"username": "Jane2"})["username"])
	f.obj(http.StatusCreated, http.MethodPost, "/api/v2/users", body("c@example.com", "jane.doe_1")) // freed
	g := setup(t, emulator.Options{RequiresUsername: true, UsernameMaxLength: 20})
	g.obj(http.StatusCreated, http.MethodPost, "/api/v2/users", body("a@example.com", "abcdefghijklmnopqrst"))
}

func TestDuplicateEmail(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{OtherConnections: []string{"Legacy-DB"}})
	a := f.createUser("dup@example.com", nil)
	f.apiErr(http.StatusConflict, "auth0_idp_error", "The user already exists.", http.MethodPost, "/api/v2/users",
		map[string]any{"connection": emulator.DefaultConnection, "email": "DUP@Example.COM", "password": goodPassword})
	// Uniqueness is per connection.
	b := f.obj(http.StatusCreated, http.MethodPost, "/api/v2/users", map[string]any{"connection": "Legacy-DB", "email": "dup@example.com", "password": goodPassword})
	require.Equal(t, "Legacy-DB", b["identities"].([]any)[0].(map[string]any)["connection"])
	// users-by-email spans connections, in creation order.
	got := f.list(http.StatusOK, http.MethodGet, "/api/v2/users-by-email?email=dup%40example.com", nil)
	require.Len(t, got, 2)
	require.Equal(t, a["user_id"], got[0].(map[string]any)["user_id"])
	require.Equal(t, b["user_id"], got[1].(map[string]any)["user_id"])
	// A deleted user frees its e-mail.
	f.must(http.StatusNoContent, http.MethodDelete, userPath(a["user_id"].(string)), nil)
	f.createUser("dup@example.com", nil)
}

// Concurrent creates of one e-mail: exactly one wins.
func TestDuplicateEmailRace(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	var wg sync.WaitGroup
	statuses := make([]int, 16)
	for i := range statuses {
		wg.Go(func() {
			statuses[i], _, _ = f.call(http.MethodPost, "/api/v2/users", map[string]any{"connection": emulator.DefaultConnection, "email": "RACE@example.com", "password": goodPassword})
		})
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		if s == http.StatusCreated {
			created++
		} else {
			require.Equal(t, http.StatusConflict, s)
		}
	}
	require.Equal(t, 1, created)
	require.Len(t, f.e.Users(), 1)
}

func TestUsersByEmail(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{SearchDelay: time.Hour})
	u := f.createUser("Mixed.Case@Example.com", nil)
	// Immediately consistent, even while search lags an hour.
	got := f.list(http.StatusOK, http.MethodGet, "/api/v2/users-by-email?email="+url.QueryEscape("mixed.case@example.com"), nil)
	require.Len(t, got, 1)
	require.Equal(t, u["user_id"], got[0].(map[string]any)["user_id"])
	// The parameter is case-sensitive and e-mails are stored lower-cased:
	// a client that does not lower-case finds nothing.
	require.Empty(t, f.list(http.StatusOK, http.MethodGet, "/api/v2/users-by-email?email="+url.QueryEscape("Mixed.Case@Example.com"), nil))
	require.Empty(t, f.list(http.StatusOK, http.MethodGet, "/api/v2/users-by-email?email=nobody%40example.com", nil))
	f.apiErr(http.StatusBadRequest, "invalid_query_string", "Query validation error: 'Missing required property: email'.", http.MethodGet, "/api/v2/users-by-email", nil)
	f.apiErr(http.StatusBadRequest, "invalid_query_string", "Query validation error: 'Object didn't pass validation for format email: nope' on property email (Email address to search for (case-sensitive).).", http.MethodGet, "/api/v2/users-by-email?email=nope", nil)
	// fields / include_fields.
	only := f.list(http.StatusOK, http.MethodGet, "/api/v2/users-by-email?email=mixed.case%40example.com&fields=user_id,email", nil)
	require.Equal(t, map[string]any{"user_id": u["user_id"], "email": "mixed.case@example.com"}, only[0])
	without := f.list(http.StatusOK, http.MethodGet, "/api/v2/users-by-email?email=mixed.case%40example.com&fields=identities,picture&include_fields=false", nil)
	require.NotContains(t, without[0], "identities")
	require.NotContains(t, without[0], "picture")
	require.Contains(t, without[0], "email")
}

func TestGetUser(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	u := f.createUser("get@example.com", nil)
	id := u["user_id"].(string)
	// The id is URL-encoded (auth0%7C…) by clients; a raw | works too.
	require.Equal(t, u, f.obj(http.StatusOK, http.MethodGet, "/api/v2/users/"+strings.ReplaceAll(id, "|", "%7C"), nil))
	require.Equal(t, u, f.obj(http.StatusOK, http.MethodGet, "/api/v2/users/"+id, nil))
	require.Equal(t, map[string]any{"email": "get@example.com"}, f.obj(http.StatusOK, http.MethodGet, userPath(id)+"?fields=email&include_fields=true", nil))
	f.apiErr(http.StatusBadRequest, "invalid_query_string", "", http.MethodGet, userPath(id)+"?fields=email&include_fields=maybe", nil)
	f.apiErr(http.StatusNotFound, "inexistent_user", "The user does not exist.", http.MethodGet, userPath("auth0|000000000000000000000000"), nil)
}

func TestPatchMetadataMerge(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := setup(t, emulator.Options{Now: clock.Now})
	u := f.createUser("meta@example.com", map[string]any{
		"app_metadata":  map[string]any{"employee_id": 42, "department": "Heat Press", "nested": map[string]any{"a": 1, "b": 2}, "foreign": "keep"},
		"user_metadata": map[string]any{"timezone": "America/Chicago", "color": "red"},
	})
	id := u["user_id"].(string)
	clock.Add(time.Minute)
	got := f.obj(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{
		"app_metadata": map[string]any{"department": "Cutting", "nested": map[string]any{"c": 3}, "employee_id": nil, "new": true},
	})
	// First-level merge: nested objects replaced wholesale, null deletes, others kept.
	require.Equal(t, map[string]any{"department": "Cutting", "nested": map[string]any{"c": float64(3)}, "foreign": "keep", "new": true}, got["app_metadata"])
	require.Equal(t, u["user_metadata"], got["user_metadata"])
	require.Equal(t, u["created_at"], got["created_at"])
	require.NotEqual(t, u["updated_at"], got["updated_at"])
	// {"color": null} deletes one key.
	got = f.obj(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{"user_metadata": map[string]any{"color": nil}})
	require.Equal(t, map[string]any{"timezone": "America/Chicago"}, got["user_metadata"])
	// {} empties user_metadata, which stays as {} (see TestPatchEmptyMetadataKeepsUserMetadata).
	got = f.obj(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{"user_metadata": map[string]any{}})
	require.Equal(t, map[string]any{}, got["user_metadata"])
	// Deleting the last key removes it too.
	got = f.obj(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{"app_metadata": map[string]any{"department": nil, "nested": nil, "foreign": nil, "new": nil}})
	require.NotContains(t, got, "app_metadata")
	require.Equal(t, got, f.obj(http.StatusOK, http.MethodGet, userPath(id), nil))
}

func TestPatchUser(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := setup(t, emulator.Options{Now: clock.Now})
	u := f.createUser("patch@example.com", map[string]any{"given_name": "Pat"})
	id := u["user_id"].(string)
	other := f.createUser("other@example.com", nil)

	for _, pair := range [][2]string{{"password", "email"}, {"password", "email_verified"}, {"username", "email"}, {"username", "email_verified"}, {"username", "password"}} {
		vals := map[string]any{"password": goodPassword, "email": "new@example.com", "email_verified": true, "username": "someone"}
		f.apiErr(http.StatusBadRequest, "", fmt.Sprintf("Cannot update %s and %s simultaneously.", pair[0], pair[1]), http.MethodPatch, userPath(id),
			map[string]any{pair[0]: vals[pair[0]], pair[1]: vals[pair[1]]})
	}
	f.apiErr(http.StatusBadRequest, "invalid_body", "Payload validation error: 'Too few properties defined (0), minimum 1'.", http.MethodPatch, userPath(id), map[string]any{})
	f.apiErr(http.StatusBadRequest, "invalid_body", "Payload validation error: 'Additional properties not allowed: user_id'.", http.MethodPatch, userPath(id), map[string]any{"user_id": "x"})
	f.apiErr(http.StatusNotFound, "inexistent_user", "The user does not exist.", http.MethodPatch, userPath("auth0|nobody"), map[string]any{"blocked": true})
	f.apiErr(http.StatusBadRequest, "", "PasswordStrengthError: Password is too weak", http.MethodPatch, userPath(id), map[string]any{"password": "weak"})
	f.apiErr(http.StatusBadRequest, "invalid_body", "", http.MethodPatch, userPath(id), map[string]any{"email": "bad"})
	f.apiErr(http.StatusBadRequest, "invalid_body", "", http.MethodPatch, userPath(id), map[string]any{"email": nil})
	f.apiErr(http.StatusBadRequest, "invalid_body", "", http.MethodPatch, userPath(id), map[string]any{"name": strings.Repeat("x", 301)})
	f.apiErr(http.StatusBadRequest, "", "Cannot set username for connection without requires_username.", http.MethodPatch, userPath(id), map[string]any{"username": "abc"})
	f.apiErr(http.StatusBadRequest, "auth0_idp_error", "The specified new email already exists", http.MethodPatch, userPath(id), map[string]any{"email": "OTHER@example.com"})
	require.Equal(t, u, f.obj(http.StatusOK, http.MethodGet, userPath(id), nil), "failed PATCHes change nothing")

	// Blocking, names, null unsets a profile attribute.
	clock.Add(time.Second)
	got := f.obj(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{"blocked": true, "name": "Pat Smith", "given_name": nil})
	require.Equal(t, true, got["blocked"])
	require.Equal(t, "Pat Smith", got["name"])
	require.NotContains(t, got, "given_name")
	// Password: sets last_password_reset, never echoed.
	clock.Add(time.Second)
	got = f.obj(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{"password": "An0ther-Secret", "connection": emulator.DefaultConnection})
	require.Equal(t, got["updated_at"], got["last_password_reset"])
	require.NotContains(t, got, "password")
	// E-mail change: lower-cased, unverified, the old address freed.
	got = f.obj(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{"email": "New@Example.com", "verify_email": false})
	require.Equal(t, "new@example.com", got["email"])
	require.Equal(t, false, got["email_verified"])
	require.Empty(t, f.list(http.StatusOK, http.MethodGet, "/api/v2/users-by-email?email=patch%40example.com", nil))
	require.Len(t, f.list(http.StatusOK, http.MethodGet, "/api/v2/users-by-email?email=new%40example.com", nil), 1)
	f.createUser("patch@example.com", nil)
	// Same e-mail again is no conflict with itself.
	f.obj(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{"email": "new@example.com", "email_verified": true})
	f.obj(http.StatusOK, http.MethodPatch, userPath(other["user_id"].(string)), map[string]any{"blocked": false})
}

func TestDeleteUserIdempotent(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	id := f.createUser("del@example.com", nil)["user_id"].(string)
	f.must(http.StatusNoContent, http.MethodDelete, userPath(id), nil)
	f.apiErr(http.StatusNotFound, "inexistent_user", "The user does not exist.", http.MethodGet, userPath(id), nil)
	status, _, b := f.call(http.MethodDelete, userPath(id), nil)
	require.Equal(t, http.StatusNoContent, status)
	require.Empty(t, b)
	require.Nil(t, f.e.UserRoles(id))
}

// go-auth0's recording TestUserManager_Update: connection, password and
// app_metadata in one PATCH.
func TestPatchAsRecorded(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := setup(t, emulator.Options{Now: clock.Now})
	u := f.createUser("chuck@example.com", nil)
	clock.Add(1500 * time.Millisecond)
	got := f.obj(http.StatusOK, http.MethodPatch, userPath(u["user_id"].(string)), map[string]any{
		"connection": "Username-Password-Authentication", "password": "I have a password and its a secret", "app_metadata": map[string]any{"foo": "bar"},
	})
	require.Equal(t, map[string]any{"foo": "bar"}, got["app_metadata"])
	require.Equal(t, "2025-12-14T14:30:01.500Z", got["updated_at"])
	require.Equal(t, got["updated_at"], got["last_password_reset"])
	require.Equal(t, u["created_at"], got["created_at"])
}
