package emulator

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// route is one Management API endpoint.
type route struct {
	pattern string   // method and template; also the counters' endpoint name
	scopes  []string // any one of them grants access
	write   bool     // counted by WriteCount and subject to lost answers
	handle  func(w http.ResponseWriter, r *http.Request, c *call)
}

// call is what the pipeline learnt about a request before its handler.
type call struct {
	route  *route
	scopes map[string]bool // the token's
}

// Endpoint names of the routes outside /api/v2.
const (
	EndpointToken  = "POST /oauth/token"
	EndpointExport = "GET /exports/{file}"
)

func (e *Emulator) routes() {
	e.mux = http.NewServeMux()
	api := []*route{
		{pattern: "POST /api/v2/users", scopes: []string{"create:users"}, write: true, handle: e.createUser},
		{pattern: "GET /api/v2/users", scopes: []string{"read:users"}, handle: e.listUsers},
		{pattern: "GET /api/v2/users/{id}", scopes: []string{"read:users"}, handle: e.getUser},
		{pattern: "PATCH /api/v2/users/{id}", scopes: []string{"update:users", "update:users_app_metadata"}, write: true, handle: e.patchUser},
		{pattern: "DELETE /api/v2/users/{id}", scopes: []string{"delete:users"}, write: true, handle: e.deleteUser},
		{pattern: "GET /api/v2/users-by-email", scopes: []string{"read:users"}, handle: e.usersByEmail},
		{pattern: "GET /api/v2/users/{id}/roles", scopes: []string{"read:users", "read:roles", "read:role_members"}, handle: e.listUserRoles},
		{pattern: "POST /api/v2/users/{id}/roles", scopes: []string{"update:users", "create:role_members"}, write: true, handle: e.assignUserRoles},
		{pattern: "DELETE /api/v2/users/{id}/roles", scopes: []string{"update:users", "delete:role_members"}, write: true, handle: e.removeUserRoles},
		{pattern: "GET /api/v2/users/{id}/sessions", scopes: []string{"read:sessions"}, handle: e.listSessions},
		{pattern: "DELETE /api/v2/users/{id}/sessions", scopes: []string{"delete:sessions"}, write: true, handle: e.revokeSessions},
		{pattern: "GET /api/v2/users/{id}/refresh-tokens", scopes: []string{"read:refresh_tokens"}, handle: e.listRefreshTokens},
		{pattern: "DELETE /api/v2/users/{id}/refresh-tokens", scopes: []string{"delete:refresh_tokens"}, write: true, handle: e.revokeRefreshTokens},
		{pattern: "GET /api/v2/roles", scopes: []string{"read:roles"}, handle: e.listRoles},
		{pattern: "GET /api/v2/roles/{id}/users", scopes: []string{"read:users", "read:roles", "read:role_members"}, handle: e.listRoleUsers},
		{pattern: "POST /api/v2/roles/{id}/users", scopes: []string{"update:roles", "create:role_members"}, write: true, handle: e.addRoleUsers},
		{pattern: "POST /api/v2/jobs/users-exports", scopes: []string{"read:users"}, handle: e.createExport},
		{pattern: "GET /api/v2/jobs/{id}", scopes: []string{"create:users", "read:users"}, handle: e.getJob},
		{pattern: "POST /api/v2/jobs/users-imports", scopes: []string{"create:users"}, write: true, handle: e.createImport},
		{pattern: "GET /api/v2/jobs/{id}/errors", scopes: []string{"create:users", "read:users"}, handle: e.getJobErrors},
		{pattern: "GET /api/v2/connections", scopes: []string{"read:connections"}, handle: e.listConnections},
	}
	for _, rt := range api {
		e.mux.Handle(rt.pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.serveAPI(rt, w, r) }))
	}
	e.mux.HandleFunc(EndpointToken, e.serveToken)
	e.mux.HandleFunc(EndpointExport, e.serveExport)
}

// AllScopes returns every scope the emulator checks (the default of
// Options.Scopes).
func AllScopes() []string {
	return []string{
		"read:users", "create:users", "update:users", "delete:users", "update:users_app_metadata",
		"read:roles", "update:roles", "read:role_members", "create:role_members", "delete:role_members", "read:connections",
		"read:sessions", "delete:sessions", "read:refresh_tokens", "delete:refresh_tokens",
	}
}

// ServeHTTP answers /oauth/token, /api/v2/…, export downloads and the admin
// endpoint.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/admin" || strings.HasPrefix(r.URL.Path, "/admin/") {
		e.serveAdmin(w, r)
		return
	}
	if _, pattern := e.mux.Handler(r); pattern == "" {
		e.record("unmatched", http.StatusNotFound)
		writeError(w, errorf(http.StatusNotFound, "", "Not Found"))
		return
	}
	e.mux.ServeHTTP(w, r)
}

