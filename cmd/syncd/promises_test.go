package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
)

// The README's promises that no other test checks, each through the daemon
// or the command as an operator runs it.

// cli runs a syncd command against the test's database and emulator.
func (x *e2e) cli(args ...string) (string, error) {
	x.t.Helper()
	environ := map[string]string{"DATABASE_URL": x.dbURL, "AUTH0_DOMAIN": x.emu.URL, "AUTH0_CLIENT_ID": emulator.DefaultClientID,
		"AUTH0_CLIENT_SECRET": emulator.DefaultClientSecret, "LOG_FORMAT": "json", "USER": "tester"}
	var out bytes.Buffer
	err := run(x.ctx, args, func(k string) string { return environ[k] }, &out, x.logs)
	return out.String(), err
}

func (x *e2e) insertN(n int) []int64 {
	x.t.Helper()
	rows, err := x.pool.Query(x.ctx, `INSERT INTO employees (name, email) SELECT 'E' || g, 'p' || g || '@example.com' FROM generate_series(1, $1) g RETURNING id`, n)
	require.NoError(x.t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(x.t, err)
	return ids
}

func (x *e2e) deprovisionStates() map[string]int {
	x.t.Helper()
	rows, err := x.pool.Query(x.ctx, `SELECT kind || ' ' || state FROM syncd_deprovisions`)
	require.NoError(x.t, err)
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(x.t, err)
	out := map[string]int{}
	for _, k := range keys {
		out[k]++
	}
	return out
}

// TestDriftScanUnderTheGuard: the drift scan's orphan accounts are one batch
// under the guard, held whole when over the limit; while anything is held, a
// drifted leaver (an account unblocked by hand) is held too rather than
// blocked again; `syncd guard release` lets exactly those through. Along the
// way the scan, orphan, request, rate-limit and guard metrics move.
func TestDriftScanUnderTheGuard(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	ids := x.insertN(10)
	// A client-side limit of 20/s with a burst of 1: requests wait on it.
	d := x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1s", "--max-deprovision", "2",
		"--deprovision-settle", "200ms", "--auth0-rate", "20", "--auth0-burst", "1")
	defer d.stop(t)
	require.True(t, assertEventually(func() bool { return x.countStatus("synced") == 10 }, 60*time.Second))

	// One leaver, within the limit: blocked.
	x.exec(`UPDATE employees SET active = false WHERE id = $1`, ids[0])
	leaver := x.waitStatus(ids[0], "deprovisioned")
	require.Equal(t, true, x.user(leaver)["blocked"])

	// Three managed accounts no row claims: over the limit of 2 (with the
	// leaver, 4 within the hour), held whole.
	var orphans []string
	for i := range 3 {
		u, err := x.api.CreateUser(x.ctx, auth0.CreateUserRequest{Connection: "Username-Password-Authentication",
			Email: fmt.Sprintf("orphan%d@example.com", i), Name: "Orphan", Password: "Corr3ct-Horse-Battery",
			AppMetadata: map[string]any{"employee_id": 90000 + i, "created_by": "productivity_system"}})
		require.NoError(t, err)
		orphans = append(orphans, u.UserID)
	}
	require.True(t, assertEventually(func() bool { return x.deprovisionStates()["orphan held"] == 3 }, 60*time.Second),
		"states %v", x.deprovisionStates())
	require.True(t, assertEventually(func() bool {
		return x.metric("syncd_orphan_accounts") == 3 && x.metric(`syncd_drift_found_total{kind="orphan"}`) >= 3 &&
			x.metric("syncd_deprovisions_held_total") == 3 && x.metric("syncd_deprovision_guard_tripped") == 1
	}, 30*time.Second), "orphan and guard metrics")

	// The leaver's account is unblocked by hand: the scan finds the drift,
	// and its fix (a block) is held while the orphans are.
	unblocked := false
	_, err := x.api.UpdateUser(x.ctx, leaver, auth0.UpdateUserRequest{Blocked: &unblocked})
	require.NoError(t, err)
	require.True(t, assertEventually(func() bool { return x.deprovisionStates()["inactive held"] == 1 }, 60*time.Second),
		"states %v", x.deprovisionStates())
	scans := x.metric(`syncd_drift_scans_total{result="success"}`)
	require.True(t, assertEventually(func() bool { return x.metric(`syncd_drift_scans_total{result="success"}`) >= scans+2 }, 60*time.Second),
		"two more scans")
	for _, id := range orphans {
		require.NotEqual(t, true, x.user(id)["blocked"], "a held orphan is not blocked")
	}
	require.NotEqual(t, true, x.user(leaver)["blocked"], "a held drifted deprovision is not blocked again")
	require.Equal(t, 4.0, x.metric("syncd_deprovisions_held_total"), "each held deprovision counted once, however many scans")

	// The metrics no other test reads.
	require.GreaterOrEqual(t, x.metric("syncd_drift_scan_duration_seconds_count"), scans+2)
	require.Positive(t, x.metric("syncd_drift_scan_duration_seconds_sum"))
	require.Positive(t, x.metric(`syncd_auth0_request_duration_seconds_count{endpoint="POST /api/v2/users"}`))
	require.Positive(t, x.metric(`syncd_auth0_request_duration_seconds_count{endpoint="POST /api/v2/jobs/users-exports"}`))
	require.Positive(t, x.metric("syncd_auth0_rate_limit_wait_seconds_total"), "requests waited on the client-side limit")
	_, body := x.get("/metrics")
	require.Contains(t, body, `syncd_auth0_request_duration_seconds_bucket{endpoint="GET /api/v2/users/{id}",le="+Inf"}`)

	out, err := x.cli("guard", "release")
	require.NoError(t, err)
	require.Contains(t, out, "Released 4 held deprovisions")
	require.True(t, assertEventually(func() bool {
		for _, id := range append(orphans, leaver) {
			if u := x.user(id); u == nil || u["blocked"] != true {
				return false
			}
		}
		return true
	}, 60*time.Second), "released: the orphans and the leaver are blocked")
	x.waitStatus(ids[0], "deprovisioned")
	for _, id := range ids[1:] {
		st, _, _ := x.status(id)
		require.Equal(t, "synced", st, "no other account touched")
	}
}

