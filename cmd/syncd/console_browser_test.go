package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/testcontainers"
)

// chromiumPath finds Chromium, or skips the test with how to install it
// (fails instead when SYNCD_REQUIRE_BROWSER=1, as in CI).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const how = "no Chromium found: install it (Debian/Ubuntu: apt-get install chromium) to run the console's browser tests"
	if os.Getenv("SYNCD_REQUIRE_BROWSER") == "1" {
		t.Fatal(how + " (SYNCD_REQUIRE_BROWSER=1)")
	}
	t.Skip(how)
	return ""
}

// consoleAddr reads the console_addr of the latest "syncd running" line.
func consoleAddr(log string) string {
	var addr string
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"console_addr"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == testcontainers.RunningMsg {
			addr = rec.Addr
		}
	}
	return addr
}

// TestConsoleInBrowser drives the console in headless Chromium against a
// running `syncd run`: log in, see the counts, read why an employee failed,
// fix the row, Sync now and watch it turn synced, resolve a conflict with
// Link this account; without the session nothing personal is shown, and a
// cross-site POST is refused. Screenshots go to a folder it prints.
func TestConsoleInBrowser(t *testing.T) {
	chrome := chromiumPath(t)
	x := newE2E(t, emulator.Options{})
	hand, err := x.api.CreateUser(x.ctx, auth0.CreateUserRequest{Connection: "Username-Password-Authentication",
		Email: "dorothy@example.com", Name: "Dorothy (made by hand)", Password: "Str0ng!Passw0rd-by-hand"})
	require.NoError(t, err)
	var ada, margaret, dorothy int64
	require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email, department) VALUES ('Ada Lovelace', 'ada@example.com', 'Heat Press') RETURNING id`).Scan(&ada))
	require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email, department, role_code) VALUES ('Margaret Hamilton', 'margaret@example.com', 'Quality', 'contractor') RETURNING id`).Scan(&margaret))
	require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email, department) VALUES ('Dorothy Vaughan', 'dorothy@example.com', 'Shipping') RETURNING id`).Scan(&dorothy))

	const token = "browser-test-console-token"
	d := x.start("notify", emulator.DefaultClientSecret, "--console-addr", "127.0.0.1:0", "--console-token", token)
	defer d.stop(t)
	addr := consoleAddr(x.logs.String())
	require.NotEmpty(t, addr, "syncd run logs the console's address")
	base := "http://" + addr
	x.waitStatus(ada, "synced")
	x.waitStatus(margaret, "failed")
	x.waitStatus(dorothy, "conflict")

	shots, err := os.MkdirTemp("", "syncd-console-screenshots-")
	require.NoError(t, err)
	t.Logf("console screenshots in %s", shots)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	// The first run starts the browser; no timeout on it (it would stop the browser).
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/")))

	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		require.NoError(t, chromedp.Do(c, steps...))
	}
	text := func(sel string) string {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		s, err := chromedp.Run(c, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err, sel)
		return strings.TrimSpace(s)
	}
	navigate := func(steps ...chromedp.Action[chromedp.Void]) int64 {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		resp, err := chromedp.RunResponse(c, steps...)
		require.NoError(t, err)
		return resp.Status
	}
	shot := func(name string) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644))
	}
	// waitText polls the element's text (the page reloads itself while the
	// employee is pending or syncing) until it is want.
	waitText := func(sel, want string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		var last string
		for time.Now().Before(deadline) {
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			s, err := chromedp.Run(c, chromedp.Text(chromedp.CSS(sel)))
			cancel()
			if last = strings.TrimSpace(s); err == nil && last == want {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: %q, want %q", sel, last, want)
	}

	// Not logged in: sent to the login form; no personal data on the way.
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.Equal(t, base+"/login", loc)
	shot("login")

	// Log in; the overview counts the employees by status.
	run(chromedp.SendKeys(chromedp.CSS("#token"), token))
	require.EqualValues(t, 200, navigate(chromedp.Click(chromedp.CSS("#login"))))
	require.Equal(t, "1", text(`#counts td[data-status="failed"]`))
	require.Equal(t, "1", text(`#counts td[data-status="conflict"]`))
	require.Equal(t, "1", text(`#counts td[data-status="synced"]`))
	require.Contains(t, text("#breaker"), "closed")
	shot("overview")

	// The failed employee and its reason.
	navigate(chromedp.Navigate(base + "/employees?status=failed"))
	require.Contains(t, text("#employees"), "margaret@example.com")
	shot("employees-failed")
	navigate(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#employees a[href="/employees/%d"]`, margaret))))
	require.Equal(t, "failed", text("#status"))
	require.Contains(t, text("#reason"), `role_code: "contractor" has no Auth0 role mapping`)
	shot("employee-failed")

	// Fix the row with SQL, press Sync now, watch it turn synced.
	x.exec(`UPDATE employees SET role_code = 'associate' WHERE id = $1`, margaret)
	navigate(chromedp.Click(chromedp.CSS("#sync")))
	waitText("#status", "synced")
	require.Contains(t, text("#timeline"), "resync_request")
	shot("employee-synced")

	// A conflict, resolved with Link this account.
	navigate(chromedp.Navigate(fmt.Sprintf("%s/employees/%d", base, dorothy)))
	require.Equal(t, "conflict", text("#status"))
	require.Contains(t, text("#reason"), "belongs to Auth0 account "+hand.UserID)
	shot("employee-conflict")
	navigate(chromedp.Click(chromedp.CSS("#link")))
	waitText("#status", "synced")
	_, uid, _ := x.status(dorothy)
	require.Equal(t, hand.UserID, uid)
	var actor string
	require.NoError(t, x.pool.QueryRow(x.ctx, `SELECT response_data->>'actor' FROM auth0_sync_logs WHERE employee_id = $1 AND action = 'link_request'`, dorothy).Scan(&actor))
	require.Equal(t, "console", actor)

	// One employee with Auth0 read live: the plan is empty (converged).
	navigate(chromedp.Navigate(fmt.Sprintf("%s/employees/%d", base, ada)))
	navigate(chromedp.Click(chromedp.CSS("#read-auth0")))
	require.Contains(t, text("#auth0-account"), "ada@example.com")
	require.Contains(t, text("#plan"), "Nothing")
	shot("employee")
	navigate(chromedp.Navigate(base + "/"))
	shot("overview-after")

	// A cross-origin POST (a page on another port posting to the console,
	// with the session cookie present) is refused and changes nothing.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<form id="f" method="post" action="%s/employees/%d/sync"><input name="csrf" value="guess"><button id="go">go</button></form>`, base, ada)
	}))
	defer evil.Close()
	before := x.countAudit(ada, "resync_request")
	navigate(chromedp.Navigate(evil.URL))
	require.EqualValues(t, http.StatusForbidden, navigate(chromedp.Click(chromedp.CSS("#go"))))
	require.Contains(t, text("body"), "cross-origin request refused")
	require.Equal(t, before, x.countAudit(ada, "resync_request"))
	status, _, _ := x.status(ada)
	require.Equal(t, "synced", status)

	// Without the session: the employee's page is refused (sent to the
	// login form) and shows none of their data.
	_, err = chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{})
	require.NoError(t, err)
	navigate(chromedp.Navigate(fmt.Sprintf("%s/employees/%d", base, ada)))
	loc, err = chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.Equal(t, base+"/login", loc)
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	require.NoError(t, err)
	require.NotContains(t, html, "ada@example.com")
	require.NotContains(t, html, "Lovelace")
}

func (x *e2e) countAudit(id int64, action string) int {
	x.t.Helper()
	var n int
	require.NoError(x.t, x.pool.QueryRow(x.ctx, `SELECT count(*) FROM auth0_sync_logs WHERE employee_id = $1 AND action = $2`, id, action).Scan(&n))
	return n
}
