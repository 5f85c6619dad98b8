package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
	syncdsql "github.com/syncd/syncd/sql"
)

// TestNewerSchema: against a database migrated by a newer syncd, `migrate`
// and `run --migrate` refuse with one line; `run` without --migrate runs on
// (the older replica of a rolling upgrade) and says so once.
func TestNewerSchema(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	_, err := x.pool.Exec(context.Background(), "UPDATE "+syncdsql.VersionTable+" SET version = $1", syncdsql.Latest()+1)
	require.NoError(t, err)
	want := fmt.Sprintf("syncd: database schema version %d is newer than this syncd knows (%d): a newer syncd migrated it; migrate with that version or a later one\n",
		syncdsql.Latest()+1, syncdsql.Latest())

	environ := map[string]string{"DATABASE_URL": x.dbURL, "LOG_FORMAT": "json",
		"AUTH0_DOMAIN": x.emu.URL, "AUTH0_CLIENT_ID": emulator.DefaultClientID, "AUTH0_CLIENT_SECRET": emulator.DefaultClientSecret}
	for _, args := range [][]string{{"migrate"}, {"run", "--migrate", "--metrics-addr", ""}} {
		code, _, stderr := runCLI(t, environ, args...)
		require.Equal(t, 1, code, "%v", args)
		lines := strings.SplitAfter(stderr, "\n")
		require.Equal(t, want, lines[len(lines)-2], "%v: the last line of %q", args, stderr)
		require.NotContains(t, stderr, "outside the valid versions", "%v", args)
	}

	d := x.start("notify", emulator.DefaultClientSecret)
	var id int64
	require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email) VALUES ('Ada', 'ada@example.com') RETURNING id`).Scan(&id))
	x.waitStatus(id, "synced")
	d.stop(t)
	require.Equal(t, 1, strings.Count(x.logs.String(), "database schema is newer than this syncd knows"))
}
