package console_test

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkConsole100k measures the server time of the overview and of the
// employee list (first page, a status filter, a search, a deep keyset page)
// with 100,000 employees: the request is made over loopback HTTP with a
// session, so the figure is what the browser waits for minus the network.
// Run: go test -run '^$' -bench Console100k -benchtime 50x ./console
func BenchmarkConsole100k(b *testing.B) {
	bb := setup(b)
	bb.exec(`INSERT INTO employees (name, email, department, phone_number)
		SELECT 'Person ' || i, 'person' || i || '@example.com', 'Dept ' || (i % 40), '+1555' || lpad(i::text, 7, '0')
		  FROM generate_series(1, 100000) i`)
	// A realistic mix: most synced, some failed, in conflict or retrying, with
	// audit rows for the problem rows.
	bb.exec(`UPDATE employees SET auth0_sync_status = CASE
			WHEN id % 500 = 0 THEN 'failed' WHEN id % 777 = 0 THEN 'conflict' WHEN id % 333 = 0 THEN 'retrying' ELSE 'synced' END,
		auth0_user_id = 'auth0|' || md5(id::text), auth0_synced_at = now(),
		auth0_sync_error = CASE WHEN id % 500 = 0 THEN 'role_code: no mapping' WHEN id % 777 = 0 THEN 'email belongs to another account' END`)
	bb.exec(`INSERT INTO auth0_sync_logs (employee_id, auth0_user_id, action, status, created_at)
		SELECT id, auth0_user_id, 'create', 'success', now() - interval '1 day' FROM employees`)
	bb.exec(`DELETE FROM auth0_outbox`)
	bb.exec(`ANALYZE`)
	c := bb.browser()
	c.Transport = bearer{}
	for _, path := range []string{
		"/",
		"/employees",
		"/employees?status=failed",
		"/employees?q=person4242",
		"/employees?after=90000",
		"/employees/4242",
		"/api/v1/status",
		"/api/v1/employees?status=conflict&limit=100",
	} {
		b.Run(path, func(b *testing.B) {
			for b.Loop() {
				resp, err := c.Get(bb.srv.URL + path)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: %d", path, resp.StatusCode)
				}
			}
		})
	}
}

// bearer adds the token to every request (the API's; pages use the cookie).
type bearer struct{}

func (bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	return http.DefaultTransport.RoundTrip(r)
}
