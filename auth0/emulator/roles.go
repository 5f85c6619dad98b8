package emulator

import (
	"cmp"
	"encoding/base64"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"
)

// role is a role of the tenant.
type role struct {
	id          string
	name        string
	description string
}

func (r *role) render() map[string]any {
	return map[string]any{"id": r.id, "name": r.name, "description": r.description}
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomAlnum(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[rand.IntN(len(alnum))]
	}
	return string(b)
}

func (e *Emulator) addRole(name string) *role {
	for _, r := range e.roles {
		if r.name == name {
			return r
		}
	}
	r := &role{id: "rol_" + randomAlnum(16), name: name, description: name}
	e.roles = append(e.roles, r)
	return r
}

// AddRole creates a role (if there is none of that name) and returns its id.
func (e *Emulator) AddRole(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addRole(name).id
}

// RoleID returns the id of the role named name, or "".
func (e *Emulator) RoleID(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.roles {
		if r.name == name {
			return r.id
		}
	}
	return ""
}

func (e *Emulator) roleByIDLocked(id string) *role {
	for _, r := range e.roles {
		if r.id == id {
			return r
		}
	}
	return nil
}

// UserRoles returns the names of the roles of a user, sorted; nil if the user
// does not exist.
func (e *Emulator) UserRoles(userID string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.users[userID]
	if u == nil {
		return nil
	}
	names := []string{}
	for id := range u.roles {
		if r := e.roleByIDLocked(id); r != nil {
			names = append(names, r.name)
		}
	}
	slices.Sort(names)
	return names
}

// offsetPage reads page, per_page (1–100) and include_totals.
func offsetPage(qp *queryParams) (page, perPage int, totals bool) {
	perPage = qp.int("per_page", 50, 1, 100)
	page = qp.int("page", 0, 0, -1)
	totals = qp.bool("include_totals")
	return page, perPage, totals
}

func pageOf[T any](items []T, page, perPage int) []T {
	start := min(page*perPage, len(items))
	end := min(start+perPage, len(items))
	return items[start:end]
}

// listRoles is GET /api/v2/roles.
func (e *Emulator) listRoles(w http.ResponseWriter, r *http.Request, _ *call) {
	qp := &queryParams{q: r.URL.Query()}
	page, perPage, totals := offsetPage(qp)
	if qp.err != nil {
		writeError(w, qp.err)
		return
	}
	filter := strings.ToLower(qp.str("name_filter"))
	e.mu.Lock()
	var all []map[string]any
	for _, ro := range e.roles {
		if strings.Contains(strings.ToLower(ro.name), filter) {
			all = append(all, ro.render())
		}
	}
	e.mu.Unlock()
	out := append([]map[string]any{}, pageOf(all, page, perPage)...)
	if !totals {
		writeJSON(w, http.StatusOK, out)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"roles": out, "start": page * perPage, "limit": perPage, "total": len(all)})
}

// listUserRoles is GET /api/v2/users/{id}/roles.
func (e *Emulator) listUserRoles(w http.ResponseWriter, r *http.Request, _ *call) {
	qp := &queryParams{q: r.URL.Query()}
	page, perPage, totals := offsetPage(qp)
	if qp.err != nil {
		writeError(w, qp.err)
		return
	}
	e.mu.Lock()
	u := e.users[r.PathValue("id")]
	var all []map[string]any
	if u != nil {
		// Auth0 lists a user's roles by name, not by id or creation.
		var mine []*role
		for _, ro := range e.roles {
			if _, ok := u.roles[ro.id]; ok {
				mine = append(mine, ro)
			}
		}
		slices.SortFunc(mine, func(a, b *role) int { return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.id, b.id)) })
		for _, ro := range mine {
			all = append(all, ro.render())
		}
	}
	e.mu.Unlock()
	if u == nil {
		writeError(w, errUserNotFound())
		return
	}
	out := append([]map[string]any{}, pageOf(all, page, perPage)...)
	if !totals {
		writeJSON(w, http.StatusOK, out)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"roles": out, "start": page * perPage, "limit": perPage, "total": len(all)})
}

