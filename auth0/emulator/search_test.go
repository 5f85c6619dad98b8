package emulator_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

func search(f *fixture, q string, extra string) []any {
	f.t.Helper()
	return f.list(http.StatusOK, http.MethodGet, "/api/v2/users?search_engine=v3&q="+url.QueryEscape(q)+extra, nil)
}

func ids(list []any) []string {
	out := make([]string, len(list))
	for i, u := range list {
		out[i] = u.(map[string]any)["email"].(string)
	}
	return out
}

func TestSearchQueries(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	f.createUser("ann@example.com", map[string]any{"name": "Ann Lee", "app_metadata": map[string]any{"employee_id": 1, "department": "Heat Press", "created_by": "productivity_system"}})
	f.createUser("bob@example.com", map[string]any{"name": "Bob Stone", "blocked": true, "app_metadata": map[string]any{"employee_id": 2, "department": "Cutting", "created_by": "productivity_system"}})
	f.createUser("cy@other.org", map[string]any{"name": "Cy", "app_metadata": map[string]any{"employee_id": "3", "tags": []any{"a", "b"}, "empty": map[string]any{}}})
	tests := []struct {
		q    string
		want []string
	}{
		{`email:"ann@example.com"`, []string{"ann@example.com"}},
		{`email:ANN@EXAMPLE.COM`, []string{"ann@example.com"}}, // e-mail is case-insensitive
		{`name:"ann lee"`, []string{"ann@example.com"}},
		{`app_metadata.employee_id:2`, []string{"bob@example.com"}},
		{`app_metadata.employee_id:"3"`, []string{"cy@other.org"}},
		{`app_metadata.department:"Heat Press"`, []string{"ann@example.com"}},
		{`app_metadata.department:"heat press"`, nil}, // metadata is case-sensitive
		{`app_metadata.created_by:productivity_system AND blocked:true`, []string{"bob@example.com"}},
		{`app_metadata.employee_id:1 OR app_metadata.employee_id:2`, []string{"ann@example.com", "bob@example.com"}},
		{`app_metadata.employee_id:1 app_metadata.employee_id:2`, []string{"ann@example.com", "bob@example.com"}},
		{`app_metadata.employee_id:(1 OR 2)`, []string{"ann@example.com", "bob@example.com"}},
		{`_exists_:app_metadata.created_by`, []string{"ann@example.com", "bob@example.com"}},
		{`NOT _exists_:app_metadata.created_by`, []string{"cy@other.org"}},
		{`_exists_:app_metadata.empty`, nil}, // empty objects are not indexed
		{`_exists_:blocked AND NOT blocked:true`, nil},
		{`-blocked:true`, []string{"ann@example.com", "cy@other.org"}},
		{`app_metadata.tags:b`, []string{"cy@other.org"}},
		{`email:*@example.com`, []string{"ann@example.com", "bob@example.com"}},
		{`name:bo*`, []string{"bob@example.com"}},
		{`identities.connection:"Username-Password-Authentication" AND (app_metadata.employee_id:1 OR email:cy@other.org)`, []string{"ann@example.com", "cy@other.org"}},
		{`app_metadata.employee_id:[1 TO 2]`, []string{"ann@example.com", "bob@example.com"}},
		{`app_metadata.employee_id:{1 TO *]`, []string{"bob@example.com", "cy@other.org"}},
		{`user_id:"auth0|nope"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			got := search(f, tt.q, "")
			if tt.want == nil {
				require.Empty(t, got)
				return
			}
			require.Equal(t, tt.want, ids(got))
		})
	}
	f.apiErr(http.StatusBadRequest, "invalid_query_string", "", http.MethodGet, "/api/v2/users?q="+url.QueryEscape(`email:"unterminated`), nil)
	f.apiErr(http.StatusBadRequest, "invalid_query_string", "", http.MethodGet, "/api/v2/users?q="+url.QueryEscape(`(a OR b`), nil)
	f.apiErr(http.StatusBadRequest, "invalid_query_string", "You are not allowed to use search_engine=v2.", http.MethodGet, "/api/v2/users?search_engine=v2&q=a", nil)
	f.apiErr(http.StatusBadRequest, "invalid_query_string", "", http.MethodGet, "/api/v2/users?sort=app_metadata.x:1", nil)
	// sort and fields.
	got := f.list(http.StatusOK, http.MethodGet, "/api/v2/users?sort=email:-1&fields=email", nil)
	require.Equal(t, []any{map[string]any{"email": "cy@other.org"}, map[string]any{"email": "bob@example.com"}, map[string]any{"email": "ann@example.com"}}, got)
}

func TestSearchPaging(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	for i := range 120 {
		f.createUser(fmt.Sprintf("u%03d@example.com", i), nil)
	}
	// Default page: 50 users, bare array.
	require.Len(t, f.list(http.StatusOK, http.MethodGet, "/api/v2/users", nil), 50)
	// include_totals shape (go-auth0 recording TestUserManager_List).
	page := f.obj(http.StatusOK, http.MethodGet, "/api/v2/users?page=1&per_page=100&include_totals=true", nil)
	require.ElementsMatch(t, []string{"start", "limit", "length", "users", "total"}, keys(page))
	require.Equal(t, float64(100), page["start"])
	require.Equal(t, float64(100), page["limit"])
	require.Equal(t, float64(20), page["length"])
	require.Equal(t, float64(120), page["total"])
	require.Equal(t, "u100@example.com", page["users"].([]any)[0].(map[string]any)["email"])
	f.apiErr(http.StatusBadRequest, "invalid_query_string", "Query validation error: 'Value 101 is greater than maximum 100' on property per_page (Number of results per page.).", http.MethodGet, "/api/v2/users?per_page=101", nil)
	f.apiErr(http.StatusBadRequest, "invalid_query_string", "", http.MethodGet, "/api/v2/users?page=-1", nil)
	f.apiErr(http.StatusBadRequest, "invalid_query_string", "", http.MethodGet, "/api/v2/users?page=x", nil)
	f.apiErr(http.StatusBadRequest, "invalid_query_string", "", http.MethodGet, "/api/v2/users?include_totals=yes", nil)
	// The first 1000 results only.
	require.Empty(t, f.list(http.StatusOK, http.MethodGet, "/api/v2/users?page=9&per_page=100", nil))
	f.apiErr(http.StatusBadRequest, "invalid_paging", "You can only page through the first 1000 records. See https://auth0.com/docs/users/search/v3/view-search-results-by-page#limitation",
		http.MethodGet, "/api/v2/users?page=10&per_page=100", nil)
	f.apiErr(http.StatusBadRequest, "invalid_paging", "", http.MethodGet, "/api/v2/users?page=20&per_page=50", nil)
}

// Search is eventually consistent: it sees a write SearchDelay after it.
func TestSearchDelay(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := setup(t, emulator.Options{Now: clock.Now, SearchDelay: 2 * time.Second})
	u := f.createUser("lag@example.com", map[string]any{"app_metadata": map[string]any{"employee_id": 7}})
	id := u["user_id"].(string)
	q := `app_metadata.employee_id:7`
	require.Empty(t, search(f, q, ""))
	require.Len(t, f.list(http.StatusOK, http.MethodGet, "/api/v2/users-by-email?email=lag%40example.com", nil), 1)
	f.obj(http.StatusOK, http.MethodGet, userPath(id), nil)
	clock.Add(2 * time.Second)
	require.Len(t, search(f, q, ""), 1)

	// An update: the old version until the delay passes.
	f.obj(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{"app_metadata": map[string]any{"employee_id": 8}})
	require.Len(t, search(f, q, ""), 1)
	require.Empty(t, search(f, `app_metadata.employee_id:8`, ""))
	clock.Add(time.Second)
	f.obj(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{"name": "Later"})
	clock.Add(time.Second)
	require.Empty(t, search(f, q, ""))
	got := search(f, `app_metadata.employee_id:8`, "")
	require.Len(t, got, 1)
	require.Equal(t, "lag@example.com", got[0].(map[string]any)["name"], "the second PATCH is not visible yet")
	clock.Add(time.Second)
	require.Equal(t, "Later", search(f, `app_metadata.employee_id:8`, "")[0].(map[string]any)["name"])

	// A delete: still found until the delay passes.
	f.must(http.StatusNoContent, http.MethodDelete, userPath(id), nil)
	require.Len(t, search(f, `app_metadata.employee_id:8`, ""), 1)
	clock.Add(2 * time.Second)
	require.Empty(t, search(f, `app_metadata.employee_id:8`, ""))
	require.Empty(t, f.list(http.StatusOK, http.MethodGet, "/api/v2/users", nil))
}
