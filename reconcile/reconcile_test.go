package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/reconcile"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type bundle struct {
	t    *testing.T
	ctx  context.Context
	pool *pgxpool.Pool
	srv  *emulator.Server
	emu  *emulator.Emulator
	api  *auth0.Client
	rec  *reconcile.Reconciler
	cfg  reconcile.Config
}

type option func(*reconcile.Config, *emulator.Options)

func setup(t *testing.T, opts ...option) *bundle {
	t.Helper()
	return setupOn(t, pgtest.NewDatabase(t), opts...)
}

// setupKeyed is setup on an employees table whose key is of kind key (one of
// pgtest.Keys).
func setupKeyed(t *testing.T, key string, opts ...option) *bundle {
	t.Helper()
	return setupOn(t, pgtest.NewKeyedDatabase(t, key), opts...)
}

func setupOn(t *testing.T, dbURL string, opts ...option) *bundle {
	t.Helper()
	ctx := context.Background()
	cfg := reconcile.Config{Roles: map[string]string{"associate": "production_associate", "lead": "production_lead"}, RetryBase: time.Second, BusyWait: 200 * time.Millisecond}
	eopts := emulator.Options{Roles: []string{"production_associate", "production_lead", "billing_admin"}}
	for _, o := range opts {
		o(&cfg, &eopts)
	}
	srv, err := emulator.Listen("127.0.0.1:0", eopts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	base, err := url.Parse(srv.URL)
	require.NoError(t, err)
	// RequestTimeout: the emulator answers in milliseconds, but on a machine
	// loaded far beyond its cores (every test binary, -race, CPU hogs) one
	// answer took over the default 30 s; no test here waits for a timeout.
	api, err := auth0.New(auth0.Config{BaseURL: base, ClientID: "syncd-emulator", ClientSecret: "syncd-emulator-secret",
		MaxAttempts: 3, MaxElapsed: 5 * time.Second, RequestTimeout: 5 * time.Minute})
	require.NoError(t, err)
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	b := &bundle{t: t, ctx: ctx, pool: pool, srv: srv, emu: srv.Emulator, api: api, cfg: cfg}
	b.rec = b.reconciler(api)
	return b
}

func (b *bundle) reconciler(api reconcile.Auth0) *reconcile.Reconciler {
	r, err := reconcile.New(b.pool, api, b.cfg)
	require.NoError(b.t, err)
	return r
}

func (b *bundle) exec(sql string, args ...any) {
	b.t.Helper()
	_, err := b.pool.Exec(b.ctx, sql, args...)
	require.NoError(b.t, err)
}

func (b *bundle) insert(name, email string) string {
	b.t.Helper()
	var id string
	require.NoError(b.t, b.pool.QueryRow(b.ctx, `INSERT INTO employees (name, email, department, phone_number, connecteam_id)
		VALUES ($1, $2, 'Heat Press', '+15550100', 'ct-1') RETURNING id::text`, name, email).Scan(&id))
	return id
}

type row struct {
	Status, Error, UserID string
	Attempts              int
	NextAttempt           *time.Time
}

func (b *bundle) row(id string) row {
	b.t.Helper()
	var r row
	require.NoError(b.t, b.pool.QueryRow(b.ctx, `SELECT auth0_sync_status, coalesce(auth0_sync_error, ''), coalesce(auth0_user_id, ''),
		auth0_sync_attempts, auth0_next_attempt_at FROM employees WHERE id = $1`, id).Scan(&r.Status, &r.Error, &r.UserID, &r.Attempts, &r.NextAttempt))
	return r
}

// expireLease is time passing after a worker died: its lease on the row runs out.
func (b *bundle) expireLease(id string) {
	b.t.Helper()
	b.exec(`UPDATE employees SET auth0_locked_until = now() - interval '1 second' WHERE id = $1`, id)
}

func (b *bundle) reconcile(id string) reconcile.Outcome {
	b.t.Helper()
	out, err := b.rec.Reconcile(b.ctx, id)
	require.NoError(b.t, err)
	return out
}

// user returns the emulator's user with id, as the API shows it.
func (b *bundle) user(id string) map[string]any {
	b.t.Helper()
	for _, u := range b.emu.Users() {
		if u["user_id"] == id {
			return u
		}
	}
	b.t.Fatalf("no user %s in the emulator", id)
	return nil
}

// accounts counts the emulator's users with email.
func (b *bundle) accounts(email string) int {
	n := 0
	for _, u := range b.emu.Users() {
		if u["email"] == email {
			n++
		}
	}
	return n
}

func TestCreateAndConverge(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first := b.insert("Warm Up", "warm@example.com")
	b.reconcile(first) // resolves the role ids once
	b.emu.ResetCalls()

	id := b.insert("Ada Lovelace", "Ada@Example.com")
	out := b.reconcile(id)
	require.Equal(t, reconcile.ResultDone, out.Result)
	require.Equal(t, "synced", out.Status)
	require.EqualValues(t, 2, b.emu.CallCount(""), "a new employee costs POST /users and POST roles: %v", b.emu.Calls())
	require.EqualValues(t, 1, b.emu.CallCount("POST /api/v2/users"))

	r := b.row(id)
	require.Equal(t, "synced", r.Status)
	require.Equal(t, 0, r.Attempts)
	u := b.user(r.UserID)
	require.Equal(t, "ada@example.com", u["email"])
	require.Equal(t, "Ada Lovelace", u["name"])
	app := u["app_metadata"].(map[string]any)
	require.Equal(t, jsonNumber(t, id), app["employee_id"], "an integer key is a JSON number")
	require.Equal(t, jsonNumber(t, id), app["internal_id"])
	require.Equal(t, "Heat Press", app["department"])
	require.Equal(t, "associate", app["role_code"])
	require.Equal(t, "ct-1", app["connecteam_id"])
	require.Equal(t, "productivity_system", app["created_by"])
	require.Equal(t, "active", app["sync_status"])
	require.NotEmpty(t, app["created_at"])
	um := u["user_metadata"].(map[string]any)
	require.Equal(t, "America/Chicago", um["timezone"])
	require.Equal(t, "Ada Lovelace", um["full_name"])
	require.Equal(t, "+15550100", um["phone_number"])
	require.Equal(t, []string{"production_associate"}, b.emu.UserRoles(r.UserID))

	var logs int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM auth0_sync_logs WHERE employee_id = $1 AND status = 'success'`, id).Scan(&logs))
	require.Equal(t, 2, logs)

	// Converged: reconciling again costs nothing at all.
	b.emu.ResetCalls()
	out = b.reconcile(id)
	require.Equal(t, reconcile.ResultDone, out.Result)
	require.Empty(t, out.Applied)
	require.EqualValues(t, 0, b.emu.CallCount(""))

	// After a resync (read Auth0 first): reads, and still no write.
	_, err := reconcile.Requeue(b.ctx, b.pool, []string{id}, false)
	require.NoError(t, err)
	out = b.reconcile(id)
	require.Empty(t, out.Applied)
	require.EqualValues(t, 0, b.emu.WriteCount())
	require.Equal(t, "synced", b.row(id).Status)
}

func TestChanges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insert("Ada Lovelace", "ada@example.com")
	b.reconcile(id)
	uid := b.row(id).UserID
	// Someone else's key and role: never touched.
	_, err := b.api.UpdateUser(b.ctx, uid, auth0.UpdateUserRequest{AppMetadata: map[string]any{"theme": "dark"}, UserMetadata: map[string]any{"color": "red"}})
	require.NoError(t, err)
	require.NoError(t, b.api.AssignUserRoles(b.ctx, uid, []string{b.emu.RoleID("billing_admin")}))

	step := func(sql string, wantCalls int64) map[string]any {
		t.Helper()
		b.emu.ResetCalls()
		b.exec(sql, id)
		out := b.reconcile(id)
		require.Equal(t, reconcile.ResultDone, out.Result, "%s: %v", sql, out.Err)
		if wantCalls >= 0 {
			require.EqualValues(t, wantCalls, b.emu.CallCount(""), "%s: %v", sql, b.emu.Calls())
		}
		return b.user(uid)
	}

	u := step(`UPDATE employees SET department = 'Shipping' WHERE id = $1`, 1)
	require.Equal(t, "Shipping", u["app_metadata"].(map[string]any)["department"])
	require.Equal(t, "Shipping", u["user_metadata"].(map[string]any)["department"])

	u = step(`UPDATE employees SET connecteam_id = NULL WHERE id = $1`, 1)
	require.NotContains(t, u["app_metadata"], "connecteam_id")

	u = step(`UPDATE employees SET email = 'ada.l@example.com', name = 'Ada L' WHERE id = $1`, 1)
	require.Equal(t, "ada.l@example.com", u["email"])
	require.Equal(t, "Ada L", u["name"])

	step(`UPDATE employees SET role_code = 'lead' WHERE id = $1`, 3) // PATCH role_code, assign, remove
	require.ElementsMatch(t, []string{"production_lead", "billing_admin"}, b.emu.UserRoles(uid))

	u = step(`UPDATE employees SET active = false WHERE id = $1`, 3) // PATCH blocked, DELETE sessions, DELETE refresh-tokens
	require.Equal(t, true, u["blocked"])
	require.Equal(t, "terminated", u["app_metadata"].(map[string]any)["sync_status"])
	require.Equal(t, "deprovisioned", b.row(id).Status)

	u = step(`UPDATE employees SET active = true WHERE id = $1`, 1)
	require.NotEqual(t, true, u["blocked"])
	require.Equal(t, "active", u["app_metadata"].(map[string]any)["sync_status"])
	require.Equal(t, "synced", b.row(id).Status)

	require.Equal(t, "dark", u["app_metadata"].(map[string]any)["theme"])
	require.Equal(t, "red", u["user_metadata"].(map[string]any)["color"])
	require.Contains(t, b.emu.UserRoles(uid), "billing_admin")

	// The row is deleted: the outbox row carries the account; it is blocked.
	b.exec(`DELETE FROM employees WHERE id = $1`, id)
	out := b.reconcile(id)
	require.Equal(t, reconcile.ResultDone, out.Result)
	u = b.user(uid)
	require.Equal(t, true, u["blocked"])
	require.Equal(t, "terminated", u["app_metadata"].(map[string]any)["sync_status"])
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM auth0_sync_logs WHERE employee_id = $1 AND action = 'block'`, id).Scan(&n))
	require.Equal(t, 2, n)
}

