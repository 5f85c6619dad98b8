package reconcile_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/reconcile"
)

// TestBulkLoopSaysAFaultOnce: while Auth0 answers every call 503, the bulk
// loop fails tick after tick; it says so once, and once more when it works
// again — never once per tick — and the backlog then converges.
func TestBulkLoopSaysAFaultOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	logs := &logBuffer{}
	ids := b.insertMany("fault", 6)
	bulk := b.newBulk(b.rec, reconcile.BulkConfig{Logger: slog.New(slog.NewJSONHandler(logs, nil))})

	b.emu.SetFaults(emulator.Faults{ErrorRate: 1})
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() { done <- bulk.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Several ticks fail (the connection lookup or the upload answers 503,
	// each call after the client's own retries).
	require.Eventually(t, func() bool {
		return callsWithStatus(b.emu, "GET /api/v2/connections", http.StatusServiceUnavailable)+
			callsWithStatus(b.emu, "POST /api/v2/jobs/users-imports", http.StatusServiceUnavailable) >= 40
	}, 120*time.Second, 10*time.Millisecond)
	require.Equal(t, 1, logs.count(`"msg":"bulk creation fails`), logs.String())

	b.emu.SetFaults(emulator.Faults{})
	require.Eventually(t, func() bool { return b.jobsLeft() == 0 && logs.count(`"msg":"bulk creation works again"`) == 1 },
		60*time.Second, 10*time.Millisecond, logs.String())
	require.Equal(t, 1, logs.count(`"msg":"bulk creation fails`), "said once: %s", logs.String())
	var cleared struct{ Failures int }
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"bulk creation works again"`) {
			require.NoError(t, json.Unmarshal([]byte(line), &cleared))
		}
	}
	require.GreaterOrEqual(t, cleared.Failures, 2, "several ticks failed, and were counted, not logged: %s", logs.String())
	b.requireOneAccountEach(ids)
}
