package reconcile

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// Managed app_metadata and user_metadata keys: syncd sets them, and removes
// them (null) when the row no longer has a value. Every other key is left alone.
var (
	managedAppKeys  = []string{"employee_id", "internal_id", "department", "role_code", "connecteam_id", "created_by", "sync_status"}
	managedUserKeys = []string{"employee_id", "full_name", "department", "phone_number"}
)

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
}

// InvalidRowError says that a row cannot be turned into an Auth0 account; the
// row is marked failed with this message until it changes.
type InvalidRowError struct {
	Field  string
	Reason string
}

func (e *InvalidRowError) Error() string { return e.Field + ": " + e.Reason }

// DesiredFor computes what Auth0 should hold for e under cfg.
func DesiredFor(e *Employee, cfg Config) (Desired, error) {
	email := normalizeEmail(deref(e.Email))
	if email == "" {
		return Desired{}, &InvalidRowError{Field: "email", Reason: "is empty"}
	}
	name := strings.TrimSpace(deref(e.Name))
	if name == "" {
		return Desired{}, &InvalidRowError{Field: "name", Reason: "is empty"}
	}
	role, ok := cfg.Roles[e.RoleCode]
	if !ok {
		return Desired{}, &InvalidRowError{Field: "role_code", Reason: fmt.Sprintf("%q has no Auth0 role mapping (known: %s)", e.RoleCode, strings.Join(knownCodes(cfg), ", "))}
	}
	status := syncStatusActive
	if !e.Active {
		status = syncStatusTerminated
	}
	app := map[string]any{
		"employee_id": e.keyValue(),
		"internal_id": e.keyValue(),
		"role_code":   e.RoleCode,
		"created_by":  cfg.CreatedBy,
		"sync_status": status,
	}
	user := map[string]any{
		"employee_id": e.keyValue(),
		"full_name":   name,
	}
	if v := strings.TrimSpace(deref(e.Department)); v != "" {
		app["department"] = v
		user["department"] = v
	}
	if v := strings.TrimSpace(deref(e.ConnecteamID)); v != "" {
		app["connecteam_id"] = v
	}
	if v := strings.TrimSpace(deref(e.PhoneNumber)); v != "" {
		user["phone_number"] = v
	}
	d := Desired{State: State{Email: email, Name: name, Blocked: !e.Active, App: normalizeMap(app), User: normalizeMap(user), Role: role}}
	if !e.Active && cfg.Deprovision == DeprovisionDelete {
		d.Delete = true
	}
	return d, nil
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