func TestDeprovisionDelete(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *reconcile.Config, _ *emulator.Options) { c.Deprovision = reconcile.DeprovisionDelete })
	id := b.insert("Bo", "bo@example.com")
	b.reconcile(id)
	uid := b.row(id).UserID
	b.exec(`UPDATE employees SET active = false WHERE id = $1`, id)
	out := b.reconcile(id)
	require.Equal(t, "deprovisioned", out.Status)
	require.Equal(t, 0, b.accounts("bo@example.com"))
	require.Empty(t, b.row(id).UserID)
	b.emu.ResetCalls()
	b.reconcile(id)
	require.EqualValues(t, 0, b.emu.CallCount(""))
	// Re-activated: a new account.
	b.exec(`UPDATE employees SET active = true WHERE id = $1`, id)
	out = b.reconcile(id)
	require.Equal(t, "synced", out.Status)
	require.Equal(t, 1, b.accounts("bo@example.com"))
	require.NotEqual(t, uid, b.row(id).UserID)
}

func TestAdoption(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		policy     reconcile.AdoptPolicy
		app        func(id string) map[string]any
		wantStatus string
		wantSame   bool
	}{
		{"carries this employee_id", reconcile.AdoptConflict, func(id string) map[string]any { return map[string]any{"employee_id": id} }, "synced", true},
		{"carries another employee_id", reconcile.AdoptAccount, func(id string) map[string]any { return map[string]any{"employee_id": id + "000"} }, "conflict", false},
		{"no employee_id, policy conflict", reconcile.AdoptConflict, func(string) map[string]any { return map[string]any{"plan": "gold"} }, "conflict", false},
		{"no employee_id, policy adopt", reconcile.AdoptAccount, func(string) map[string]any { return map[string]any{"plan": "gold"} }, "synced", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *reconcile.Config, _ *emulator.Options) { c.Adopt = tt.policy })
			id := b.insert("Cy", "cy@example.com")
			pre, err := b.api.CreateUser(b.ctx, auth0.CreateUserRequest{Connection: "Username-Password-Authentication",
				Email: "cy@example.com", Password: "Str0ng!Passw0rd", AppMetadata: tt.app(id)})
			require.NoError(t, err)
			out := b.reconcile(id)
			require.Equal(t, tt.wantStatus, out.Status, "%v", out.Err)
			require.Equal(t, 1, b.accounts("cy@example.com"))
			r := b.row(id)
			if tt.wantSame {
				require.Equal(t, pre.UserID, r.UserID)
				require.Equal(t, []string{"production_associate"}, b.emu.UserRoles(pre.UserID))
			} else {
				require.Empty(t, r.UserID)
				require.Contains(t, r.Error, "belongs to Auth0 account "+pre.UserID)
				// The foreign account is untouched.
				require.Empty(t, b.emu.UserRoles(pre.UserID))
			}
		})
	}
}

