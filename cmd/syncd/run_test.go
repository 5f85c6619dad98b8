package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/testcontainers"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

// syncBuffer collects a process's output safely across goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// e2e is one end-to-end setup: a database, the emulator, and syncd run as
// the binary would run it, through run(...).
type e2e struct {
	t       *testing.T
	ctx     context.Context
	dbURL   string
	pool    *pgxpool.Pool
	emu     *emulator.Server
	api     *auth0.Client
	logs    *syncBuffer // every log line of every daemon of the test
	metrics string      // host:port of the last daemon's HTTP server
	domain  string      // AUTH0_DOMAIN given to syncd; default the emulator's URL
}

func newE2E(t *testing.T, eopts emulator.Options) *e2e {
	t.Helper()
	return newE2EOn(t, eopts, pgtest.NewDatabase(t))
}

// newE2EOn is newE2E on the database at dbURL.
func newE2EOn(t *testing.T, eopts emulator.Options, dbURL string) *e2e {
	t.Helper()
	ctx := context.Background()
	if eopts.Roles == nil {
		eopts.Roles = []string{"production_associate", "production_lead"}
	}
	srv, err := emulator.Listen("127.0.0.1:0", eopts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	base, _ := url.Parse(srv.URL)
	api, err := auth0.New(auth0.Config{BaseURL: base, ClientID: emulator.DefaultClientID, ClientSecret: emulator.DefaultClientSecret})
	require.NoError(t, err)
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	x := &e2e{t: t, ctx: ctx, dbURL: dbURL, pool: pool, emu: srv, api: api, logs: &syncBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			logs := x.logs.String()
			var notDebug []string
			for _, l := range strings.Split(logs, "\n") {
				if !strings.Contains(l, `"level":"DEBUG"`) {
					notDebug = append(notDebug, l)
				}
			}
			t.Logf("syncd logs above DEBUG (last 60 lines):\n%s", strings.Join(notDebug[max(0, len(notDebug)-60):], "\n"))
			if dir := os.Getenv("SYNCD_TEST_LOG_DIR"); dir != "" {
				_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".log"), []byte(logs), 0o644)
			}
		}
		x.assertNoSecrets()
	})
	return x
}

// daemon is a running `syncd run`.
type runningDaemon struct {
	cancel context.CancelFunc
	done   chan error
}

// start runs `syncd run` with the given extra flags until stop.
func (x *e2e) start(source string, secret string, extra ...string) *runningDaemon {
	x.t.Helper()
	// Port 0: the kernel picks a free port, and syncd logs the one it got
	// (a port picked beforehand could be taken by another test meanwhile).
	x.metrics = ""
	started := strings.Count(x.logs.String(), `"msg":"`+testcontainers.RunningMsg+`"`)
	environ := map[string]string{
		"DATABASE_URL": x.dbURL, "AUTH0_DOMAIN": cmp.Or(x.domain, x.emu.URL), "AUTH0_CLIENT_ID": emulator.DefaultClientID,
		"AUTH0_CLIENT_SECRET": secret, "LOG_FORMAT": "json", "LOG_LEVEL": "debug", "METRICS_ADDR": "127.0.0.1:0", "SYNCD_CONSOLE_ADDR": "127.0.0.1:0",
	}
	args := append([]string{"run", "--source", source, "--slot", "syncd_" + strings.ReplaceAll(strings.ToLower(x.t.Name()), "/", "_"),
		"--poll-interval", "200ms", "--roles", "associate=production_associate,lead=production_lead", "--workers", "4"}, extra...)
	ctx, cancel := context.WithCancel(x.ctx)
	d := &runningDaemon{cancel: cancel, done: make(chan error, 1)}
	go func() {
		d.done <- run(ctx, args, func(k string) string { return environ[k] }, io.Discard, x.logs)
	}()
	require.Eventually(x.t, func() bool {
		x.metrics = testcontainers.ListeningAddr([]byte(x.logs.String()), started)
		return x.metrics != ""
	}, 60*time.Second, 10*time.Millisecond, "syncd run says where it listens")
	x.waitHTTP()
	return d
}

