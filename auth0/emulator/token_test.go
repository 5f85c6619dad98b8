package emulator_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 12, 14, 14, 30, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	require.NoError(t, err)
	require.JSONEq(t, `{"alg":"HS256","typ":"JWT"}`, string(hdr))
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var c map[string]any
	require.NoError(t, json.Unmarshal(payload, &c))
	return c
}

// The integration guide's token request: JSON body, answer with a Bearer
// token valid 86400 s.
func TestTokenJSONAsInTheGuide(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	body := `{"client_id":"syncd-emulator","client_secret":"syncd-emulator-secret","audience":"` + f.audience() + `","grant_type":"client_credentials"}`
	status, hdr, b := f.raw(http.MethodPost, "/oauth/token", "application/json", strings.NewReader(body), "")
	require.Equal(t, http.StatusOK, status, string(b))
	require.Equal(t, "no-store", hdr.Get("Cache-Control"))
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	require.Equal(t, "Bearer", got["token_type"])
	require.Equal(t, float64(86400), got["expires_in"])
	require.Equal(t, strings.Join(emulator.AllScopes(), " "), got["scope"])
	c := jwtClaims(t, got["access_token"].(string))
	require.Equal(t, "https://"+f.host()+"/", c["iss"])
	require.Equal(t, "syncd-emulator@clients", c["sub"])
	require.Equal(t, f.audience(), c["aud"])
	require.Equal(t, "client-credentials", c["gty"])
	require.Equal(t, "syncd-emulator", c["azp"])
	require.Equal(t, c["iat"].(float64)+86400, c["exp"])
	// The token works.
	f.token = got["access_token"].(string)
	f.list(http.StatusOK, http.MethodGet, "/api/v2/roles", nil)
}

func TestTokenBasicAuthAndForm(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{ClientID: "id with space", ClientSecret: "s&cret=x", TokenTTL: time.Hour})
	form := url.Values{"grant_type": {"client_credentials"}, "audience": {f.audience()}}
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/oauth/token", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// RFC 6749 §2.3.1: Basic credentials are form-encoded first (x/oauth2 does so).
	req.SetBasicAuth(url.QueryEscape("id with space"), url.QueryEscape("s&cret=x"))
	resp, err := f.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var got map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	require.Equal(t, float64(3600), got["expires_in"])
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{})
	tests := []struct {
		name   string
		form   url.Values
		status int
		code   string
		desc   string
	}{
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {"syncd-emulator"}, "client_secret": {"nope"}, "audience": {f.audience()}}, 401, "invalid_client", "Unauthorized"},
		{"wrong client", url.Values{"grant_type": {"client_credentials"}, "client_id": {"other"}, "client_secret": {"syncd-emulator-secret"}, "audience": {f.audience()}}, 401, "invalid_client", "Unauthorized"},
		{"missing grant", url.Values{"client_id": {"syncd-emulator"}, "client_secret": {"syncd-emulator-secret"}, "audience": {f.audience()}}, 400, "invalid_request", "Missing required parameter: grant_type"},
		{"other grant", url.Values{"grant_type": {"password"}, "client_id": {"syncd-emulator"}, "client_secret": {"syncd-emulator-secret"}, "audience": {f.audience()}}, 400, "unsupported_grant_type", "Unsupported grant type: password"},
		{"no audience", url.Values{"grant_type": {"client_credentials"}, "client_id": {"syncd-emulator"}, "client_secret": {"syncd-emulator-secret"}}, 403, "access_denied", "No audience parameter was provided, and no default audience has been configured"},
		{"audience without slash", url.Values{"grant_type": {"client_credentials"}, "client_id": {"syncd-emulator"}, "client_secret": {"syncd-emulator-secret"}, "audience": {strings.TrimSuffix(f.audience(), "/")}}, 403, "access_denied", "Service not found: " + strings.TrimSuffix(f.audience(), "/")},
		{"other tenant", url.Values{"grant_type": {"client_credentials"}, "client_id": {"syncd-emulator"}, "client_secret": {"syncd-emulator-secret"}, "audience": {"https://tenant.auth0.com/api/v2/"}}, 403, "access_denied", "Service not found: https://tenant.auth0.com/api/v2/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, b := f.raw(http.MethodPost, "/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(tt.form.Encode()), "")
			require.Equal(t, tt.status, status, string(b))
			var got map[string]string
			require.NoError(t, json.Unmarshal(b, &got))
			require.Equal(t, map[string]string{"error": tt.code, "error_description": tt.desc}, got)
			require.NotContains(t, string(b), "syncd-emulator-secret")
		})
	}
}

