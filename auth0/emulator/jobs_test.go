package emulator_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// importBody is a multipart upload the way go-auth0 v1 sends it: every
// field, external_id empty, the file last, as users.json.
func importBody(t *testing.T, connID string, users any, upsert bool) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(t, mw.WriteField("connection_id", connID))
	require.NoError(t, mw.WriteField("upsert", fmt.Sprint(upsert)))
	require.NoError(t, mw.WriteField("external_id", ""))
	require.NoError(t, mw.WriteField("send_completion_email", "false"))
	fw, err := mw.CreateFormFile("users", "users.json")
	require.NoError(t, err)
	if s, ok := users.(string); ok {
		_, err = fw.Write([]byte(s))
	} else {
		err = json.NewEncoder(fw).Encode(users)
	}
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	return mw.FormDataContentType(), &buf
}

func (f *fixture) upload(users any, upsert bool) (int, map[string]any) {
	f.t.Helper()
	ct, body := importBody(f.t.(*testing.T), f.e.ConnectionID(""), users, upsert)
	status, _, b := f.raw(http.MethodPost, "/api/v2/jobs/users-imports", ct, body, f.token)
	var doc map[string]any
	_ = json.Unmarshal(b, &doc)
	return status, doc
}

// waitJob polls GET /jobs/{id} until the job leaves pending/processing.
func (f *fixture) waitJob(id string) map[string]any {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		job := f.obj(http.StatusOK, http.MethodGet, "/api/v2/jobs/"+id, nil)
		if job["status"] != "pending" && job["status"] != "processing" {
			return job
		}
		require.True(f.t, time.Now().Before(deadline), "job %s still %s", id, job["status"])
		time.Sleep(5 * time.Millisecond)
	}
}

func TestImportJob(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	f.createUser("taken@example.com", nil)
	users := []map[string]any{
		{"email": "New@Example.com", "user_id": "emp-1", "name": "New Person", "email_verified": true,
			"app_metadata": map[string]any{"employee_id": 1}, "user_metadata": map[string]any{"timezone": "UTC"}},
		{"email": "taken@example.com", "user_id": "emp-2"},
		{"email": "not-an-email", "user_id": "emp-3"},
		{"email": "pw@example.com", "password": "plaintext"},
		{"email": "meta@example.com", "app_metadata": map[string]any{"created_at": "now"}},
		{"email": "hash@example.com", "password_hash": "$2b$10$abcdefghijklmnopqrstuv"},
	}
	status, job := f.upload(users, false)
	require.Equal(t, http.StatusAccepted, status, "%v", job)
	require.Equal(t, "users_import", job["type"])
	require.Equal(t, "pending", job["status"])
	require.Equal(t, emulator.DefaultConnection, job["connection"])
	require.Regexp(t, `^job_[A-Za-z0-9]{16}$`, job["id"])
	done := f.waitJob(job["id"].(string))
	require.Equal(t, "completed", done["status"])
	require.Equal(t, map[string]any{"failed": 4.0, "updated": 0.0, "inserted": 2.0, "total": 6.0}, done["summary"])

	u := f.obj(http.StatusOK, http.MethodGet, userPath("auth0|emp-1"), nil)
	require.Equal(t, "new@example.com", u["email"], "lower-cased")
	require.Equal(t, true, u["email_verified"])
	require.Equal(t, "New Person", u["name"])
	require.Equal(t, map[string]any{"employee_id": 1.0}, u["app_metadata"])

	errs := f.list(http.StatusOK, http.MethodGet, "/api/v2/jobs/"+job["id"].(string)+"/errors", nil)
	require.Len(t, errs, 4)
	codes := map[string]string{}
	for _, x := range errs {
		e := x.(map[string]any)
		user := e["user"].(map[string]any)
		codes[user["email"].(string)] = e["errors"].([]any)[0].(map[string]any)["code"].(string)
		if user["email"] == "hash@example.com" {
			require.Equal(t, "*****", user["password_hash"], "hashes are redacted in /errors")
		}
	}
	require.Equal(t, map[string]string{"taken@example.com": "DUPLICATED_USER", "not-an-email": "FORMAT",
		"pw@example.com": "OBJECT_ADDITIONAL_PROPERTIES", "meta@example.com": "NOT_PASSED"}, codes)
	require.Len(t, f.e.Users(), 3, "no account for a refused user; hash@example.com was imported")
}

// upsert=false makes a replayed file harmless: everything is DUPLICATED_USER.
func TestImportReplay(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	users := []map[string]any{{"email": "a@example.com", "user_id": "a"}, {"email": "b@example.com", "user_id": "b"}}
	_, job := f.upload(users, false)
	require.Equal(t, "completed", f.waitJob(job["id"].(string))["status"])
	users[1]["email"] = "b2@example.com" // same user_id, new email: still a duplicate
	_, job = f.upload(users, false)
	done := f.waitJob(job["id"].(string))
	require.Equal(t, map[string]any{"failed": 2.0, "updated": 0.0, "inserted": 0.0, "total": 2.0}, done["summary"])
	require.Len(t, f.e.Users(), 2)
}

