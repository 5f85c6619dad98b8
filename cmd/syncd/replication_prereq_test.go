package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// A role without REPLICATION used to log a WARN on every attempt, forever,
// without saying what to change. Now the start check says it once, with the
// statement that fixes it; syncd runs unready, rows wait untouched, and once
// the role is fixed the stream starts and every row converges by itself.
func TestReplicationWithoutPrivilegeSaysSoOnceAndResumes(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	role := fmt.Sprintf("syncd_norepl_%d", time.Now().UnixNano()%1_000_000_000)
	ident := pgx.Identifier{role}.Sanitize()
	x.exec(`CREATE ROLE ` + ident + ` LOGIN`)
	t.Cleanup(func() {
		_, _ = x.pool.Exec(x.ctx, `DROP OWNED BY `+ident)
		_, _ = x.pool.Exec(x.ctx, `DROP ROLE `+ident)
	})
	// The README's grants for `syncd run`.
	for _, g := range []string{
		`GRANT SELECT, UPDATE ON employees TO %s`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON auth0_outbox TO %s`,
		`GRANT SELECT, INSERT ON auth0_sync_logs TO %s`,
		`GRANT SELECT ON syncd_schema_version TO %s`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON syncd_deprovisions, syncd_deprovision_window TO %s`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON syncd_leader TO %s`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON syncd_holds TO %s`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON syncd_access_revocations TO %s`,
		`GRANT SELECT ON syncd_desired, syncd_managed_keys TO %s`,
	} {
		x.exec(fmt.Sprintf(g, ident))
	}
	x.exec(`INSERT INTO employees (name, email) SELECT 'E' || g, 'e' || g || '@example.com' FROM generate_series(1, 5) g`)
	u, err := url.Parse(x.dbURL)
	require.NoError(t, err)
	u.User = url.User(role)
	owner := x.dbURL
	x.dbURL = u.String()
	d := x.start("replication", emulator.DefaultClientSecret, "--resync-interval", "1h")
	x.dbURL = owner

	missing := fmt.Sprintf(`replication prerequisite missing: the role \"%s\" lacks the REPLICATION attribute: ALTER ROLE \"%s\" REPLICATION`, role, role)
	require.True(t, assertEventually(func() bool { return strings.Contains(x.logs.String(), missing) }, 60*time.Second), "the start check names the fix")
	code, checks := x.readyz()
	require.Equal(t, 503, code)
	require.Contains(t, checks["replication"], "lacks the REPLICATION attribute")
	// The stream keeps trying (Debug lines), the cause is said once.
	attempts := func() int { return strings.Count(x.logs.String(), `"level":"DEBUG","msg":"replication stream"`) }
	require.True(t, assertEventually(func() bool { return attempts() >= 3 }, 90*time.Second), "the stream retries")
	require.Equal(t, 1, strings.Count(x.logs.String(), missing), "said once")
	require.Equal(t, 1, strings.Count(x.logs.String(), `"msg":"replication stream fails`), "the stream's cause said once, not per attempt")
	require.Equal(t, 5, x.countStatus("pending"), "rows wait untouched")

	x.exec(`ALTER ROLE ` + ident + ` REPLICATION`)
	require.True(t, assertEventually(func() bool { return x.countStatus("synced") == 5 }, 120*time.Second),
		"synced %d, pending %d", x.countStatus("synced"), x.countStatus("pending"))
	require.True(t, assertEventually(func() bool { code, _ := x.readyz(); return code == 200 }, 60*time.Second))
	require.Contains(t, x.logs.String(), "replication prerequisites are met now")
	require.Contains(t, x.logs.String(), `"msg":"replication stream works again"`)
	d.stop(t)
}
