package main

import (
	"flag"
	"io"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lmittmann/tint"

	"github.com/syncd/syncd/auth0"
)

// Each setting is a flag whose default comes from an environment variable.
// The flag wins; a missing or malformed value is one line naming the setting.

func envString(fs *flag.FlagSet, e *env, p *string, name, envName, def, usage string) {
	v := def
	if s := e.getenv(envName); s != "" {
		v = s
	}
	fs.StringVar(p, name, v, usage+" (env "+envName+")")
}

// dbConfig is the database setting.
type dbConfig struct {
	URL string
}

func (c *dbConfig) register(fs *flag.FlagSet, e *env) {
	envString(fs, e, &c.URL, "database-url", "DATABASE_URL", "", "PostgreSQL connection URL")
}

func (c *dbConfig) validate() error {
	if c.URL == "" {
		return usagef("DATABASE_URL: is required (postgres://user:password@host:5432/db)")
	}
	// pgx's own error may quote the string, password and all: say what is
	// wrong without it.
	if _, err := pgx.ParseConfig(c.URL); err != nil {
		return usagef("DATABASE_URL: not a valid PostgreSQL connection string")
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
	envString(fs, e, &c.ClientSecret, "auth0-client-secret", "AUTH0_CLIENT_SECRET", "", "client secret of the machine-to-machine application (prefer the environment variable)")
}

func (c *auth0Config) validate() error {
	u, err := auth0.ParseDomain(c.Domain)
	if err != nil {
		if c.Domain == "" {
			return usagef("AUTH0_DOMAIN: is required (your-tenant.us.auth0.com)")
		}
		return usagef("AUTH0_DOMAIN: %v", err)
	}
	c.baseURL = u
	if c.ClientID == "" {
		return usagef("AUTH0_CLIENT_ID: is required")
	}
	if c.ClientSecret == "" {
		return usagef("AUTH0_CLIENT_SECRET: is required")
	}
	return nil
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
	switch c.Format {
	case "", "text", "json":
	default:
		return usagef("LOG_FORMAT: must be text or json, got %q", c.Format)
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.Level)); err != nil {
		return usagef("LOG_LEVEL: must be debug, info, warn or error, got %q", c.Level)
	}
	return nil
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
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// firstErr returns the first non-nil error of errs.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
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
