package emulator_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncd/syncd/auth0/emulator"
)

// benchServer is an unlimited emulator on loopback and a client with enough
// kept-alive connections for parallel requests.
func benchServer(b *testing.B) (*emulator.Server, *http.Client, string) {
	b.Helper()
	srv, err := emulator.Listen("127.0.0.1:0", emulator.Options{})
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(func() {
		tr.CloseIdleConnections()
		_ = srv.Close()
	})
	return srv, &http.Client{Transport: tr}, srv.Emulator.IssueToken(strings.TrimPrefix(srv.URL, "http://"))
}

func benchDo(b *testing.B, c *http.Client, method, url, token string, body []byte, want int) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatalf("%s %s: %d", method, url, resp.StatusCode)
	}
}

// BenchmarkGetUser: GET /api/v2/users/{id} from parallel clients on
// loopback; reports requests per second.
func BenchmarkGetUser(b *testing.B) {
	srv, c, token := benchServer(b)
	body := []byte(`{"connection":"Username-Password-Authentication","email":"bench@example.com","password":"Secure123!","app_metadata":{"employee_id":1}}`)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v2/users", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	id := srv.Emulator.Users()[0]["user_id"].(string)
	url := srv.URL + "/api/v2/users/" + strings.ReplaceAll(id, "|", "%7C")
	b.SetParallelism(4)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchDo(b, c, http.MethodGet, url, token, nil, http.StatusOK)
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkCreateUser: POST /api/v2/users (password policy, uniqueness)
// from parallel clients; reports requests per second.
func BenchmarkCreateUser(b *testing.B) {
	srv, c, token := benchServer(b)
	var n atomic.Int64
	b.SetParallelism(4)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := fmt.Appendf(nil, `{"connection":"Username-Password-Authentication","email":"u%d@example.com","password":"Secure123!"}`, n.Add(1))
			benchDo(b, c, http.MethodPost, srv.URL+"/api/v2/users", token, body, http.StatusCreated)
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkSearch: GET /api/v2/users?q= over 1,000 users.
func BenchmarkSearch(b *testing.B) {
	srv, c, token := benchServer(b)
	for i := range 1000 {
		body := fmt.Appendf(nil, `{"connection":"Username-Password-Authentication","email":"s%d@example.com","password":"Secure123!","app_metadata":{"employee_id":%d}}`, i, i)
		benchDo(b, c, http.MethodPost, srv.URL+"/api/v2/users", token, body, http.StatusCreated)
	}
	url := srv.URL + "/api/v2/users?q=app_metadata.employee_id%3A500&search_engine=v3"
	start := time.Now()
	b.ResetTimer()
	for range b.N {
		benchDo(b, c, http.MethodGet, url, token, nil, http.StatusOK)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