// serveAPI is the pipeline of every /api/v2 request: faults, rate limit,
// token, scope, then the handler.
func (e *Emulator) serveAPI(rt *route, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	if rt.write && rt.pattern != "POST /api/v2/jobs/users-exports" {
		e.writes.Add(1)
	}
	act := e.pickFault(rt.pattern, rt.write)
	if d := act.latency; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	defer func() {
		e.log.LogAttrs(context.Background(), slog.LevelDebug, "request",
			slog.String("endpoint", rt.pattern), slog.Int("status", sw.status), slog.Duration("took", time.Since(start)))
	}()
	switch {
	case act.drop:
		e.record(rt.pattern, 0)
		panic(http.ErrAbortHandler)
	case act.status != 0:
		e.record(rt.pattern, act.status)
		if act.status == http.StatusTooManyRequests {
			e.setRateHeaders(sw, rateAnswer{limit: 1, remaining: 0, reset: e.now().Unix() + 1})
			if e.opts.RetryAfter {
				sw.Header().Set("Retry-After", "1")
			}
			writeError(sw, errorf(act.status, "too_many_requests", "Global limit has been reached"))
			return
		}
		writeError(sw, errorf(act.status, "", "%s", faultMessage(act.status)))
		return
	}

	ans := e.takeRate(rt.pattern)
	e.setRateHeaders(sw, ans)
	if !ans.ok {
		if e.opts.RetryAfter {
			sw.Header().Set("Retry-After", strconv.FormatInt(max(1, ans.reset-e.now().Unix()), 10))
		}
		writeError(sw, errorf(http.StatusTooManyRequests, "too_many_requests", "%s", ans.message))
		e.record(rt.pattern, sw.status)
		return
	}
	scopes, aerr := e.authenticate(r)
	if aerr == nil {
		aerr = checkScope(scopes, rt.scopes)
	}
	if aerr != nil {
		writeError(sw, aerr)
		e.record(rt.pattern, sw.status)
		return
	}
	c := &call{route: rt, scopes: scopes}
	e.advanceImports() // import jobs insert their users as time passes
	if act.loseAnswer {
		dw := &discardWriter{}
		rt.handle(dw, r, c)
		sw.status = 0
		e.record(rt.pattern, 0)
		e.log.LogAttrs(r.Context(), slog.LevelDebug, "answer lost", slog.String("endpoint", rt.pattern), slog.Int("applied_status", dw.status))
		panic(http.ErrAbortHandler)
	}
	rt.handle(sw, r, c)
	if sw.status == 0 {
		sw.WriteHeader(http.StatusOK)
	}
	e.record(rt.pattern, sw.status)
}

func faultMessage(status int) string {
	switch status {
	case http.StatusServiceUnavailable:
		return "The service is temporarily unavailable. Please try again later."
	case http.StatusUnauthorized:
		return "Invalid token"
	}
	return "Injected fault"
}

func checkScope(have map[string]bool, anyOf []string) *apiError {
	for _, s := range anyOf {
		if have[s] {
			return nil
		}
	}
	return errorf(http.StatusForbidden, "insufficient_scope", "Insufficient scope, expected any of: %s", strings.Join(anyOf, ","))
}

// faultAction is what the faults decided for one request.
type faultAction struct {
	latency    time.Duration
	status     int
	drop       bool
	loseAnswer bool
}

// pickFault consumes the first scripted fault that matches endpoint, or
// draws the random faults.
func (e *Emulator) pickFault(endpoint string, write bool) faultAction {
	e.faultMu.Lock()
	defer e.faultMu.Unlock()
	f := &e.faults
	var act faultAction
	if strings.HasPrefix(endpointPath(endpoint), "/api/v2/") {
		act.latency = f.Latency
		if f.LatencyJitter > 0 {
			act.latency += rand.N(f.LatencyJitter)
		}
	}
	for i := range f.Script {
		s := &f.Script[i]
		if s.Endpoint != "" && s.Endpoint != endpoint {
			continue
		}
		if s.After > 0 {
			s.After--
			return act // let through, and no later entry applies to it
		}
		act.status, act.drop, act.loseAnswer = s.Status, s.Drop, s.LoseAnswer
		if s.Times <= 1 {
			f.Script = append(f.Script[:i:i], f.Script[i+1:]...)
		} else {
			s.Times--
		}
		if act.loseAnswer {
			act.status, act.drop = 0, false
		} else if act.drop {
			act.status = 0
		}
		return act
	}
	if act.latency == 0 && f.ErrorRate == 0 && f.DropRate == 0 && f.LostWriteRate == 0 {
		return act
	}
	if !strings.HasPrefix(endpointPath(endpoint), "/api/v2/") {
		return act
	}
	switch x := rand.Float64(); {
	case x < f.DropRate:
		act.drop = true
	case x < f.DropRate+f.ErrorRate:
		act.status = http.StatusServiceUnavailable
	case write && rand.Float64() < f.LostWriteRate:
		act.loseAnswer = true
	}
	return act
}

func endpointPath(endpoint string) string {
	_, p, _ := strings.Cut(endpoint, " ")
	return p
}
