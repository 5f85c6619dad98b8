package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"unicode"
)

// ManagedKeys are the app_metadata and user_metadata keys syncd owns
// (syncd_managed_keys): it sets them from the mapping and removes them (null)
// when the mapping stops giving them. Every other key is left alone.
type ManagedKeys struct {
	App  []string `json:"app_metadata"`
	User []string `json:"user_metadata"`
}

// DefaultManagedKeys are the keys of the reference guide's mapping (what
// migration 10 declares).
var DefaultManagedKeys = ManagedKeys{
	App:  []string{"connecteam_id", "created_by", "department", "employee_id", "internal_id", "role_code", "sync_status"},
	User: []string{"department", "employee_id", "full_name", "phone_number"},
}

// ownKeys are the app_metadata keys that are always syncd's, declared or not:
// employee_id is how syncd finds an account again, created_by marks it managed.
var ownKeys = []string{"created_by", "employee_id"}

// withOwn returns k with ownKeys among the app_metadata keys, sorted.
func (k ManagedKeys) withOwn() ManagedKeys {
	app := slices.Clone(k.App)
	for _, o := range ownKeys {
		if !slices.Contains(app, o) {
			app = append(app, o)
		}
	}
	slices.Sort(app)
	user := slices.Clone(k.User)
	slices.Sort(user)
	return ManagedKeys{App: app, User: user}
}

// LoadManagedKeys reads syncd_managed_keys.
func LoadManagedKeys(ctx context.Context, q Querier) (ManagedKeys, error) {
	rows, err := q.Query(ctx, `SELECT metadata, key FROM syncd_managed_keys ORDER BY metadata, key`)
	if err != nil {
		return ManagedKeys{}, fmt.Errorf("read syncd_managed_keys: %w", err)
	}
	var k ManagedKeys
	for rows.Next() {
		var md, key string
		if err := rows.Scan(&md, &key); err != nil {
			rows.Close()
			return ManagedKeys{}, fmt.Errorf("read syncd_managed_keys: %w", err)
		}
		if md == "app_metadata" {
			k.App = append(k.App, key)
		} else {
			k.User = append(k.User, key)
		}
	}
	if err := rows.Err(); err != nil {
		return ManagedKeys{}, fmt.Errorf("read syncd_managed_keys: %w", err)
	}
	return k.withOwn(), nil
}

// app_metadata.sync_status values.
const (
	syncStatusActive     = "active"
	syncStatusTerminated = "terminated"
)

// State is the part of an Auth0 account that syncd manages after creation.
// It serves both as the desired state (from a row) and as the observed state
// (from Auth0), so that Diff compares like with like.
type State struct {
	Email   string `json:"email"`
	Name    string `json:"name"`
	Blocked bool   `json:"blocked"`
	// App and User hold the managed metadata keys that should exist (desired)
	// or do exist (observed); a managed key absent here is absent there.
	App  map[string]any `json:"app_metadata"`
	User map[string]any `json:"user_metadata"`
	// Role is the Auth0 role name the employee should have ("" when the
	// employee has no mapped role). In observed states see Observed.Roles.
	Role string `json:"role,omitempty"`
}

// Desired is what a row asks of Auth0.
type Desired struct {
	State
	// Delete: the account should not exist (deprovision mode delete).
	Delete bool `json:"delete,omitempty"`
	// Keys are the managed keys the state was computed under: what Diff
	// compares and removes.
	Keys ManagedKeys `json:"-"`
}

// InvalidRowError says that a row cannot be turned into an Auth0 account; the
// row is marked failed with this message until it changes.
type InvalidRowError struct {
	Field  string
	Reason string
}

func (e *InvalidRowError) Error() string { return e.Field + ": " + e.Reason }

// viewRow is one syncd_desired_of result: the contract columns of the
// employee's syncd_desired row, or why there is none.
type viewRow struct {
	Error    *string         `json:"error"`
	Email    json.RawMessage `json:"email"`
	Name     json.RawMessage `json:"name"`
	RoleCode json.RawMessage `json:"role_code"`
	Blocked  json.RawMessage `json:"blocked"`
	App      json.RawMessage `json:"app_metadata"`
	User     json.RawMessage `json:"user_metadata"`
	// Managed are the keys syncd_managed_keys declared when the row was read.
	Managed *ManagedKeys `json:"managed"`
}

// DesiredFor computes what Auth0 should hold for e (its syncd_desired row,
// read with it) under cfg.
func DesiredFor(e *Employee, cfg Config) (Desired, error) {
	return DesiredFromView(e.ID, e.IDValue, e.View, cfg)
}

