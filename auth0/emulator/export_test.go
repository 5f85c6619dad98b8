package emulator_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// download fetches an export file (no bearer token: a pre-signed link) and
// gunzips it.
func download(f *fixture, location string) (int, []byte) {
	f.t.Helper()
	require.True(f.t, strings.HasPrefix(location, f.srv.URL+"/"), location)
	status, hdr, b := f.raw(http.MethodGet, strings.TrimPrefix(location, f.srv.URL), "", nil, "")
	if status != http.StatusOK {
		return status, b
	}
	require.Equal(f.t, "application/gzip", hdr.Get("Content-Type"))
	require.Empty(f.t, hdr.Get("Content-Encoding"))
	zr, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(f.t, err)
	raw, err := io.ReadAll(zr)
	require.NoError(f.t, err)
	return status, raw
}

func ndjson(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		out = append(out, m)
	}
	return out
}

func TestExportJob(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := setup(t, emulator.Options{Now: clock.Now, OtherConnections: []string{"Legacy-DB"}})
	for i := range 3 {
		u := f.createUser(fmt.Sprintf("e%d@example.com", i), map[string]any{"app_metadata": map[string]any{"employee_id": i, "department": "D"}})
		f.must(http.StatusNoContent, http.MethodPost, userPath(u["user_id"].(string))+"/roles", map[string]any{"roles": []string{f.e.RoleID(emulator.DefaultRole)}})
	}
	f.obj(http.StatusCreated, http.MethodPost, "/api/v2/users", map[string]any{"connection": "Legacy-DB", "email": "legacy@example.com", "password": goodPassword})
	conn := f.e.ConnectionID("")
	require.Regexp(t, `^con_[A-Za-z0-9]{16}$`, conn)

	fields := []map[string]any{{"name": "user_id"}, {"name": "email"}, {"name": "app_metadata"}, {"name": "identities[0].connection", "export_as": "connection"}, {"name": "roles"}}
	created := f.obj(http.StatusOK, http.MethodPost, "/api/v2/jobs/users-exports", map[string]any{"connection_id": conn, "format": "json", "fields": fields})
	// The shape of go-auth0's recording TestJobManager_ExportUsers.
	require.Equal(t, "users_export", created["type"])
	require.Equal(t, "pending", created["status"])
	require.Equal(t, conn, created["connection_id"])
	require.Equal(t, "Username-Password-Authentication", created["connection"])
	require.Equal(t, "json", created["format"])
	require.Len(t, created["fields"], 5)
	require.Regexp(t, `^job_[A-Za-z0-9]{16}$`, created["id"])
	require.NotEmpty(t, created["created_at"])

	job := f.obj(http.StatusOK, http.MethodGet, "/api/v2/jobs/"+created["id"].(string), nil)
	require.Equal(t, "completed", job["status"])
	status, raw := download(f, job["location"].(string))
	require.Equal(t, http.StatusOK, status)
	lines := ndjson(t, raw)
	require.Len(t, lines, 3, "the other connection is not exported")
	for i, l := range lines {
		require.ElementsMatch(t, []string{"user_id", "email", "app_metadata", "connection"}, keys(l), "roles are not exportable")
		require.Equal(t, fmt.Sprintf("e%d@example.com", i), l["email"])
		require.Equal(t, map[string]any{"employee_id": float64(i), "department": "D"}, l["app_metadata"])
		require.Equal(t, "Username-Password-Authentication", l["connection"])
	}
	// No connection, a limit, no fields: whole profiles of every connection.
	created = f.obj(http.StatusOK, http.MethodPost, "/api/v2/jobs/users-exports", map[string]any{"limit": 10})
	require.NotContains(t, created, "connection_id")
	job = f.obj(http.StatusOK, http.MethodGet, "/api/v2/jobs/"+created["id"].(string), nil)
	_, raw = download(f, job["location"].(string))
	lines = ndjson(t, raw)
	require.Len(t, lines, 4)
	require.Equal(t, f.e.Users()[3], lines[3])
	created = f.obj(http.StatusOK, http.MethodPost, "/api/v2/jobs/users-exports", map[string]any{"limit": 2})
	job = f.obj(http.StatusOK, http.MethodGet, "/api/v2/jobs/"+created["id"].(string), nil)
	_, raw = download(f, job["location"].(string))
	require.Len(t, ndjson(t, raw), 2)

	// The link expires after 60 s; a new GET of the job gives a fresh one.
	clock.Add(61 * time.Second)
	status, _ = download(f, job["location"].(string))
	require.Equal(t, http.StatusForbidden, status)
	job = f.obj(http.StatusOK, http.MethodGet, "/api/v2/jobs/"+created["id"].(string), nil)
	status, _ = download(f, job["location"].(string))
	require.Equal(t, http.StatusOK, status)
	status, _ = download(f, job["location"].(string)+"0")
	require.Equal(t, http.StatusForbidden, status)
	// Jobs are gone after 24 h.
	clock.Add(25 * time.Hour)
	f.token = f.getToken(nil)
	f.apiErr(http.StatusNotFound, "inexistent_job", "Job not found.", http.MethodGet, "/api/v2/jobs/"+created["id"].(string), nil)
	f.apiErr(http.StatusNotFound, "inexistent_job", "Job not found.", http.MethodGet, "/api/v2/jobs/job_nope", nil)
	// Export jobs are reads: not in WriteCount.
	require.EqualValues(t, 7, f.e.WriteCount())
}

