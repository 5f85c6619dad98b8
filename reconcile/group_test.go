package reconcile_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/reconcile"
)

// gated wraps the real client: the create of one email, once it is done,
// waits until the test lets it go on.
type gated struct {
	*auth0.Client
	email   string
	reached chan struct{}
	release chan struct{}
}

func (g *gated) CreateUser(ctx context.Context, req auth0.CreateUserRequest) (*auth0.User, error) {
	u, err := g.Client.CreateUser(ctx, req)
	if req.Email == g.email {
		close(g.reached)
		<-g.release
	}
	return u, err
}

// groupBundle is a reconciler on a pool of its own whose connections an
// operator can find in pg_stat_activity (and terminate, as a dying process's
// would end).
type groupBundle struct {
	*bundle
	app   string
	rpool *pgxpool.Pool
	api   *gated
	rec   *reconcile.Reconciler
}

func setupGroup(t *testing.T, email string) *groupBundle {
	t.Helper()
	b := setup(t)
	g := &groupBundle{bundle: b, app: fmt.Sprintf("syncd-group-test-%d", time.Now().UnixNano())}
	cfg, err := pgxpool.ParseConfig(b.pool.Config().ConnString())
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["application_name"] = g.app
	g.rpool, err = pgxpool.NewWithConfig(b.ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(g.rpool.Close)
	g.api = &gated{Client: b.api, email: email, reached: make(chan struct{}), release: make(chan struct{})}
	g.rec, err = reconcile.New(g.rpool, g.api, b.cfg)
	require.NoError(t, err)
	return g
}

// lockRow takes a row lock on id in an open transaction, as an operator's
// long UPDATE would; the returned func commits it.
func (g *groupBundle) lockRow(id string) func() {
	g.t.Helper()
	tx, err := g.pool.Begin(g.ctx)
	require.NoError(g.t, err)
	_, err = tx.Exec(g.ctx, `SELECT 1 FROM employees WHERE id = $1 FOR UPDATE`, id)
	require.NoError(g.t, err)
	return func() { require.NoError(g.t, tx.Commit(g.ctx)) }
}

// waitLockWaiter waits until one of the reconciler's connections waits for a
// row lock, and returns its pid.
func (g *groupBundle) waitLockWaiter() int {
	g.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var pid int
		err := g.pool.QueryRow(g.ctx, `SELECT pid FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event_type = 'Lock' LIMIT 1`, g.app).Scan(&pid)
		if err == nil {
			return pid
		}
		require.ErrorIs(g.t, err, pgx.ErrNoRows)
		if time.Now().After(deadline) {
			g.t.Fatal("no connection of the reconciler waits for the row lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type result struct {
	out reconcile.Outcome
	err error
}

func (g *groupBundle) start(id string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		out, err := g.rec.Reconcile(g.ctx, id)
		ch <- result{out, err}
	}()
	return ch
}

func (g *groupBundle) committedStatus(id string) string {
	g.t.Helper()
	return g.row(id).Status // read on another connection: committed values only
}

// An outcome is committed before Reconcile returns (before the queue
// acknowledges the key and its outbox rows go): while the flush that carries
// it waits for a row lock, the reconcile does not return and the row is not
// marked; every reconcile that does return has its outcome committed.
func TestGroupRecordReturnsOnlyCommitted(t *testing.T) {
	t.Parallel()
	g := setupGroup(t, "blocked@example.com")
	blocked := g.insert("Blocked", "blocked@example.com")
	first := g.start(blocked)
	<-g.api.reached
	unlock := g.lockRow(blocked)
	close(g.api.release)
	g.waitLockWaiter()

	// Others finish meanwhile, in the same flush or in later ones.
	var wg sync.WaitGroup
	for i := range 6 {
		id := g.insert(fmt.Sprintf("Other %d", i), fmt.Sprintf("other%d@example.com", i))
		wg.Go(func() {
			out, err := g.rec.Reconcile(g.ctx, id)
			if err == nil {
				require.Equal(t, "synced", out.Status)
				require.Equal(t, "synced", g.committedStatus(id), "Reconcile returned before its outcome committed")
			}
		})
	}
	select {
	case r := <-first:
		t.Fatalf("Reconcile returned (%+v) while its outcome's flush waits for a row lock", r)
	default:
	}
	require.Equal(t, "syncing", g.committedStatus(blocked))
	unlock()
	r := <-first
	require.NoError(t, r.err)
	require.Equal(t, "synced", r.out.Status)
	require.Equal(t, "synced", g.committedStatus(blocked))
	wg.Wait()
	require.Equal(t, 1, g.accounts("blocked@example.com"))
}

// A flush that fails (its connection is terminated while it waits) sends
// its outcome down the single-row path: the row is recorded once, with its
// audit rows once.
func TestGroupRecordFailedFlushRecordsAlone(t *testing.T) {
	t.Parallel()
	g := setupGroup(t, "flush@example.com")
	id := g.insert("Flush", "flush@example.com")
	done := g.start(id)
	<-g.api.reached
	unlock := g.lockRow(id)
	close(g.api.release)
	pid := g.waitLockWaiter()
	g.exec(`SELECT pg_terminate_backend($1)`, pid)
	// The single-row write waits for the lock too, on a new connection.
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, g.pool.QueryRow(g.ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event_type = 'Lock' AND pid <> $2`, g.app, pid).Scan(&n))
		return n > 0
	}, time.Minute, 5*time.Millisecond)
	unlock()
	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, "synced", r.out.Status)
	require.Equal(t, "synced", g.committedStatus(id))
	var creates int
	require.NoError(t, g.pool.QueryRow(g.ctx, `SELECT count(*) FROM auth0_sync_logs WHERE employee_id = $1 AND action = 'create'`, id).Scan(&creates))
	require.Equal(t, 1, creates)
	require.Equal(t, 1, g.accounts("flush@example.com"))
}

// A process that dies mid-flush (every write of the outcome ends with its
// connection) leaves the row leased and syncing with its attempt counted;
// after a restart and the lease's expiry it converges to the one account.
func TestGroupRecordKilledMidFlushConverges(t *testing.T) {
	t.Parallel()
	g := setupGroup(t, "killed@example.com")
	id := g.insert("Killed", "killed@example.com")
	done := g.start(id)
	<-g.api.reached
	unlock := g.lockRow(id)
	close(g.api.release)
	var r result
	for waiting := true; waiting; {
		select {
		case r = <-done:
			waiting = false
		default:
			// Terminate whatever write of the outcome waits for the lock.
			_, err := g.pool.Exec(g.ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE application_name = $1 AND wait_event_type = 'Lock'`, g.app)
			require.NoError(t, err)
			time.Sleep(5 * time.Millisecond)
		}
	}
	require.Error(t, r.err, "the outcome could not be recorded")
	unlock()
	row := g.row(id)
	require.Equal(t, "syncing", row.Status)
	require.Equal(t, 1, row.Attempts)

	// Restart: a new process (another owner) waits for the lease to expire.
	g.expireLease(id)
	restarted, err := reconcile.New(g.pool, g.bundle.api, g.cfg)
	require.NoError(t, err)
	out, err := restarted.Reconcile(g.ctx, id)
	require.NoError(t, err)
	require.Equal(t, "synced", out.Status)
	require.Equal(t, 1, g.accounts("killed@example.com"))
	require.EqualValues(t, 1, g.emu.CallCount("POST /api/v2/users"))
}

// A row locked by another transaction does not hold up the claims of other
// employees taken with it: it is claimed alone, once the lock goes.
func TestGroupClaimSkipsLockedRows(t *testing.T) {
	t.Parallel()
	g := setupGroup(t, "nobody@example.com")
	close(g.api.release)
	locked := g.insert("Locked", "locked@example.com")
	unlock := g.lockRow(locked)
	first := g.start(locked)
	g.waitLockWaiter()
	for i := range 4 {
		id := g.insert(fmt.Sprintf("Free %d", i), fmt.Sprintf("free%d@example.com", i))
		out, err := g.rec.Reconcile(g.ctx, id)
		require.NoError(t, err)
		require.Equal(t, "synced", out.Status)
	}
	select {
	case r := <-first:
		t.Fatalf("the locked row's reconcile returned (%+v) while its row is locked", r)
	default:
	}
	unlock()
	r := <-first
	require.NoError(t, r.err)
	require.Equal(t, "synced", r.out.Status)
}