// DesiredFromView computes what Auth0 should hold for the employee key
// (keyJSON: to_jsonb(id)) from view, what syncd_desired_of(key) gave. The
// managed keys are those syncd_desired_of read with the row
// (DefaultManagedKeys for a view given without them). Every way the row or
// the mapping can be wrong is an *InvalidRowError saying so.
func DesiredFromView(key string, keyJSON, view json.RawMessage, cfg Config) (Desired, error) {
	if len(view) == 0 || string(view) == "null" {
		return Desired{}, &InvalidRowError{Field: "syncd_desired", Reason: "was not read for this employee"}
	}
	var v viewRow
	if err := json.Unmarshal(view, &v); err != nil {
		return Desired{}, &InvalidRowError{Field: "syncd_desired", Reason: "gave something that is not a row: " + err.Error()}
	}
	keys := DefaultManagedKeys
	if v.Managed != nil {
		keys = *v.Managed
	}
	keys = keys.withOwn()
	if v.Error != nil {
		return Desired{}, &InvalidRowError{Field: "syncd_desired", Reason: strings.TrimPrefix(*v.Error, "syncd_desired: ")}
	}
	rawEmail, err := textColumn("email", v.Email)
	if err != nil {
		return Desired{}, err
	}
	email := normalizeEmail(rawEmail)
	if email == "" {
		return Desired{}, &InvalidRowError{Field: "email", Reason: "is empty"}
	}
	rawName, err := textColumn("name", v.Name)
	if err != nil {
		return Desired{}, err
	}
	name := strings.TrimSpace(rawName)
	if name == "" {
		return Desired{}, &InvalidRowError{Field: "name", Reason: "is empty"}
	}
	role := ""
	if !isNull(v.RoleCode) {
		code, err := textColumn("role_code", v.RoleCode)
		if err != nil {
			return Desired{}, err
		}
		var ok bool
		if role, ok = cfg.Roles[code]; !ok {
			return Desired{}, &InvalidRowError{Field: "role_code", Reason: fmt.Sprintf("%q has no Auth0 role mapping (known: %s)", code, strings.Join(knownCodes(cfg), ", "))}
		}
	}
	var blocked bool
	if isNull(v.Blocked) {
		return Desired{}, &InvalidRowError{Field: "blocked", Reason: "is NULL: the mapping must say true or false"}
	}
	if err := json.Unmarshal(v.Blocked, &blocked); err != nil {
		return Desired{}, &InvalidRowError{Field: "blocked", Reason: "is " + jsonKind(v.Blocked) + ", not a boolean"}
	}
	app, err := metadataColumn("app_metadata", v.App, keys.App)
	if err != nil {
		return Desired{}, err
	}
	user, err := metadataColumn("user_metadata", v.User, keys.User)
	if err != nil {
		return Desired{}, err
	}
	own := normalizeMap(map[string]any{"employee_id": keyValue(key, keyJSON), "created_by": cfg.CreatedBy})
	for _, k := range ownKeys {
		want := own[k]
		if got, ok := app[k]; ok && !reflect.DeepEqual(got, want) {
			return Desired{}, &InvalidRowError{Field: "app_metadata." + k, Reason: fmt.Sprintf("is syncd's (%v): the mapping must leave it out, or give that value", want)}
		}
		app[k] = want
	}
	// Size is Auth0's to judge: its limit on a profile has an allowance
	// that changes, and a 413 fails the row with a reason (rejected).
	d := Desired{State: State{Email: email, Name: name, Blocked: blocked, App: app, User: user, Role: role}, Keys: keys}
	if blocked && cfg.Deprovision == DeprovisionDelete {
		d.Delete = true
	}
	return d, nil
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// jsonKind names the JSON type of raw for a person.
func jsonKind(raw json.RawMessage) string {
	switch {
	case isNull(raw):
		return "NULL"
	case raw[0] == '"':
		return "text"
	case raw[0] == '{':
		return "a JSON object"
	case raw[0] == '[':
		return "a JSON array"
	case raw[0] == 't' || raw[0] == 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

// textColumn reads a text column of the view; NULL reads as "".
func textColumn(name string, raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &InvalidRowError{Field: name, Reason: "is " + jsonKind(raw) + ", not text"}
	}
	return s, nil
}

// metadataColumn reads a metadata column of the view: a JSON object (NULL is
// an empty one) whose keys are declared managed. A key whose value is null
// is absent.
func metadataColumn(name string, raw json.RawMessage, declared []string) (map[string]any, error) {
	out := map[string]any{}
	if isNull(raw) {
		return out, nil
	}
	if raw[0] != '{' {
		return nil, &InvalidRowError{Field: name, Reason: "is " + jsonKind(raw) + ", not a JSON object"}
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, &InvalidRowError{Field: name, Reason: "is not a JSON object: " + err.Error()}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] == nil {
			continue
		}
		if !slices.Contains(declared, k) {
			return nil, &InvalidRowError{Field: name, Reason: fmt.Sprintf("key %q is not declared in syncd_managed_keys (declared: %s)", k, strings.Join(declared, ", "))}
		}
		out[k] = m[k]
	}
	return out, nil
}

func knownCodes(cfg Config) []string {
	codes := make([]string, 0, len(cfg.Roles))
	for c := range cfg.Roles {
		codes = append(codes, c)
	}
	return sortedStrings(codes)
}

func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// usernameFor makes the email's local part a valid Auth0 username: lower case,
// letters, digits and _ . - only, at most max characters.
func usernameFor(email string, max int) string {
	local, _, _ := strings.Cut(email, "@")
	var b strings.Builder
	for _, r := range strings.ToLower(local) {
		if b.Len() >= max {
			break
		}
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '.' || r == '-') {
			b.WriteRune(r)
		}
	}
	u := b.String()
	if u == "" {
		u = "user"
	}
	return u
}

// normalizeMap gives values the types encoding/json decodes them to (numbers
// as float64), so that desired and observed values compare equal.
func normalizeMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("reconcile: metadata not JSON: %v", err))
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// managedOnly returns the managed keys of metadata m.
func managedOnly(m map[string]any, keys []string) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		if v, ok := m[k]; ok && v != nil {
			out[k] = v
		}
	}
	return normalizeMap(out)
}
