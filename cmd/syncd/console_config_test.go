package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConsoleConfig: without a token the console refuses to start beyond
// loopback, with one line saying why; a short token is refused; neither
// message shows the token.
func TestConsoleConfig(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "postgres://syncd:hunter2@127.0.0.1:1/app", "AUTH0_DOMAIN": "tenant.auth0.com",
		"AUTH0_CLIENT_ID": "id", "AUTH0_CLIENT_SECRET": "secret"}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"SYNCD_CONSOLE_ADDR": "0.0.0.0:9465"}, `SYNCD_CONSOLE_TOKEN (--console-token): required when the console listens beyond loopback (SYNCD_CONSOLE_ADDR="0.0.0.0:9465")`},
		{map[string]string{"SYNCD_CONSOLE_ADDR": ":9465"}, `SYNCD_CONSOLE_TOKEN (--console-token): required when the console listens beyond loopback (SYNCD_CONSOLE_ADDR=":9465")`},
		{map[string]string{"SYNCD_CONSOLE_ADDR": "10.1.2.3:9465"}, `SYNCD_CONSOLE_TOKEN (--console-token): required when the console listens beyond loopback`},
		{map[string]string{"SYNCD_CONSOLE_ADDR": "9465"}, `SYNCD_CONSOLE_ADDR: must be host:port, got "9465"`},
		{map[string]string{"SYNCD_CONSOLE_TOKEN": "shorty-secret"}, `SYNCD_CONSOLE_TOKEN: must be at least 16 characters, got 13`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			environ := map[string]string{}
			for k, v := range base {
				environ[k] = v
			}
			for k, v := range tc.env {
				environ[k] = v
			}
			code, _, stderr := runCLI(t, environ, "run")
			require.Equal(t, 2, code, stderr)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			require.Len(t, lines, 1, "one line: %s", stderr)
			require.True(t, strings.HasPrefix(lines[0], "syncd: "+tc.want), lines[0])
			require.NotContains(t, stderr, "shorty-secret")
		})
	}
}
