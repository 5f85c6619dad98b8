package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lmittmann/tint"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/reconcile"
)

// Each setting is a flag whose default comes from an environment variable.
// The flag wins; a missing or malformed value is one line naming the setting.

func envString(fs *flag.FlagSet, e *env, p *string, name, envName, def, usage string) {
	e.noteFlag(envName, name)
	v := def
	if s := e.getenv(envName); s != "" {
		v = s
	}
	fs.StringVar(p, name, v, usage+" (env "+envName+")")
}

// envSecret registers a string flag whose value must never be printed. The
// flag package prints each flag's default on -h and on any parse error, so a
// secret taken from the environment is not registered as a default: the
// usage says only whether the variable is set.
func envSecret(fs *flag.FlagSet, e *env, p *string, name, envName, def, usage string) {
	e.noteFlag(envName, name)
	*p = def
	usage += " (env " + envName + ")"
	if s := e.getenv(envName); s != "" {
		*p = s
		usage += " (set from " + envName + ")"
	}
	fs.Var((*secretValue)(p), name, usage)
}

// secretValue is a string flag whose String never shows the value, so that
// no usage message can print it.
type secretValue string

func (s *secretValue) String() string     { return "" }
func (s *secretValue) Set(v string) error { *s = secretValue(v); return nil }

// dbConfig is the database setting.
type dbConfig struct {
	URL string
}

func (c *dbConfig) register(fs *flag.FlagSet, e *env) {
	// The URL holds the database password: a secret.
	envSecret(fs, e, &c.URL, "database-url", "DATABASE_URL", "", "PostgreSQL connection `URL`")
}

func (c *dbConfig) validate() error {
	if c.URL == "" {
		return settingf("DATABASE_URL", "is required (postgres://user:password@host:5432/db)")
	}
	// pgx's own error may quote the string, password and all: say what is
	// wrong without it.
	if _, err := pgx.ParseConfig(c.URL); err != nil {
		return settingf("DATABASE_URL", "not a valid PostgreSQL connection string")
	}
	return nil
}

// auth0Config is how to reach the tenant.
type auth0Config struct {
	Domain       string
	ClientID     string
	ClientSecret string

	baseURL *url.URL
}

func (c *auth0Config) register(fs *flag.FlagSet, e *env) {
	envString(fs, e, &c.Domain, "auth0-domain", "AUTH0_DOMAIN", "", "Auth0 tenant domain (your-tenant.us.auth0.com), or an http://127.0.0.1:PORT URL for the emulator")
	envString(fs, e, &c.ClientID, "auth0-client-id", "AUTH0_CLIENT_ID", "", "client id of the machine-to-machine application")
	envSecret(fs, e, &c.ClientSecret, "auth0-client-secret", "AUTH0_CLIENT_SECRET", "", "client `secret` of the machine-to-machine application (prefer the environment variable)")
}

func (c *auth0Config) validate() error {
	var errs []error
	u, err := auth0.ParseDomain(c.Domain)
	switch {
	case err != nil && c.Domain == "":
		errs = append(errs, settingf("AUTH0_DOMAIN", "is required (your-tenant.us.auth0.com)"))
	case err != nil:
		errs = append(errs, settingf("AUTH0_DOMAIN", "%v", err))
	default:
		c.baseURL = u
	}
	if c.ClientID == "" {
		errs = append(errs, settingf("AUTH0_CLIENT_ID", "is required"))
	}
	if c.ClientSecret == "" {
		errs = append(errs, settingf("AUTH0_CLIENT_SECRET", "is required"))
	}
	return errors.Join(errs...)
}

// logConfig is how syncd logs.
type logConfig struct {
	Format string
	Level  string
}

func (c *logConfig) register(fs *flag.FlagSet, e *env) {
	envString(fs, e, &c.Format, "log-format", "LOG_FORMAT", "", "log format: text or json (default: text on a terminal, json otherwise)")
	envString(fs, e, &c.Level, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn or error")
}

func (c *logConfig) validate() error {
	var errs []error
	switch c.Format {
	case "", "text", "json":
	default:
		errs = append(errs, settingf("LOG_FORMAT", "must be text or json, got %q", c.Format))
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.Level)); err != nil {
		errs = append(errs, settingf("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.Level))
	}
	return errors.Join(errs...)
}

// logger builds the process logger on w: tint on a terminal, JSON otherwise.
func (c *logConfig) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	format := c.Format
	if format == "" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly, NoColor: !isTerminal(w)}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: durationWithUnit}))
}