// TestEmployeesTableReadsEmptyHoldsThroughTheDaemon: every row deleted at
// once (a truncated or wrongly restored table) is held whatever the limit;
// --allow-mass-deprovision lets it through.
func TestEmployeesTableReadsEmptyHoldsThroughTheDaemon(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	x.insertN(4)
	// A limit far above the four rows: only the empty table holds them.
	d := x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h", "--max-deprovision", "100", "--deprovision-settle", "200ms")
	require.True(t, assertEventually(func() bool { return x.countStatus("synced") == 4 }, 60*time.Second))
	x.exec(`DELETE FROM employees`)
	require.True(t, assertEventually(func() bool { return x.deprovisionStates()["deleted held"] == 4 }, 60*time.Second),
		"states %v", x.deprovisionStates())
	require.True(t, assertEventually(func() bool {
		code, body := x.get("/readyz")
		return code == 200 && strings.Contains(body, "employees table reads empty")
	}, 30*time.Second))
	for _, u := range x.emu.Emulator.Users() {
		require.NotEqual(t, true, u["blocked"], "nothing blocked while the table reads empty")
	}
	d.stop(t)

	d = x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h", "--allow-mass-deprovision", "--deprovision-settle", "200ms")
	defer d.stop(t)
	require.True(t, assertEventually(func() bool {
		for _, u := range x.emu.Emulator.Users() {
			if u["blocked"] != true {
				return false
			}
		}
		return true
	}, 60*time.Second), "--allow-mass-deprovision lets the held deletes through")
	require.Len(t, x.emu.Emulator.Users(), 4)
}

