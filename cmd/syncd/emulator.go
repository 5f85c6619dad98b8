package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/syncd/syncd/auth0/emulator"
)

func init() {
	register("emulator", "serve the Auth0 emulator (token endpoint and Management API) for development and tests", cmdEmulator)
}

// emulatorConfig is the command line of `syncd emulator`.
type emulatorConfig struct {
	Addr, Domain           string
	ClientID, ClientSecret string
	Roles                  string
	Plan                   string
	Rate                   float64
	Burst                  int
	RetryAfter             bool
	Latency, Jitter        time.Duration
	ErrorRate, DropRate    float64
	LostWriteRate          float64
	SearchDelay            time.Duration
	RequiresUsername       bool
	TokenTTL               time.Duration
	TLS                    bool
	CertOut                string
	AdminRemote            bool
}

func (c *emulatorConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8089", "address to listen on (host:port; port 0 picks a free one)")
	fs.StringVar(&c.Domain, "domain", "", "Auth0 domain (host[:port]) that token audiences must name; default: the host clients connect to")
	fs.StringVar(&c.Roles, "roles", emulator.DefaultRole, "comma-separated names of the roles to create")
	fs.StringVar(&c.Plan, "plan", emulator.PlanUnlimited, "rate-limit plan: "+strings.Join(emulator.Plans(), ", "))
	fs.Float64Var(&c.Rate, "rate", 0, "if > 0: one global rate limit of this many requests/s, overriding --plan")
	fs.IntVar(&c.Burst, "burst", 0, "burst of --rate (default: the rate rounded up)")
	fs.BoolVar(&c.RetryAfter, "retry-after", false, "also send Retry-After on 429 answers")
	fs.DurationVar(&c.Latency, "latency", 0, "latency added to each /api/v2 request")
	fs.DurationVar(&c.Jitter, "latency-jitter", 0, "plus a random latency in [0, this)")
	fs.Float64Var(&c.ErrorRate, "error-rate", 0, "share (0–1) of /api/v2 requests answered 503, not applied")
	fs.Float64Var(&c.DropRate, "drop-rate", 0, "share (0–1) of /api/v2 requests whose connection is closed with no answer, not applied")
	fs.Float64Var(&c.LostWriteRate, "lost-write-rate", 0, "share (0–1) of writes applied, then answered by closing the connection")
	fs.DurationVar(&c.SearchDelay, "search-delay", 0, "how long GET /api/v2/users (search) lags behind writes")
	fs.BoolVar(&c.RequiresUsername, "requires-username", false, "the database connection requires (and accepts) usernames")
	fs.DurationVar(&c.TokenTTL, "token-ttl", emulator.DefaultTokenTTL, "lifetime of access tokens (expires_in)")
	fs.BoolVar(&c.TLS, "tls", false, "serve HTTPS with a self-signed certificate made at start")
	fs.StringVar(&c.CertOut, "cert-out", "", "with --tls: where to write the certificate's PEM (default: syncd-emulator.pem in the temporary directory)")
	fs.BoolVar(&c.AdminRemote, "admin-remote", false, "let the admin endpoint (/admin/…) answer clients that are not on loopback")
}

func (c *emulatorConfig) validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return usagef("--addr: must be host:port, got %q", c.Addr)
	}
	if !slices.Contains(emulator.Plans(), c.Plan) {
		return usagef("--plan: must be one of %s, got %q", strings.Join(emulator.Plans(), ", "), c.Plan)
	}
	if c.Rate < 0 || c.Burst < 0 {
		return usagef("--rate, --burst: must not be negative")
	}
	for name, v := range map[string]float64{"--error-rate": c.ErrorRate, "--drop-rate": c.DropRate, "--lost-write-rate": c.LostWriteRate} {
		if v < 0 || v > 1 {
			return usagef("%s: must be between 0 and 1, got %v", name, v)
		}
	}
	if c.ErrorRate+c.DropRate > 1 {
		return usagef("--error-rate + --drop-rate: must be at most 1")
	}
	if c.Latency < 0 || c.Jitter < 0 || c.SearchDelay < 0 {
		return usagef("--latency, --latency-jitter, --search-delay: must not be negative")
	}
	if c.TokenTTL < time.Second {
		return usagef("--token-ttl: must be at least 1s, got %s", c.TokenTTL)
	}
	if c.CertOut != "" && !c.TLS {
		return usagef("--cert-out: needs --tls")
	}
	if c.ClientID == "" || c.ClientSecret == "" {
		return usagef("--client-id, --client-secret: must not be empty")
	}
	return nil
}

