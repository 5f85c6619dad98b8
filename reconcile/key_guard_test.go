package reconcile_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/reconcile"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

// An orphan's deprovision names no employee: 0 where the key is bigint (what
// a syncd before schema version 8, still running during an upgrade, writes
// and reads), NULL for uuid and text keys; an employee_id from Auth0 that is
// no key of the table's type never reaches a statement. Read back, it is no
// employee.
func TestGuardRecordsOrphansOnAnyKey(t *testing.T) {
	t.Parallel()
	for _, key := range pgtest.Keys {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			b := setupKeyed(t, key)
			id := b.insert("Ada", "ada@example.com")
			g, _ := b.guarded(reconcile.Limit{Count: 1}, newClock())
			for _, d := range []reconcile.Deprovision{
				{Kind: reconcile.KindOrphan, EmployeeID: "not a key of any type", UserID: "auth0|orphan1"},
				{Kind: reconcile.KindOrphan, EmployeeID: "424242", UserID: "auth0|orphan2"},
				{Kind: reconcile.KindInactive, EmployeeID: id, UserID: "auth0|ada"},
			} {
				_, err := g.Request(b.ctx, d)
				require.NoError(t, err)
			}
			var stored []*string
			rows, err := b.pool.Query(b.ctx, `SELECT employee_id::text FROM syncd_deprovisions WHERE kind = 'orphan' ORDER BY key`)
			require.NoError(t, err)
			for rows.Next() {
				var s *string
				require.NoError(t, rows.Scan(&s))
				stored = append(stored, s)
			}
			require.NoError(t, rows.Err())
			require.Len(t, stored, 2)
			for _, s := range stored {
				if key == "bigint" {
					require.Equal(t, "0", *s)
				} else {
					require.Nil(t, s)
				}
			}
			waiting, err := reconcile.Waiting(b.ctx, b.pool)
			require.NoError(t, err)
			byUser := map[string]string{}
			for _, h := range waiting {
				byUser[h.UserID] = h.EmployeeID
			}
			require.Equal(t, map[string]string{"auth0|orphan1": "", "auth0|orphan2": "", "auth0|ada": id}, byUser)
		})
	}
}
