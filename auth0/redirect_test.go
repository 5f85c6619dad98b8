package auth0_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
)

// A 307/308 keeps the method and body: followed, it would hand the client
// secret (the token request's form body) or the bearer token to whatever the
// Location names. The client never follows one, to any host or port.
func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	const secret = "the-client-secret-0123"
	var mu sync.Mutex
	var leaked []string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		if strings.Contains(string(body), secret) {
			leaked = append(leaked, r.URL.Path+": the client secret")
		}
		if r.Header.Get("Authorization") != "" {
			leaked = append(leaked, r.URL.Path+": the bearer token")
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "stolen", "token_type": "Bearer", "expires_in": 3600, "user_id": "auth0|x"})
	}))
	defer elsewhere.Close()

	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			redirectToken := true
			tenant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/oauth/token" && !redirectToken {
					w.Header().Set("Content-Type", "application/json")
					_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "tok-0123456789", "token_type": "Bearer", "expires_in": 3600})
					return
				}
				http.Redirect(w, r, elsewhere.URL+r.URL.Path, status)
			}))
			defer tenant.Close()
			base, err := auth0.ParseDomain(tenant.URL)
			require.NoError(t, err)
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c, err := auth0.New(auth0.Config{BaseURL: base, ClientID: "id", ClientSecret: secret, MaxAttempts: 2,
				HTTPClient: &http.Client{Transport: tr}})
			require.NoError(t, err)

			// The token request.
			err = c.Token(t.Context())
			require.Error(t, err)
			var ae *auth0.APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, status, ae.StatusCode)
			require.Contains(t, err.Error(), "redirect")
			require.NotContains(t, err.Error(), secret)

			// An API call with a good token.
			redirectToken = false
			_, err = c.GetUser(t.Context(), "auth0|x")
			require.ErrorAs(t, err, &ae)
			require.Equal(t, status, ae.StatusCode)

			mu.Lock()
			defer mu.Unlock()
			require.Empty(t, leaked)
		})
	}
}