// readRoleIDs reads {"roles":["rol_…", …]}.
func readRoleIDs(w http.ResponseWriter, r *http.Request) ([]string, *apiError) {
	body, aerr := readObject(w, r)
	if aerr != nil {
		return nil, aerr
	}
	for _, k := range slices.Sorted(maps.Keys(body)) {
		if k != "roles" {
			return nil, errExtra(k)
		}
	}
	v, ok := body["roles"]
	if !ok {
		return nil, errMissing("roles")
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, errProp("roles", "Expected type array but found type %s", jsonKind(v))
	}
	if len(arr) == 0 {
		return nil, errProp("roles", "Array is too short (0), minimum 1")
	}
	ids := make([]string, len(arr))
	for i, x := range arr {
		s, ok := x.(string)
		if !ok {
			return nil, errProp("roles", "Expected type string but found type %s", jsonKind(x))
		}
		ids[i] = s
	}
	return ids, nil
}

// assignUserRoles is POST /api/v2/users/{id}/roles: 204, no body.
func (e *Emulator) assignUserRoles(w http.ResponseWriter, r *http.Request, _ *call) {
	e.changeUserRoles(w, r, true)
}

// removeUserRoles is DELETE /api/v2/users/{id}/roles: 204, no body.
func (e *Emulator) removeUserRoles(w http.ResponseWriter, r *http.Request, _ *call) {
	e.changeUserRoles(w, r, false)
}

