package emulator_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// send is one request on a fresh connection (so that net/http does not
// silently retry a GET whose kept-alive connection was dropped); err is the
// transport's error.
func (f *fixture) send(method, path string, body any) (int, []byte, error) {
	f.t.Helper()
	var r *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(f.t, err)
		r = bytes.NewReader(b)
	} else {
		r = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, r)
	require.NoError(f.t, err)
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b := new(bytes.Buffer)
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes(), nil
}

func newUserBody(email string) map[string]any {
	return map[string]any{"connection": emulator.DefaultConnection, "email": email, "password": goodPassword}
}

func TestFaultErrorRate(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{Faults: emulator.Faults{ErrorRate: 1}})
	status, b, err := f.send(http.MethodPost, "/api/v2/users", newUserBody("e@example.com"))
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, status)
	var body map[string]any
	require.NoError(t, json.Unmarshal(b, &body))
	require.Equal(t, float64(503), body["statusCode"])
	require.Equal(t, "Service Unavailable", body["error"])
	require.Empty(t, f.e.Users(), "not applied")
	require.EqualValues(t, 1, countOf(f.e, "POST /api/v2/users", http.StatusServiceUnavailable))
	require.EqualValues(t, 1, f.e.WriteCount())
	// The token endpoint is not hit by random faults.
	f.getToken(nil)
}

func TestFaultDrop(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{Faults: emulator.Faults{DropRate: 1}})
	_, _, err := f.send(http.MethodPost, "/api/v2/users", newUserBody("d@example.com"))
	require.Error(t, err)
	require.Empty(t, f.e.Users(), "not applied")
	_, _, err = f.send(http.MethodGet, "/api/v2/roles", nil)
	require.Error(t, err)
	require.Equal(t, []emulator.Call{
		{Endpoint: "GET /api/v2/roles", Status: 0, Count: 1},
		{Endpoint: "POST /api/v2/users", Status: 0, Count: 1},
		{Endpoint: emulator.EndpointToken, Status: 200, Count: 1},
	}, f.e.Calls())
}

func TestFaultLostWrite(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{Faults: emulator.Faults{LostWriteRate: 1}})
	_, _, err := f.send(http.MethodPost, "/api/v2/users", newUserBody("l@example.com"))
	require.Error(t, err)
	users := f.e.Users()
	require.Len(t, users, 1, "applied, answer lost")
	// Reads are not affected.
	status, _, err := f.send(http.MethodGet, "/api/v2/users-by-email?email=l%40example.com", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	_, _, err = f.send(http.MethodPatch, userPath(users[0]["user_id"].(string)), map[string]any{"blocked": true})
	require.Error(t, err)
	require.Equal(t, true, f.e.Users()[0]["blocked"])
	require.EqualValues(t, 1, countOf(f.e, "POST /api/v2/users", 0))
	require.EqualValues(t, 1, countOf(f.e, "PATCH /api/v2/users/{id}", 0))
}