func TestBadRows(t *testing.T) {
	t.Parallel()
	b := setup(t)
	good := b.insert("Good", "good@example.com")
	dup1 := b.insert("Dup One", "dup@example.com")
	dup2 := b.insert("Dup Two", "DUP@example.com")
	invalid := b.insert("Bad Email", "not-an-email")
	unknownRole := b.insert("Wizard", "wiz@example.com")
	b.exec(`UPDATE employees SET role_code = 'wizard' WHERE id = $1`, unknownRole)
	empty := b.insert("Empty", "  ")

	for _, id := range []string{good, dup1, dup2, invalid, unknownRole, empty} {
		b.reconcile(id)
	}
	require.Equal(t, "synced", b.row(good).Status)
	require.Equal(t, "synced", b.row(dup1).Status)
	r := b.row(dup2)
	require.Equal(t, "conflict", r.Status)
	require.Contains(t, r.Error, "which belongs to employee")
	require.Equal(t, 1, b.accounts("dup@example.com"))

	r = b.row(invalid)
	require.Equal(t, "failed", r.Status)
	require.Contains(t, r.Error, "auth0: 400")
	require.Nil(t, r.NextAttempt)
	r = b.row(unknownRole)
	require.Equal(t, "failed", r.Status)
	require.Contains(t, r.Error, `role_code: "wizard" has no Auth0 role mapping`)
	r = b.row(empty)
	require.Equal(t, "failed", r.Status)
	require.Equal(t, "email: is empty", r.Error)

	// A failed row is retried when it changes, and then converges.
	b.exec(`UPDATE employees SET email = 'fixed@example.com' WHERE id = $1`, invalid)
	require.Equal(t, "synced", b.reconcile(invalid).Status)
}

