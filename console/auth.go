package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
)

// cookieName is the browser session's cookie.
const cookieName = "syncd_console"

// session is one logged-in browser.
type session struct {
	expires time.Time
	// csrf is the token every form of this session carries.
	csrf string
}

// sessions are the logged-in browsers, in memory: a restart logs everyone
// out, and each replica has its own.
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	ttl time.Duration
}

func (s *sessions) create() (id string, sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for k, v := range s.m {
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	id = randomToken()
	sess = &session{expires: now.Add(s.ttl), csrf: randomToken()}
	s.m[id] = sess
	return id, sess
}

func (s *sessions) get(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.m[id]
	if sess == nil || time.Now().After(sess.expires) {
		delete(s.m, id)
		return nil
	}
	return sess
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// tokenOK compares a presented token with the configured one in constant
// time (hashes first, so that not even the length leaks).
func (c *Console) tokenOK(given string) bool {
	g := sum(given)
	return subtle.ConstantTimeCompare(g[:], c.tokenSum[:]) == 1
}

type sessionKey struct{}

func sessionOf(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// page requires a browser session: a GET without one is sent to the login
// form, anything else is refused; a POST must carry the session's form
// token.
func (c *Console) page(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var sess *session
		if ck, err := r.Cookie(cookieName); err == nil {
			sess = c.sessions.get(ck.Value)
		}
		if sess == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "401 unauthorized: log in first", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				formError(w, err)
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(sess.csrf)) != 1 {
				http.Error(w, "403 forbidden: the form's token is missing or stale; reload the page", http.StatusForbidden)
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	}
}

func formError(w http.ResponseWriter, err error) {
	if errors.As(err, new(*http.MaxBytesError)) {
		http.Error(w, "413 request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	http.Error(w, "400 bad request: "+err.Error(), http.StatusBadRequest)
}

// api requires the token as a Bearer token.
func (c *Console) api(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		scheme, tok, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || !c.tokenOK(strings.TrimSpace(tok)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="syncd console"`)
			apiError(w, http.StatusUnauthorized, "missing or wrong bearer token (SYNCD_CONSOLE_TOKEN)")
			return
		}
		h(w, r)
	}
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", map[string]any{"Title": "Log in"})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		formError(w, err)
		return
	}
	if !c.logins.Allow() {
		c.render(w, r, http.StatusTooManyRequests, "login", map[string]any{"Title": "Log in", "Error": "Too many attempts; wait a few seconds."})
		return
	}
	if !c.tokenOK(r.PostForm.Get("token")) {
		c.log.WarnContext(r.Context(), "console login refused: wrong token", "remote", r.RemoteAddr)
		c.render(w, r, http.StatusUnauthorized, "login", map[string]any{"Title": "Log in", "Error": "Wrong token."})
		return
	}
	id, _ := c.sessions.create()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(c.cfg.SessionTTL.Seconds())})
	c.log.InfoContext(r.Context(), "console login", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(cookieName); err == nil {
		c.sessions.drop(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