// TestResyncStatusAndLinking: resync by a comma-separated list and --all;
// status's pending-work and slot-lag lines and its problem list; a conflict
// resolved by linking the account (setting auth0_user_id), as the README's
// status table says.
func TestResyncStatusAndLinking(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	ids := x.insertN(3)
	// An account made by hand with a fourth employee's email: a conflict.
	hand, err := x.api.CreateUser(x.ctx, auth0.CreateUserRequest{Connection: "Username-Password-Authentication",
		Email: "zoe@example.com", Name: "Zoe", Password: "Corr3ct-Horse-Battery", AppMetadata: map[string]any{"favourite": "tea"}})
	require.NoError(t, err)
	var zoe int64
	require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email) VALUES ('Zoe', 'zoe@example.com') RETURNING id`).Scan(&zoe))
	d := x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h")
	require.True(t, assertEventually(func() bool { return x.countStatus("synced") == 3 }, 60*time.Second))
	x.waitStatus(zoe, "conflict")
	d.stop(t)

	// Problem list, newest first, at most --limit.
	out, err := x.cli("status", "--limit", "1")
	require.Equal(t, 3, exitCode(err, io.Discard), "a conflict waits for a person: exit status 3")
	require.Contains(t, out, "Pending work: none")
	// Grouped by reason (issue 19): STATUS ROWS EMPLOYEES LATEST REASON.
	require.Regexp(t, fmt.Sprintf(`(?m)^conflict\s+1\s+%d\s+.*zoe@example.com belongs to Auth0 account %s`, zoe, regexp.QuoteMeta(hand.UserID)), out)

	// Drift on every account, then resync two of them by a list.
	for _, id := range ids {
		_, uid, _ := x.status(id)
		_, err := x.api.UpdateUser(x.ctx, uid, auth0.UpdateUserRequest{AppMetadata: map[string]any{"department": "Hacked"}})
		require.NoError(t, err)
	}
	out, err = x.cli("resync", "--employee", fmt.Sprintf("%d,%d", ids[0], ids[2]))
	require.NoError(t, err)
	require.Contains(t, out, "marked 2 employees pending")
	for i, want := range []string{"pending", "synced", "pending"} {
		st, _, _ := x.status(ids[i])
		require.Equal(t, want, st, "employee %d", ids[i])
	}

	// An id without a row: the others are marked, and it says so (exit 1).
	out, err = x.cli("resync", "--employee", fmt.Sprintf("%d", ids[1]), "--employee", "999999")
	require.Equal(t, 1, exitCode(err, io.Discard))
	require.Contains(t, x.logs.String(), "no employee row has id 999999: not marked")
	require.Contains(t, out, "marked 1 employee pending")
	_, err = x.cli("resync", "--employee", "7,x")
	require.Equal(t, 2, exitCode(err, io.Discard), "not an id: a usage error")
	_, err = x.cli("resync", "--all", "--employee", "7")
	require.Equal(t, 2, exitCode(err, io.Discard), "--all and --employee together: a usage error")

	// The conflict is resolved by linking the account by hand.
	x.exec(`UPDATE employees SET auth0_user_id = $1 WHERE id = $2`, hand.UserID, zoe)
	out, err = x.cli("resync", "--all")
	require.NoError(t, err)
	require.Contains(t, out, "marked 4 employees pending")
	require.Equal(t, 4, x.countStatus("pending"))

	// A replication slot nobody reads holds WAL back: status shows its lag.
	slot := "syncd_status_lag_" + fmt.Sprint(zoe)
	x.exec(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot)
	t.Cleanup(func() { _, _ = x.pool.Exec(x.ctx, `SELECT pg_drop_replication_slot($1)`, slot) })
	x.exec(`UPDATE employees SET department = 'Ops' WHERE id = $1`, ids[1]) // WAL past the slot
	out, err = x.cli("status")
	require.NoError(t, err)
	m := regexp.MustCompile(`Pending work: (\d+) outbox rows; oldest \S+ old \(employee (\d+)\)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	var outbox int
	require.NoError(t, x.pool.QueryRow(x.ctx, `SELECT count(*) FROM auth0_outbox`).Scan(&outbox))
	require.Equal(t, fmt.Sprint(outbox), m[1])
	require.Equal(t, fmt.Sprint(ids[0]), m[2], "the oldest pending work is the first resync's")
	m = regexp.MustCompile(`Replication slot "` + slot + `": inactive, lag (\d+) bytes, wal_status (\w+)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	require.NotEqual(t, "0", m[1], "the slot lags")

	out, err = x.cli("status", "--json")
	require.NoError(t, err)
	var js struct {
		Counts        map[string]int64 `json:"counts"`
		OldestPending *struct {
			EmployeeID string  `json:"employee_id"`
			AgeSeconds float64 `json:"age_seconds"`
		} `json:"oldest_pending"`
		Slots []struct {
			Name     string `json:"name"`
			LagBytes int64  `json:"lag_bytes"`
		} `json:"replication_slots"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &js))
	require.EqualValues(t, 4, js.Counts["pending"])
	require.NotNil(t, js.OldestPending)
	require.Equal(t, strconv.FormatInt(ids[0], 10), js.OldestPending.EmployeeID)
	require.Len(t, js.Slots, 1)
	require.Equal(t, slot, js.Slots[0].Name)
	require.Positive(t, js.Slots[0].LagBytes)

	d = x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h")
	defer d.stop(t)
	require.True(t, assertEventually(func() bool { return x.countStatus("synced") == 4 }, 60*time.Second),
		"synced %d", x.countStatus("synced"))
	for _, id := range ids {
		_, uid, _ := x.status(id)
		require.NotEqual(t, "Hacked", x.user(uid)["app_metadata"].(map[string]any)["department"])
	}
	_, uid, _ := x.status(zoe)
	require.Equal(t, hand.UserID, uid, "the linked account is Zoe's now")
	app := x.user(uid)["app_metadata"].(map[string]any)
	require.EqualValues(t, zoe, app["employee_id"])
	require.Equal(t, "tea", app["favourite"], "a key syncd does not own is kept")
	require.Len(t, x.emu.Emulator.Users(), 4, "linked, not created")
}

