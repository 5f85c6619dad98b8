package console_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/console"
	"github.com/syncd/syncd/reconcile"
)

// TestUnauthenticated: without the token nothing is shown or done, and no
// answer carries personal data.
func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insert("Maria Secret", "maria.secret@example.com", "associate")
	for _, tc := range []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/api/v1/status", "", 401},
		{"GET", "/api/v1/employees", "Bearer wrong-token", 401},
		{"GET", fmt.Sprintf("/api/v1/employees/%s", id), "Basic " + token, 401},
		{"POST", fmt.Sprintf("/api/v1/employees/%s/resync", id), "", 401},
		{"POST", "/api/v1/resync", "Bearer", 401},
		{"GET", "/", "", http.StatusSeeOther},
		{"GET", "/employees?q=maria", "", http.StatusSeeOther},
		{"GET", fmt.Sprintf("/employees/%s", id), "Bearer " + token, http.StatusSeeOther}, // pages take the session, not the bearer
		{"POST", fmt.Sprintf("/employees/%s/sync", id), "", 401},
	} {
		h := map[string]string{}
		if tc.auth != "" {
			h["Authorization"] = tc.auth
		}
		code, body := b.request(tc.method, tc.path, `{"ids":[1]}`, h)
		require.Equal(t, tc.want, code, "%s %s: %s", tc.method, tc.path, body)
		require.NotContains(t, body, "maria")
		require.NotContains(t, body, "Maria")
	}
	require.Zero(t, b.count(`SELECT count(*) FROM auth0_sync_logs`), "nothing was done")
	// The login page itself is served, with the security headers.
	resp, err := http.Get(b.srv.URL + "/login")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	csp := resp.Header.Get("Content-Security-Policy")
	require.Contains(t, csp, "frame-ancestors 'none'")
	require.Contains(t, csp, "default-src 'none'")
	require.NotContains(t, csp, "unsafe-inline")
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
}

