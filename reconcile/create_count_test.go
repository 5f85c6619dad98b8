package reconcile_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/reconcile"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

// TestLostCreateIsLookedForNotRepeated counts the POST /users of a create
// interrupted at each step: the next attempt looks for the account (the
// committed attempt count says one may exist) and finds it, so exactly one
// POST is ever sent. The emulator's 409 would rescue a blind re-create in
// the end state (one account, synced); only the count shows the difference.
// A create whose request never arrived is repeated once, after a look.
func TestLostCreateIsLookedForNotRepeated(t *testing.T) {
	t.Parallel()
	for _, key := range pgtest.Keys {
		for step, posts := range map[string]int64{"not sent": 2, "answer lost": 1, "crash after POST": 1, "crash after role assign": 1} {
			t.Run(key+"/"+step, func(t *testing.T) {
				t.Parallel()
				b := setupKeyed(t, key)
				id := b.insert("Di", "di@example.com")
				switch step {
				case "not sent":
					b.emu.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/users", Drop: true}}})
					require.Equal(t, reconcile.ResultRetry, b.reconcile(id).Result)
				case "answer lost":
					// The same attempt looks (users-by-email) and links what it made.
					b.emu.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/users", LoseAnswer: true}}})
				default:
					after := map[string]string{"crash after POST": "create", "crash after role assign": "assign"}[step]
					rec := b.reconciler(&crashing{Client: b.api, after: after})
					require.PanicsWithValue(t, crash{}, func() { _, _ = rec.Reconcile(b.ctx, id) })
					b.expireLease(id)
				}
				if step != "answer lost" {
					require.EqualValues(t, 1, b.row(id).Attempts, "the first attempt is counted before its POST")
				}
				out := b.reconcile(id)
				require.Equal(t, "synced", out.Status, "%v", out.Err)
				require.Equal(t, posts, b.emu.CallCount("POST /api/v2/users"), "POST /users sent")
				require.Zero(t, countCalls(b.emu, "POST /api/v2/users", 409), "no create was repeated blindly into a 409")
				require.Equal(t, 1, b.accounts("di@example.com"))
				require.Positive(t, b.emu.CallCount("GET /api/v2/users-by-email"), "the second attempt looked first")
			})
		}
	}
}

func countCalls(e *emulator.Emulator, endpoint string, status int) int64 {
	for _, c := range e.Calls() {
		if c.Endpoint == endpoint && c.Status == status {
			return c.Count
		}
	}
	return 0
}