// TestReadyzWhileTheDatabaseIsDown: /readyz answers 503 naming the database
// while it refuses connections, and 200 again once it is back; the daemon
// keeps running meanwhile.
func TestReadyzWhileTheDatabaseIsDown(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	d := x.start("notify", emulator.DefaultClientSecret, "--resync-interval", "1h")
	defer d.stop(t)
	code, body := x.get("/readyz")
	require.Equal(t, 200, code, body)

	u, err := url.Parse(x.dbURL)
	require.NoError(t, err)
	dbName := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	admin, err := pgx.Connect(x.ctx, u.String())
	require.NoError(t, err)
	defer admin.Close(x.ctx)
	_, err = admin.Exec(x.ctx, `ALTER DATABASE `+pgx.Identifier{dbName}.Sanitize()+` ALLOW_CONNECTIONS false`)
	require.NoError(t, err)
	up := func() {
		_, err := admin.Exec(x.ctx, `ALTER DATABASE `+pgx.Identifier{dbName}.Sanitize()+` ALLOW_CONNECTIONS true`)
		require.NoError(t, err)
	}
	defer up()
	_, err = admin.Exec(x.ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, dbName)
	require.NoError(t, err)

	require.True(t, assertEventually(func() bool {
		code, body = x.get("/readyz")
		return code == 503
	}, 30*time.Second), "not ready while the database is down: %d %s", code, body)
	var js struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &js))
	require.False(t, js.Ready)
	require.Equal(t, "unreachable", js.Checks["database"])
	require.Equal(t, "ok", js.Checks["auth0_token"], "only the database is named")
	code, _ = x.get("/healthz")
	require.Equal(t, 200, code, "the process still runs")

	up()
	require.True(t, assertEventually(func() bool {
		code, _ := x.get("/readyz")
		return code == 200
	}, 60*time.Second), "ready again once the database is back")
	var id int64
	require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email) VALUES ('Back', 'back@example.com') RETURNING id`).Scan(&id))
	x.waitStatus(id, "synced")
}

// TestMetricsAddrEmptyTurnsTheServerOff: with --metrics-addr "" the daemon
// runs and converges rows with no HTTP server.
func TestMetricsAddrEmptyTurnsTheServerOff(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	environ := map[string]string{"DATABASE_URL": x.dbURL, "AUTH0_DOMAIN": x.emu.URL, "AUTH0_CLIENT_ID": emulator.DefaultClientID,
		"AUTH0_CLIENT_SECRET": emulator.DefaultClientSecret, "LOG_FORMAT": "json", "METRICS_ADDR": "127.0.0.1:9464"}
	c, err := parseRun(t, environ, "--metrics-addr", "", "--resync-interval", "1h")
	require.NoError(t, err)
	var logs syncBuffer
	dmn, cleanup, err := newDaemon(x.ctx, c, c.log.logger(&logs))
	require.NoError(t, err)
	defer cleanup()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- dmn.Run(ctx) }()
	var id int64
	require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email) VALUES ('Off', 'off@example.com') RETURNING id`).Scan(&id))
	x.waitStatus(id, "synced")
	require.Nil(t, dmn.listening.Load(), "no HTTP server listens")
	require.Contains(t, logs.String(), `"msg":"syncd running","metrics_addr":""`)
	// The console's address is the default (loopback) but no token is set:
	// the console stays off, says so once, and no token is made up or logged.
	require.Equal(t, 1, strings.Count(logs.String(), `"msg":"console off: SYNCD_CONSOLE_TOKEN is not set`), logs.String())
	require.Contains(t, logs.String(), `"console_addr":""`)
	require.NotContains(t, logs.String(), "console_token")
	cancel()
	require.NoError(t, <-done)
}
