package outbox

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers/pgtest"
)

// TestClaimNeverSplitsAKey races claimers over the rows of one employee: in
// every round the key's rows end up leased by one worker only.
func TestClaimNeverSplitsAKey(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	const claimers = 4
	for round := range 100 {
		exec(t, pool, "DELETE FROM auth0_outbox")
		exec(t, pool, "INSERT INTO auth0_outbox (employee_id, op) SELECT 7, 'update' FROM generate_series(1, 8)")
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, claimers)
		for w := range claimers {
			wg.Go(func() {
				<-start
				for range 4 {
					if _, err := claim(ctx, pool, fmt.Sprintf("w%d", w), 1, time.Minute); err != nil {
						errs[w] = err
					}
				}
			})
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, 1, count(t, pool, "SELECT count(DISTINCT locked_by) FROM auth0_outbox WHERE locked_by IS NOT NULL"), "round %d", round)
	}
}

func TestFlushTrackerConfirmsOnlyAHandledPrefix(t *testing.T) {
	t.Parallel()
	f := newFlushTracker(100)
	a := f.add(200, 2)
	b := f.add(300, 1)
	empty := f.add(350, 0)
	_ = empty
	f.idle(1000)
	require.EqualValues(t, 100, f.position(), "keepalives do not pass outstanding work")
	b.done()
	require.EqualValues(t, 100, f.position(), "a later transaction done first does not count")
	a.done()
	require.EqualValues(t, 100, f.position())
	a.done()
	require.EqualValues(t, 350, f.position(), "the whole handled prefix, empty transaction included")
	f.idle(1000)
	require.EqualValues(t, 1000, f.position(), "nothing outstanding: follow the keepalive")
	f.idle(900)
	require.EqualValues(t, 1000, f.position(), "never backwards")
}