// durationWithUnit writes a duration in a JSON log line as a string with
// its unit ("1.5s"), not as unlabelled nanoseconds.
func durationWithUnit(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// envValuef reports a malformed value of environment variable envName,
// which does not matter when the flag is given.
func envValuef(envName, format string, args ...any) error {
	return &settingError{Env: envName, Msg: fmt.Sprintf(format, args...), envOnly: true}
}

// formatDuration prints d rounded for people.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// envDuration, envInt and envBool register typed flags with environment
// fallbacks; a malformed environment value is reported by validate through
// the returned check.
func envDuration(fs *flag.FlagSet, e *env, p *time.Duration, name, envName string, def time.Duration, usage string) func() error {
	e.noteFlag(envName, name)
	*p = def
	raw := e.getenv(envName)
	if raw != "" {
		v, err := time.ParseDuration(raw)
		if err != nil {
			fs.DurationVar(p, name, def, usage+" (env "+envName+")")
			return func() error { return envValuef(envName, "must be a duration like 30s or 15m, got %q", raw) }
		}
		*p = v
	}
	fs.DurationVar(p, name, *p, usage+" (env "+envName+")")
	return func() error { return nil }
}

func envInt(fs *flag.FlagSet, e *env, p *int, name, envName string, def int, usage string) func() error {
	e.noteFlag(envName, name)
	*p = def
	raw := e.getenv(envName)
	var bad error
	if raw != "" {
		v, err := strconv.Atoi(raw)
		if err != nil {
			bad = envValuef(envName, "must be a whole number, got %q", raw)
		} else {
			*p = v
		}
	}
	fs.IntVar(p, name, *p, usage+" (env "+envName+")")
	return func() error { return bad }
}

func envFloat(fs *flag.FlagSet, e *env, p *float64, name, envName string, def float64, usage string) func() error {
	e.noteFlag(envName, name)
	*p = def
	raw := e.getenv(envName)
	var bad error
	if raw != "" {
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			bad = envValuef(envName, "must be a number, got %q", raw)
		} else {
			*p = v
		}
	}
	fs.Float64Var(p, name, *p, usage+" (env "+envName+")")
	return func() error { return bad }
}

func envBool(fs *flag.FlagSet, e *env, p *bool, name, envName string, usage string) func() error {
	e.noteFlag(envName, name)
	raw := e.getenv(envName)
	var bad error
	if raw != "" {
		v, err := strconv.ParseBool(raw)
		if err != nil {
			bad = envValuef(envName, "must be true or false, got %q", raw)
		} else {
			*p = v
		}
	}
	fs.BoolVar(p, name, *p, usage+" (env "+envName+")")
	return func() error { return bad }
}

// clientConfig is how syncd talks to Auth0 beyond the credentials.
type clientConfig struct {
	Rate  float64
	Burst int

	checks []func() error
}

func (c *clientConfig) register(fs *flag.FlagSet, e *env) {
	c.checks = append(c.checks,
		envFloat(fs, e, &c.Rate, "auth0-rate", "AUTH0_RATE", 0, "client-side limit of Management API requests per second, sized to your plan (free: 2, enterprise: 16; 0: none, obey Auth0's headers only)"),
		envInt(fs, e, &c.Burst, "auth0-burst", "AUTH0_BURST", 0, "client-side burst (default: the rate, at least 1)"),
	)
}

func (c *clientConfig) validate() error {
	var errs []error
	for _, check := range c.checks {
		errs = append(errs, check())
	}
	if c.Rate < 0 {
		errs = append(errs, settingf("AUTH0_RATE", "must not be negative, got %v", c.Rate))
	}
	if c.Burst < 0 {
		errs = append(errs, settingf("AUTH0_BURST", "must not be negative, got %d", c.Burst))
	}
	return errors.Join(errs...)
}

// burst is the client-side burst: AUTH0_BURST, or the rate (at least 1)
// when AUTH0_BURST is 0 and there is a rate.
func (c *clientConfig) burst() int {
	if c.Rate > 0 && c.Burst == 0 {
		return max(1, int(c.Rate))
	}
	return c.Burst
}