// crashing wraps the real client and panics right after a chosen call
// returns: the process dies there, as far as the database can tell.
type crashing struct {
	*auth0.Client
	after string
}

type crash struct{}

func (c *crashing) CreateUser(ctx context.Context, req auth0.CreateUserRequest) (*auth0.User, error) {
	u, err := c.Client.CreateUser(ctx, req)
	if c.after == "create" {
		panic(crash{})
	}
	return u, err
}

func (c *crashing) AssignUserRoles(ctx context.Context, id string, roles []string) error {
	err := c.Client.AssignUserRoles(ctx, id, roles)
	if c.after == "assign" {
		panic(crash{})
	}
	return err
}

func TestCreateIsCrashSafe(t *testing.T) {
	t.Parallel()
	for _, key := range pgtest.Keys {
		for _, step := range []string{"before POST", "answer lost", "after POST", "after role assign"} {
			t.Run(key+"/"+step, func(t *testing.T) {
				t.Parallel()
				b := setupKeyed(t, key)
				id := b.insert("Di", "di@example.com")
				switch step {
				case "before POST":
					b.emu.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/users", Drop: true}}})
					out := b.reconcile(id)
					require.Equal(t, reconcile.ResultRetry, out.Result)
					require.ErrorIs(t, out.Err, auth0.ErrOutcomeUnknown)
					require.Equal(t, "retrying", b.row(id).Status)
				case "answer lost":
					b.emu.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/users", LoseAnswer: true}}})
				case "after POST", "after role assign":
					after := map[string]string{"after POST": "create", "after role assign": "assign"}[step]
					rec := b.reconciler(&crashing{Client: b.api, after: after})
					require.PanicsWithValue(t, crash{}, func() { _, _ = rec.Reconcile(b.ctx, id) })
					require.Equal(t, "syncing", b.row(id).Status)
					require.Empty(t, b.row(id).UserID, "the crash lost the database write")
					_, err := b.rec.Reconcile(b.ctx, id)
					require.ErrorIs(t, err, reconcile.ErrBusy, "the dead worker's lease still holds for another process")
					b.expireLease(id)
				}
				out := b.reconcile(id)
				require.Equal(t, "synced", out.Status, "%v", out.Err)
				require.EqualValues(t, 1, b.accounts("di@example.com"))
				r := b.row(id)
				require.NotEmpty(t, r.UserID)
				require.Equal(t, []string{"production_associate"}, b.emu.UserRoles(r.UserID))
				require.Equal(t, 0, r.Attempts)
				require.Equal(t, b.keyJSON(id), b.user(r.UserID)["app_metadata"].(map[string]any)["employee_id"], "the account names its row")
			})
		}
	}
}

