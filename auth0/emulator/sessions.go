package emulator

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Sessions and refresh tokens. A login is what creates them in Auth0; here
// the admin endpoint (POST /admin/users/{id}/logins) or Login stands for one.
// The Management API's user-session and user-refresh-token endpoints exist
// on Enterprise plans only: on the emulator's non-enterprise plan presets
// (free, professional) they answer what Auth0 answers for a feature the
// tenant's subscription lacks, 403 operation_not_supported.

// access is what one user can still use: sessions, refresh tokens, and the
// revocations syncd made.
type access struct {
	sessions []session
	tokens   []refreshToken
	revoked  map[string][]Revocation // "sessions" / "refresh_tokens" → each DELETE that revoked
}

type session struct {
	id      string
	created time.Time
}

type refreshToken struct {
	id      string
	session string
	created time.Time
}

// Revocation kinds, as Access reports them.
const (
	RevokeSessions      = "sessions"
	RevokeRefreshTokens = "refresh_tokens"
)

// Revocation is one DELETE of a user's sessions or refresh tokens that the
// emulator carried out.
type Revocation struct {
	At time.Time `json:"at"`
	// Delivered: the answer (202) was sent to a client still connected. A
	// lost answer (the LoseAnswer fault, or a client gone meanwhile) revoked
	// all the same, but the client cannot know.
	Delivered bool `json:"delivered"`
	// Ended is how many sessions or refresh tokens it ended.
	Ended int `json:"ended"`
}

// Access is a user's sessions and refresh tokens now, and every revocation
// of them so far.
type Access struct {
	Sessions      int          `json:"sessions"`
	RefreshTokens int          `json:"refresh_tokens"`
	Revoked       []Revocation `json:"sessions_revoked"`
	TokensRevoked []Revocation `json:"refresh_tokens_revoked"`
}

// planLacksSessions says whether the current plan preset lacks the session
// and refresh-token endpoints (everything but enterprise and unlimited).
func (e *Emulator) planLacksSessions() bool {
	e.rateMu.Lock()
	plan := e.rateSetting.Plan
	e.rateMu.Unlock()
	return plan == PlanFree || plan == PlanProfessional
}

// errPlanLacksFeature is Auth0's answer to an endpoint the tenant's
// subscription does not include.
func errPlanLacksFeature() *apiError {
	return errorf(http.StatusForbidden, "operation_not_supported", "The account is not allowed to perform this operation, please contact our support team.")
}

func (e *Emulator) accessLocked(id string) *access {
	if e.access == nil {
		e.access = map[string]*access{}
	}
	a := e.access[id]
	if a == nil {
		a = &access{revoked: map[string][]Revocation{}}
		e.access[id] = a
	}
	return a
}

// Login stands for a login of user id: one new session and one refresh token
// bound to it. It fails with false if there is no such user.
func (e *Emulator) Login(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.users[id] == nil {
		return false
	}
	a := e.accessLocked(id)
	now := e.now()
	s := session{id: randomAlnum(24), created: now}
	a.sessions = append(a.sessions, s)
	a.tokens = append(a.tokens, refreshToken{id: randomAlnum(24), session: s.id, created: now})
	return true
}

// Access returns user id's sessions, refresh tokens and revocations (zero
// for an unknown user).
func (e *Emulator) Access(id string) Access {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.access[id]
	if a == nil {
		return Access{}
	}
	return Access{Sessions: len(a.sessions), RefreshTokens: len(a.tokens),
		Revoked: append([]Revocation(nil), a.revoked[RevokeSessions]...), TokensRevoked: append([]Revocation(nil), a.revoked[RevokeRefreshTokens]...)}
}

// endAccessLocked ends a deleted user's sessions and refresh tokens; the
// revocations made before stay on record.
func (e *Emulator) endAccessLocked(id string) {
	if a := e.access[id]; a != nil {
		a.sessions, a.tokens = nil, nil
	}
}