func TestImportLimits(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	// 413 over 512,000 bytes.
	big := `[{"email":"x@example.com","name":"` + strings.Repeat("x", 520_000) + `"}]`
	status, doc := f.upload(big, false)
	require.Equal(t, http.StatusRequestEntityTooLarge, status)
	require.Equal(t, "Payload content length greater than maximum allowed: 512000.", doc["message"])
	// Two active jobs per tenant; the third is 429 with Auth0's text.
	f.e.SetImportDelay(time.Hour)
	for range 2 {
		status, _ := f.upload([]any{}, false)
		require.Equal(t, http.StatusAccepted, status)
	}
	status, doc = f.upload([]any{}, false)
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Equal(t, "There are 2 active import users jobs, please wait until some of them are finished and try again", doc["message"])
	f.e.StartImportJobs()
	require.Eventually(t, func() bool {
		status, _ := f.upload([]any{}, false)
		return status == http.StatusAccepted
	}, 30*time.Second, 5*time.Millisecond, "a slot frees once a job finishes")
	// Bad uploads.
	ct, body := importBody(t, "Username-Password-Authentication", []any{}, false)
	status, _, b := f.raw(http.MethodPost, "/api/v2/jobs/users-imports", ct, body, f.token)
	require.Equal(t, http.StatusBadRequest, status, string(b))
	require.Contains(t, string(b), "^con_[A-Za-z0-9]{16}$")
	status, _ = f.upload(" ", false)
	require.Equal(t, http.StatusBadRequest, status)
}

// A file that is not a JSON array fails the job whole: no summary, /errors
// answers the job. An injected failure stops a job midway: status failed,
// no summary, /errors 204, the users before the failure inserted.
func TestImportJobFailsWhole(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	_, job := f.upload(`{"not":"an array"}`, false)
	done := f.waitJob(job["id"].(string))
	require.Equal(t, "failed", done["status"])
	require.NotContains(t, done, "summary")
	generic := f.obj(http.StatusOK, http.MethodGet, "/api/v2/jobs/"+job["id"].(string)+"/errors", nil)
	require.Equal(t, "failed", generic["status"])

	f.e.SetImportFaults(emulator.ImportFaults{FailNext: 1, FailAfter: 2})
	var users []map[string]any
	for i := range 5 {
		users = append(users, map[string]any{"email": fmt.Sprintf("u%d@example.com", i)})
	}
	_, job = f.upload(users, false)
	done = f.waitJob(job["id"].(string))
	require.Equal(t, "failed", done["status"])
	require.NotContains(t, done, "summary")
	status, _, _ := f.call(http.MethodGet, "/api/v2/jobs/"+job["id"].(string)+"/errors", nil)
	require.Equal(t, http.StatusNoContent, status)
	require.Len(t, f.e.Users(), 2, "the users before the failure were inserted")
	f.apiErr(http.StatusNotFound, "", "The job does not exist", http.MethodGet, "/api/v2/jobs/job_0000000000000000/errors", nil)
}

// A job inserts its users one by one at the plan's speed: while it runs,
// users-by-email finds the ones already imported.
func TestImportJobProgress(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{ImportRate: 20})
	var users []map[string]any
	for i := range 40 {
		users = append(users, map[string]any{"email": fmt.Sprintf("p%d@example.com", i)})
	}
	_, job := f.upload(users, false)
	id := job["id"].(string)
	var seen map[string]any
	require.Eventually(t, func() bool {
		seen = f.obj(http.StatusOK, http.MethodGet, "/api/v2/jobs/"+id, nil)
		return seen["status"] == "processing" && seen["percentage_done"].(float64) > 0
	}, 30*time.Second, 5*time.Millisecond)
	require.Positive(t, seen["time_left_seconds"])
	found := f.list(http.StatusOK, http.MethodGet, "/api/v2/users-by-email?email=p0%40example.com", nil)
	require.Len(t, found, 1, "the first user is readable while the job runs")
	require.Equal(t, "completed", f.waitJob(id)["status"])
	require.Len(t, f.e.Users(), 40)
}

func TestListConnections(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	got := f.list(http.StatusOK, http.MethodGet, "/api/v2/connections?name="+emulator.DefaultConnection, nil)
	require.Len(t, got, 1)
	require.Equal(t, f.e.ConnectionID(""), got[0].(map[string]any)["id"])
}

// The import faults through the admin endpoint: a slow job, and the jobs
// listed.
func TestAdminImports(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{ImportRate: 100})
	status, _, b := f.raw(http.MethodPut, "/admin/imports", "application/json", strings.NewReader(`{"slow":1000}`), "")
	require.Equal(t, http.StatusOK, status, string(b))
	_, job := f.upload([]map[string]any{{"email": "a@example.com"}, {"email": "b@example.com"}}, false)
	var got struct {
		Jobs []emulator.ImportJob `json:"jobs"`
	}
	status, _, b = f.raw(http.MethodGet, "/admin/imports", "", nil, "")
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, json.Unmarshal(b, &got))
	require.Len(t, got.Jobs, 1)
	require.Equal(t, job["id"], got.Jobs[0].ID)
	doc := f.obj(http.StatusOK, http.MethodGet, "/api/v2/jobs/"+job["id"].(string), nil)
	require.Contains(t, []any{"pending", "processing"}, doc["status"], "at 0.1 users/s the job is far from done")
	status, _, _ = f.raw(http.MethodPut, "/admin/imports", "application/json", strings.NewReader(`{"delay":"soon"}`), "")
	require.Equal(t, http.StatusBadRequest, status)
}