func TestTokenDomainOption(t *testing.T) {
	t.Parallel()
	f := &fixture{t: t}
	srv, err := emulator.Listen("127.0.0.1:0", emulator.Options{Domain: "tenant.example.com"})
	require.NoError(t, err)
	f.srv, f.e, f.client = srv, srv.Emulator, &http.Client{Transport: &http.Transport{}}
	t.Cleanup(func() { f.client.CloseIdleConnections(); require.NoError(t, srv.Close()) })
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"syncd-emulator"}, "client_secret": {"syncd-emulator-secret"}, "audience": {f.audience()}}
	status, _, _ := f.raw(http.MethodPost, "/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), "")
	require.Equal(t, http.StatusForbidden, status)
	form.Set("audience", "https://tenant.example.com/api/v2/")
	status, _, b := f.raw(http.MethodPost, "/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), "")
	require.Equal(t, http.StatusOK, status)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	require.Equal(t, "https://tenant.example.com/", jwtClaims(t, got["access_token"].(string))["iss"])
	f.token = got["access_token"].(string)
	f.list(http.StatusOK, http.MethodGet, "/api/v2/roles", nil)
}

func TestAPIAuthentication(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	f := setup(t, emulator.Options{Now: clock.Now, TokenTTL: time.Hour})
	good := f.token
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte("not the signature"))
	other := emulator.New(emulator.Options{}).IssueToken(f.host())
	tests := []struct {
		name, header, msg string
	}{
		{"no header", "", "Missing authentication"},
		{"not bearer", "Basic abc", "Bad HTTP authentication header format"},
		{"garbage", "Bearer abc", "Invalid token"},
		{"bad signature", "Bearer " + tampered, "Invalid signature received for JSON Web Token validation."},
		{"another tenant's key", "Bearer " + other, "Invalid signature received for JSON Web Token validation."},
		{"other audience", "Bearer " + f.e.IssueToken("tenant.example.com"), "Bad audience: https://tenant.example.com/api/v2/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, f.srv.URL+"/api/v2/roles", nil)
			require.NoError(t, err)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := f.client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			var got map[string]any
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
			require.Equal(t, map[string]any{"statusCode": float64(401), "error": "Unauthorized", "message": tt.msg}, got)
		})
	}
	// Expiry follows the emulator's clock.
	f.list(http.StatusOK, http.MethodGet, "/api/v2/roles", nil)
	clock.Add(time.Hour - time.Second)
	f.list(http.StatusOK, http.MethodGet, "/api/v2/roles", nil)
	clock.Add(time.Second)
	f.apiErr(http.StatusUnauthorized, "", "Expired token received for JSON Web Token validation", http.MethodGet, "/api/v2/roles", nil)
	require.Equal(t, good, f.token)
	f.token = f.getToken(nil)
	f.list(http.StatusOK, http.MethodGet, "/api/v2/roles", nil)
}

func TestInsufficientScope(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{Scopes: []string{"read:users", "update:users_app_metadata"}})
	f.apiErr(http.StatusForbidden, "insufficient_scope", "Insufficient scope, expected any of: create:users", http.MethodPost, "/api/v2/users",
		map[string]any{"connection": emulator.DefaultConnection, "email": "a@example.com", "password": goodPassword})
	f.apiErr(http.StatusForbidden, "insufficient_scope", "Insufficient scope, expected any of: read:roles", http.MethodGet, "/api/v2/roles", nil)
	f.apiErr(http.StatusForbidden, "insufficient_scope", "Insufficient scope, expected any of: delete:users", http.MethodDelete, userPath("auth0|x"), nil)
	require.Empty(t, f.e.Users())

	// update:users_app_metadata may change metadata only.
	f2 := setup(t, emulator.Options{Scopes: []string{"create:users", "update:users_app_metadata"}})
	uid := f2.createUser("b@example.com", nil)["user_id"].(string)
	f2.obj(http.StatusOK, http.MethodPatch, userPath(uid), map[string]any{"app_metadata": map[string]any{"k": 1}})
	f2.apiErr(http.StatusForbidden, "insufficient_scope", "Insufficient scope, expected any of: update:users", http.MethodPatch, userPath(uid), map[string]any{"blocked": true})

	// A token may ask for fewer scopes than the client has.
	f3 := setup(t, emulator.Options{})
	f3.token = f3.getToken(url.Values{"scope": {"read:users"}})
	require.Equal(t, "read:users", jwtClaims(t, f3.token)["scope"])
	f3.apiErr(http.StatusForbidden, "insufficient_scope", "", http.MethodGet, "/api/v2/roles", nil)
}
