package emulator

import (
	"cmp"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// user is one account of the tenant.
type user struct {
	id      string
	conn    *connection
	attrs   map[string]any       // root attributes: email, email_verified, username, name, nickname, …, blocked
	app     map[string]any       // app_metadata; empty = absent
	meta    map[string]any       // user_metadata; nil = absent, empty = {} (see mergeMetadata)
	roles   map[string]time.Time // role id → when it was assigned (µs)
	created time.Time
	updated time.Time
	pwReset time.Time
	seq     int64
}

// timeFormat is how Auth0 writes timestamps: ISO 8601, milliseconds, Z.
const timeFormat = "2006-01-02T15:04:05.000Z"

func ts(t time.Time) string { return t.UTC().Format(timeFormat) }

// render is the user as GET /api/v2/users/{id} returns it. The maps are
// fresh; nested metadata values are shared but never changed in place.
func (u *user) render() map[string]any {
	doc := make(map[string]any, len(u.attrs)+8)
	maps.Copy(doc, u.attrs)
	doc["user_id"] = u.id
	doc["identities"] = []any{map[string]any{
		"connection": u.conn.name,
		"user_id":    strings.TrimPrefix(u.id, "auth0|"),
		"provider":   "auth0",
		"isSocial":   false,
	}}
	doc["created_at"] = ts(u.created)
	doc["updated_at"] = ts(u.updated)
	if len(u.app) > 0 {
		doc["app_metadata"] = maps.Clone(u.app)
	}
	if u.meta != nil {
		doc["user_metadata"] = maps.Clone(u.meta)
	}
	if !u.pwReset.IsZero() {
		doc["last_password_reset"] = ts(u.pwReset)
	}
	return doc
}

func (u *user) str(attr string) string {
	s, _ := u.attrs[attr].(string)
	return s
}

func emailKey(c *connection, email string) string       { return c.name + "\x00" + email }
func usernameKey(c *connection, username string) string { return c.name + "\x01" + username }

// Property sets of the user payloads.
var (
	createProps = set("connection", "email", "phone_number", "user_metadata", "blocked", "email_verified", "phone_verified",
		"app_metadata", "given_name", "family_name", "name", "nickname", "picture", "user_id", "verify_email", "username", "password")
	patchProps = set("app_metadata", "blocked", "email", "email_verified", "family_name", "given_name", "name", "nickname", "password",
		"phone_number", "phone_verified", "picture", "username", "user_metadata", "verify_email", "verify_phone_number", "connection", "client_id")
	stringProps = set("connection", "email", "phone_number", "given_name", "family_name", "name", "nickname", "picture", "user_id", "password", "username", "client_id")
	boolProps   = set("blocked", "email_verified", "phone_verified", "verify_email", "verify_phone_number")
	objectProps = set("app_metadata", "user_metadata")
	// profileProps may be unset with null in a PATCH.
	profileProps = set("given_name", "family_name", "name", "nickname", "picture", "phone_number", "blocked", "phone_verified")
	// lengths are [min, max] of string properties.
	lengths = map[string][2]int{
		"given_name": {1, 150}, "family_name": {1, 150}, "name": {1, 300}, "nickname": {1, 300},
		"user_id": {0, 255}, "username": {1, 128}, "picture": {1, 2048}, "password": {1, 512}, "email": {1, 512},
	}
)

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

var (
	emailRe = regexp.MustCompile(`^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$`)
	phoneRe = regexp.MustCompile(`^\+[0-9]{1,15}$`)
)

// checkProps checks the names and JSON types of a payload's properties.
func checkProps(body map[string]any, allowed map[string]bool, nullable map[string]bool) *apiError {
	names := slices.Sorted(maps.Keys(body))
	for _, k := range names {
		if !allowed[k] {
			return errExtra(k)
		}
	}
	for _, k := range names {
		v := body[k]
		if v == nil {
			if nullable[k] {
				continue
			}
		}
		want := ""
		switch {
		case stringProps[k]:
			want = "string"
		case boolProps[k]:
			want = "boolean"
		case objectProps[k]:
			want = "object"
		}
		if want != "" && jsonKind(v) != want {
			return errProp(k, "Expected type %s but found type %s", want, jsonKind(v))
		}
		if s, ok := v.(string); ok {
			if l, ok := lengths[k]; ok {
				n := utf8.RuneCountInString(s)
				if n < l[0] {
					return errProp(k, "String is too short (%d chars), minimum %d", n, l[0])
				}
				if n > l[1] {
					return errProp(k, "String is too long (%d chars), maximum %d", n, l[1])
				}
			}
		}
		if m, ok := v.(map[string]any); ok {
			for mk := range m {
				if strings.ContainsAny(mk, ".$") {
					return errorf(http.StatusBadRequest, "invalid_body", "Payload validation error: metadata keys must not contain '.' or '$', got %q on property %s.", mk, k)
				}
			}
		}
	}
	if s, ok := body["email"].(string); ok && !emailRe.MatchString(s) {
		return errProp("email", "Object didn't pass validation for format email: %s", s)
	}
	if s, ok := body["phone_number"].(string); ok && !phoneRe.MatchString(s) {
		return errProp("phone_number", "String does not match pattern ^\\+[0-9]{1,15}$: %s", s)
	}
	if s, ok := body["user_id"].(string); ok && strings.ContainsFunc(s, unicode.IsSpace) {
		return errProp("user_id", "String does not match pattern ^\\S*$: %s", s)
	}
	return nil
}

// checkPassword applies the "good" policy of a database connection: at least
// 8 characters of at least 3 of lower case, upper case, digits and others.
// Auth0 says no more than that, on purpose.
func checkPassword(p string) *apiError {
	var lower, upper, digit, other int
	for _, c := range p {
		switch {
		case unicode.IsLower(c):
			lower = 1
		case unicode.IsUpper(c):
			upper = 1
		case unicode.IsDigit(c):
			digit = 1
		default:
			other = 1
		}
	}
	if utf8.RuneCountInString(p) < 8 || lower+upper+digit+other < 3 {
		return errorf(http.StatusBadRequest, "", "PasswordStrengthError: Password is too weak")
	}
	return nil
}

// checkUsername applies the username rules of a connection that requires
// one; it returns the username as stored (lower case).
func (e *Emulator) checkUsername(s string) (string, *apiError) {
	if !e.opts.RequiresUsername {
		return "", errorf(http.StatusBadRequest, "", "Cannot set username for connection without requires_username.")
	}
	n := utf8.RuneCountInString(s)
	if n < 1 || n > e.opts.UsernameMaxLength {
		return "", errorf(http.StatusBadRequest, "", "The username must be between 1 and %d characters long.", e.opts.UsernameMaxLength)
	}
	if emailRe.MatchString(s) {
		return "", errorf(http.StatusBadRequest, "", "The username cannot be an email address.")
	}
	for _, c := range s {
		if !(c < utf8.RuneSelf && (unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("_+-.!#$'^`~@", c))) {
			return "", errorf(http.StatusBadRequest, "", "The username can only contain alphanumeric characters and '_', '+', '-', '.', '!', '#', '$', ''', '^', '`', '~' and '@'.")
		}
	}
	return strings.ToLower(s), nil
}

func gravatar(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(email)))
	initials := "us"
	if len(email) >= 2 {
		initials = strings.ToLower(email[:2])
	}
	return "https://s.gravatar.com/avatar/" + hex.EncodeToString(sum[:]) + "?s=480&r=pg&d=https%3A%2F%2Fcdn.auth0.com%2Favatars%2F" + initials + ".png"
}

