package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// claims are those of an Auth0 client-credentials access token.
type claims struct {
	Iss   string `json:"iss"`
	Sub   string `json:"sub"`
	Aud   string `json:"aud"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
	Scope string `json:"scope"`
	Gty   string `json:"gty"`
	Azp   string `json:"azp"`
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

func (e *Emulator) sign(c claims) string {
	payload, _ := json.Marshal(c)
	signed := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, e.key)
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// domain is the tenant's host as a request sees it.
func (e *Emulator) domain(r *http.Request) string {
	if e.opts.Domain != "" {
		return e.opts.Domain
	}
	return r.Host
}

func (e *Emulator) audience(r *http.Request) string {
	return "https://" + e.domain(r) + "/api/v2/"
}

// IssueToken returns an access token for the emulator at host (the Host its
// clients send, e.g. "127.0.0.1:8089"; ignored when Options.Domain is set)
// with scopes (none = Options.Scopes), as POST /oauth/token would issue it.
// It is for tests that call the API directly.
func (e *Emulator) IssueToken(host string, scopes ...string) string {
	if len(scopes) == 0 {
		scopes = e.grantedScopes()
	}
	r := &http.Request{Host: host}
	now := e.now()
	return e.sign(claims{
		Iss: "https://" + e.domain(r) + "/", Sub: e.opts.ClientID + "@clients", Aud: e.audience(r),
		Iat: now.Unix(), Exp: now.Add(e.opts.TokenTTL).Unix(), Scope: strings.Join(scopes, " "),
		Gty: "client-credentials", Azp: e.opts.ClientID,
	})
}

// serveToken is POST /oauth/token, the client-credentials grant.
func (e *Emulator) serveToken(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	defer func() { e.record(EndpointToken, sw.status) }()
	act := e.pickFault(EndpointToken, false)
	switch {
	case act.drop || act.loseAnswer:
		sw.status = 0
		e.log.LogAttrs(r.Context(), slog.LevelDebug, "connection dropped", slog.String("endpoint", EndpointToken))
		panic(http.ErrAbortHandler)
	case act.status != 0:
		writeOAuthError(sw, oauthError{status: act.status, Error: oauthErrorCode(act.status), Description: "Injected fault"})
		return
	}
	params, ok := e.tokenParams(sw, r)
	if !ok {
		return
	}
	id, secret := params.Get("client_id"), params.Get("client_secret")
	if bid, bsecret, basic := r.BasicAuth(); basic {
		id, _ = url.QueryUnescape(bid)
		secret, _ = url.QueryUnescape(bsecret)
	}
	switch gt := params.Get("grant_type"); gt {
	case "client_credentials":
	case "":
		writeOAuthError(sw, oauthError{status: http.StatusBadRequest, Error: "invalid_request", Description: "Missing required parameter: grant_type"})
		return
	default:
		writeOAuthError(sw, oauthError{status: http.StatusBadRequest, Error: "unsupported_grant_type", Description: "Unsupported grant type: " + gt})
		return
	}
	if id == "" {
		writeOAuthError(sw, oauthError{status: http.StatusUnauthorized, Error: "invalid_client", Description: "Missing required parameter: client_id"})
		return
	}
	if !hmac.Equal([]byte(id), []byte(e.opts.ClientID)) || !hmac.Equal([]byte(secret), []byte(e.opts.ClientSecret)) {
		writeOAuthError(sw, oauthError{status: http.StatusUnauthorized, Error: "invalid_client", Description: "Unauthorized"})
		return
	}
	aud := params.Get("audience")
	switch {
	case aud == "":
		writeOAuthError(sw, oauthError{status: http.StatusForbidden, Error: "access_denied", Description: "No audience parameter was provided, and no default audience has been configured"})
		return
	case aud != e.audience(r):
		writeOAuthError(sw, oauthError{status: http.StatusForbidden, Error: "access_denied", Description: "Service not found: " + aud})
		return
	}
	granted := e.grantedScopes()
	scopes := granted
	if s := strings.Fields(params.Get("scope")); len(s) > 0 {
		scopes = slices.DeleteFunc(slices.Clone(s), func(x string) bool { return !slices.Contains(granted, x) })
	}
	now := e.now()
	tok := e.sign(claims{
		Iss: "https://" + e.domain(r) + "/", Sub: e.opts.ClientID + "@clients", Aud: aud,
		Iat: now.Unix(), Exp: now.Add(e.opts.TokenTTL).Unix(), Scope: strings.Join(scopes, " "),
		Gty: "client-credentials", Azp: e.opts.ClientID,
	})
	sw.Header().Set("Cache-Control", "no-store")
	writeJSON(sw, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int64(e.opts.TokenTTL / time.Second),
		"scope":        strings.Join(scopes, " "),
	})
}

func oauthErrorCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "invalid_client"
	case http.StatusForbidden:
		return "access_denied"
	case http.StatusTooManyRequests:
		return "too_many_requests"
	case http.StatusBadRequest:
		return "invalid_request"
	}
	return "server_error"
}

// tokenParams reads a form or JSON body.
func (e *Emulator) tokenParams(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeOAuthError(w, oauthError{status: http.StatusBadRequest, Error: "invalid_request", Description: "Invalid request body"})
		return nil, false
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			writeOAuthError(w, oauthError{status: http.StatusBadRequest, Error: "invalid_request", Description: "Invalid JSON body"})
			return nil, false
		}
		v := url.Values{}
		for k, x := range m {
			if s, ok := x.(string); ok {
				v.Set(k, s)
			}
		}
		return v, true
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		writeOAuthError(w, oauthError{status: http.StatusBadRequest, Error: "invalid_request", Description: "Invalid form body"})
		return nil, false
	}
	return v, true
}

// authenticate checks the bearer token of an /api/v2 request and returns its
// scopes.
func (e *Emulator) authenticate(r *http.Request) (map[string]bool, *apiError) {
	unauthorized := func(msg string) *apiError { return errorf(http.StatusUnauthorized, "", "%s", msg) }
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, unauthorized("Missing authentication")
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return nil, unauthorized("Bad HTTP authentication header format")
	}
	parts := strings.Split(strings.TrimSpace(tok), ".")
	if len(parts) != 3 || parts[0] != jwtHeader {
		return nil, unauthorized("Invalid token")
	}
	mac := hmac.New(sha256.New, e.key)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		return nil, unauthorized("Invalid signature received for JSON Web Token validation.")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c claims
	if err != nil || json.Unmarshal(payload, &c) != nil {
		return nil, unauthorized("Invalid token")
	}
	if c.Exp <= e.now().Unix() {
		return nil, unauthorized("Expired token received for JSON Web Token validation")
	}
	if c.Aud != e.audience(r) {
		return nil, unauthorized("Bad audience: " + c.Aud)
	}
	scopes := map[string]bool{}
	for _, s := range strings.Fields(c.Scope) {
		scopes[s] = true
	}
	return scopes, nil
}