func (c *emulatorConfig) roles() []string {
	var out []string
	for r := range strings.SplitSeq(c.Roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return append([]string{}, out...)
}

func cmdEmulator(ctx context.Context, e *env, args []string) error {
	var (
		c   emulatorConfig
		log logConfig
	)
	fs := newFlagSet(e, "emulator")
	c.register(fs)
	envString(fs, e, &c.ClientID, "client-id", "EMULATOR_CLIENT_ID", emulator.DefaultClientID, "client id of the machine-to-machine application")
	envSecret(fs, e, &c.ClientSecret, "client-secret", "EMULATOR_CLIENT_SECRET", emulator.DefaultClientSecret,
		"its client `secret` (default: the well-known "+emulator.DefaultClientSecret+")")
	log.register(fs, e)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := e.check(fs, c.validate(), log.validate()); err != nil {
		return err
	}
	opts := emulator.Options{
		Domain: c.Domain, ClientID: c.ClientID, ClientSecret: c.ClientSecret, TokenTTL: c.TokenTTL,
		RequiresUsername: c.RequiresUsername, Roles: c.roles(), Plan: c.Plan, Rate: c.Rate, Burst: c.Burst,
		RetryAfter: c.RetryAfter, SearchDelay: c.SearchDelay, AdminRemote: c.AdminRemote,
		Faults: emulator.Faults{Latency: c.Latency, LatencyJitter: c.Jitter, ErrorRate: c.ErrorRate, DropRate: c.DropRate, LostWriteRate: c.LostWriteRate},
		Logger: log.logger(e.stderr),
	}
	var (
		srv *emulator.Server
		err error
	)
	if c.TLS {
		if c.CertOut == "" {
			c.CertOut = filepath.Join(os.TempDir(), "syncd-emulator.pem")
		}
		srv, err = emulator.ListenTLS(c.Addr, opts, c.CertOut)
	} else {
		srv, err = emulator.Listen(c.Addr, opts)
	}
	if err != nil {
		return fmt.Errorf("start emulator: %w", err)
	}
	printEmulatorBanner(e, &c, srv)
	<-ctx.Done()
	if err := srv.Close(); err != nil {
		return fmt.Errorf("stop emulator: %w", err)
	}
	fmt.Fprintln(e.stdout, "syncd emulator: stopped")
	return nil
}

// printEmulatorBanner says where the emulator is and how to get a token. A
// client secret given on the command line is not echoed; the well-known
// default is, since the curl line needs it.
func printEmulatorBanner(e *env, c *emulatorConfig, srv *emulator.Server) {
	w := e.stdout
	em := srv.Emulator
	host := strings.TrimPrefix(strings.TrimPrefix(srv.URL, "https://"), "http://")
	domain := host
	if c.Domain != "" {
		domain = c.Domain
	}
	secret := "$EMULATOR_CLIENT_SECRET"
	if c.ClientSecret == emulator.DefaultClientSecret {
		secret = c.ClientSecret
	}
	fmt.Fprintf(w, "syncd emulator: an in-memory Auth0 tenant at %s\n", srv.URL)
	fmt.Fprintf(w, "  client id:     %s\n", c.ClientID)
	if c.ClientSecret == emulator.DefaultClientSecret {
		fmt.Fprintf(w, "  client secret: %s (the default)\n", c.ClientSecret)
	} else {
		fmt.Fprintln(w, "  client secret: (as given)")
	}
	fmt.Fprintf(w, "  connection:    %s\n", emulator.DefaultConnection)
	for _, r := range c.roles() {
		fmt.Fprintf(w, "  role:          %s (%s)\n", r, em.RoleID(r))
	}
	limit := c.Plan
	if c.Rate > 0 {
		limit = fmt.Sprintf("%g requests/s, burst %d", c.Rate, max(c.Burst, int(c.Rate+0.999999)))
	}
	fmt.Fprintf(w, "  rate limit:    %s\n", limit)
	curl := "curl -s"
	if c.TLS {
		curl += " --cacert " + c.CertOut
		fmt.Fprintf(w, "  certificate:   %s\n", c.CertOut)
	}
	fmt.Fprintln(w, "\nGet a token:")
	fmt.Fprintf(w, "  %s %s/oauth/token -H 'content-type: application/json' -d '{\"grant_type\":\"client_credentials\",\"client_id\":\"%s\",\"client_secret\":\"%s\",\"audience\":\"https://%s/api/v2/\"}'\n",
		curl, srv.URL, c.ClientID, secret, domain)
	fmt.Fprintln(w, "Counters and faults (loopback only):")
	fmt.Fprintf(w, "  %s %s/admin/calls\n", curl, srv.URL)
	fmt.Fprintf(w, "  %s -X PUT %s/admin/faults -d '{\"error_rate\":0.1,\"latency\":\"50ms\"}'\n", curl, srv.URL)
	fmt.Fprintln(w, "Ctrl-C stops it; its data lives in memory only.")
}