func newUserID() string {
	b := make([]byte, 12)
	for i := range b {
		b[i] = byte(rand.IntN(256))
	}
	return hex.EncodeToString(b)
}

// createUser is POST /api/v2/users.
func (e *Emulator) createUser(w http.ResponseWriter, r *http.Request, _ *call) {
	body, aerr := readObject(w, r)
	if aerr == nil {
		aerr = checkProps(body, createProps, nil)
	}
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	connName, ok := body["connection"].(string)
	if !ok {
		writeError(w, errMissing("connection"))
		return
	}
	conn := e.connectionByName(connName)
	if conn == nil {
		writeError(w, errorf(http.StatusBadRequest, "", "Connection does not exist."))
		return
	}
	email, hasEmail := body["email"].(string)
	username, hasUsername := body["username"].(string)
	password, hasPassword := body["password"].(string)
	switch {
	case !hasEmail && !e.opts.RequiresUsername:
		writeError(w, errMissing("email"))
		return
	case !hasUsername && e.opts.RequiresUsername:
		writeError(w, errMissing("username"))
		return
	case hasUsername && !e.opts.RequiresUsername:
		writeError(w, errorf(http.StatusBadRequest, "", "Cannot set username for connection without requires_username."))
		return
	case !hasPassword:
		writeError(w, errMissing("password"))
		return
	}
	if aerr := checkPassword(password); aerr != nil {
		writeError(w, aerr)
		return
	}
	if hasUsername {
		if username, aerr = e.checkUsername(username); aerr != nil {
			writeError(w, aerr)
			return
		}
	}
	email = strings.ToLower(email)
	now := e.now()
	u := &user{conn: conn, attrs: map[string]any{}, roles: map[string]time.Time{}, created: now, updated: now}
	for k, v := range body {
		switch k {
		case "connection", "password", "verify_email", "user_id", "app_metadata", "user_metadata":
		case "email":
			u.attrs[k] = email
		case "username":
			u.attrs[k] = username
		default:
			u.attrs[k] = v
		}
	}
	u.attrs["email_verified"] = body["email_verified"] == true
	if hasEmail {
		local, _, _ := strings.Cut(email, "@")
		u.attrs["name"] = cmp.Or(u.str("name"), email)
		u.attrs["nickname"] = cmp.Or(u.str("nickname"), local)
		u.attrs["picture"] = cmp.Or(u.str("picture"), gravatar(email))
	} else {
		u.attrs["name"] = cmp.Or(u.str("name"), username)
		u.attrs["nickname"] = cmp.Or(u.str("nickname"), username)
		u.attrs["picture"] = cmp.Or(u.str("picture"), gravatar(username))
	}
	u.app, _ = body["app_metadata"].(map[string]any)
	u.meta, _ = body["user_metadata"].(map[string]any)
	if len(u.meta) == 0 {
		u.meta = nil // what Auth0 answers to a create with {} is not known: absent, as before
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if hasEmail && e.byKey[emailKey(conn, email)] != "" {
		writeError(w, errorf(http.StatusConflict, "auth0_idp_error", "The user already exists."))
		return
	}
	if hasUsername && e.byKey[usernameKey(conn, username)] != "" {
		writeError(w, errorf(http.StatusBadRequest, "auth0_idp_error", "The username provided is in use already."))
		return
	}
	u.id = "auth0|" + newUserID()
	if custom, _ := body["user_id"].(string); custom != "" {
		u.id = "auth0|" + custom
	}
	if e.users[u.id] != nil {
		writeError(w, errorf(http.StatusConflict, "auth0_idp_error", "The user already exists."))
		return
	}
	e.seq++
	u.seq = e.seq
	e.users[u.id] = u
	if hasEmail {
		e.byKey[emailKey(conn, email)] = u.id
	}
	if hasUsername {
		e.byKey[usernameKey(conn, username)] = u.id
	}
	e.indexLocked(u.id, u)
	writeJSON(w, http.StatusCreated, u.render())
}

// getUser is GET /api/v2/users/{id}.
func (e *Emulator) getUser(w http.ResponseWriter, r *http.Request, _ *call) {
	qp := &queryParams{q: r.URL.Query()}
	pr := qp.fields()
	if qp.err != nil {
		writeError(w, qp.err)
		return
	}
	e.mu.Lock()
	u := e.users[r.PathValue("id")]
	var doc map[string]any
	if u != nil {
		doc = u.render()
	}
	e.mu.Unlock()
	if u == nil {
		writeError(w, errUserNotFound())
		return
	}
	writeJSON(w, http.StatusOK, pr.apply(doc))
}

// patchConflicts are the pairs of properties one PATCH may not carry together.
var patchConflicts = [][2]string{
	{"password", "email"}, {"password", "email_verified"}, {"username", "email"},
	{"username", "email_verified"}, {"username", "password"},
}

// patchUser is PATCH /api/v2/users/{id}.
func (e *Emulator) patchUser(w http.ResponseWriter, r *http.Request, c *call) {
	body, aerr := readObject(w, r)
	if aerr == nil {
		aerr = checkProps(body, patchProps, profileProps)
	}
	if aerr == nil && len(body) == 0 {
		aerr = errorf(http.StatusBadRequest, "invalid_body", "Payload validation error: 'Too few properties defined (0), minimum 1'.")
	}
	if aerr == nil && !c.scopes["update:users"] {
		for k := range body {
			if k != "app_metadata" && k != "user_metadata" {
				aerr = errorf(http.StatusForbidden, "insufficient_scope", "Insufficient scope, expected any of: update:users")
				break
			}
		}
	}
	if aerr == nil {
		for _, p := range patchConflicts {
			_, a := body[p[0]]
			_, b := body[p[1]]
			if a && b {
				aerr = errorf(http.StatusBadRequest, "", "Cannot update %s and %s simultaneously.", p[0], p[1])
				break
			}
		}
	}
	if aerr != nil {
		writeError(w, aerr)
		return
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.users[r.PathValue("id")]
	if old == nil {
		writeError(w, errUserNotFound())
		return
	}
	if conn, ok := body["connection"].(string); ok && conn != old.conn.name {
		writeError(w, errorf(http.StatusBadRequest, "", "Connection does not exist."))
		return
	}
	u := *old
	u.attrs = maps.Clone(old.attrs)
	now := e.now()
	var newEmail, newUsername string
	for k, v := range body {
		switch k {
		case "connection", "client_id", "verify_email", "verify_phone_number":
		case "app_metadata":
			u.app = mergeMetadata(old.app, v, false)
		case "user_metadata":
			u.meta = mergeMetadata(old.meta, v, true)
		case "password":
			if aerr := checkPassword(v.(string)); aerr != nil {
				writeError(w, aerr)
				return
			}
			u.pwReset = now
		case "email":
			newEmail = strings.ToLower(v.(string))
			if newEmail == old.str("email") {
				break
			}
			if id := e.byKey[emailKey(u.conn, newEmail)]; id != "" && id != u.id {
				writeError(w, errorf(http.StatusBadRequest, "auth0_idp_error", "The specified new email already exists"))
				return
			}
			u.attrs["email"] = newEmail
			if _, set := body["email_verified"]; !set {
				u.attrs["email_verified"] = false
			}
		case "username":
			name, aerr := e.checkUsername(v.(string))
			if aerr != nil {
				writeError(w, aerr)
				return
			}
			if id := e.byKey[usernameKey(u.conn, name)]; id != "" && id != u.id {
				writeError(w, errorf(http.StatusBadRequest, "auth0_idp_error", "The username provided is in use already."))
				return
			}
			newUsername = name
			u.attrs["username"] = name
		default:
			if v == nil {
				delete(u.attrs, k)
			} else {
				u.attrs[k] = v
			}
		}
	}
	u.updated = now
	if newEmail != "" && newEmail != old.str("email") {
		if prev := old.str("email"); prev != "" {
			delete(e.byKey, emailKey(u.conn, prev))
		}
		e.byKey[emailKey(u.conn, newEmail)] = u.id
	}
	if newUsername != "" && newUsername != old.str("username") {
		if prev := old.str("username"); prev != "" {
			delete(e.byKey, usernameKey(u.conn, prev))
		}
		e.byKey[usernameKey(u.conn, newUsername)] = u.id
	}
	*old = u
	e.indexLocked(u.id, old)
	writeJSON(w, http.StatusOK, old.render())
}

// mergeMetadata merges a PATCH's metadata into old at the first level: a
// null value deletes its key. A PATCH with {} clears the whole object, and
// here Auth0 treats the two metadata differently: app_metadata disappears
// from the user, while user_metadata stays as {} (keepEmpty) in the answer and
// in every later GET (real traffic replayed in issue 12). A user_metadata
// whose last key is deleted with null is absent, as before: no recorded
// answer says otherwise.
func mergeMetadata(old map[string]any, patch any, keepEmpty bool) map[string]any {
	p, _ := patch.(map[string]any)
	if len(p) == 0 {
		if keepEmpty {
			return map[string]any{}
		}
		return nil
	}
	out := maps.Clone(old)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// deleteUser is DELETE /api/v2/users/{id}: 204 whether or not it existed.
func (e *Emulator) deleteUser(w http.ResponseWriter, r *http.Request, _ *call) {
	id := r.PathValue("id")
	e.mu.Lock()
	if u := e.users[id]; u != nil {
		delete(e.users, id)
		if s := u.str("email"); s != "" {
			delete(e.byKey, emailKey(u.conn, s))
		}
		if s := u.str("username"); s != "" {
			delete(e.byKey, usernameKey(u.conn, s))
		}
		e.indexLocked(id, nil)
	}
	e.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// usersByEmail is GET /api/v2/users-by-email: exact (case-sensitive) match on
// the stored, lower-cased e-mail, in every connection.
func (e *Emulator) usersByEmail(w http.ResponseWriter, r *http.Request, _ *call) {
	qp := &queryParams{q: r.URL.Query()}
	pr := qp.fields()
	email := qp.str("email")
	switch {
	case qp.err != nil:
	case !qp.has("email"):
		qp.err = errorf(http.StatusBadRequest, "invalid_query_string", "Query validation error: 'Missing required property: email'.")
	case !emailRe.MatchString(email):
		qp.err = errQuery("email", "Object didn't pass validation for format email: %s", email)
	}
	if qp.err != nil {
		writeError(w, qp.err)
		return
	}
	e.mu.Lock()
	var found []*user
	for _, c := range e.connections {
		if u := e.users[e.byKey[emailKey(c, email)]]; u != nil {
			found = append(found, u)
		}
	}
	slices.SortFunc(found, func(a, b *user) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]map[string]any, 0, len(found))
	for _, u := range found {
		out = append(out, pr.apply(u.render()))
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// Users returns every user as GET /api/v2/users/{id} would return it, decoded
// by encoding/json (numbers are float64), in creation order.
func (e *Emulator) Users() []map[string]any {
	e.mu.Lock()
	all := slices.SortedFunc(maps.Values(e.users), func(a, b *user) int { return cmp.Compare(a.seq, b.seq) })
	docs := make([]map[string]any, len(all))
	for i, u := range all {
		docs[i] = u.render()
	}
	e.mu.Unlock()
	out := make([]map[string]any, len(docs))
	for i, d := range docs {
		b, _ := json.Marshal(d)
		_ = json.Unmarshal(b, &out[i])
	}
	return out
}

// User returns one user as Users does, or nil.
func (e *Emulator) User(id string) map[string]any {
	e.mu.Lock()
	u := e.users[id]
	var doc map[string]any
	if u != nil {
		doc = u.render()
	}
	e.mu.Unlock()
	if doc == nil {
		return nil
	}
	var out map[string]any
	b, _ := json.Marshal(doc)
	_ = json.Unmarshal(b, &out)
	return out
}

// indexEntry is a version of a user as the search index sees it from at on;
// a nil doc is a deletion.
type indexEntry struct {
	at  time.Time
	doc map[string]any
}

// indexLocked records a write for the lagging search index (u nil = deleted).
func (e *Emulator) indexLocked(id string, u *user) {
	if e.opts.SearchDelay <= 0 {
		return
	}
	var doc map[string]any
	if u != nil {
		doc = u.render()
		doc[seqKey] = u.seq
	}
	now := e.now()
	hist := append(e.history[id], indexEntry{at: now.Add(e.opts.SearchDelay), doc: doc})
	// Versions hidden behind a visible newer one are dead: drop them.
	for len(hist) > 1 && !hist[1].at.After(now) {
		hist = hist[1:]
	}
	e.history[id] = hist
}

// seqKey carries a user's creation order inside index documents; it is
// removed before a document is answered.
const seqKey = "\x00seq"

// searchDocsLocked returns the users search sees now, in creation order.
func (e *Emulator) searchDocsLocked() []map[string]any {
	var docs []map[string]any
	if e.opts.SearchDelay <= 0 {
		all := slices.SortedFunc(maps.Values(e.users), func(a, b *user) int { return cmp.Compare(a.seq, b.seq) })
		for _, u := range all {
			d := u.render()
			d[seqKey] = u.seq
			docs = append(docs, d)
		}
		return docs
	}
	now := e.now()
	for id, hist := range e.history {
		i := -1
		for j, h := range hist {
			if !h.at.After(now) {
				i = j
			}
		}
		if i < 0 {
			continue
		}
		if i > 0 {
			hist = hist[i:]
			e.history[id] = hist
		}
		if hist[0].doc == nil {
			if len(hist) == 1 {
				delete(e.history, id)
			}
			continue
		}
		docs = append(docs, maps.Clone(hist[0].doc))
	}
	slices.SortFunc(docs, func(a, b map[string]any) int { return cmp.Compare(a[seqKey].(int64), b[seqKey].(int64)) })
	return docs
}

// listUsers is GET /api/v2/users: search (eventually consistent) with paging.
func (e *Emulator) listUsers(w http.ResponseWriter, r *http.Request, _ *call) {
	qp := &queryParams{q: r.URL.Query()}
	perPage := qp.int("per_page", 50, 0, 100)
	page := qp.int("page", 0, 0, -1)
	totals := qp.bool("include_totals")
	pr := qp.fields()
	var sortField string
	sortDir := 1
	if s := qp.str("sort"); qp.err == nil && s != "" {
		f, d, ok := strings.Cut(s, ":")
		if !ok || f == "" || (d != "1" && d != "-1") || strings.HasPrefix(f, "app_metadata") || strings.HasPrefix(f, "user_metadata") {
			qp.err = errQuery("sort", "String does not match pattern ^(([a-zA-Z0-9_\\.]+))\\:(1|-1)$: %s", s)
		}
		sortField = f
		if d == "-1" {
			sortDir = -1
		}
	}
	if se := qp.str("search_engine"); qp.err == nil && se != "" && se != "v3" {
		qp.err = errorf(http.StatusBadRequest, "invalid_query_string", "You are not allowed to use search_engine=%s.", se)
	}
	if qp.err == nil && perPage > 0 && (page+1)*perPage > 1000 {
		qp.err = errorf(http.StatusBadRequest, "invalid_paging", "You can only page through the first 1000 records. See https://auth0.com/docs/users/search/v3/view-search-results-by-page#limitation")
	}
	var q *Query
	if s := strings.TrimSpace(qp.str("q")); qp.err == nil && s != "" {
		var err error
		if q, err = ParseQuery(s); err != nil {
			qp.err = errorf(http.StatusBadRequest, "invalid_query_string", "Query validation error: %s", err)
		}
	}
	if qp.err != nil {
		writeError(w, qp.err)
		return
	}
	e.mu.Lock()
	docs := e.searchDocsLocked()
	e.mu.Unlock()
	if q != nil {
		docs = slices.DeleteFunc(docs, func(d map[string]any) bool { return !q.Match(d) })
	}
	if sortField != "" {
		slices.SortStableFunc(docs, func(a, b map[string]any) int {
			va, _ := lookup(a, sortField)
			vb, _ := lookup(b, sortField)
			return sortDir * cmp.Compare(fmt.Sprint(va), fmt.Sprint(vb))
		})
	}
	total := len(docs)
	start := min(page*perPage, total)
	end := min(start+perPage, total)
	out := make([]map[string]any, 0, end-start)
	for _, d := range docs[start:end] {
		delete(d, seqKey)
		out = append(out, pr.apply(d))
	}
	if !totals {
		writeJSON(w, http.StatusOK, out)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"start": page * perPage, "limit": perPage, "length": len(out), "users": out, "total": total})
}