// stop sends the equivalent of SIGTERM and waits for a clean exit.
func (d *runningDaemon) stop(t *testing.T) {
	t.Helper()
	d.cancel()
	select {
	case err := <-d.done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("syncd run did not stop")
	}
}

func (x *e2e) waitHTTP() {
	x.t.Helper()
	require.Eventually(x.t, func() bool {
		resp, err := http.Get("http://" + x.metrics + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 20*time.Second, 20*time.Millisecond)
}

func (x *e2e) exec(sql string, args ...any) {
	x.t.Helper()
	_, err := x.pool.Exec(x.ctx, sql, args...)
	require.NoError(x.t, err)
}

// status reads employee id's sync columns; id is the key (an int64, or
// the text of any key).
func (x *e2e) status(id any) (status, userID, syncErr string) {
	x.t.Helper()
	require.NoError(x.t, x.pool.QueryRow(x.ctx, `SELECT auth0_sync_status, coalesce(auth0_user_id, ''), coalesce(auth0_sync_error, '')
		FROM employees WHERE id = $1`, id).Scan(&status, &userID, &syncErr))
	return
}

func (x *e2e) waitStatus(id any, want string) string {
	x.t.Helper()
	var last, uid, serr string
	ok := assertEventually(func() bool {
		last, uid, serr = x.status(id)
		return last == want
	}, 30*time.Second)
	require.True(x.t, ok, "employee %v: status %q (%s), want %q", id, last, serr, want)
	return uid
}

func (x *e2e) countStatus(status string) int {
	var n int
	require.NoError(x.t, x.pool.QueryRow(x.ctx, `SELECT count(*) FROM employees WHERE auth0_sync_status = $1`, status).Scan(&n))
	return n
}

func assertEventually(cond func() bool, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func (x *e2e) user(id string) map[string]any {
	for _, u := range x.emu.Emulator.Users() {
		if u["user_id"] == id {
			return u
		}
	}
	return nil
}

// metric reads one series (a name, with its labels as Prometheus prints
// them) from /metrics, -1 if absent.
func (x *e2e) metric(name string) float64 {
	x.t.Helper()
	_, body := x.get("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			require.NoError(x.t, err)
			return f
		}
	}
	return -1
}

func (x *e2e) get(path string) (int, string) {
	resp, err := http.Get("http://" + x.metrics + path)
	require.NoError(x.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// assertNoSecrets checks every log line of the test for the client secret,
// an access token (a JWT) or a password.
func (x *e2e) assertNoSecrets() {
	logs := x.logs.String()
	require.NotContains(x.t, logs, emulator.DefaultClientSecret)
	// A JWT: base64url of a JSON header ("eyJ…"), a dot, the payload, a dot.
	// Not "eyJ" alone: a random id (an export job's) may contain it.
	require.NotRegexp(x.t, `eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.`, logs, "a JWT (access token) leaked into the logs")
	require.NotContains(x.t, strings.ToLower(logs), `"password"`)
}

func TestRunEndToEnd(t *testing.T) {
	t.Parallel()
	for _, source := range []string{"notify", "replication"} {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			x := newE2E(t, emulator.Options{})
			// Three employees: the default 10 % would hold the second deprovision.
			d := x.start(source, emulator.DefaultClientSecret, "--resync-interval", "1s", "--max-deprovision", "100%", "--deprovision-settle", "200ms")
			defer d.stop(t)

			var id int64
			require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email, department, connecteam_id)
				VALUES ('Ada Lovelace', 'ada@example.com', 'Heat Press', 'ct-7') RETURNING id`).Scan(&id))
			uid := x.waitStatus(id, "synced")
			u := x.user(uid)
			require.Equal(t, "ada@example.com", u["email"])
			app := u["app_metadata"].(map[string]any)
			require.EqualValues(t, id, app["employee_id"])
			require.Equal(t, "Heat Press", app["department"])
			require.Equal(t, "active", app["sync_status"])
			require.Equal(t, []string{"production_associate"}, x.emu.Emulator.UserRoles(uid))

			x.exec(`UPDATE employees SET role_code = 'lead' WHERE id = $1`, id)
			require.True(t, assertEventually(func() bool {
				r := x.emu.Emulator.UserRoles(uid)
				return len(r) == 1 && r[0] == "production_lead"
			}, 20*time.Second), "role swapped")
			x.waitStatus(id, "synced")

			x.exec(`UPDATE employees SET active = false WHERE id = $1`, id)
			x.waitStatus(id, "deprovisioned")
			require.Equal(t, true, x.user(uid)["blocked"])

			// Drift by hand: unblock the leaver, edit app_metadata, delete another's account, remove a role.
			var id2 int64
			require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email) VALUES ('Bo', 'bo@example.com') RETURNING id`).Scan(&id2))
			uid2 := x.waitStatus(id2, "synced")
			var id3 int64
			require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email) VALUES ('Cy', 'cy@example.com') RETURNING id`).Scan(&id3))
			uid3 := x.waitStatus(id3, "synced")
			unblocked := false
			_, err := x.api.UpdateUser(x.ctx, uid, auth0.UpdateUserRequest{Blocked: &unblocked, AppMetadata: map[string]any{"sync_status": "active"}})
			require.NoError(t, err)
			_, err = x.api.UpdateUser(x.ctx, uid2, auth0.UpdateUserRequest{AppMetadata: map[string]any{"department": "Hacked"}})
			require.NoError(t, err)
			require.NoError(t, x.api.RemoveUserRoles(x.ctx, uid2, []string{x.emu.Emulator.RoleID("production_associate")}))
			require.NoError(t, x.api.DeleteUser(x.ctx, uid3))

			require.True(t, assertEventually(func() bool {
				u1, u2 := x.user(uid), x.user(uid2)
				_, newUID3, _ := x.status(id3)
				return u1 != nil && u1["blocked"] == true && u2 != nil && u2["app_metadata"].(map[string]any)["department"] == nil &&
					len(x.emu.Emulator.UserRoles(uid2)) == 1 && newUID3 != "" && newUID3 != uid3 && x.user(newUID3) != nil
			}, 30*time.Second), "drift healed by the scan")

			code, body := x.get("/metrics")
			require.Equal(t, 200, code)
			for _, name := range []string{"auth0_user_creation_total", "auth0_user_creation_duration_seconds", "auth0_token_refresh_total",
				"syncd_reconcile_total", "syncd_reconcile_duration_seconds", "syncd_auth0_requests_total", "syncd_queue_depth",
				"syncd_queue_oldest_pending_seconds", "syncd_drift_found_total", "syncd_breaker_open", "syncd_employees"} {
				require.Contains(t, body, name)
			}
			require.NotContains(t, body, "ada@example.com", "no personal data on /metrics")
			if source == "replication" {
				require.Contains(t, body, "syncd_replication_slot_lag_bytes")
			}
			code, body = x.get("/readyz")
			require.Equal(t, 200, code, body)
		})
	}
}

func TestPlanAndResync(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	d := x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h")
	var id int64
	require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email, department) VALUES ('Di', 'di@example.com', 'Ops') RETURNING id`).Scan(&id))
	uid := x.waitStatus(id, "synced")
	d.stop(t)

	_, err := x.api.UpdateUser(x.ctx, uid, auth0.UpdateUserRequest{AppMetadata: map[string]any{"department": "Hacked"}})
	require.NoError(t, err)
	x.emu.Emulator.ResetCalls()
	environ := map[string]string{"DATABASE_URL": x.dbURL, "AUTH0_DOMAIN": x.emu.URL, "AUTH0_CLIENT_ID": emulator.DefaultClientID,
		"AUTH0_CLIENT_SECRET": emulator.DefaultClientSecret, "LOG_FORMAT": "json"}
	var out bytes.Buffer
	err = run(x.ctx, []string{"plan"}, func(k string) string { return environ[k] }, &out, x.logs)
	require.NoError(t, err)
	require.Contains(t, out.String(), fmt.Sprintf("%d ", id))
	require.Contains(t, out.String(), uid)
	require.Contains(t, out.String(), `update app_metadata.department: "Hacked" → "Ops"`)
	require.EqualValues(t, 0, x.emu.Emulator.WriteCount(), "plan makes no write call")

	out.Reset()
	require.NoError(t, run(x.ctx, []string{"plan", "--json"}, func(k string) string { return environ[k] }, &out, x.logs))
	var js struct {
		Plan []struct {
			EmployeeID string `json:"employee_id"`
			Actions    []struct{ Kind, Field string }
		}
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &js))
	require.Len(t, js.Plan, 1)
	require.Equal(t, "update", js.Plan[0].Actions[0].Kind)

	// resync: marks it pending; the daemon (started again) heals it.
	out.Reset()
	require.NoError(t, run(x.ctx, []string{"resync", "--employee", fmt.Sprint(id)}, func(k string) string { return environ[k] }, &out, x.logs))
	require.Contains(t, out.String(), "marked 1 employee pending")
	st, _, _ := x.status(id)
	require.Equal(t, "pending", st)
	d = x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h")
	defer d.stop(t)
	x.waitStatus(id, "synced")
	require.Equal(t, "Ops", x.user(uid)["app_metadata"].(map[string]any)["department"])

	out.Reset()
	require.NoError(t, run(x.ctx, []string{"status"}, func(k string) string { return environ[k] }, &out, x.logs))
	require.Contains(t, out.String(), "synced")
	code := exitCode(run(x.ctx, []string{"resync"}, func(k string) string { return environ[k] }, &out, x.logs), io.Discard)
	require.Equal(t, 2, code)
}