// newAuth0Client is the one place syncd builds its Auth0 client, so that every
// command talks to Auth0 with the same settings. obs may be nil.
func newAuth0Client(a0 *auth0Config, c *clientConfig, obs auth0.Observer, logger *slog.Logger) (*auth0.Client, error) {
	api, err := auth0.New(auth0.Config{BaseURL: a0.baseURL, ClientID: a0.ClientID, ClientSecret: a0.ClientSecret,
		Rate: c.Rate, Burst: c.burst(), Observer: obs, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("auth0 client: %w", err)
	}
	return api, nil
}

// defaultScanTimeout bounds one drift scan: far above what a scan of 100,000
// users takes on a slow plan, far below "forever".
const defaultScanTimeout = time.Hour

func registerScanTimeout(fs *flag.FlagSet, e *env, p *time.Duration) func() error {
	return envDuration(fs, e, p, "scan-timeout", "SYNCD_SCAN_TIMEOUT", defaultScanTimeout,
		"longest one drift scan may take (export job, download, role members); a scan that runs out fails and the next one tries again")
}

func validateScanTimeout(d time.Duration) error {
	if d < time.Second {
		return settingf("SYNCD_SCAN_TIMEOUT", "must be at least 1s, got %s", d)
	}
	return nil
}

// mappingConfig is how rows map to Auth0 (reconcile.Config).
type mappingConfig struct {
	Connection  string
	Roles       string
	Timezone    string
	CreatedBy   string
	Deprovision string
	Adopt       string
	Username    string

	cfg reconcile.Config
}

func (c *mappingConfig) register(fs *flag.FlagSet, e *env) {
	envString(fs, e, &c.Connection, "connection", "AUTH0_CONNECTION", "Username-Password-Authentication", "Auth0 database connection that accounts live in")
	envString(fs, e, &c.Roles, "roles", "SYNCD_ROLES", "associate=production_associate", "role mapping: comma-separated role_code=Auth0 role name")
	envString(fs, e, &c.Timezone, "timezone", "SYNCD_TIMEZONE", "America/Chicago", "user_metadata.timezone given to new accounts")
	envString(fs, e, &c.CreatedBy, "created-by", "SYNCD_CREATED_BY", "productivity_system", "app_metadata.created_by tag that marks accounts syncd manages")
	envString(fs, e, &c.Deprovision, "deprovision", "SYNCD_DEPROVISION", "block", "what happens to a leaver's account: block or delete")
	envString(fs, e, &c.Adopt, "adopt", "SYNCD_ADOPT", "conflict", "an existing account with the employee's email and no employee_id: conflict (a person decides) or adopt")
	envString(fs, e, &c.Username, "username", "SYNCD_USERNAME", "off", "usernames: off, or local-part (the email's local part; for connections that require usernames)")
}

func (c *mappingConfig) validate() error {
	roles, err := reconcile.ParseRoles(c.Roles)
	if err != nil {
		return settingf("SYNCD_ROLES", "%v", err)
	}
	c.cfg = reconcile.Config{
		Connection:  c.Connection,
		Roles:       roles,
		Timezone:    c.Timezone,
		CreatedBy:   c.CreatedBy,
		Deprovision: reconcile.DeprovisionMode(c.Deprovision),
		Adopt:       reconcile.AdoptPolicy(c.Adopt),
		Username:    reconcile.UsernameMode(c.Username),
	}.WithDefaults()
	if err := c.cfg.Validate(); err != nil {
		// One line per problem, naming the setting as the person set it.
		var errs []error
		for _, leaf := range leaves(err) {
			var ce *reconcile.ConfigError
			if !errors.As(leaf, &ce) {
				errs = append(errs, usagef("%v", leaf))
				continue
			}
			name, ok := mappingEnv[ce.Field]
			if !ok {
				name = ce.Field
			}
			errs = append(errs, settingf(name, "%v", ce.Err))
		}
		return errors.Join(errs...)
	}
	return nil
}

// mappingEnv names the environment variable of each reconcile.Config field
// that mappingConfig sets.
var mappingEnv = map[string]string{
	"Connection":  "AUTH0_CONNECTION",
	"Roles":       "SYNCD_ROLES",
	"Timezone":    "SYNCD_TIMEZONE",
	"CreatedBy":   "SYNCD_CREATED_BY",
	"Deprovision": "SYNCD_DEPROVISION",
	"Adopt":       "SYNCD_ADOPT",
	"Username":    "SYNCD_USERNAME",
}
