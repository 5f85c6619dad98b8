package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
)

// setting is one effective setting of `syncd run`, as shown by its first
// log line and the demo's banner: the flag's name and its value, a secret
// masked.
type setting struct {
	Flag  string
	Value string
}

// settings lists the effective settings of c, secrets masked: the client
// secret is only said to be set, and DATABASE_URL loses its password.
func (c *runConfig) settings() []setting {
	deprov := c.maxDeprovision.String()
	if c.AllowMassDeprovision {
		deprov += " (--allow-mass-deprovision: not enforced)"
	}
	return []setting{
		{"database-url", maskDatabaseURL(c.db.URL)},
		{"auth0-domain", c.auth0.Domain},
		{"auth0-client-id", c.auth0.ClientID},
		{"auth0-client-secret", maskSecret(c.auth0.ClientSecret)},
		{"auth0-rate", fmt.Sprint(c.client.Rate)},
		{"auth0-burst", fmt.Sprint(c.client.burst())},
		{"connection", c.mapping.Connection},
		{"roles", c.mapping.Roles},
		{"deprovision", c.mapping.Deprovision},
		{"max-deprovision", deprov},
		{"deprovision-settle", c.DeprovisionSettle.String()},
		{"adopt", c.mapping.Adopt},
		{"username", c.mapping.Username},
		{"timezone", c.mapping.Timezone},
		{"created-by", c.mapping.CreatedBy},
		{"source", c.Source},
		{"workers", fmt.Sprint(c.Workers)},
		{"resync-interval", c.ResyncInterval.String()},
		{"scan-timeout", c.ScanTimeout.String()},
		{"poll-interval", c.PollInterval.String()},
		{"outbox-lease", c.OutboxLease.String()},
		{"slot", c.SlotName},
		{"reconcile-timeout", c.ReconcileTimeout.String()},
		{"mapping-sweep-interval", c.MappingSweep.String()},
		{"shutdown-timeout", c.ShutdownTimeout.String()},
		{"metrics-addr", c.MetricsAddr},
		{"log-level", c.log.Level},
	}
}

// settingsAttr is the settings as one log attribute group, "settings".
func (c *runConfig) settingsAttr() slog.Attr {
	var attrs []any
	for _, s := range c.settings() {
		attrs = append(attrs, slog.String(strings.ReplaceAll(s.Flag, "-", "_"), s.Value))
	}
	return slog.Group("settings", attrs...)
}

// maskSecret says whether a secret is set, never what it is.
func maskSecret(s string) string {
	if s == "" {
		return "(not set)"
	}
	return "(set)"
}

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// maskDatabaseURL hides the password of a PostgreSQL URL or key=value
// connection string.
func maskDatabaseURL(s string) string {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return "(unparsable)"
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return dsnPassword.ReplaceAllString(s, "${1}xxxxx")
}