// listSessions is GET /api/v2/users/{id}/sessions.
func (e *Emulator) listSessions(w http.ResponseWriter, r *http.Request, _ *call) {
	id, ok := e.lockUserAccess(w, r)
	if !ok {
		return
	}
	out := []map[string]any{}
	if a := e.access[id]; a != nil {
		for _, s := range a.sessions {
			out = append(out, map[string]any{"id": s.id, "user_id": id, "created_at": ts(s.created), "updated_at": ts(s.created),
				"authenticated_at": ts(s.created), "clients": []any{}})
		}
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

// listRefreshTokens is GET /api/v2/users/{id}/refresh-tokens.
func (e *Emulator) listRefreshTokens(w http.ResponseWriter, r *http.Request, _ *call) {
	id, ok := e.lockUserAccess(w, r)
	if !ok {
		return
	}
	out := []map[string]any{}
	if a := e.access[id]; a != nil {
		for _, t := range a.tokens {
			out = append(out, map[string]any{"id": t.id, "user_id": id, "session_id": t.session, "created_at": ts(t.created), "rotating": false})
		}
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

// lockUserAccess is the start of every sessions and refresh-tokens route:
// the plan must have the feature and the path's user must exist. On success
// it returns the user id with e.mu held; otherwise it has answered.
func (e *Emulator) lockUserAccess(w http.ResponseWriter, r *http.Request) (string, bool) {
	if e.planLacksSessions() {
		writeError(w, errPlanLacksFeature())
		return "", false
	}
	id := r.PathValue("id")
	e.mu.Lock()
	if e.users[id] == nil {
		e.mu.Unlock()
		writeError(w, errUserNotFound())
		return "", false
	}
	return id, true
}

// revokeSessions is DELETE /api/v2/users/{id}/sessions: 202, idempotent.
func (e *Emulator) revokeSessions(w http.ResponseWriter, r *http.Request, _ *call) {
	e.revoke(w, r, RevokeSessions)
}

// revokeRefreshTokens is DELETE /api/v2/users/{id}/refresh-tokens.
func (e *Emulator) revokeRefreshTokens(w http.ResponseWriter, r *http.Request, _ *call) {
	e.revoke(w, r, RevokeRefreshTokens)
}

func (e *Emulator) revoke(w http.ResponseWriter, r *http.Request, kind string) {
	// Its answer will not reach the client: lost on purpose, or the client
	// is gone already (its process was killed while the request was on its
	// way; the server noticed the closed connection).
	_, lost := w.(*discardWriter)
	lost = lost || r.Context().Err() != nil
	id, ok := e.lockUserAccess(w, r)
	if !ok {
		return
	}
	a := e.accessLocked(id)
	var ended int
	if kind == RevokeSessions {
		// Ending a session ends nothing else: refresh tokens outlive it
		// (Auth0: "Refresh tokens can remain active after a session has
		// expired or been deleted").
		ended, a.sessions = len(a.sessions), nil
	} else {
		ended, a.tokens = len(a.tokens), nil
	}
	a.revoked[kind] = append(a.revoked[kind], Revocation{At: e.now(), Delivered: !lost, Ended: ended})
	e.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// serveAccessAdmin answers the admin endpoint's per-user routes:
//
//	POST /admin/users/{id}/logins   one login: a session and a refresh token
//	GET  /admin/users/{id}/access   Access as JSON
//
// It reports whether it handled r.
func (e *Emulator) serveAccessAdmin(w http.ResponseWriter, r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, "/admin/users/")
	if !ok {
		return false
	}
	id, what, ok := strings.Cut(rest, "/")
	if !ok || id == "" {
		return false
	}
	switch r.Method + " " + what {
	case "POST logins":
		if !e.Login(id) {
			writeError(w, errUserNotFound())
			return true
		}
		writeJSON(w, http.StatusCreated, e.Access(id))
	case "GET access":
		e.mu.Lock()
		exists := e.users[id] != nil || e.access[id] != nil
		e.mu.Unlock()
		if !exists {
			writeError(w, errUserNotFound())
			return true
		}
		b, _ := json.Marshal(e.Access(id))
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(b)
	default:
		return false
	}
	return true
}
