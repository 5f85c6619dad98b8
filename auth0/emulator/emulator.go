package emulator

import (
	"cmp"
	"crypto/rand"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure an Emulator. The zero value is a usable tenant with one
// database connection, the role production_associate and no rate limit.
type Options struct {
	// Domain is the host[:port] that token audiences must name
	// (https://Domain/api/v2/) and that tokens are issued by; "" = the Host of
	// each request, which is what a client pointed at the listener sends.
	Domain string
	// ClientID of the one machine-to-machine application; default "syncd-emulator".
	ClientID string
	// ClientSecret of that application; default "syncd-emulator-secret".
	ClientSecret string
	// Scopes granted in tokens; nil = every scope the emulator checks.
	Scopes []string
	// TokenTTL is the tokens' lifetime (expires_in); default 24h, as Auth0's.
	TokenTTL time.Duration
	// Connection is the database connection users are created in; default
	// "Username-Password-Authentication".
	Connection string
	// OtherConnections are further database connections (same rules), so that
	// tests can have one e-mail in several connections.
	OtherConnections []string
	// RequiresUsername makes the connections require a username (and accept one).
	RequiresUsername bool
	// UsernameMaxLength is the longest username accepted; default 15, Auth0's
	// default for a connection that requires usernames.
	UsernameMaxLength int
	// Roles are the names of the roles created at start; nil =
	// []string{"production_associate"}.
	Roles []string
	// RoleMembersOrder is the order of GET /api/v2/roles/{id}/users and what
	// its checkpoint encodes: "" or RoleMembersByAssignment (Auth0's: when
	// each member was assigned the role), or RoleMembersByCreation (the
	// users' created_at). Any other value is Auth0's order.
	RoleMembersOrder string
	// Plan picks the rate limits: "unlimited" (default), "free",
	// "professional" or "enterprise" (auth0-api.md §3).
	Plan string
	// Rate, if > 0, is one global bucket of Rate requests/s and Burst
	// (default: Rate rounded up), overriding Plan.
	Rate  float64
	Burst int
	// RetryAfter also sends Retry-After on 429 (Auth0 documents it only for
	// some limits).
	RetryAfter bool
	// SearchDelay: GET /api/v2/users sees writes only this long after they
	// happen (Auth0's search index lags); users-by-email and GET by id are
	// immediately consistent.
	SearchDelay time.Duration
	// ExportDelay: an export job stays pending this long (real time) after it
	// is created; default 0, so the first poll finds it completed.
	ExportDelay time.Duration
	// Faults to inject from the start; SetFaults changes them at run time.
	Faults Faults
	// AdminRemote lets the admin endpoint (/admin/…) answer clients that are
	// not on the loopback interface.
	AdminRemote bool
	// Logger receives one Debug line per request; nil = discard.
	Logger *slog.Logger
	// Now is the clock of tokens, timestamps, rate limits and the search
	// delay; nil = time.Now (tests may fake time for token expiry).
	Now func() time.Time
}

// Default values of Options.
const (
	DefaultClientID     = "syncd-emulator"
	DefaultClientSecret = "syncd-emulator-secret"
	DefaultConnection   = "Username-Password-Authentication"
	DefaultRole         = "production_associate"
	DefaultTokenTTL     = 24 * time.Hour
)

func (o Options) withDefaults() Options {
	o.ClientID = cmp.Or(o.ClientID, DefaultClientID)
	o.ClientSecret = cmp.Or(o.ClientSecret, DefaultClientSecret)
	o.TokenTTL = cmp.Or(o.TokenTTL, DefaultTokenTTL)
	o.Connection = cmp.Or(o.Connection, DefaultConnection)
	o.UsernameMaxLength = cmp.Or(o.UsernameMaxLength, 15)
	if o.Roles == nil {
		o.Roles = []string{DefaultRole}
	}
	if o.Scopes == nil {
		o.Scopes = AllScopes()
	}
	o.Plan = cmp.Or(o.Plan, PlanUnlimited)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Emulator is an in-memory Auth0 tenant; it is an http.Handler and is safe
// for concurrent use.
type Emulator struct {
	opts        Options
	log         *slog.Logger
	key         []byte // signs tokens and export links; new on every start
	mux         *http.ServeMux
	connections []*connection

	mu      sync.Mutex // guards the tenant's data below
	users   map[string]*user
	byKey   map[string]string // connection+"\x00"+lower(email) or +"\x01"+username → user id
	seq     int64
	roles   []*role
	jobs    map[string]*job
	history map[string][]indexEntry // what search sees, when SearchDelay > 0

	faultMu sync.Mutex
	faults  Faults

	grants grants // scopes granted at run time (SetScopes)

	rateMu      sync.Mutex
	limiter     *limiter
	rateSetting rateSetting

	callMu sync.Mutex
	calls  map[callKey]int64
	writes atomic.Int64
}

type connection struct {
	id   string
	name string
}

// New returns an emulator with opts (defaults filled in). A bad Plan falls
// back to "unlimited"; use SetRate to have it checked.
func New(opts Options) *Emulator {
	opts = opts.withDefaults()
	e := &Emulator{
		opts:    opts,
		log:     opts.Logger,
		key:     make([]byte, 32),
		users:   map[string]*user{},
		byKey:   map[string]string{},
		jobs:    map[string]*job{},
		history: map[string][]indexEntry{},
		calls:   map[callKey]int64{},
	}
	_, _ = rand.Read(e.key)
	for _, name := range append([]string{opts.Connection}, opts.OtherConnections...) {
		e.connections = append(e.connections, &connection{id: "con_" + randomAlnum(16), name: name})
	}
	for _, name := range opts.Roles {
		e.addRole(name)
	}
	e.faults = opts.Faults.clone()
	e.rateSetting = rateSetting{Plan: opts.Plan, Rate: opts.Rate, Burst: opts.Burst}
	lim, err := newLimiter(opts.Plan, opts.Rate, opts.Burst)
	if err != nil {
		e.rateSetting = rateSetting{Plan: PlanUnlimited}
		lim, _ = newLimiter(PlanUnlimited, 0, 0)
	}
	e.limiter = lim
	e.routes()
	return e
}

// Options returns the options in effect, defaults filled in.
func (e *Emulator) Options() Options { return e.opts }

func (e *Emulator) now() time.Time { return e.opts.Now() }

func (e *Emulator) connectionByName(name string) *connection {
	for _, c := range e.connections {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (e *Emulator) connectionByID(id string) *connection {
	for _, c := range e.connections {
		if c.id == id {
			return c
		}
	}
	return nil
}

// ConnectionID returns the con_… id of the named connection ("" = the
// default one), or "" if there is none.
func (e *Emulator) ConnectionID(name string) string {
	if c := e.connectionByName(cmp.Or(name, e.opts.Connection)); c != nil {
		return c.id
	}
	return ""
}

// SetFaults replaces the faults at run time; the script starts afresh.
func (e *Emulator) SetFaults(f Faults) {
	e.faultMu.Lock()
	e.faults = f.clone()
	e.faultMu.Unlock()
}

// CurrentFaults returns the faults in effect, with what is left of the script.
func (e *Emulator) CurrentFaults() Faults {
	e.faultMu.Lock()
	defer e.faultMu.Unlock()
	return e.faults.clone()
}

// SetRate replaces the rate limits at run time: a plan ("unlimited", "free",
// "professional", "enterprise"; "" = unlimited) or, if rate > 0, one global
// bucket of rate requests/s and burst. Buckets start full.
func (e *Emulator) SetRate(plan string, rate float64, burst int) error {
	lim, err := newLimiter(plan, rate, burst)
	if err != nil {
		return err
	}
	e.rateMu.Lock()
	e.limiter = lim
	e.rateSetting = rateSetting{Plan: cmp.Or(plan, PlanUnlimited), Rate: rate, Burst: burst}
	e.rateMu.Unlock()
	return nil
}

// Call is how many requests an endpoint answered with a status.
type Call struct {
	// Endpoint is the method and route template, as "GET /api/v2/users/{id}".
	Endpoint string `json:"endpoint"`
	// Status is the HTTP status answered; 0 = the connection was closed with
	// no answer (a dropped connection or a lost answer).
	Status int   `json:"status"`
	Count  int64 `json:"count"`
}

type callKey struct {
	endpoint string
	status   int
}

func (e *Emulator) record(endpoint string, status int) {
	e.callMu.Lock()
	e.calls[callKey{endpoint, status}]++
	e.callMu.Unlock()
}

// Calls returns a snapshot of the request counters, sorted by Endpoint then
// Status. It counts every route: /oauth/token, /api/v2/… and export downloads.
func (e *Emulator) Calls() []Call {
	e.callMu.Lock()
	out := make([]Call, 0, len(e.calls))
	for k, n := range e.calls {
		out = append(out, Call{Endpoint: k.endpoint, Status: k.status, Count: n})
	}
	e.callMu.Unlock()
	slices.SortFunc(out, func(a, b Call) int {
		return cmp.Or(strings.Compare(a.Endpoint, b.Endpoint), cmp.Compare(a.Status, b.Status))
	})
	return out
}

// CallCount returns how many requests endpoint received, whatever their
// answer; "" = every /api/v2 request.
func (e *Emulator) CallCount(endpoint string) int64 {
	e.callMu.Lock()
	defer e.callMu.Unlock()
	var n int64
	for k, c := range e.calls {
		if k.endpoint == endpoint || (endpoint == "" && isAPIEndpoint(k.endpoint)) {
			n += c
		}
	}
	return n
}

func isAPIEndpoint(endpoint string) bool {
	_, path, _ := strings.Cut(endpoint, " ")
	return strings.HasPrefix(path, "/api/v2/")
}

// WriteCount returns how many POST, PATCH and DELETE requests reached
// /api/v2, whatever their answer, except export jobs (which only read).
func (e *Emulator) WriteCount() int64 { return e.writes.Load() }

// ResetCalls sets every request counter, and WriteCount, to zero.
func (e *Emulator) ResetCalls() {
	e.callMu.Lock()
	clear(e.calls)
	e.writes.Store(0)
	e.callMu.Unlock()
}
