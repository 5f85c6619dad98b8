package reconcile

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"
)

// DeprovisionMode is what happens to the account of an employee who leaves.
type DeprovisionMode string

// Deprovision modes.
const (
	DeprovisionBlock  DeprovisionMode = "block"  // blocked: true, app_metadata.sync_status: terminated
	DeprovisionDelete DeprovisionMode = "delete" // DELETE /api/v2/users/{id}
)

// AdoptPolicy is what happens when an account with the employee's email exists
// in the connection but carries no app_metadata.employee_id.
type AdoptPolicy string

// Adoption policies.
const (
	AdoptConflict AdoptPolicy = "conflict" // mark the row conflict; a person decides
	AdoptAccount  AdoptPolicy = "adopt"    // take the account over
)

// UsernameMode says whether accounts get a username.
type UsernameMode string

// Username modes.
const (
	UsernameOff       UsernameMode = "off"        // Auth0's default connection rejects usernames
	UsernameLocalPart UsernameMode = "local-part" // the email's local part, made valid
)

// Config is how the reconciler maps rows to Auth0. The zero value, after
// WithDefaults, is the reference guide's mapping.
type Config struct {
	// Connection is the Auth0 database connection accounts live in.
	Connection string
	// Username is off, or the email's local part (for a connection that
	// requires usernames).
	Username UsernameMode
	// UsernameMaxLength is the connection's username length limit (Auth0's default 15).
	UsernameMaxLength int
	// Roles maps role_code to the Auth0 role name granted. Roles outside this
	// mapping are never touched.
	Roles map[string]string
	// Timezone is user_metadata.timezone at creation.
	Timezone string
	// CreatedBy is app_metadata.created_by; accounts carrying it are managed.
	CreatedBy string
	// Deprovision is block (default) or delete.
	Deprovision DeprovisionMode
	// Adopt decides about an account with the same email and no employee_id.
	Adopt AdoptPolicy
	// RetryBase and RetryMax bound the backoff of transient failures.
	RetryBase, RetryMax time.Duration
	// Timeout bounds one reconcile, Auth0 calls and all (default 30s); the
	// employee's lease lasts 15 s longer.
	Timeout time.Duration
	// BusyWait is how long Reconcile waits for another worker's lease on the
	// same employee before it returns ErrBusy (default 10s).
	BusyWait time.Duration
	// Guard, if set, is asked before an account is blocked or deleted; a
	// deprovision it does not allow yet is recorded as waiting and costs
	// nothing more until the guard hands it back.
	Guard *Guard
	// Logger receives one line per reconcile that changed something.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Settings names each field as the operator sets it ("Connection" →
	// "--connection (AUTH0_CONNECTION)"), for the fix of a ConfigError.
	Settings map[string]string
}

// DefaultRoles is the reference guide's mapping.
var DefaultRoles = map[string]string{"associate": "production_associate"}

// WithDefaults returns c with every unset field filled.
func (c Config) WithDefaults() Config {
	c.Connection = cmp.Or(c.Connection, "Username-Password-Authentication")
	c.Username = cmp.Or(c.Username, UsernameOff)
	c.UsernameMaxLength = cmp.Or(c.UsernameMaxLength, 15)
	if len(c.Roles) == 0 {
		c.Roles = maps.Clone(DefaultRoles)
	}
	c.Timezone = cmp.Or(c.Timezone, "America/Chicago")
	c.CreatedBy = cmp.Or(c.CreatedBy, "productivity_system")
	c.Deprovision = cmp.Or(c.Deprovision, DeprovisionBlock)
	c.Adopt = cmp.Or(c.Adopt, AdoptConflict)
	c.RetryBase = cmp.Or(c.RetryBase, 2*time.Second)
	c.RetryMax = cmp.Or(c.RetryMax, 10*time.Minute)
	c.Timeout = cmp.Or(c.Timeout, 30*time.Second)
	c.BusyWait = cmp.Or(c.BusyWait, 10*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// ConfigError is a bad Config field: the setting's name travels in the
// error (as outbox.ConfigError), so that a caller maps it to its own flag or
// environment variable with errors.As, never by matching message text.
type ConfigError struct {
	Field string // the Config field, e.g. "Deprovision"
	Value string // its value as given (never a secret)
	Err   error  // what is wrong with it; its text includes the value
	// Fix, for a fault found at run time (Config.ConfigFault), is what to
	// do, in words; a %s in it stands for Setting. Field is "" when the
	// fix is the tenant's alone (a scope to grant).
	Fix string
	// Setting is Field as the operator sets it (Config.Settings).
	Setting string
}

func (e *ConfigError) Error() string {
	if e.Fix == "" {
		return e.Field + ": " + e.Err.Error()
	}
	fix := e.Fix
	if strings.Contains(fix, "%s") {
		fix = fmt.Sprintf(fix, cmp.Or(e.Setting, e.Field))
	}
	return e.Err.Error() + ": " + fix
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Validate checks c (after WithDefaults). Each problem is a *ConfigError;
// several are joined (errors.As finds the first).
func (c Config) Validate() error {
	var errs []error
	bad := func(field, value, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Value: value, Err: fmt.Errorf(format, args...)})
	}
	switch c.Username {
	case UsernameOff, UsernameLocalPart:
	default:
		bad("Username", string(c.Username), "must be off or local-part, got %q", c.Username)
	}
	switch c.Deprovision {
	case DeprovisionBlock, DeprovisionDelete:
	default:
		bad("Deprovision", string(c.Deprovision), "must be block or delete, got %q", c.Deprovision)
	}
	switch c.Adopt {
	case AdoptConflict, AdoptAccount:
	default:
		bad("Adopt", string(c.Adopt), "must be conflict or adopt, got %q", c.Adopt)
	}
	if c.UsernameMaxLength < 1 || c.UsernameMaxLength > 128 {
		bad("UsernameMaxLength", fmt.Sprint(c.UsernameMaxLength), "must be 1..128, got %d", c.UsernameMaxLength)
	}
	for _, code := range slices.Sorted(maps.Keys(c.Roles)) {
		if role := c.Roles[code]; strings.TrimSpace(code) == "" || strings.TrimSpace(role) == "" {
			bad("Roles", code+"="+role, "%q=%q: role code and role name must not be empty", code, role)
		}
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		bad("Timezone", c.Timezone, "%q is not an IANA time zone", c.Timezone)
	}
	if c.RetryBase <= 0 || c.RetryMax < c.RetryBase {
		bad("RetryBase", c.RetryBase.String(), "need 0 < base <= max, got %s and %s", c.RetryBase, c.RetryMax)
	}
	return errors.Join(errs...)
}

// ParseRoles parses "code=Role Name,code2=Other" into a mapping.
func ParseRoles(s string) (map[string]string, error) {
	m := map[string]string{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		code, role, ok := strings.Cut(part, "=")
		code, role = strings.TrimSpace(code), strings.TrimSpace(role)
		if !ok || code == "" || role == "" {
			return nil, fmt.Errorf("%q: want role_code=Auth0 role name", part)
		}
		if _, dup := m[code]; dup {
			return nil, fmt.Errorf("%q: role code %q mapped twice", part, code)
		}
		m[code] = role
	}
	if len(m) == 0 {
		return nil, errors.New("no role mapping given")
	}
	return m, nil
}

// managedRoles is the set of role names syncd owns, sorted.
func (c Config) managedRoles() []string {
	names := slices.Collect(maps.Values(c.Roles))
	slices.Sort(names)
	return slices.Compact(names)
}
