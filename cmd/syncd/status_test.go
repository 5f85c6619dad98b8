package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A negative --limit is a usage error, said in one line naming the flag,
// before syncd connects: the database URL points at a closed port, so any
// SQL would end in a connection error (exit 1) instead.
func TestStatusNegativeLimit(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runCLI(t, map[string]string{"DATABASE_URL": "postgres://syncd@127.0.0.1:1/app?connect_timeout=1"}, "status", "--limit", "-1")
	require.Equal(t, 2, code, stderr)
	require.Empty(t, stdout)
	require.Equal(t, "syncd: --limit: must be 0 or more, got -1", strings.TrimSpace(stderr))
}