func TestLostCreateUnderOldEmail(t *testing.T) {
	t.Parallel()
	for _, key := range pgtest.Keys {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			testLostCreateUnderOldEmail(t, setupKeyed(t, key))
		})
	}
}

func testLostCreateUnderOldEmail(t *testing.T, b *bundle) {
	id := b.insert("Ed", "ed@example.com")
	rec := b.reconciler(&crashing{Client: b.api, after: "create"})
	require.Panics(t, func() { _, _ = rec.Reconcile(b.ctx, id) })
	b.expireLease(id)
	// The email changes before syncd runs again: the account made under the
	// old email is found by its employee_id, not duplicated.
	b.exec(`UPDATE employees SET email = 'edward@example.com' WHERE id = $1`, id)
	out := b.reconcile(id)
	require.Equal(t, "synced", out.Status, "%v", out.Err)
	require.Len(t, b.emu.Users(), 1)
	require.Equal(t, "edward@example.com", b.user(b.row(id).UserID)["email"])
	require.Positive(t, b.emu.CallCount("GET /api/v2/users"), "found by the search on app_metadata.employee_id")
}

// keyJSON is employee id's key as app_metadata.employee_id carries it once
// decoded: a float64 for an integer key, a string for uuid and text keys.
func (b *bundle) keyJSON(id string) any {
	b.t.Helper()
	var raw []byte
	require.NoError(b.t, b.pool.QueryRow(b.ctx, `SELECT to_jsonb(id)::text FROM employees WHERE id = $1`, id).Scan(&raw))
	var v any
	require.NoError(b.t, json.Unmarshal(raw, &v))
	return v
}

// changing edits the row while the reconcile is in Auth0.
type changing struct {
	*auth0.Client
	once sync.Once
	fn   func()
}

