package reconcile_test

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/reconcile"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

// newBulk returns bulk creation over b's reconciler with a small threshold.
func (b *bundle) newBulk(rec *reconcile.Reconciler, cfg reconcile.BulkConfig) *reconcile.Bulk {
	b.t.Helper()
	cfg.Enabled = true
	cfg.Threshold = max(cfg.Threshold, 5)
	cfg.PollInterval = 10 * time.Millisecond
	bulk, err := reconcile.NewBulk(rec, b.api, cfg)
	require.NoError(b.t, err)
	return bulk
}

// insertMany inserts n employees and returns their ids.
func (b *bundle) insertMany(prefix string, n int) []string {
	b.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = b.insert(fmt.Sprintf("%s %d", prefix, i), fmt.Sprintf("%s%d@example.com", prefix, i))
	}
	return ids
}

// jobsLeft counts syncd's import jobs.
func (b *bundle) jobsLeft() int {
	var n int
	require.NoError(b.t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM syncd_import_jobs`).Scan(&n))
	return n
}

// runBulk ticks bulk until no import job is left (the backlog was claimed by
// the first tick).
func (b *bundle) runBulk(bulk *reconcile.Bulk) {
	b.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		_ = bulk.Tick(b.ctx) // a failing step is tried again, as Run does
		if i > 0 && b.jobsLeft() == 0 {
			return
		}
		require.True(b.t, time.Now().Before(deadline), "import jobs did not finish: %d left", b.jobsLeft())
		time.Sleep(10 * time.Millisecond)
	}
}

// drainPerUser reconciles, per user, every row the outbox names, until the
// outbox is empty.
func (b *bundle) drainPerUser() {
	b.t.Helper()
	for range 10 {
		var ids []string
		rows, err := b.pool.Query(b.ctx, `SELECT DISTINCT employee_id::text FROM auth0_outbox`)
		require.NoError(b.t, err)
		for rows.Next() {
			var id string
			require.NoError(b.t, rows.Scan(&id))
			ids = append(ids, id)
		}
		require.NoError(b.t, rows.Err())
		if len(ids) == 0 {
			return
		}
		b.exec(`DELETE FROM auth0_outbox`)
		for _, id := range ids {
			_, err := b.rec.Reconcile(b.ctx, id)
			require.NoError(b.t, err)
		}
	}
	b.t.Fatal("outbox did not drain")
}

// requireOneAccountEach checks every row of ids: synced, linked to exactly
// one account with its email, carrying its employee_id and role.
func (b *bundle) requireOneAccountEach(ids []string) {
	b.t.Helper()
	byEmp := map[string]int{}
	for _, u := range b.emu.Users() {
		if app, ok := u["app_metadata"].(map[string]any); ok {
			if eid, ok := reconcile.KeyOf(app["employee_id"]); ok {
				byEmp[eid]++
			}
		}
	}
	for _, id := range ids {
		r := b.row(id)
		require.Equal(b.t, "synced", r.Status, "employee %s: %s", id, r.Error)
		require.Equal(b.t, 1, byEmp[id], "employee %s: accounts", id)
		u := b.user(r.UserID)
		require.Equal(b.t, b.keyJSON(id), u["app_metadata"].(map[string]any)["employee_id"])
		require.Equal(b.t, []string{"production_associate"}, b.emu.UserRoles(r.UserID), "employee %s", id)
	}
}

// An imported account is the account the per-user path makes: the same
// profile, metadata and role, the same row state; and a converged imported
// row costs no call on its next reconcile.
func TestBulkCreatesWhatPerUserCreates(t *testing.T) {
	t.Parallel()
	perUser := setup(t)
	bulked := setup(t)
	// Same ids on both sides: the rows are inserted in the same order.
	pIDs := perUser.insertMany("emp", 12)
	bIDs := bulked.insertMany("emp", 12)
	require.Equal(t, pIDs, bIDs)
	for _, id := range pIDs {
		perUser.reconcile(id)
	}
	bulk := bulked.newBulk(bulked.rec, reconcile.BulkConfig{})
	bulked.runBulk(bulk)
	require.EqualValues(t, 0, bulked.emu.CallCount("POST /api/v2/users"), "bulk creation makes no POST /users")
	require.EqualValues(t, 2, bulked.emu.CallCount("POST /api/v2/jobs/users-imports"), "12 rows, two jobs side by side")
	require.EqualValues(t, 2, bulked.emu.CallCount("POST /api/v2/roles/{id}/users"), "one role batch per job")
	bulked.requireOneAccountEach(bIDs)

	comparable := func(u map[string]any) map[string]any {
		out := maps.Clone(u)
		for _, k := range []string{"user_id", "created_at", "updated_at", "identities", "picture"} {
			delete(out, k)
		}
		// app_metadata.created_at is the one difference: the import schema
		// reserves the key, so an imported account has only its own created_at.
		app := maps.Clone(out["app_metadata"].(map[string]any))
		delete(app, "created_at")
		out["app_metadata"] = app
		return out
	}
	var pState, bState string
	for _, id := range pIDs {
		pr, br := perUser.row(id), bulked.row(id)
		require.Equal(t, "auth0|syncd-emp-"+fmt.Sprint(id), br.UserID)
		require.Equal(t, pr.Attempts, br.Attempts)
		require.Equal(t, comparable(perUser.user(pr.UserID)), comparable(bulked.user(br.UserID)), "employee %d", id)
		require.Equal(t, perUser.emu.UserRoles(pr.UserID), bulked.emu.UserRoles(br.UserID))
		require.NoError(t, perUser.pool.QueryRow(perUser.ctx, `SELECT auth0_synced_state::text FROM employees WHERE id = $1`, id).Scan(&pState))
		require.NoError(t, bulked.pool.QueryRow(bulked.ctx, `SELECT auth0_synced_state::text FROM employees WHERE id = $1`, id).Scan(&bState))
		require.JSONEq(t, pState, bState)
	}
	var logs int
	require.NoError(t, bulked.pool.QueryRow(bulked.ctx, `SELECT count(*) FROM auth0_sync_logs WHERE status = 'success' AND action IN ('create', 'assign_role')`).Scan(&logs))
	require.Equal(t, 2*len(bIDs), logs, "a create and an assign_role audit row per employee, as the per-user path writes")

	// Converged: the next reconcile of an imported row calls nothing; after a
	// resync (reads Auth0) it still writes nothing.
	bulked.emu.ResetCalls()
	out := bulked.reconcile(bIDs[0])
	require.Empty(t, out.Applied)
	require.EqualValues(t, 0, bulked.emu.CallCount(""))
	_, err := reconcile.Requeue(bulked.ctx, bulked.pool, []string{bIDs[0]}, false)
	require.NoError(t, err)
	out = bulked.reconcile(bIDs[0])
	require.Empty(t, out.Applied)
	require.EqualValues(t, 0, bulked.emu.WriteCount())
}

// A backlog under the threshold stays on the per-user path; a row in a job is
// not reconciled per user (no call), and its status says syncing.
func TestBulkThresholdAndLease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	few := b.insertMany("few", 4)
	bulk := b.newBulk(b.rec, reconcile.BulkConfig{Threshold: 5})
	require.NoError(t, bulk.Tick(b.ctx))
	require.Equal(t, 0, b.jobsLeft(), "4 rows are under the threshold of 5")
	require.EqualValues(t, 0, b.emu.CallCount(""))

	more := b.insertMany("more", 3)
	b.emu.SetImportDelay(time.Hour) // the job stays pending
	require.NoError(t, bulk.Tick(b.ctx))
	require.Equal(t, 2, b.jobsLeft())
	b.emu.ResetCalls()
	for _, id := range append(few, more...) {
		out := b.reconcile(id)
		require.Equal(t, reconcile.ResultImporting, out.Result)
		require.Equal(t, "syncing", b.row(id).Status)
		require.Equal(t, 1, b.row(id).Attempts, "the attempt is counted when the row enters a job")
	}
	require.EqualValues(t, 0, b.emu.CallCount(""), "a row in a job costs the per-user path nothing")
	var jobs int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM employees WHERE auth0_import_job IS NOT NULL`).Scan(&jobs))
	require.Equal(t, 7, jobs)
	rep, err := reconcile.ReadStatus(b.ctx, b.pool, 10)
	require.NoError(t, err)
	require.Len(t, rep.ImportJobs, 2)
	require.NotEmpty(t, rep.ImportJobs[0].Auth0JobID, "syncd status shows the Auth0 job id")
}