func TestLoginSession(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insert("Ada Lovelace", "ada@example.com", "associate")

	resp, err := http.PostForm(b.srv.URL+"/login", url.Values{"token": {"not-the-token"}})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, string(body), "Wrong token")
	require.Empty(t, resp.Cookies())

	// The cookie is HttpOnly and SameSite=Strict.
	resp, err = noRedirect.PostForm(b.srv.URL+"/login", url.Values{"token": {token}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Len(t, resp.Cookies(), 1)
	ck := resp.Cookies()[0]
	require.True(t, ck.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, ck.SameSite)

	c := b.browser()
	resp, err = c.Get(fmt.Sprintf("%s/employees/%s", b.srv.URL, id))
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, string(page), "ada@example.com")
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(string(page))
	require.Len(t, csrf, 2)

	// A form POST without the session's form token is refused and does nothing.
	resp, err = c.PostForm(fmt.Sprintf("%s/employees/%s/sync", b.srv.URL, id), url.Values{"csrf": {"forged"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Zero(t, b.auditRows(id, reconcile.ActionResyncRequest, "console"))

	// With it, Sync now requeues the employee and records the console as actor.
	b.exec(`DELETE FROM auth0_outbox`)
	resp, err = c.PostForm(fmt.Sprintf("%s/employees/%s/sync", b.srv.URL, id), url.Values{"csrf": {csrf[1]}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, 1, b.auditRows(id, reconcile.ActionResyncRequest, "console"))
	require.Equal(t, 1, b.count(`SELECT count(*) FROM auth0_outbox WHERE employee_id = $1 AND op = 'resync'`, id))

	// A cross-origin POST is refused even with the session and the form token.
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/employees/%s/sync", b.srv.URL, id), strings.NewReader(url.Values{"csrf": {csrf[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, 1, b.auditRows(id, reconcile.ActionResyncRequest, "console"), "the refused POST did nothing")

	// Logging out ends the session.
	resp, err = c.PostForm(b.srv.URL+"/logout", url.Values{"csrf": {csrf[1]}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "/login", resp.Request.URL.Path)
	resp, err = c.Get(b.srv.URL + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "/login", resp.Request.URL.Path)
}

func TestAPIEmployeesList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(`INSERT INTO employees (name, email) SELECT 'E ' || i, 'person' || i || '@example.com' FROM generate_series(1, 120) i`)
	b.exec(`UPDATE employees SET auth0_sync_status = 'failed', auth0_sync_error = 'bad row ' || id WHERE id % 10 = 0`)
	b.insert("Under Score", "under_score@example.com", "associate")

	type page struct {
		Employees []struct {
			ID     string  `json:"id"`
			Email  string  `json:"email"`
			Status string  `json:"auth0_sync_status"`
			Error  *string `json:"auth0_sync_error"`
		} `json:"employees"`
		NextAfter *string `json:"next_after"`
	}
	// Keyset paging walks every row once.
	seen := map[string]bool{}
	path := "/api/v1/employees?limit=50"
	pages := 0
	for {
		code, body := b.call("GET", path, "")
		require.Equal(t, 200, code, body)
		p := decodeJSON[page](t, body)
		pages++
		for _, e := range p.Employees {
			require.False(t, seen[e.ID])
			seen[e.ID] = true
		}
		if p.NextAfter == nil {
			break
		}
		path = "/api/v1/employees?limit=50&after=" + url.QueryEscape(*p.NextAfter)
	}
	require.Len(t, seen, 121)
	require.Equal(t, 3, pages)

	code, body := b.call("GET", "/api/v1/employees?status=failed", "")
	require.Equal(t, 200, code)
	p := decodeJSON[page](t, body)
	require.Len(t, p.Employees, 12)
	for _, e := range p.Employees {
		require.Equal(t, "failed", e.Status)
		require.Equal(t, "bad row "+e.ID, *e.Error, "each with its reason")
	}
	// Search by the start of an email (case-insensitive; LIKE wildcards are literal) or by id.
	p = decodeJSON[page](t, mustCall(t, b, "/api/v1/employees?q=PERSON11"))
	require.Len(t, p.Employees, 11) // person11, person110..119
	p = decodeJSON[page](t, mustCall(t, b, "/api/v1/employees?q=under_"))
	require.Len(t, p.Employees, 1)
	p = decodeJSON[page](t, mustCall(t, b, "/api/v1/employees?q=%25"))
	require.Empty(t, p.Employees)
	p = decodeJSON[page](t, mustCall(t, b, "/api/v1/employees?q=7"))
	require.Len(t, p.Employees, 1)
	require.Equal(t, "7", p.Employees[0].ID)

	for _, bad := range []string{"status=nonsense", "limit=0", "limit=501", "after=x", "after=1.5"} {
		code, body := b.call("GET", "/api/v1/employees?"+bad, "")
		require.Equal(t, 400, code, bad)
		require.Contains(t, body, `"error"`)
	}
}

func mustCall(t *testing.T, b *bundle, path string) string {
	t.Helper()
	code, body := b.call("GET", path, "")
	require.Equal(t, 200, code, body)
	return body
}

func TestAPIResync(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.insert("Ada Lovelace", "ada@example.com", "associate")
	g := b.insert("Grace Hopper", "grace@example.com", "associate")
	require.Equal(t, reconcile.StatusSynced, b.reconcile(a).Status)
	require.Equal(t, reconcile.StatusSynced, b.reconcile(g).Status)
	b.exec(`DELETE FROM auth0_outbox`)
	unchanged := func() {
		t.Helper()
		require.Zero(t, b.count(`SELECT count(*) FROM auth0_outbox`))
		require.Zero(t, b.count(`SELECT count(*) FROM auth0_sync_logs WHERE action = 'resync_request'`))
		require.Equal(t, 2, b.count(`SELECT count(*) FROM employees WHERE auth0_sync_status = 'synced'`))
	}
	for _, tc := range []struct {
		path, body string
		want       int
		says       string
	}{
		{"/api/v1/resync", fmt.Sprintf(`{"ids":[%s, 999999]}`, a), 404, "999999"},
		{"/api/v1/resync", `{"ids":[`, 400, "malformed JSON"},
		{"/api/v1/resync", `{"ids":[1],"extra":true}`, 400, "unknown field"},
		{"/api/v1/resync", `{"ids":[]}`, 400, "at least one"},
		{"/api/v1/resync", `{"ids":[1.5]}`, 400, "not an employee key"},
		{"/api/v1/resync", `{"ids":["x"]}`, 400, `x\" is not an employee key (the employees key is bigint)`},
		{"/api/v1/resync", `{"ids":[-4]}`, 404, "no employee with id -4"},
		{"/api/v1/resync", `{"ids":[1]} {"ids":[2]}`, 400, "more than one"},
		{"/api/v1/resync", `{"ids":[` + strings.Repeat("1,", 40000) + `1]}`, 413, "larger than"},
		{"/api/v1/employees/999999/resync", "", 404, "no employee with id 999999"},
		{"/api/v1/employees/abc/resync", "", 400, `abc\" is not an employee key`},
		{"/api/v1/employees/1/frobnicate", "", 404, "no such API route"},
		{fmt.Sprintf("/api/v1/employees/%s/resync", a), `{"force": tru`, 400, "malformed JSON"},
		{fmt.Sprintf("/api/v1/employees/%s/resync", a), `{"forced": true}`, 400, "unknown field"},
	} {
		code, body := b.call("POST", tc.path, tc.body)
		require.Equal(t, tc.want, code, "%s %.60s: %s", tc.path, tc.body, body)
		require.Contains(t, body, tc.says)
		unchanged()
	}

	code, body := b.call("POST", fmt.Sprintf("/api/v1/employees/%s/resync", a), "")
	require.Equal(t, http.StatusAccepted, code, body)
	require.Equal(t, 1, b.auditRows(a, reconcile.ActionResyncRequest, "console api"))
	// The reference endpoint's body is accepted (a resync never makes a second account).
	code, body = b.call("POST", fmt.Sprintf("/api/v1/employees/%s/resync", a), `{"force": true}`)
	require.Equal(t, http.StatusAccepted, code, body)
	require.Equal(t, 2, b.auditRows(a, reconcile.ActionResyncRequest, "console api"))
	code, body = b.call("POST", "/api/v1/resync", fmt.Sprintf(`{"ids":[%s,%s,%s]}`, a, g, g))
	require.Equal(t, http.StatusAccepted, code, body)
	require.Equal(t, int64(2), decodeJSON[struct{ Marked int64 }](t, body).Marked)
	require.Equal(t, 3, b.auditRows(a, reconcile.ActionResyncRequest, "console api"))
	require.Equal(t, 1, b.auditRows(g, reconcile.ActionResyncRequest, "console api"))
	st, _, _ := b.status(g)
	require.Equal(t, reconcile.StatusPending, st)
	require.Equal(t, reconcile.StatusSynced, b.reconcile(g).Status, "the daemon converges it again")
}

// TestAPIEmployeeAndLink: one employee's detail, the live plan, and a
// conflict resolved by linking, with every bad link refused unchanged.
func TestAPIEmployeeAndLink(t *testing.T) {
	t.Parallel()
	b := setup(t)
	hand, err := b.api.CreateUser(b.ctx, auth0.CreateUserRequest{Connection: "Username-Password-Authentication", Email: "dorothy@example.com",
		Name: "Dorothy (by hand)", Password: "Str0ng!Passw0rd-xyz"})
	require.NoError(t, err)
	other := b.insert("Ada Lovelace", "ada@example.com", "associate")
	b.reconcile(other)
	_, adaAccount, _ := b.status(other)
	d := b.insert("Dorothy Vaughan", "dorothy@example.com", "associate")
	require.Equal(t, reconcile.StatusConflict, b.reconcile(d).Status)

	type detail struct {
		Employee struct {
			Status string `json:"auth0_sync_status"`
			Error  string `json:"auth0_sync_error"`
		} `json:"employee"`
		Desired         map[string]any `json:"desired"`
		ConflictAccount string         `json:"conflict_account"`
		Auth0           *struct {
			Account *struct{ UserID string } `json:"account"`
			Plan    []map[string]any         `json:"plan"`
			Error   string                   `json:"error"`
		} `json:"auth0"`
		Timeline []struct {
			Action      string  `json:"action"`
			Status      string  `json:"status"`
			ReconcileID *string `json:"reconcile_id"`
		} `json:"timeline"`
	}
	det := decodeJSON[detail](t, mustCall(t, b, fmt.Sprintf("/api/v1/employees/%s", d)))
	require.Equal(t, "conflict", det.Employee.Status)
	require.Equal(t, hand.UserID, det.ConflictAccount)
	require.Equal(t, "dorothy@example.com", det.Desired["email"])
	require.Nil(t, det.Auth0, "Auth0 is read only on request")
	require.NotEmpty(t, det.Timeline)
	require.Equal(t, "conflict", det.Timeline[0].Status)
	require.NotNil(t, det.Timeline[0].ReconcileID)

	before := b.emu.Emulator.WriteCount()
	det = decodeJSON[detail](t, mustCall(t, b, fmt.Sprintf("/api/v1/employees/%s?auth0=1", d)))
	require.NotNil(t, det.Auth0)
	require.Contains(t, det.Auth0.Error, "belongs to Auth0 account "+hand.UserID)
	require.Equal(t, before, b.emu.Emulator.WriteCount(), "a live read writes nothing")

	unchanged := func() {
		t.Helper()
		st, uid, _ := b.status(d)
		require.Equal(t, reconcile.StatusConflict, st)
		require.Empty(t, uid)
		require.Zero(t, b.count(`SELECT count(*) FROM auth0_sync_logs WHERE action = 'link_request'`))
	}
	for _, tc := range []struct {
		path, body string
		want       int
		says       string
	}{
		{fmt.Sprintf("/api/v1/employees/%s/link", d), `{"auth0_user_id":"auth0|doesnotexist"}`, 422, "Auth0 has no account"},
		{fmt.Sprintf("/api/v1/employees/%s/link", d), fmt.Sprintf(`{"auth0_user_id":%q}`, adaAccount), 422, fmt.Sprintf("belongs to employee %s", other)},
		{fmt.Sprintf("/api/v1/employees/%s/link", d), `{"auth0_user_id":""}`, 422, "no Auth0 user id"},
		{fmt.Sprintf("/api/v1/employees/%s/link", d), `{"auth0_user_id":`, 400, "malformed"},
		{"/api/v1/employees/999999/link", fmt.Sprintf(`{"auth0_user_id":%q}`, hand.UserID), 404, "no employee with id 999999"},
	} {
		code, body := b.call("POST", tc.path, tc.body)
		require.Equal(t, tc.want, code, "%s %s: %s", tc.path, tc.body, body)
		require.Contains(t, body, tc.says)
		unchanged()
	}
	// An account another row is linked to (without employee_id in Auth0) is refused too.
	b.exec(`UPDATE employees SET auth0_user_id = $1 WHERE id = $2`, hand.UserID, other)
	code, body := b.call("POST", fmt.Sprintf("/api/v1/employees/%s/link", d), fmt.Sprintf(`{"auth0_user_id":%q}`, hand.UserID))
	require.Equal(t, 422, code, body)
	require.Contains(t, body, fmt.Sprintf("linked to employee %s", other))
	unchanged()
	b.exec(`UPDATE employees SET auth0_user_id = $1 WHERE id = $2`, adaAccount, other)

	code, body = b.call("POST", fmt.Sprintf("/api/v1/employees/%s/link", d), fmt.Sprintf(`{"auth0_user_id":%q}`, hand.UserID))
	require.Equal(t, http.StatusAccepted, code, body)
	require.Equal(t, 1, b.auditRows(d, reconcile.ActionLinkRequest, "console api"))
	st, uid, _ := b.status(d)
	require.Equal(t, reconcile.StatusPending, st)
	require.Equal(t, hand.UserID, uid)
	require.Equal(t, reconcile.StatusSynced, b.reconcile(d).Status)
	u := b.emu.Emulator.User(hand.UserID)
	n, err := strconv.ParseFloat(d, 64)
	require.NoError(t, err)
	require.Equal(t, n, u["app_metadata"].(map[string]any)["employee_id"], "the linked account now carries the employee")
}

// TestSQLResync: syncd_resync from ordinary SQL, all or nothing, executable
// only where granted.
func TestSQLResync(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.insert("Ada Lovelace", "ada@example.com", "associate")
	require.Equal(t, reconcile.StatusSynced, b.reconcile(a).Status)
	b.exec(`DELETE FROM auth0_outbox`)

	_, err := b.pool.Exec(b.ctx, `SELECT syncd_resync(ARRAY[$1::bigint, 424242])`, a)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "P0002", pgErr.Code) // no_data_found
	require.Contains(t, pgErr.Message, "424242")
	require.Zero(t, b.count(`SELECT count(*) FROM auth0_outbox`))
	st, _, _ := b.status(a)
	require.Equal(t, reconcile.StatusSynced, st)

	var n int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT syncd_resync(ARRAY[$1::bigint, $1])`, a).Scan(&n))
	require.Equal(t, int64(1), n)
	require.Equal(t, 1, b.count(`SELECT count(*) FROM auth0_outbox WHERE employee_id = $1 AND op = 'resync'`, a))
	require.Equal(t, 1, b.count(`SELECT count(*) FROM auth0_sync_logs WHERE employee_id = $1 AND action = 'resync_request' AND response_data->>'actor' LIKE 'sql:%'`, a))
	require.Equal(t, reconcile.StatusSynced, b.reconcile(a).Status)

	// A role without the grant cannot call it; with EXECUTE alone (no table
	// rights) it can.
	role := fmt.Sprintf("console_app_%s", a)
	b.exec(`CREATE ROLE ` + role)
	t.Cleanup(func() { _, _ = b.pool.Exec(b.ctx, `DROP OWNED BY `+role); _, _ = b.pool.Exec(b.ctx, `DROP ROLE `+role) })
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(b.ctx, `SET LOCAL ROLE `+role)
	require.NoError(t, err)
	_, err = tx.Exec(b.ctx, `SELECT syncd_resync(ARRAY[$1::bigint])`, a)
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "42501", pgErr.Code) // insufficient_privilege
	require.NoError(t, tx.Rollback(b.ctx))
	b.exec(`GRANT EXECUTE ON FUNCTION syncd_resync(bigint[]) TO ` + role)
	tx, err = b.pool.Begin(b.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(b.ctx, `SET LOCAL ROLE `+role)
	require.NoError(t, err)
	require.NoError(t, tx.QueryRow(b.ctx, `SELECT syncd_resync(ARRAY[$1::bigint])`, a).Scan(&n))
	require.Equal(t, int64(1), n)
	require.NoError(t, tx.Commit(b.ctx))
}

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:9465": true, "localhost:1": true, "[::1]:9465": true, "127.0.0.2:80": true,
		":9465": false, "0.0.0.0:9465": false, "10.0.0.1:9465": false, "[::]:9465": false, "example.com:80": false, "garbage": false,
	} {
		require.Equal(t, want, console.IsLoopback(addr), addr)
	}
}

func TestNewNeedsToken(t *testing.T) {
	t.Parallel()
	_, err := console.New(console.Config{})
	require.ErrorIs(t, err, console.ErrNoToken)
}