// createHold serves the emulator and, while holding, answers no account
// creation: the account is made, and the answer waits until the client
// gives up (a create in flight when syncd is told to stop).
type createHold struct {
	emu     *emulator.Emulator
	holding atomic.Bool
	held    atomic.Int64 // answers being held now
}

func (h *createHold) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.holding.Load() || r.Method != http.MethodPost || r.URL.Path != "/api/v2/users" {
		h.emu.ServeHTTP(w, r)
		return
	}
	h.held.Add(1)
	defer h.held.Add(-1)
	h.emu.ServeHTTP(httptest.NewRecorder(), r) // applied; the answer is lost
	<-r.Context().Done()
}

// TestShutdownMidBackfillLosesNothing stops syncd while creates are in
// flight (their answers held until syncd gives up on them): stop returns
// within --shutdown-timeout, the interrupted rows are recorded as due again
// (none is left syncing or leased), and a restart converges every row with
// no second account for the creates whose answers were lost.
func TestShutdownMidBackfillLosesNothing(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	hold := &createHold{emu: x.emu.Emulator}
	front := httptest.NewServer(hold)
	t.Cleanup(front.Close)
	x.domain = front.URL
	const rows, workers = 500, 4
	d := x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h", "--workers", fmt.Sprint(workers), "--bulk-create", "off")
	x.exec(`INSERT INTO employees (name, email) SELECT 'E' || g, 'e' || g || '@example.com' FROM generate_series(1, $1) g`, rows)
	require.True(t, assertEventually(func() bool { return x.countStatus("synced") >= 50 }, 60*time.Second))
	hold.holding.Store(true)
	// Every worker is now inside a create whose answer does not come.
	require.True(t, assertEventually(func() bool { return hold.held.Load() == workers }, 60*time.Second), "held %d", hold.held.Load())
	synced := x.countStatus("synced")

	d.stop(t) // SIGTERM; stop fails if run reports that the shutdown timed out
	require.Equal(t, synced, x.countStatus("synced"), "nothing finished while every create was held")
	require.Zero(t, x.countStatus("syncing"), "no row is left syncing")
	var leased, due int
	require.NoError(t, x.pool.QueryRow(x.ctx, `SELECT count(*) FILTER (WHERE auth0_locked_by IS NOT NULL),
		count(*) FILTER (WHERE auth0_sync_status = 'retrying' AND auth0_next_attempt_at <= now() AND auth0_sync_attempts > 0)
		FROM employees`).Scan(&leased, &due))
	require.Zero(t, leased, "no lease is left behind")
	require.Equal(t, workers, due, "each interrupted row is recorded as due again at once")
	require.Contains(t, x.logs.String(), "stopped")

	hold.holding.Store(false)
	d = x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h", "--bulk-create", "off")
	defer d.stop(t)
	require.True(t, assertEventually(func() bool { return x.countStatus("synced") == rows }, 120*time.Second), "synced %d", x.countStatus("synced"))
	require.Len(t, x.emu.Emulator.Users(), rows, "no duplicate accounts")
	require.EqualValues(t, rows, countStatus(x.emu.Emulator, "POST /api/v2/users", 201),
		"the creates whose answers were lost were looked for, not repeated")
}