// Rows the job could not create (/errors: an email another account has)
// go to the per-user path, which says why (conflict); the rest are synced.
func TestBulkPerUserErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.insertMany("err", 8)
	_, err := b.api.CreateUser(b.ctx, auth0.CreateUserRequest{Connection: emulator.DefaultConnection, Email: "err3@example.com", Password: "Str0ng!Passw0rd"})
	require.NoError(t, err)
	b.runBulk(b.newBulk(b.rec, reconcile.BulkConfig{}))
	r := b.row(ids[3])
	require.Equal(t, "pending", r.Status)
	require.Equal(t, 1, r.Attempts)
	var reason string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT error FROM auth0_sync_logs WHERE employee_id = $1 AND action = 'import'`, ids[3]).Scan(&reason))
	require.Contains(t, reason, "DUPLICATED_USER")
	b.drainPerUser()
	require.Equal(t, "conflict", b.row(ids[3]).Status)
	require.Equal(t, 1, b.accounts("err3@example.com"))
	b.requireOneAccountEach(append(ids[:3:3], ids[4:]...))
}

// The 202 of the upload is lost: the job ran anyway. The job is uploaded
// again; what the lost job created comes back DUPLICATED_USER, and the role
// batch confirms those accounts exist: one account each, every row synced,
// with no per-user call.
func TestBulkLost202(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.insertMany("lost", 10)
	b.emu.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/jobs/users-imports", LoseAnswer: true}}})
	b.runBulk(b.newBulk(b.rec, reconcile.BulkConfig{MaxActive: 1}))
	require.EqualValues(t, 0, b.emu.CallCount("POST /api/v2/users"))
	require.EqualValues(t, 2, b.emu.CallCount("POST /api/v2/jobs/users-imports"), "the lost upload, then the same job again")
	var dup int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM auth0_sync_logs WHERE action = 'import'`).Scan(&dup))
	require.Zero(t, dup, "no row went per user")
	b.drainPerUser()
	b.requireOneAccountEach(ids)
}

