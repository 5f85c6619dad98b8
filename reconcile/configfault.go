package reconcile

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/auth0"
)

// A configuration fault is a failure whose cause is syncd's settings or the
// tenant's setup — a connection that does not exist, a mapped role the tenant
// lacks, a scope not granted, a connection that requires usernames while
// syncd sends none. It is the same for every row, so it never marks a row
// failed: the reconcile ends with ResultConfig (the row stays pending, its
// auth0_sync_error says why), and the caller holds all work until the cause
// is gone (CheckTenant, or a retry of the row that revealed it).

// ResultConfig: the configuration or the tenant is wrong (a *ConfigError in
// Outcome.Err). Nothing is marked: the row is left pending for the work to
// resume once the configuration is fixed.
const ResultConfig Result = "config"

// ConfigFault returns the *ConfigError that err is, or stands for, when the
// failure is the configuration's or the tenant's; nil when it is the row's or
// a passing one.
func (c Config) ConfigFault(err error) *ConfigError {
	if err == nil {
		return nil
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		return ce
	}
	var ur *unknownRoleError
	if errors.As(err, &ur) {
		return c.fault("Roles", ur.name, fmt.Errorf("the role %q (mapped in %s) does not exist in the tenant", ur.name, c.setting("Roles")),
			"create the role in the tenant, or fix %s")
	}
	var ae *auth0.APIError
	if !errors.As(err, &ae) || auth0.IsTokenError(err) {
		return nil
	}
	switch {
	case ae.StatusCode == 403 && ae.ErrorCode == "insufficient_scope":
		scopes := ae.Message
		if _, after, ok := strings.Cut(ae.Message, "expected any of:"); ok {
			scopes = strings.TrimSpace(after)
		}
		return c.fault("", scopes, fmt.Errorf("syncd's Auth0 application lacks the scope %s (403 insufficient_scope)", scopes), scopeFix(scopes))
	case ae.StatusCode != 400:
		return nil
	}
	conn := c.Connection
	switch msg := ae.Message; {
	case strings.Contains(msg, "Connection does not exist"):
		return c.fault("Connection", conn, fmt.Errorf("the connection %q does not exist in the tenant", conn), "fix %s, or create the connection in the tenant")
	case strings.Contains(msg, "Connection is disabled"):
		return c.fault("Connection", conn, fmt.Errorf("the connection %q is disabled for syncd's application", conn),
			"enable it for the application in the Auth0 dashboard, or fix %s")
	case strings.Contains(msg, "does not support user creation"):
		return c.fault("Connection", conn, fmt.Errorf("the connection %q cannot create users through the API (it is not a database connection)", conn), "fix %s")
	case strings.Contains(msg, "Missing required property: username") && c.Username == UsernameOff:
		return c.fault("Username", string(c.Username), fmt.Errorf("the connection %q requires usernames and syncd sends none", conn), "set %s to local-part")
	case strings.Contains(msg, "without requires_username"):
		return c.fault("Username", string(c.Username), fmt.Errorf("the connection %q does not accept usernames", conn), "set %s to off")
	}
	return nil
}

func (c Config) fault(field, value string, err error, fix string) *ConfigError {
	return &ConfigError{Field: field, Value: value, Err: err, Fix: fix, Setting: c.setting(field)}
}

// setting is how the operator names field (Config.Settings), or the field.
func (c Config) setting(field string) string {
	return cmp.Or(c.Settings[field], field)
}