func countStatus(e *emulator.Emulator, endpoint string, status int) int64 {
	for _, c := range e.Calls() {
		if c.Endpoint == endpoint && c.Status == status {
			return c.Count
		}
	}
	return 0
}

func TestBreaker(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	x.exec(`INSERT INTO employees (name, email) SELECT 'E' || g, 'e' || g || '@example.com' FROM generate_series(1, 30) g`)

	// Bad credentials: not ready, breaker open, rows are not flapping.
	d := x.start("notify", "wrong-secret", "--resync-interval", "1h")
	require.True(t, assertEventually(func() bool {
		code, body := x.get("/readyz")
		return code == 503 && strings.Contains(body, "breaker") && strings.Contains(body, "open")
	}, 30*time.Second))
	_, body := x.get("/readyz")
	require.Contains(t, body, "token refused: 401")
	// Reconciles that passed the breaker just before it opened end; after
	// that none starts while it is open, although every worker is offered
	// a key (they wait at the breaker).
	require.True(t, assertEventually(func() bool { return x.metric("syncd_reconciles_running") == 0 }, 30*time.Second))
	sumAttempts := func() int {
		var n int
		require.NoError(t, x.pool.QueryRow(x.ctx, `SELECT coalesce(sum(auth0_sync_attempts), 0) FROM employees`).Scan(&n))
		return n
	}
	attempts := sumAttempts()
	x.exec(`INSERT INTO employees (name, email) SELECT 'N' || g, 'n' || g || '@example.com' FROM generate_series(1, 10) g`)
	require.True(t, assertEventually(func() bool { return x.metric("syncd_queue_in_flight") == 4 }, 30*time.Second), "every worker waits at the breaker")
	require.Zero(t, x.metric("syncd_reconciles_running"))
	require.Equal(t, attempts, sumAttempts(), "no status flapping while the breaker is open")
	require.Equal(t, 1, strings.Count(x.logs.String(), "breaker open"), "said once")
	require.Equal(t, 1.0, x.metric(`syncd_breaker_trips_total{cause="credentials"}`), "one trip, by its cause")
	d.stop(t)

	// Fixed credentials: everything converges.
	d = x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h")
	require.True(t, assertEventually(func() bool { return x.countStatus("synced") == 40 }, 30*time.Second))

	// Auth0 down (every call 503), then back: the breaker opens and closes by itself.
	x.emu.Emulator.SetFaults(emulator.Faults{ErrorRate: 1})
	x.exec(`UPDATE employees SET department = 'Night' WHERE id <= 20`)
	require.True(t, assertEventually(func() bool {
		code, _ := x.get("/readyz")
		return code == 503
	}, 60*time.Second), "every call 503: the breaker opens (/readyz 503)")
	require.True(t, assertEventually(func() bool { return x.metric(`syncd_breaker_trips_total{cause="server"}`) == 1 }, 60*time.Second),
		"the breaker opens for the 5xx, counted by its cause")
	x.emu.Emulator.SetFaults(emulator.Faults{})
	require.True(t, assertEventually(func() bool {
		code, _ := x.get("/readyz")
		return code == 200 && x.countStatus("synced") == 40
	}, 60*time.Second), "recovered by itself: synced %d", x.countStatus("synced"))
	d.stop(t)
	require.Contains(t, x.logs.String(), "breaker closed")
}

