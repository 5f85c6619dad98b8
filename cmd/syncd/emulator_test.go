package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// lockedBuffer is a bytes.Buffer safe to read while run writes to it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startEmulatorCLI runs `syncd emulator args…` until the test ends and
// returns its base URL and its output so far.
func startEmulatorCLI(t *testing.T, args ...string) (string, *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"emulator", "--addr", "127.0.0.1:0"}, args...), func(string) string { return "" }, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
			require.Contains(t, stdout.String(), "syncd emulator: stopped")
		case <-time.After(30 * time.Second):
			t.Fatal("syncd emulator did not stop when its context was cancelled")
		}
	})
	re := regexp.MustCompile(`tenant at (https?://127\.0\.0\.1:\d+)`)
	for range 500 {
		if m := re.FindStringSubmatch(stdout.String()); m != nil && strings.Contains(stdout.String(), "Ctrl-C") {
			return m[1], &stdout
		}
		select {
		case err := <-done:
			t.Fatalf("syncd emulator ended early: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("syncd emulator printed no URL:\n%s\n%s", stdout.String(), stderr.String())
	return "", nil
}

// curlBody extracts the JSON body of the printed curl line.
func curlBody(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`/oauth/token -H 'content-type: application/json' -d '([^']+)'`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	return m[1]
}

func TestEmulatorCommand(t *testing.T) {
	t.Parallel()
	url, out := startEmulatorCLI(t, "--roles", "production_associate, production_lead", "--plan", "enterprise", "--requires-username")
	banner := out.String()
	require.Contains(t, banner, "client id:     syncd-emulator")
	require.Contains(t, banner, "client secret: syncd-emulator-secret (the default)")
	require.Regexp(t, `role: +production_lead \(rol_[A-Za-z0-9]{16}\)`, banner)
	require.Contains(t, banner, "rate limit:    enterprise")

	// The printed curl line gets a token.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	resp, err := client.Post(url+"/oauth/token", "application/json", strings.NewReader(curlBody(t, banner)))
	require.NoError(t, err)
	var tok map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, float64(86400), tok["expires_in"])

	// The flags reached the emulator: plan, roles, requires_username.
	req, _ := http.NewRequest(http.MethodPost, url+"/api/v2/users", strings.NewReader(`{"connection":"Username-Password-Authentication","email":"a@example.com","username":"ann","password":"Secure123!"}`))
	req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
	req.Header.Set("Content-Type", "application/json")
	resp, err = client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Equal(t, "50", resp.Header.Get("X-RateLimit-Limit"))
	req, _ = http.NewRequest(http.MethodGet, url+"/api/v2/roles", nil)
	req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
	resp, err = client.Do(req)
	require.NoError(t, err)
	var roles []map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&roles))
	resp.Body.Close()
	require.Len(t, roles, 2)
	resp, err = client.Get(url + "/admin/calls")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestEmulatorCommandFaultsAndSecret(t *testing.T) {
	t.Parallel()
	url, out := startEmulatorCLI(t, "--client-secret", "hunter2-but-longer", "--error-rate", "1", "--token-ttl", "1h", "--rate", "5")
	banner := out.String()
	require.NotContains(t, banner, "hunter2")
	require.Contains(t, banner, "client secret: (as given)")
	require.Contains(t, banner, "rate limit:    5 requests/s, burst 5")
	body := strings.Replace(curlBody(t, banner), "$EMULATOR_CLIENT_SECRET", "hunter2-but-longer", 1)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	resp, err := client.Post(url+"/oauth/token", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	var tok map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	require.Equal(t, float64(3600), tok["expires_in"])
	req, _ := http.NewRequest(http.MethodGet, url+"/api/v2/roles", nil)
	req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
	resp, err = client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

func TestEmulatorCommandTLS(t *testing.T) {
	t.Parallel()
	certOut := filepath.Join(t.TempDir(), "emu.pem")
	url, out := startEmulatorCLI(t, "--tls", "--cert-out", certOut)
	require.True(t, strings.HasPrefix(url, "https://"))
	require.Contains(t, out.String(), "curl -s --cacert "+certOut+" "+url+"/oauth/token")
	pemBytes, err := os.ReadFile(certOut)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pemBytes))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Post(url+"/oauth/token", "application/json", strings.NewReader(curlBody(t, out.String())))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// A context that is already done: the emulator starts, says where, stops.
func TestEmulatorCommandCancelledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"emulator", "--addr", "127.0.0.1:0"}, func(string) string { return "" }, &stdout, &stderr)
	require.NoError(t, err)
	require.Contains(t, stdout.String(), "syncd emulator: an in-memory Auth0 tenant at http://127.0.0.1:")
	require.Contains(t, stdout.String(), "syncd emulator: stopped")
}

func TestEmulatorCommandErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--plan", "gold"}, `--plan: must be one of unlimited, free, professional, enterprise, got "gold"`},
		{[]string{"--error-rate", "1.5"}, "--error-rate: must be between 0 and 1, got 1.5"},
		{[]string{"--error-rate", "0.6", "--drop-rate", "0.6"}, "--error-rate + --drop-rate: must be at most 1"},
		{[]string{"--cert-out", "x.pem"}, "--cert-out: needs --tls"},
		{[]string{"--addr", "8089"}, `--addr: must be host:port, got "8089"`},
		{[]string{"--rate", "-1"}, "--rate, --burst: must not be negative"},
		{[]string{"--token-ttl", "0s"}, "--token-ttl: must be at least 1s"},
		{[]string{"--client-secret", ""}, "--client-id, --client-secret: must not be empty"},
		{[]string{"--latency", "-1s"}, "must not be negative"},
		{[]string{"extra"}, `syncd emulator: unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runCLI(t, nil, append([]string{"emulator"}, tt.args...)...)
			require.Equal(t, 2, code, stderr)
			require.Contains(t, stderr, tt.want)
		})
	}
	// A busy address is an ordinary error.
	srv, err := emulator.Listen("127.0.0.1:0", emulator.Options{})
	require.NoError(t, err)
	defer srv.Close()
	code, _, stderr := runCLI(t, nil, "emulator", "--addr", strings.TrimPrefix(srv.URL, "http://"))
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "syncd: start emulator: listen:")
}
