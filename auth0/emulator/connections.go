package emulator

import (
	"net/http"
	"slices"
	"sync"
)

// The connections endpoint and the grants that change at run time: enough to
// reproduce an operator's configuration mistakes (a connection that does not
// exist, a scope not granted) and their fixes without a restart.

// listConnections is GET /api/v2/connections (read:connections), with the
// name filter; each connection is a database connection.
func (e *Emulator) listConnections(w http.ResponseWriter, r *http.Request, _ *call) {
	name := r.URL.Query().Get("name")
	out := []map[string]any{}
	for _, c := range e.connections {
		if name != "" && c.name != name {
			continue
		}
		out = append(out, map[string]any{
			"id": c.id, "name": c.name, "strategy": "auth0",
			"options": map[string]any{"requires_username": e.opts.RequiresUsername},
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// grants are the scopes tokens are issued with, changeable at run time.
type grants struct {
	mu     sync.Mutex
	scopes []string
}

// SetScopes changes the scopes granted to the application. Like Auth0, it
// affects tokens issued afterwards: a token carries the scopes it was issued
// with.
func (e *Emulator) SetScopes(scopes []string) {
	e.grants.mu.Lock()
	defer e.grants.mu.Unlock()
	e.grants.scopes = slices.Clone(scopes)
}

// grantedScopes returns the scopes granted now.
func (e *Emulator) grantedScopes() []string {
	e.grants.mu.Lock()
	defer e.grants.mu.Unlock()
	if e.grants.scopes == nil {
		return e.opts.Scopes
	}
	return slices.Clone(e.grants.scopes)
}