func TestExportCSVAndValidation(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	f.createUser("csv@example.com", map[string]any{"name": "=cmd()", "app_metadata": map[string]any{"employee_id": 9}})
	created := f.obj(http.StatusOK, http.MethodPost, "/api/v2/jobs/users-exports", map[string]any{"format": "csv",
		"fields": []map[string]any{{"name": "email"}, {"name": "name"}, {"name": "app_metadata.employee_id", "export_as": "employee_id"}}})
	job := f.obj(http.StatusOK, http.MethodGet, "/api/v2/jobs/"+created["id"].(string), nil)
	_, raw := download(f, job["location"].(string))
	rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, [][]string{{"email", "name", "employee_id"}, {"csv@example.com", "'=cmd()", "9"}}, rows)

	many := make([]map[string]any, 31)
	for i := range many {
		many[i] = map[string]any{"name": fmt.Sprintf("user_metadata.f%d", i)}
	}
	f.apiErr(http.StatusBadRequest, "invalid_body", "", http.MethodPost, "/api/v2/jobs/users-exports", map[string]any{"format": "csv", "fields": many})
	f.apiErr(http.StatusBadRequest, "invalid_body", "", http.MethodPost, "/api/v2/jobs/users-exports", map[string]any{"format": "csv", "fields": []map[string]any{{"name": "app_metadata"}}})
	f.apiErr(http.StatusBadRequest, "invalid_body", "", http.MethodPost, "/api/v2/jobs/users-exports", map[string]any{"format": "xml"})
	f.apiErr(http.StatusBadRequest, "invalid_body", "", http.MethodPost, "/api/v2/jobs/users-exports", map[string]any{"connection_id": "Username-Password-Authentication"})
	f.apiErr(http.StatusNotFound, "inexistent_connection", "", http.MethodPost, "/api/v2/jobs/users-exports", map[string]any{"connection_id": "con_0000000000000000"})
	f.apiErr(http.StatusBadRequest, "invalid_body", "", http.MethodPost, "/api/v2/jobs/users-exports", map[string]any{"limit": 0})
	f.apiErr(http.StatusBadRequest, "invalid_body", "", http.MethodPost, "/api/v2/jobs/users-exports", map[string]any{"users": 1})
}

func TestExportDelay(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{ExportDelay: time.Hour})
	created := f.obj(http.StatusOK, http.MethodPost, "/api/v2/jobs/users-exports", map[string]any{})
	job := f.obj(http.StatusOK, http.MethodGet, "/api/v2/jobs/"+created["id"].(string), nil)
	require.Equal(t, "processing", job["status"])
	require.NotContains(t, job, "location")
}