func (e *Emulator) changeUserRoles(w http.ResponseWriter, r *http.Request, add bool) {
	ids, aerr := readRoleIDs(w, r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.users[r.PathValue("id")]
	if u == nil {
		writeError(w, errUserNotFound())
		return
	}
	for _, id := range ids {
		if e.roleByIDLocked(id) == nil {
			writeError(w, errRoleNotFound())
			return
		}
	}
	now := e.now()
	for _, id := range ids {
		if add {
			assignLocked(u, id, now)
		} else {
			delete(u.roles, id)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// assignLocked gives u the role: it records when, to the microsecond, which
// is where the member sorts in GET /roles/{id}/users. A role the user has
// already keeps its first assignment time (Auth0's answer to a repeated
// assignment is not known; a no-op is the likelier).
func assignLocked(u *user, roleID string, now time.Time) {
	if _, ok := u.roles[roleID]; !ok {
		u.roles[roleID] = now.UTC().Truncate(time.Microsecond)
	}
}

// Orders of GET /api/v2/roles/{id}/users (Options.RoleMembersOrder).
const (
	// RoleMembersByAssignment is Auth0's: members in the order they were
	// assigned the role (then by user_id); the checkpoint encodes the
	// assignment time, to the microsecond.
	RoleMembersByAssignment = "assigned"
	// RoleMembersByCreation is the emulator's order before issue 12: by the
	// user's created_at (milliseconds), then user_id. Kept so that tests can
	// show the drift scan is right under either order.
	RoleMembersByCreation = "created"
)

// member is a user as GET /api/v2/roles/{id}/users lists it, with its
// position in the listing (at, then user_id).
type member struct {
	at  time.Time
	id  string
	doc map[string]any
}

func compareMembers(a, b member) int {
	return cmp.Or(a.at.Compare(b.at), strings.Compare(a.id, b.id))
}

// checkpointTime is how the checkpoint writes a member's position: Auth0's
// next is base64 of "2023-03-14 13:41:28.961000UTC,auth0|64107988d3534be8b2dc383c"
// (go-auth0 recording TestRoleManager_UsersCheckpointPagination: three users
// assigned in one request, listed by user_id, at a time after their
// created_at).
const checkpointTime = "2006-01-02 15:04:05.000000"

// checkpoint is the opaque "next" of checkpoint paging: base64 of
// "<position>UTC,<user_id>" of the last member returned, as Auth0's.
func checkpoint(m member) string {
	return base64.StdEncoding.EncodeToString([]byte(m.at.UTC().Format(checkpointTime) + "UTC," + m.id))
}

func parseCheckpoint(s string) (member, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return member{}, false
	}
	t, id, ok := strings.Cut(string(b), "UTC,")
	if !ok || id == "" {
		return member{}, false
	}
	// The layout has no fraction: when parsing, Go accepts any number of
	// fractional digits after the seconds.
	at, err := time.Parse("2006-01-02 15:04:05", t)
	if err != nil {
		return member{}, false
	}
	return member{at: at, id: id}, true
}

// listRoleUsers is GET /api/v2/roles/{id}/users, with offset paging (page,
// per_page, include_totals; first 1,000 only) or checkpoint paging (from,
// take; "next" absent on the last page). take wins over per_page. Members
// come in the order of Options.RoleMembersOrder (Auth0's: by assignment
// time); a checkpoint is a position, not a member, so it survives the
// removal of the member it names, and a member assigned while a client pages
// sorts after every checkpoint already served (unless it is assigned within
// the same microsecond and its user_id sorts first).
func (e *Emulator) listRoleUsers(w http.ResponseWriter, r *http.Request, _ *call) {
	qp := &queryParams{q: r.URL.Query()}
	checkpointPaging := qp.has("take") || qp.has("from")
	var (
		page, perPage, take int
		totals              bool
		from                member
		hasFrom             bool
	)
	if checkpointPaging {
		take = qp.int("take", 50, 1, 100)
		if s := qp.str("from"); s != "" && qp.err == nil {
			if from, hasFrom = parseCheckpoint(s); !hasFrom {
				qp.err = errQuery("from", "Invalid checkpoint: %s", s)
			}
		}
	} else {
		page, perPage, totals = offsetPage(qp)
		if qp.err == nil && (page+1)*perPage > 1000 {
			qp.err = errorf(http.StatusBadRequest, "invalid_paging", "Requesting page %d exceeds the allowed maximum of 1000 records. To fetch results beyond 1000, use the checkpoint pagination method", page)
		}
	}
	if qp.err != nil {
		writeError(w, qp.err)
		return
	}
	roleID := r.PathValue("id")
	e.mu.Lock()
	ro := e.roleByIDLocked(roleID)
	var all []member
	byCreation := e.opts.RoleMembersOrder == RoleMembersByCreation
	if ro != nil {
		for _, u := range e.users {
			at, ok := u.roles[roleID]
			if !ok {
				continue
			}
			if byCreation {
				at = u.created.UTC().Truncate(time.Millisecond)
			}
			all = append(all, member{at: at, id: u.id, doc: map[string]any{
				"user_id": u.id, "email": u.attrs["email"], "picture": u.attrs["picture"], "name": u.attrs["name"],
			}})
		}
	}
	e.mu.Unlock()
	if ro == nil {
		writeError(w, errRoleNotFound())
		return
	}
	slices.SortFunc(all, compareMembers)
	docs := func(ms []member) []map[string]any {
		out := make([]map[string]any, len(ms))
		for i, m := range ms {
			out[i] = m.doc
		}
		return out
	}
	if checkpointPaging {
		start := 0
		if hasFrom {
			start, _ = slices.BinarySearchFunc(all, from, compareMembers)
			if start < len(all) && compareMembers(all[start], from) == 0 {
				start++
			}
		}
		end := min(start+take, len(all))
		res := map[string]any{"users": docs(all[start:end])}
		if end < len(all) {
			res["next"] = checkpoint(all[end-1])
		}
		writeJSON(w, http.StatusOK, res)
		return
	}
	out := docs(pageOf(all, page, perPage))
	if !totals {
		writeJSON(w, http.StatusOK, out)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out, "start": page * perPage, "limit": perPage, "total": len(all)})
}

// addRoleUsers is POST /api/v2/roles/{id}/users: {"users":["auth0|…"]} → 200
// {} (unlike POST /users/{id}/roles, which answers 204).
func (e *Emulator) addRoleUsers(w http.ResponseWriter, r *http.Request, _ *call) {
	body, aerr := readObject(w, r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	for _, k := range slices.Sorted(maps.Keys(body)) {
		if k != "users" {
			writeError(w, errExtra(k))
			return
		}
	}
	arr, ok := body["users"].([]any)
	switch {
	case body["users"] == nil:
		writeError(w, errMissing("users"))
		return
	case !ok:
		writeError(w, errProp("users", "Expected type array but found type %s", jsonKind(body["users"])))
		return
	case len(arr) == 0:
		writeError(w, errProp("users", "Array is too short (0), minimum 1"))
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ro := e.roleByIDLocked(r.PathValue("id"))
	if ro == nil {
		writeError(w, errRoleNotFound())
		return
	}
	var users []*user
	for _, x := range arr {
		id, _ := x.(string)
		u := e.users[id]
		if u == nil {
			// All or nothing: no user of the call gets the role
			// (auth0-bulk.md §2).
			writeError(w, errorf(http.StatusNotFound, "", "One or more of the users do not exist."))
			return
		}
		users = append(users, u)
	}
	now := e.now()
	for _, u := range users {
		assignLocked(u, ro.id, now)
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}