func TestMassDeprovisionGuard(t *testing.T) {
	t.Parallel()
	for _, source := range []string{"notify", "replication"} {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			testMassDeprovisionGuard(t, source)
		})
	}
}

func testMassDeprovisionGuard(t *testing.T, source string) {
	x := newE2E(t, emulator.Options{})
	x.exec(`INSERT INTO employees (name, email) SELECT 'E' || g, 'e' || g || '@example.com' FROM generate_series(1, 20) g`)
	d := x.start(source, emulator.DefaultClientSecret, "--resync-interval", "1h", "--deprovision-settle", "1s")
	defer d.stop(t)
	require.True(t, assertEventually(func() bool { return x.countStatus("synced") == 20 }, 30*time.Second))

	x.exec(`UPDATE employees SET active = false`) // a mistake in bulk
	held := func() int {
		var n int
		require.NoError(t, x.pool.QueryRow(x.ctx, `SELECT count(*) FROM syncd_deprovisions WHERE state = 'held'`).Scan(&n))
		return n
	}
	// Held, and each worker has recorded its row as pending (the guard's
	// decision commits before the worker that asked writes its outcome).
	require.True(t, assertEventually(func() bool { return held() == 20 && x.countStatus("pending") == 20 }, 60*time.Second),
		"held %d, pending %d", held(), x.countStatus("pending"))
	require.Zero(t, x.countStatus("deprovisioned"), "the batch is held whole")
	code, body := x.get("/readyz")
	require.Equal(t, 200, code, "everything else goes on")
	require.Contains(t, body, "holding deprovisioning")
	require.True(t, assertEventually(func() bool {
		_, metrics := x.get("/metrics")
		return strings.Contains(metrics, "syncd_deprovision_guard_tripped 1") && strings.Contains(metrics, "syncd_deprovisions_held 20") &&
			strings.Contains(metrics, "syncd_deprovisions_held_total 20")
	}, 30*time.Second))
	require.Equal(t, 1, strings.Count(x.logs.String(), "mass-deprovision guard tripped"), "said once")
	var blocks int
	require.NoError(t, x.pool.QueryRow(x.ctx, `SELECT count(*) FROM auth0_outbox`).Scan(&blocks))
	require.Zero(t, blocks, "held deprovisions leave no outbox row behind")
	if source == "replication" {
		// Held keys are acknowledged: the slot's confirmed position passes
		// the mass change.
		var lsn string
		require.NoError(t, x.pool.QueryRow(x.ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn))
		slot := "syncd_" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "_")
		require.True(t, assertEventually(func() bool {
			var passed bool
			err := x.pool.QueryRow(x.ctx, `SELECT coalesce(confirmed_flush_lsn >= $1::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = $2`, lsn, slot).Scan(&passed)
			return err == nil && passed
		}, 60*time.Second), "the slot's confirmed LSN advances past held deprovisions")
	}

	environ := map[string]string{"DATABASE_URL": x.dbURL, "USER": "alice"}
	getenv := func(k string) string { return environ[k] }
	var out bytes.Buffer
	require.NoError(t, run(x.ctx, []string{"status"}, getenv, &out, io.Discard))
	require.Contains(t, out.String(), "Deprovision guard: 20 deprovisions held since")
	require.Contains(t, out.String(), "syncd guard release")

	// The operator releases exactly these, without a restart.
	out.Reset()
	require.NoError(t, run(x.ctx, []string{"guard", "release"}, getenv, &out, io.Discard))
	require.Contains(t, out.String(), "Released 20 held deprovisions")
	require.True(t, assertEventually(func() bool { return x.countStatus("deprovisioned") == 20 }, 60*time.Second),
		"deprovisioned %d", x.countStatus("deprovisioned"))
	var released int
	require.NoError(t, x.pool.QueryRow(x.ctx, `SELECT count(*) FROM auth0_sync_logs WHERE action = 'guard_release' AND response_data->>'released_by' = 'alice'`).Scan(&released))
	require.Equal(t, 20, released)
	require.True(t, assertEventually(func() bool {
		code, body := x.get("/readyz")
		return code == 200 && !strings.Contains(body, "holding deprovisioning")
	}, 30*time.Second), "nothing held any more")
	out.Reset()
	require.NoError(t, run(x.ctx, []string{"guard", "list"}, getenv, &out, io.Discard))
	require.Contains(t, out.String(), "holds nothing")
}