// A job that fails whole after inserting some users: every row goes to the
// per-user path, which finds the accounts the job made (by email, carrying
// the employee id) and creates the others: one account each.
func TestBulkWholeJobFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.insertMany("fail", 10)
	b.emu.SetImportFaults(emulator.ImportFaults{FailNext: 1, FailAfter: 2})
	b.emu.SetImportDelay(50 * time.Millisecond)
	bulk := b.newBulk(b.rec, reconcile.BulkConfig{})
	require.NoError(t, bulk.Tick(b.ctx))
	var failing int // the first job uploaded is the one that fails
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM employees
		WHERE auth0_import_job = (SELECT min(id) FROM syncd_import_jobs)`).Scan(&failing))
	require.Greater(t, failing, 2)
	b.emu.SetImportDelay(0)
	b.runBulk(bulk)
	var perUser int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM employees WHERE auth0_sync_status = 'pending'`).Scan(&perUser))
	require.Equal(t, failing, perUser, "the failed job's rows go per user")
	b.drainPerUser()
	b.requireOneAccountEach(ids)
	require.EqualValues(t, failing-2, b.emu.CallCount("POST /api/v2/users"), "2 of the failed job's accounts existed and were adopted")
}

// A process dies at each point of a job: before the upload, after it (the
// 202 never recorded), while the job runs, between role batches. Another
// process takes the job over once its lease runs out: one account each.
func TestBulkTakeover(t *testing.T) {
	t.Parallel()
	for _, stage := range []string{"before-upload", "after-upload", "running", "roles"} {
		t.Run(stage, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ids := b.insertMany("k", 10)
			// One job (MaxActive 1) of five role batches.
			first := b.newBulk(b.rec, reconcile.BulkConfig{RoleBatch: 2, MaxActive: 1})
			switch stage {
			case "before-upload":
				b.emu.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/jobs/users-imports", Drop: true, Times: 100}}})
				_ = first.Tick(b.ctx)
			case "after-upload":
				b.emu.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/jobs/users-imports", LoseAnswer: true, Times: 2}}})
				_ = first.Tick(b.ctx)
			case "running":
				b.emu.SetImportDelay(200 * time.Millisecond)
				require.NoError(t, first.Tick(b.ctx))
			case "roles":
				// The second role batch fails: the job stops between two.
				b.emu.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/roles/{id}/users", Status: 400, After: 1}}})
				deadline := time.Now().Add(60 * time.Second)
				for {
					_ = first.Tick(b.ctx)
					var synced, roles int
					require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FILTER (WHERE auth0_sync_status = 'synced') FROM employees`).Scan(&synced))
					require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM syncd_import_jobs WHERE state = 'roles'`).Scan(&roles))
					if synced > 0 && roles > 0 {
						require.Equal(t, 2, synced, "one batch done")
						break // some batches done, the job stopped between two
					}
					require.True(t, time.Now().Before(deadline), "never got between role batches")
				}
			}
			b.emu.SetFaults(emulator.Faults{})
			b.emu.SetImportDelay(0)
			// The first process is gone; its job leases run out.
			b.exec(`UPDATE syncd_import_jobs SET locked_until = now() - interval '1 second'`)
			second := b.newBulk(b.reconciler(b.api), reconcile.BulkConfig{})
			b.runBulk(second)
			b.drainPerUser()
			b.requireOneAccountEach(ids)
		})
	}
}