func (c *changing) CreateUser(ctx context.Context, req auth0.CreateUserRequest) (*auth0.User, error) {
	u, err := c.Client.CreateUser(ctx, req)
	c.once.Do(c.fn)
	return u, err
}

func TestRowChangedDuringReconcile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insert("Flo", "flo@example.com")
	rec := b.reconciler(&changing{Client: b.api, fn: func() { b.exec(`UPDATE employees SET department = 'Night Shift' WHERE id = $1`, id) }})
	out, err := rec.Reconcile(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, reconcile.ResultStale, out.Result)
	r := b.row(id)
	require.Equal(t, "pending", r.Status, "never synced with stale data")
	require.NotEmpty(t, r.UserID, "the account link is kept")

	out = b.reconcile(id)
	require.Equal(t, "synced", out.Status)
	require.Equal(t, "Night Shift", b.user(r.UserID)["app_metadata"].(map[string]any)["department"])
	require.Equal(t, 1, b.accounts("flo@example.com"))
}

func TestTransientFailuresRetry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insert("Gus", "gus@example.com")
	b.emu.SetFaults(emulator.Faults{ErrorRate: 1})
	out := b.reconcile(id)
	require.Equal(t, reconcile.ResultRetry, out.Result)
	r := b.row(id)
	require.Equal(t, "retrying", r.Status)
	require.Equal(t, 1, r.Attempts)
	require.NotNil(t, r.NextAttempt)
	require.True(t, r.NextAttempt.After(time.Now()))
	require.Contains(t, r.Error, "503")

	out = b.reconcile(id)
	require.Equal(t, 2, b.row(id).Attempts)
	require.True(t, out.NextAttempt.After(time.Now()))

	b.emu.SetFaults(emulator.Faults{})
	require.Equal(t, "synced", b.reconcile(id).Status)
	require.Equal(t, 1, b.accounts("gus@example.com"))
	require.Equal(t, 0, b.row(id).Attempts)
}

func TestOneWorkerPerEmployee(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *reconcile.Config, o *emulator.Options) {
		o.Faults.Latency = 5 * time.Millisecond
		c.BusyWait = time.Minute // the other workers wait for the lease, they do not give up
	})
	ids := []string{b.insert("H1", "h1@example.com"), b.insert("H2", "h2@example.com")}
	// Two reconcilers (as two processes would have) race on the same rows.
	other := b.reconciler(b.api)
	var wg sync.WaitGroup
	for range 4 {
		for _, id := range ids {
			for _, r := range []*reconcile.Reconciler{b.rec, other} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := r.Reconcile(b.ctx, id)
					require.NoError(t, err)
				}()
			}
		}
	}
	wg.Wait()
	for i, id := range ids {
		require.Equal(t, "synced", b.row(id).Status)
		require.Equal(t, 1, b.accounts(fmt.Sprintf("h%d@example.com", i+1)))
	}
	require.EqualValues(t, 2, b.emu.CallCount("POST /api/v2/users"))
}

// A process that could not record an outcome (it panicked here; the database
// being down is the real case) takes its own lease back at once; another
// process waits for it to expire.
func TestOwnLeaseTakenBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insert("Jo", "jo@example.com")
	c := &crashing{Client: b.api, after: "create"}
	rec := b.reconciler(c)
	require.Panics(t, func() { _, _ = rec.Reconcile(b.ctx, id) })
	_, err := b.rec.Reconcile(b.ctx, id)
	require.ErrorIs(t, err, reconcile.ErrBusy)
	c.after = ""
	out, err := rec.Reconcile(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, "synced", out.Status)
	require.Equal(t, 1, b.accounts("jo@example.com"))
}

// jsonNumber is integer key id as encoding/json decodes a JSON number.
func jsonNumber(t *testing.T, id string) float64 {
	t.Helper()
	n, err := strconv.ParseFloat(id, 64)
	require.NoError(t, err)
	return n
}
