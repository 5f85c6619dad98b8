package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/console"
	"github.com/syncd/syncd/reconcile"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const token = "test-console-token-0123456789"

type bundle struct {
	t    testing.TB
	ctx  context.Context
	pool *pgxpool.Pool
	emu  *emulator.Server
	api  *auth0.Client
	rec  *reconcile.Reconciler
	con  *console.Console
	srv  *httptest.Server
}

func setup(t testing.TB) *bundle {
	t.Helper()
	return setupOn(t, pgtest.NewDatabase(t))
}

func setupOn(t testing.TB, dbURL string) *bundle {
	t.Helper()
	ctx := context.Background()
	emu, err := emulator.Listen("127.0.0.1:0", emulator.Options{Roles: []string{"production_associate", "production_lead"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = emu.Close() })
	base, err := url.Parse(emu.URL)
	require.NoError(t, err)
	api, err := auth0.New(auth0.Config{BaseURL: base, ClientID: emulator.DefaultClientID, ClientSecret: emulator.DefaultClientSecret})
	require.NoError(t, err)
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	rec, err := reconcile.New(pool, api, reconcile.Config{Roles: map[string]string{"associate": "production_associate", "lead": "production_lead"}})
	require.NoError(t, err)
	con, err := console.New(console.Config{Pool: pool, Reconciler: rec, Token: token})
	require.NoError(t, err)
	srv := httptest.NewServer(con)
	t.Cleanup(srv.Close)
	return &bundle{t: t, ctx: ctx, pool: pool, emu: emu, api: api, rec: rec, con: con, srv: srv}
}

func (b *bundle) insert(name, email, role string) string {
	b.t.Helper()
	var id string
	require.NoError(b.t, b.pool.QueryRow(b.ctx, `INSERT INTO employees (name, email, department, role_code) VALUES ($1, $2, 'Quality', $3) RETURNING id::text`,
		name, email, role).Scan(&id))
	return id
}

func (b *bundle) exec(sql string, args ...any) {
	b.t.Helper()
	_, err := b.pool.Exec(b.ctx, sql, args...)
	require.NoError(b.t, err)
}

func (b *bundle) count(sql string, args ...any) int {
	b.t.Helper()
	var n int
	require.NoError(b.t, b.pool.QueryRow(b.ctx, sql, args...).Scan(&n))
	return n
}

func (b *bundle) status(id string) (status, userID, syncErr string) {
	b.t.Helper()
	require.NoError(b.t, b.pool.QueryRow(b.ctx, `SELECT auth0_sync_status, coalesce(auth0_user_id, ''), coalesce(auth0_sync_error, '')
		FROM employees WHERE id = $1`, id).Scan(&status, &userID, &syncErr))
	return
}

// reconcile runs one reconcile as the daemon's worker would.
func (b *bundle) reconcile(id string) reconcile.Outcome {
	b.t.Helper()
	out, err := b.rec.Reconcile(b.ctx, id)
	require.NoError(b.t, err)
	return out
}

// call makes an API request with the token; body "" sends none.
func (b *bundle) call(method, path, body string) (int, string) {
	b.t.Helper()
	return b.request(method, path, body, map[string]string{"Authorization": "Bearer " + token})
}

func (b *bundle) request(method, path, body string, header map[string]string) (int, string) {
	b.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(b.ctx, method, b.srv.URL+path, rd)
	require.NoError(b.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return resp.StatusCode, string(raw)
}

var noRedirect = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func decodeJSON[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return v
}

// browser is a cookie-keeping client that logs in through the form.
func (b *bundle) browser() *http.Client {
	b.t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(b.t, err)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.PostForm(b.srv.URL+"/login", url.Values{"token": {token}})
	require.NoError(b.t, err)
	resp.Body.Close()
	require.Equal(b.t, http.StatusOK, resp.StatusCode)
	require.Equal(b.t, "/", resp.Request.URL.Path, "login lands on the overview")
	return c
}

// auditRows counts employee id's audit rows of action by actor.
func (b *bundle) auditRows(id string, action, actor string) int {
	return b.count(`SELECT count(*) FROM auth0_sync_logs WHERE employee_id = $1 AND action = $2 AND response_data->>'actor' = $3`, id, action, actor)
}