// Fingerprint identifies the settings that decide whether Auth0 accepts a
// row (connection, usernames, roles, metadata tags, modes). A row's failed
// status records it; a failure decided under another fingerprint is retried
// (RetryFailedUnderOtherConfig).
func (c Config) Fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "connection=%s\nusername=%s/%d\ntimezone=%s\ncreated_by=%s\ndeprovision=%s\nadopt=%s\n",
		c.Connection, c.Username, c.UsernameMaxLength, c.Timezone, c.CreatedBy, c.Deprovision, c.Adopt)
	for _, code := range slices.Sorted(maps.Keys(c.Roles)) {
		fmt.Fprintf(h, "role %s=%s\n", code, c.Roles[code])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// RetryFailedUnderOtherConfig requeues the failed rows whose failure was
// decided under another configuration than this Reconciler's (or before
// syncd recorded one): a fixed setting retries what the wrong one failed,
// without an operator's resync. Rows that fail again record the current
// fingerprint and stay failed until they change.
func (r *Reconciler) RetryFailedUnderOtherConfig(ctx context.Context) (int64, error) {
	rows, err := r.pool.Query(ctx, `SELECT id::text FROM employees WHERE auth0_sync_status = 'failed'
		AND auth0_failed_config IS DISTINCT FROM $1`, r.cfg.Fingerprint())
	if err != nil {
		return 0, fmt.Errorf("find rows failed under another configuration: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("find rows failed under another configuration: %w", err)
	}
	return Requeue(ctx, r.pool, ids, false)
}

// TenantCheck is what CheckTenant found: the faults (each one line with its
// fix), and what it could not check and why.
type TenantCheck struct {
	Faults    []*ConfigError
	Unchecked []string
}

// CheckTenant checks what can be checked of the tenant before any row is
// reconciled: the token's scopes (when the token says them), the mapped
// roles, and the connection (with read:connections; without it, the first
// create reveals a connection that does not exist). A failure to ask at all
// (credentials refused, Auth0 unreachable) is the error.
func (r *Reconciler) CheckTenant(ctx context.Context, api TenantAPI) (TenantCheck, error) {
	var tc TenantCheck
	c := r.cfg
	granted, ok, err := api.GrantedScopes(ctx)
	if err != nil {
		return tc, err
	}
	has := func(s string) bool { return !ok || slices.Contains(granted, s) }
	if ok {
		var missing []string
		for _, s := range c.RequiredScopes() {
			if !has(s) {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			tc.Faults = append(tc.Faults, c.fault("", strings.Join(missing, " "),
				fmt.Errorf("syncd's Auth0 application lacks the scope %s", strings.Join(missing, ", ")), scopeFix(strings.Join(missing, " "))))
		}
	} else {
		tc.Unchecked = append(tc.Unchecked, "scopes: the access token does not list them; a missing one is reported when a call needs it")
	}
	if has("read:roles") {
		roles, err := api.ListRoles(ctx, "")
		if err != nil {
			if ce := c.ConfigFault(err); ce != nil {
				tc.Faults = append(tc.Faults, ce)
			} else {
				return tc, fmt.Errorf("list roles: %w", err)
			}
		} else {
			names := map[string]bool{}
			for _, ro := range roles {
				names[ro.Name] = true
			}
			for _, name := range c.managedRoles() {
				if !names[name] {
					tc.Faults = append(tc.Faults, c.ConfigFault(&unknownRoleError{name: name}))
				}
			}
		}
	}
	if ok && !slices.Contains(granted, "read:connections") {
		tc.Unchecked = append(tc.Unchecked, fmt.Sprintf("connection %q: checking it needs the scope read:connections (optional); without it the first account created reveals a connection that does not exist", c.Connection))
		return tc, nil
	}
	conn, err := api.ConnectionByName(ctx, c.Connection)
	switch {
	case errors.Is(err, auth0.ErrNotFound):
		tc.Faults = append(tc.Faults, c.fault("Connection", c.Connection, fmt.Errorf("the connection %q does not exist in the tenant", c.Connection),
			"fix %s, or create the connection in the tenant"))
	case errors.Is(err, auth0.ErrForbidden):
		tc.Unchecked = append(tc.Unchecked, fmt.Sprintf("connection %q: checking it needs the scope read:connections (optional); without it the first account created reveals a connection that does not exist", c.Connection))
	case err != nil:
		return tc, fmt.Errorf("check connection: %w", err)
	case conn.Options.RequiresUsername && c.Username == UsernameOff:
		tc.Faults = append(tc.Faults, c.fault("Username", string(c.Username), fmt.Errorf("the connection %q requires usernames and syncd sends none", c.Connection),
			"set %s to local-part"))
	case !conn.Options.RequiresUsername && c.Username == UsernameLocalPart:
		tc.Faults = append(tc.Faults, c.fault("Username", string(c.Username), fmt.Errorf("the connection %q does not accept usernames", c.Connection),
			"set %s to off"))
	}
	return tc, nil
}

// TenantAPI is what CheckTenant asks of Auth0; *auth0.Client satisfies it.
type TenantAPI interface {
	GrantedScopes(ctx context.Context) ([]string, bool, error)
	ListRoles(ctx context.Context, nameFilter string) ([]auth0.Role, error)
	ConnectionByName(ctx context.Context, name string) (*auth0.Connection, error)
}

// RequiredScopes are the Management API scopes syncd needs with c (the
// README's table).
func (c Config) RequiredScopes() []string {
	s := []string{"read:users", "create:users", "update:users", "read:roles", "read:role_members", "create:role_members", "delete:role_members"}
	if c.Deprovision == DeprovisionDelete {
		s = append(s, "delete:users")
	}
	if !c.KeepSessions {
		s = append(s, "delete:sessions", "delete:refresh_tokens") // ending a leaver's access (revoke.go)
	}
	return s
}

// scopeFix is the fix of a missing scope; the revocation scopes can also be
// done without.
func scopeFix(scopes string) string {
	fix := "grant it in the Auth0 dashboard (Applications → APIs → Auth0 Management API → Machine to Machine Applications); syncd notices by itself"
	if strings.Contains(scopes, "sessions") || strings.Contains(scopes, "refresh_tokens") {
		fix += "; or run with --revoke-sessions=false (SYNCD_REVOKE_SESSIONS) to leave leavers' sessions to expire"
	}
	return fix
}

// configHeld ends the attempt on a configuration fault: nothing is marked,
// the row stays pending with the fault as its reason.
func (a *attempt) configHeld(ce *ConfigError) Outcome {
	return Outcome{Result: ResultConfig, Status: StatusPending, Err: ce, Applied: a.applied, UserID: a.userID}
}

// ForgetRoles drops the cached role ids, so that the next reconcile lists
// the roles again (a role created in the tenant to fix a fault is seen at
// once).
func (r *Reconciler) ForgetRoles() {
	r.roles.mu.Lock()
	defer r.roles.mu.Unlock()
	r.roles.ids = nil
}
