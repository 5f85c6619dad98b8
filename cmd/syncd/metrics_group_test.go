package main

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
)

// The group commits' counters: every claim and every outcome is carried by
// a counted flush.
func TestGroupCommitMetrics(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	d := x.start("notify", emulator.DefaultClientSecret)
	defer d.stop(t)
	var ids []int64
	for i := range 5 {
		var id int64
		require.NoError(t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email) VALUES ($1, $2) RETURNING id`,
			fmt.Sprintf("G%d", i), fmt.Sprintf("g%d@example.com", i)).Scan(&id))
		ids = append(ids, id)
	}
	for _, id := range ids {
		x.waitStatus(id, "synced")
	}
	for _, kind := range []string{"claim", "record"} {
		flushes := x.metric(`syncd_group_commit_flushes_total{kind="` + kind + `"}`)
		items := x.metric(`syncd_group_commit_items_total{kind="` + kind + `"}`)
		require.GreaterOrEqual(t, items, 5.0, kind)
		require.GreaterOrEqual(t, flushes, 1.0, kind)
		require.GreaterOrEqual(t, items, flushes, kind)
	}
}