func TestFaultScript(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{RetryAfter: true})
	f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{
		{Endpoint: "POST /api/v2/users", Status: 429, Times: 2},
		{Endpoint: "GET /api/v2/users/{id}", Drop: true},
		{Endpoint: "PATCH /api/v2/users/{id}", LoseAnswer: true},
		{Endpoint: emulator.EndpointToken, Status: 500},
		{Endpoint: "", Status: 502},
	}})
	for range 2 {
		status, b, err := f.send(http.MethodPost, "/api/v2/users", newUserBody("s@example.com"))
		require.NoError(t, err)
		require.Equal(t, http.StatusTooManyRequests, status)
		require.Contains(t, string(b), `"errorCode":"too_many_requests"`)
	}
	require.Empty(t, f.e.Users())
	// The catch-all entry comes next, for any endpoint.
	status, _, err := f.send(http.MethodGet, "/api/v2/roles", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadGateway, status)
	status, b, err := f.send(http.MethodPost, "/api/v2/users", newUserBody("s@example.com"))
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, status)
	var u map[string]any
	require.NoError(t, json.Unmarshal(b, &u))
	id := u["user_id"].(string)
	_, _, err = f.send(http.MethodGet, userPath(id), nil)
	require.Error(t, err)
	status, _, err = f.send(http.MethodGet, userPath(id), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	_, _, err = f.send(http.MethodPatch, userPath(id), map[string]any{"name": "Applied"})
	require.Error(t, err)
	require.Equal(t, "Applied", f.e.User(id)["name"])
	// The token endpoint answers its own error shape.
	form := "grant_type=client_credentials&client_id=syncd-emulator&client_secret=syncd-emulator-secret&audience=" + f.audience()
	st, _, tb := f.raw(http.MethodPost, "/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(form), "")
	require.Equal(t, http.StatusInternalServerError, st)
	require.JSONEq(t, `{"error":"server_error","error_description":"Injected fault"}`, string(tb))
	require.Empty(t, f.e.CurrentFaults().Script, "the script is used up")
	f.getToken(nil)
}

func TestFaultLatency(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{Faults: emulator.Faults{Latency: 30 * time.Millisecond, LatencyJitter: 10 * time.Millisecond}})
	start := time.Now()
	status, _, err := f.send(http.MethodGet, "/api/v2/roles", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
}

func TestAdminEndpoint(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := setup(t, emulator.Options{Now: clock.Now})
	admin := func(method, path, body string) (int, []byte) {
		t.Helper()
		status, _, b := f.raw(method, path, "application/json", strings.NewReader(body), "")
		return status, b
	}
	status, b := admin(http.MethodGet, "/admin/faults", "")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"latency":"0s","latency_jitter":"0s","error_rate":0,"drop_rate":0,"lost_write_rate":0,"script":[]}`, string(b))
	status, b = admin(http.MethodPut, "/admin/faults", `{"latency":"1ms","error_rate":0,"script":[{"endpoint":"GET /api/v2/roles","status":503,"times":2}]}`)
	require.Equal(t, http.StatusOK, status, string(b))
	require.Equal(t, emulator.Faults{Latency: time.Millisecond, Script: []emulator.ScriptedFault{{Endpoint: "GET /api/v2/roles", Status: 503, Times: 2}}}, f.e.CurrentFaults())
	st, _, _ := f.call(http.MethodGet, "/api/v2/roles", nil)
	require.Equal(t, http.StatusServiceUnavailable, st)
	for _, bad := range []string{`{"error_rate":2}`, `{"latency":"soon"}`, `{"script":[{"endpoint":"x"}]}`, `{"script":[{"status":200}]}`, `{"error_rate":0.6,"drop_rate":0.6}`, `nope`} {
		status, _ = admin(http.MethodPut, "/admin/faults", bad)
		require.Equal(t, http.StatusBadRequest, status, bad)
	}
	status, _ = admin(http.MethodPut, "/admin/faults", `{}`)
	require.Equal(t, http.StatusOK, status)

	status, b = admin(http.MethodGet, "/admin/calls", "")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"calls":[{"endpoint":"GET /api/v2/roles","status":503,"count":1},{"endpoint":"POST /oauth/token","status":200,"count":1}],"writes":0}`, string(b))
	status, _ = admin(http.MethodPost, "/admin/calls/reset", "")
	require.Equal(t, http.StatusNoContent, status)
	require.Empty(t, f.e.Calls())

	status, _ = admin(http.MethodPut, "/admin/rate", `{"plan":"free"}`)
	require.Equal(t, http.StatusNoContent, status)
	status, b = admin(http.MethodGet, "/admin/rate", "")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"plan":"free"}`, string(b))
	_, h, _ := f.call(http.MethodGet, "/api/v2/roles", nil)
	require.Equal(t, "2", h.Get("X-RateLimit-Limit"))
	status, _ = admin(http.MethodPut, "/admin/rate", `{"plan":"gold"}`)
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = admin(http.MethodPut, "/admin/rate", `{"rate":100,"burst":10}`)
	require.Equal(t, http.StatusNoContent, status)
	_, h, _ = f.call(http.MethodGet, "/api/v2/roles", nil)
	require.Equal(t, "10", h.Get("X-RateLimit-Limit"))
	status, _ = admin(http.MethodGet, "/admin/nope", "")
	require.Equal(t, http.StatusNotFound, status)
	// Admin requests are not counted.
	require.Equal(t, []emulator.Call{{Endpoint: "GET /api/v2/roles", Status: 200, Count: 2}}, f.e.Calls())
}

// The admin endpoint answers loopback clients only, unless told otherwise.
func TestAdminLoopbackOnly(t *testing.T) {
	t.Parallel()
	for _, remote := range []bool{false, true} {
		e := emulator.New(emulator.Options{AdminRemote: remote})
		req := httptest.NewRequest(http.MethodGet, "/admin/calls", nil)
		req.RemoteAddr = "192.0.2.7:40000"
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if remote {
			require.Equal(t, http.StatusOK, rec.Code)
		} else {
			require.Equal(t, http.StatusForbidden, rec.Code)
		}
		req.RemoteAddr = "[::1]:40000"
		rec = httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
	}
}

func TestCounters(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	id := f.createUser("c@example.com", nil)["user_id"].(string)
	f.obj(http.StatusOK, http.MethodGet, userPath(id), nil)
	f.apiErr(http.StatusNotFound, "inexistent_user", "", http.MethodGet, userPath("auth0|x"), nil)
	f.obj(http.StatusOK, http.MethodPatch, userPath(id), map[string]any{"name": "N"})
	f.must(http.StatusNoContent, http.MethodDelete, userPath(id), nil)
	f.obj(http.StatusOK, http.MethodPost, "/api/v2/jobs/users-exports", map[string]any{})
	status, _, b := f.call(http.MethodGet, "/api/v2/tenants/settings", nil)
	require.Equal(t, http.StatusNotFound, status)
	require.JSONEq(t, `{"statusCode":404,"error":"Not Found","message":"Not Found"}`, string(b))
	require.Equal(t, []emulator.Call{
		{Endpoint: "DELETE /api/v2/users/{id}", Status: 204, Count: 1},
		{Endpoint: "GET /api/v2/users/{id}", Status: 200, Count: 1},
		{Endpoint: "GET /api/v2/users/{id}", Status: 404, Count: 1},
		{Endpoint: "PATCH /api/v2/users/{id}", Status: 200, Count: 1},
		{Endpoint: "POST /api/v2/jobs/users-exports", Status: 200, Count: 1},
		{Endpoint: "POST /api/v2/users", Status: 201, Count: 1},
		{Endpoint: emulator.EndpointToken, Status: 200, Count: 1},
		{Endpoint: "unmatched", Status: 404, Count: 1},
	}, f.e.Calls())
	require.EqualValues(t, 2, f.e.CallCount("GET /api/v2/users/{id}"))
	require.EqualValues(t, 6, f.e.CallCount(""))
	require.EqualValues(t, 3, f.e.WriteCount())
	f.e.ResetCalls()
	require.Empty(t, f.e.Calls())
	require.Zero(t, f.e.WriteCount())
	require.Zero(t, f.e.CallCount(""))
}

func TestListenTLS(t *testing.T) {
	t.Parallel()
	certOut := filepath.Join(t.TempDir(), "emulator.pem")
	srv, err := emulator.ListenTLS("127.0.0.1:0", emulator.Options{}, certOut)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(srv.URL, "https://127.0.0.1:"))
	pemBytes, err := os.ReadFile(certOut)
	require.NoError(t, err)
	require.Equal(t, srv.CertPEM, pemBytes)
	client := srv.Client()
	t.Cleanup(func() {
		client.CloseIdleConnections()
		require.NoError(t, srv.Close())
	})
	host := strings.TrimPrefix(srv.URL, "https://")
	resp, err := client.Post(srv.URL+"/oauth/token", "application/json", strings.NewReader(
		`{"grant_type":"client_credentials","client_id":"syncd-emulator","client_secret":"syncd-emulator-secret","audience":"https://`+host+`/api/v2/"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// An export link keeps the scheme.
	var tok map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v2/jobs/users-exports", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
	req.Header.Set("Content-Type", "application/json")
	r2, err := client.Do(req)
	require.NoError(t, err)
	var job map[string]any
	require.NoError(t, json.NewDecoder(r2.Body).Decode(&job))
	r2.Body.Close()
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/api/v2/jobs/"+job["id"].(string), nil)
	req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
	r3, err := client.Do(req)
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(r3.Body).Decode(&job))
	r3.Body.Close()
	require.True(t, strings.HasPrefix(job["location"].(string), srv.URL+"/exports/"), job["location"])
	// An untrusting client refuses the certificate.
	plain := &http.Client{Transport: &http.Transport{}}
	_, err = plain.Get(srv.URL + "/api/v2/roles")
	require.Error(t, err)
	plain.CloseIdleConnections()
}