// A row changed while in a job is not marked from it: it keeps the account
// the job made and the per-user path applies the change.
func TestBulkRowChangedDuringJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.insertMany("chg", 6)
	b.emu.SetImportDelay(100 * time.Millisecond)
	bulk := b.newBulk(b.rec, reconcile.BulkConfig{})
	require.NoError(t, bulk.Tick(b.ctx)) // claimed and uploaded
	b.exec(`UPDATE employees SET name = 'Renamed Person' WHERE id = $1`, ids[0])
	b.emu.SetImportDelay(0)
	b.runBulk(bulk)
	r := b.row(ids[0])
	require.Equal(t, "pending", r.Status)
	require.Equal(t, "auth0|syncd-emp-"+fmt.Sprint(ids[0]), r.UserID, "the account the job made is linked")
	b.drainPerUser()
	b.requireOneAccountEach(ids)
	require.Equal(t, "Renamed Person", b.user(b.row(ids[0]).UserID)["name"])
}

// The third job of a tenant waits: Auth0 answers 429 "active import users
// jobs", which the client returns at once and bulk creation waits out.
func TestBulkWaitsForJobSlots(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Two jobs of someone else run in the tenant.
	b.emu.SetImportDelay(time.Hour)
	for range 2 {
		_, err := b.api.ImportUsers(b.ctx, auth0.ImportRequest{ConnectionID: b.emu.ConnectionID(""), Users: []byte(`[]`)})
		require.NoError(t, err)
	}
	b.emu.SetImportDelay(0)
	ids := b.insertMany("slot", 6)
	bulk := b.newBulk(b.rec, reconcile.BulkConfig{})
	require.NoError(t, bulk.Tick(b.ctx))
	require.EqualValues(t, 1, callsWithStatus(b.emu, "POST /api/v2/jobs/users-imports", http.StatusTooManyRequests),
		"the 429 is not retried by the client")
	var queued int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM syncd_import_jobs WHERE state = 'queued' AND uploads = 0`).Scan(&queued))
	require.Equal(t, 2, queued, "both jobs wait for a slot")
	b.emu.StartImportJobs()
	b.runBulk(bulk)
	b.requireOneAccountEach(ids)
}

func callsWithStatus(e *emulator.Emulator, endpoint string, status int) int64 {
	for _, c := range e.Calls() {
		if c.Endpoint == endpoint && c.Status == status {
			return c.Count
		}
	}
	return 0
}

// A token without read:connections cannot run import jobs: the rows go per
// user and bulk creation stops starting jobs; nothing is stranded.
func TestBulkWithoutConnectionScope(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ *reconcile.Config, o *emulator.Options) {
		o.Scopes = slices.DeleteFunc(emulator.AllScopes(), func(s string) bool { return s == "read:connections" })
	})
	ids := b.insertMany("scope", 6)
	bulk := b.newBulk(b.rec, reconcile.BulkConfig{})
	require.NoError(t, bulk.Tick(b.ctx))
	require.Equal(t, 0, b.jobsLeft())
	require.False(t, bulk.Config().Enabled)
	b.drainPerUser()
	b.requireOneAccountEach(ids)
	require.EqualValues(t, 0, b.emu.CallCount("POST /api/v2/jobs/users-imports"))
}

// A row changed (its email too) after an upload whose 202 was lost: it goes
// per user while the lost job may still insert it under its old email. The
// per-user path creates the account under the import's user id, so the lost
// job's insert is refused: one account.
func TestBulkLostJobRacesPerUser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.insertMany("race", 6)
	b.emu.SetImportDelay(time.Hour) // the lost job waits
	b.emu.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/jobs/users-imports", LoseAnswer: true}}})
	bulk := b.newBulk(b.rec, reconcile.BulkConfig{})
	_ = bulk.Tick(b.ctx) // claimed; the upload's answer lost
	b.exec(`UPDATE employees SET email = 'moved@example.com' WHERE id = $1`, ids[0])
	b.emu.SetImportDelay(0)
	require.NoError(t, bulk.Tick(b.ctx)) // uploaded again, without the changed row
	require.Equal(t, "auth0|syncd-emp-"+fmt.Sprint(ids[0]), b.row(ids[0]).UserID, "linked to the id the lost job may create")
	b.drainPerUser() // created per user, new email, the import's id
	b.emu.StartImportJobs()
	b.runBulk(bulk)
	b.drainPerUser()
	b.requireOneAccountEach(ids)
	require.Equal(t, "moved@example.com", b.user(b.row(ids[0]).UserID)["email"])
	require.Zero(t, b.accounts("race0@example.com"), "the lost job's insert under the old email was refused")
}

// Bulk creation on every key type: the import's deterministic user ids
// encode any key (a text key with '/', ' ' and '#' too), a lost 202 is
// recovered by those ids, and every employee gets exactly one account that
// names its row.
func TestBulkAnyKey(t *testing.T) {
	t.Parallel()
	for _, key := range pgtest.Keys {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			b := setupKeyed(t, key)
			ids := b.insertMany("k", 8)
			if key == "text" {
				for i, k := range []string{"HR/7 #1", "Zoë 2"} {
					b.exec(`INSERT INTO employees (id, name, email) VALUES ($1, $2, $3)`, k, fmt.Sprintf("Odd %d", i), fmt.Sprintf("odd%d@example.com", i))
					ids = append(ids, k)
				}
			}
			b.emu.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/jobs/users-imports", LoseAnswer: true}}})
			first := b.newBulk(b.rec, reconcile.BulkConfig{MaxActive: 1})
			_ = first.Tick(b.ctx)
			b.emu.SetFaults(emulator.Faults{})
			b.exec(`UPDATE syncd_import_jobs SET locked_until = now() - interval '1 second'`)
			b.runBulk(b.newBulk(b.reconciler(b.api), reconcile.BulkConfig{}))
			b.drainPerUser()
			b.requireOneAccountEach(ids)
			for _, id := range ids {
				require.Equal(t, "auth0|"+reconcile.BulkUserID(id), b.row(id).UserID, "employee %s: the import's id", id)
			}
		})
	}
}
