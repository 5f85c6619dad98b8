package emulator_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/syncd/syncd/auth0/emulator"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

// tester is what the helpers need of a *testing.T or a *rapid.T.
type tester interface {
	Helper()
	Errorf(format string, args ...any)
	FailNow()
}

// fixture is an emulator on a loopback port with a client that holds a token.
type fixture struct {
	t      tester
	srv    *emulator.Server
	e      *emulator.Emulator
	client *http.Client
	token  string
}

func setup(t *testing.T, opts emulator.Options) *fixture {
	t.Helper()
	srv, err := emulator.Listen("127.0.0.1:0", opts)
	require.NoError(t, err)
	tr := &http.Transport{}
	f := &fixture{t: t, srv: srv, e: srv.Emulator, client: &http.Client{Transport: tr}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		require.NoError(t, srv.Close())
	})
	f.token = f.getToken(nil)
	return f
}

func (f *fixture) host() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *fixture) audience() string { return "https://" + f.host() + "/api/v2/" }

// getToken obtains a token with the default credentials (and extra form
// values), failing the test on anything but 200.
func (f *fixture) getToken(extra url.Values) string {
	f.t.Helper()
	o := f.e.Options()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {o.ClientID}, "client_secret": {o.ClientSecret}, "audience": {f.audience()}}
	for k, v := range extra {
		form[k] = v
	}
	status, _, body := f.raw(http.MethodPost, "/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), "")
	require.Equal(f.t, http.StatusOK, status, string(body))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(f.t, json.Unmarshal(body, &tok))
	return tok.AccessToken
}

// raw sends one request and returns the status, headers and body.
func (f *fixture) raw(method, path, contentType string, body io.Reader, token string) (int, http.Header, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	require.NoError(f.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.client.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	return resp.StatusCode, resp.Header, b
}

// call sends a JSON request with the fixture's token.
func (f *fixture) call(method, path string, body any) (int, http.Header, []byte) {
	f.t.Helper()
	var r io.Reader
	ct := ""
	if body != nil {
		switch b := body.(type) {
		case string:
			r = strings.NewReader(b)
		default:
			buf, err := json.Marshal(body)
			require.NoError(f.t, err)
			r = bytes.NewReader(buf)
		}
		ct = "application/json"
	}
	return f.raw(method, path, ct, r, f.token)
}

// must sends a request, requires status want and decodes the answer.
func (f *fixture) must(want int, method, path string, body any) any {
	f.t.Helper()
	status, _, b := f.call(method, path, body)
	require.Equal(f.t, want, status, "%s %s: %s", method, path, b)
	if len(b) == 0 {
		return nil
	}
	var v any
	require.NoError(f.t, json.Unmarshal(b, &v), string(b))
	return v
}

// obj is must for an object answer.
func (f *fixture) obj(want int, method, path string, body any) map[string]any {
	f.t.Helper()
	v, ok := f.must(want, method, path, body).(map[string]any)
	require.True(f.t, ok, "answer is not an object")
	return v
}

// list is must for an array answer.
func (f *fixture) list(want int, method, path string, body any) []any {
	f.t.Helper()
	v, ok := f.must(want, method, path, body).([]any)
	require.True(f.t, ok, "answer is not an array")
	return v
}

// apiErr requires an Auth0 error body with status, errorCode and message.
func (f *fixture) apiErr(status int, code, message string, method, path string, body any) {
	f.t.Helper()
	got := f.obj(status, method, path, body)
	require.Equal(f.t, float64(status), got["statusCode"])
	require.Equal(f.t, http.StatusText(status), got["error"])
	if code == "" {
		require.NotContains(f.t, got, "errorCode")
	} else {
		require.Equal(f.t, code, got["errorCode"])
	}
	if message != "" {
		require.Equal(f.t, message, got["message"])
	}
}

const goodPassword = "Secure123!"

// createUser makes a user through the API and returns it.
func (f *fixture) createUser(email string, extra map[string]any) map[string]any {
	f.t.Helper()
	body := map[string]any{"connection": emulator.DefaultConnection, "email": email, "password": goodPassword}
	for k, v := range extra {
		body[k] = v
	}
	return f.obj(http.StatusCreated, http.MethodPost, "/api/v2/users", body)
}

func userPath(id string) string { return "/api/v2/users/" + url.PathEscape(id) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
