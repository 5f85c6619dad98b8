package reconcile

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/internal/faultlog"
)

// Bulk creation (issue 13). A large backlog of employees that never had an
// account is created through Auth0 users-import jobs instead of one POST
// /users each, then given roles in batches (POST /roles/{id}/users), and each
// row is marked synced with the profile, metadata and role the per-user path
// gives. Everything else (updates, leavers, drift, a few new hires, and every
// row a job could not create) stays on the per-user path.
//
// The guarantees, and how they are kept:
//   - One account per employee: the file uses upsert=false and a
//     deterministic user_id (BulkUserID), so Auth0 refuses a second account
//     for the same employee (DUPLICATED_USER) whatever happens: a job
//     uploaded twice after a lost 202 or a crash, or a per-user create that
//     races a job (email unique per connection).
//   - A row is in at most one job, and no reconcile claims it meanwhile
//     (employees.auth0_import_job is its lease); the job row has the lease
//     of the process working on it, renewed at every step, so a killed
//     process's jobs are taken over.
//   - A row is marked synced only from the finished job's summary and
//     /errors, and only after its role batch succeeded; a row changed while
//     in the job (its xmin moved) goes back to the per-user path, with the
//     account linked if the job created it.
//   - A row the job did not create (a per-user error, a job that failed
//     whole, timed out or is lost, an upload refused) goes back to the
//     per-user path with its attempt counted, so that path looks for an
//     account before it creates one.

// BulkUserIDPrefix starts the user_id syncd gives an imported account:
// BulkUserID("42") = "syncd-emp-42", which Auth0 stores as auth0|syncd-emp-42;
// other keys are encoded (bulkKeyPart): "syncd-emp-k-E-00042",
// "syncd-emp-k-3f2a…" for a uuid, "syncd-emp-x-…" (hex) for any other text.
const BulkUserIDPrefix = "syncd-emp-"

// BulkUserID is the user_id an employee's account gets from an import job.
func BulkUserID(employeeID string) string { return BulkUserIDPrefix + bulkKeyPart(employeeID) }

// bulkAccountID is the Auth0 id of an imported account.
func bulkAccountID(employeeID string) string { return "auth0|" + BulkUserID(employeeID) }

// bulkAccountIDs maps bulkAccountID over keys.
func bulkAccountIDs(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = bulkAccountID(k)
	}
	return out
}

// BulkAuth0 is what bulk creation calls in Auth0.
type BulkAuth0 interface {
	ConnectionID(ctx context.Context, name string) (string, error)
	ImportUsers(ctx context.Context, req auth0.ImportRequest) (*auth0.ImportJob, error)
	GetImportJob(ctx context.Context, id string) (*auth0.ImportJob, error)
	ImportJobErrors(ctx context.Context, id string) ([]auth0.ImportUserError, error)
	AssignRoleUsers(ctx context.Context, roleID string, userIDs []string) error
}

// BulkConfig configures bulk creation.
type BulkConfig struct {
	// Enabled starts new import jobs (--bulk-create auto). Disabled, Bulk
	// only finishes the jobs it finds (a restart with --bulk-create off must
	// not strand rows in a job).
	Enabled bool
	// Threshold is the smallest backlog of never-created employees that is
	// imported; a smaller one stays on the per-user path. Default 200.
	Threshold int
	// FileBytes is the size a file is packed to; default 500,000 (Auth0
	// refuses more than 512,000).
	FileBytes int
	// MaxActive is how many of syncd's jobs run at once in the tenant;
	// default 2 (Auth0's limit per tenant).
	MaxActive int
	// MaxClaim bounds the rows put in jobs at one time; default 50,000.
	MaxClaim int
	// RoleBatch is how many users one POST /roles/{id}/users names; default 1,000.
	RoleBatch int
	// EmailVerified is the email_verified of imported accounts; default
	// false. An import sends no verification email either way.
	EmailVerified bool
	// PollInterval is the shortest time between two reads of a running job,
	// and how often the backlog is looked at; default 2s.
	PollInterval time.Duration
	// JobTimeout is how long a job may run before its rows go back to the
	// per-user path; default 2h15m (Auth0 fails a job after 2 hours).
	JobTimeout time.Duration
	// Lease is how long a job stays this process's without renewal; default
	// 1m. A killed process's jobs are taken over after that.
	Lease time.Duration
	// MaxUploads bounds the uploads of one job (a lost 202 is uploaded
	// again); default 3. Then its rows go to the per-user path.
	MaxUploads int
	// Logger; nil = the reconciler's.
	Logger *slog.Logger
	// OnDone hears each job's end: rows marked synced, rows sent to the
	// per-user path. nil = none.
	OnDone func(imported, perUser int)
}

func (c BulkConfig) withDefaults(r *Reconciler) BulkConfig {
	c.Threshold = cmp.Or(c.Threshold, 200)
	c.FileBytes = cmp.Or(c.FileBytes, auth0.ImportFileTarget)
	c.MaxActive = cmp.Or(c.MaxActive, 2)
	c.MaxClaim = cmp.Or(c.MaxClaim, 50_000)
	c.RoleBatch = cmp.Or(c.RoleBatch, 1000)
	c.PollInterval = cmp.Or(c.PollInterval, 2*time.Second)
	c.JobTimeout = cmp.Or(c.JobTimeout, 2*time.Hour+15*time.Minute)
	c.Lease = cmp.Or(c.Lease, time.Minute)
	c.MaxUploads = cmp.Or(c.MaxUploads, 3)
	if c.Logger == nil {
		c.Logger = r.cfg.Logger
	}
	return c
}

// Validate checks c after defaults.
func (c BulkConfig) validate() error {
	var errs []error
	bad := func(field string, v any, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Value: fmt.Sprint(v), Err: fmt.Errorf(format, args...)})
	}
	if c.Threshold < 1 {
		bad("BulkThreshold", c.Threshold, "must be at least 1, got %d", c.Threshold)
	}
	if c.FileBytes < 10_000 || c.FileBytes > auth0.MaxImportFileBytes-2_000 {
		bad("BulkFileBytes", c.FileBytes, "must be 10000..%d, got %d", auth0.MaxImportFileBytes-2_000, c.FileBytes)
	}
	if c.MaxActive < 1 || c.MaxActive > 2 {
		bad("BulkMaxActive", c.MaxActive, "must be 1 or 2 (Auth0 runs 2 import jobs per tenant), got %d", c.MaxActive)
	}
	if c.Lease < time.Second {
		bad("BulkLease", c.Lease, "must be at least 1s, got %s", c.Lease)
	}
	return errors.Join(errs...)
}

// Bulk runs bulk creation; Run is one of the daemon's runnables.
type Bulk struct {
	r   *Reconciler
	api BulkAuth0
	cfg BulkConfig
	log *slog.Logger
	// faults says a repeating failure of the loop once (faultlog).
	faults *faultlog.Tracker

	connID string
	// slotsFull: Auth0 answered "active import users jobs" this tick; no
	// more uploads until the next.
	slotsFull bool
	mu        sync.Mutex
	nextPoll  map[int64]time.Time
}

// NewBulk returns bulk creation for r's employees, calling api.
func NewBulk(r *Reconciler, api BulkAuth0, cfg BulkConfig) (*Bulk, error) {
	cfg = cfg.withDefaults(r)
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("bulk config: %w", err)
	}
	return &Bulk{r: r, api: api, cfg: cfg, log: cfg.Logger, nextPoll: map[int64]time.Time{},
		faults: faultlog.New(cfg.Logger, "bulk creation")}, nil
}

// Config returns the configuration in effect.
func (b *Bulk) Config() BulkConfig { return b.cfg }

// Run claims backlogs into jobs and drives every job to its end, until ctx
// is done. A failing step is tried again on the next tick (the state is in
// the database, so nothing is lost); a repeating fault is logged when it
// starts, changes cause and clears, not once per tick.
func (b *Bulk) Run(ctx context.Context) error {
	t := time.NewTicker(b.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := b.Tick(ctx); err != nil && ctx.Err() == nil {
			b.faults.Fail(ctx, faultlog.Cause(err), err)
		} else if err == nil {
			b.faults.OK(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick does one round: put a large enough backlog in jobs, then move every
// job this process may work on one step on.
func (b *Bulk) Tick(ctx context.Context) error {
	var errs []error
	if b.cfg.Enabled {
		if _, err := b.claimBacklog(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := b.driveJobs(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// neverCreated is the backlog bulk creation takes: rows that never had an
// account nor an attempt, active, and not leased by a reconcile.
const neverCreated = `auth0_user_id IS NULL AND auth0_account_created_at IS NULL AND auth0_sync_attempts = 0
	AND auth0_import_job IS NULL AND active AND auth0_sync_status = 'pending'
	AND (auth0_locked_until IS NULL OR auth0_locked_until < now())`

// importUser is one user object of an import file.
func (b *Bulk) importUser(e *Employee, d Desired) map[string]any {
	cfg := b.r.cfg
	// No app_metadata.created_at, which the per-user path sets: the import
	// schema reserves that key (auth0-bulk.md §1.3). The account's own
	// created_at says when it was made; syncd never reads either.
	app := cloneMap(d.App)
	user := cloneMap(d.User)
	user["timezone"] = cfg.Timezone
	u := map[string]any{
		"user_id":        BulkUserID(e.ID),
		"email":          d.Email,
		"email_verified": b.cfg.EmailVerified,
		"name":           d.Name,
		"app_metadata":   app,
		"user_metadata":  user,
	}
	if cfg.Username == UsernameLocalPart {
		u["username"] = usernameFor(d.Email, cfg.UsernameMaxLength)
	}
	return u
}

// createdAtSlack is room left per user between packing and upload.
const createdAtSlack = 16

// claimBacklog puts the never-created backlog in jobs when it is at least
// Threshold rows: one transaction selects the rows (FOR UPDATE SKIP LOCKED),
// packs them into files of at most FileBytes, inserts one job row per file
// and marks the rows syncing in their job, counting the attempt.
func (b *Bulk) claimBacklog(ctx context.Context) (int, error) {
	var n int
	err := b.r.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM employees WHERE `+neverCreated+` LIMIT $1) s`,
		b.cfg.Threshold).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count bulk backlog: %w", err)
	}
	if n < b.cfg.Threshold {
		return 0, nil
	}
	tx, err := b.r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("claim bulk backlog: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, `SELECT `+employeeColumns+` FROM employees WHERE `+neverCreated+`
		ORDER BY employees.id LIMIT $1 FOR UPDATE SKIP LOCKED`, b.cfg.MaxClaim)
	if err != nil {
		return 0, fmt.Errorf("claim bulk backlog: %w", err)
	}
	type member struct {
		id   string
		size int
	}
	var members []member
	total := 0
	for rows.Next() {
		e, err := scanEmployee(rows)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("claim bulk backlog: %w", err)
		}
		d, err := b.r.desiredFor(e)
		if err != nil || d.Blocked || d.Delete {
			continue // the per-user path says what is wrong with it
		}
		raw, err := json.Marshal(b.importUser(e, d))
		if err != nil {
			continue
		}
		size := len(raw) + 1 + createdAtSlack
		if size > b.cfg.FileBytes-2 {
			continue // larger than a file: the per-user path reports it
		}
		members = append(members, member{id: e.ID, size: size})
		total += size
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("claim bulk backlog: %w", err)
	}
	if len(members) < b.cfg.Threshold {
		return 0, nil
	}
	// As many files as the bytes need, rounded up to a multiple of MaxActive
	// so that the jobs running together are of one size.
	budget := b.cfg.FileBytes - 2
	files := (total + budget - 1) / budget
	files = (files + b.cfg.MaxActive - 1) / b.cfg.MaxActive * b.cfg.MaxActive
	files = min(files, len(members))
	target := (total + files - 1) / files
	var groups [][]string
	var cur []string
	curSize := 0
	for _, m := range members {
		if len(cur) > 0 && (curSize+m.size > budget || (curSize >= target && len(groups) < files-1)) {
			groups = append(groups, cur)
			cur, curSize = nil, 0
		}
		cur = append(cur, m.id)
		curSize += m.size
	}
	groups = append(groups, cur)
	var xmin int64
	if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint % 4294967296`).Scan(&xmin); err != nil {
		return 0, fmt.Errorf("claim bulk backlog: %w", err)
	}
	var ids []string
	var jobs []int64
	for _, g := range groups {
		var job int64
		if err := tx.QueryRow(ctx, `INSERT INTO syncd_import_jobs (claim_xmin, members, locked_by, locked_until)
			VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING id`,
			xmin, len(g), b.r.owner, b.cfg.Lease.Seconds()).Scan(&job); err != nil {
			return 0, fmt.Errorf("claim bulk backlog: %w", err)
		}
		for _, id := range g {
			ids = append(ids, id)
			jobs = append(jobs, job)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE employees e SET auth0_sync_status = 'syncing',
			auth0_sync_attempts = e.auth0_sync_attempts + 1, auth0_sync_error = NULL, auth0_import_job = m.job
		FROM unnest(syncd_keys($1), $2::bigint[]) AS m(id, job) WHERE e.id = m.id`, ids, jobs); err != nil {
		return 0, fmt.Errorf("claim bulk backlog: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("claim bulk backlog: %w", err)
	}
	b.log.InfoContext(ctx, "bulk creation: backlog put in import jobs", "employees", len(ids), "jobs", len(groups))
	return len(ids), nil
}

// jobRow is a row of syncd_import_jobs.
type jobRow struct {
	id         int64
	state      string
	auth0ID    *string
	uploads    int
	claimXmin  int64
	members    int
	uploadedAt *time.Time
}

// driveJobs takes (or renews) the lease of every job it may work on and
// moves each one step on.
func (b *Bulk) driveJobs(ctx context.Context) error {
	rows, err := b.r.pool.Query(ctx, `UPDATE syncd_import_jobs SET locked_by = $1, locked_until = now() + make_interval(secs => $2)
		WHERE locked_by = $1 OR locked_until IS NULL OR locked_until < now()
		RETURNING id, state, auth0_job_id, uploads, claim_xmin, members, uploaded_at`, b.r.owner, b.cfg.Lease.Seconds())
	if err != nil {
		return fmt.Errorf("take import jobs: %w", err)
	}
	jobs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (jobRow, error) {
		var j jobRow
		err := row.Scan(&j.id, &j.state, &j.auth0ID, &j.uploads, &j.claimXmin, &j.members, &j.uploadedAt)
		return j, err
	})
	if err != nil {
		return fmt.Errorf("take import jobs: %w", err)
	}
	if len(jobs) == 0 {
		return nil
	}
	if b.connID == "" {
		id, err := b.api.ConnectionID(ctx, b.r.cfg.Connection)
		if errors.Is(err, auth0.ErrForbidden) || errors.Is(err, auth0.ErrNotFound) {
			// The token lacks read:connections, or there is no such
			// connection: bulk creation cannot run. Its rows go per user
			// (which reports a missing connection row by row) and it stops
			// starting jobs.
			b.log.ErrorContext(ctx, "bulk creation is off: the connection's id cannot be read (grant read:connections); the rows go the per-user way",
				"connection", b.r.cfg.Connection, "error", err)
			b.cfg.Enabled = false
			var errs []error
			for _, j := range jobs {
				n, rerr := b.releaseAll(ctx, j, "bulk creation cannot read the connection's id: "+err.Error())
				b.done(0, n)
				errs = append(errs, rerr)
			}
			return errors.Join(errs...)
		}
		if err != nil {
			return fmt.Errorf("bulk creation needs the connection's id: %w", err)
		}
		b.connID = id
	}
	b.slotsFull = false
	var errs []error
	// Oldest first: running and finished jobs before uploads, so that a slot
	// freed this tick is used this tick.
	for _, st := range []string{"roles", "running", "uploading", "queued"} {
		for _, j := range jobs {
			if j.state != st || ctx.Err() != nil {
				continue
			}
			if err := b.step(ctx, j); err != nil {
				errs = append(errs, fmt.Errorf("import job %d: %w", j.id, err))
			}
		}
	}
	return errors.Join(errs...)
}

// step moves one job on, within its lease.
func (b *Bulk) step(ctx context.Context, j jobRow) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Lease*3/4)
	defer cancel()
	switch j.state {
	case "queued", "uploading":
		return b.upload(ctx, j)
	case "running":
		return b.poll(ctx, j)
	case "roles":
		return b.assignRoles(ctx, j)
	}
	return nil
}

// activeJobs counts the jobs that occupy one of Auth0's slots (uploading:
// its answer may have been lost, so it may run), but except.
func (b *Bulk) activeJobs(ctx context.Context, except int64) (int, error) {
	var n int
	err := b.r.pool.QueryRow(ctx, `SELECT count(*) FROM syncd_import_jobs WHERE state IN ('uploading', 'running') AND id <> $1`, except).Scan(&n)
	return n, err
}

// loadMembers reads the rows still in job j.
func (b *Bulk) loadMembers(ctx context.Context, job int64) ([]*Employee, error) {
	rows, err := b.r.pool.Query(ctx, `SELECT `+employeeColumns+` FROM employees WHERE auth0_import_job = $1 ORDER BY employees.id`, job)
	if err != nil {
		return nil, fmt.Errorf("read import job members: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Employee, error) { return scanEmployee(row) })
}

// upload sends the job's file: the rows still in it, as they are now. A row
// changed since the claim goes back to the per-user path first.
func (b *Bulk) upload(ctx context.Context, j jobRow) error {
	if j.uploads >= b.cfg.MaxUploads {
		n, err := b.releaseAll(ctx, j, fmt.Sprintf("the import job was uploaded %d times without an answer", j.uploads))
		b.done(0, n)
		return err
	}
	if b.slotsFull {
		return nil
	}
	active, err := b.activeJobs(ctx, j.id)
	if err != nil {
		return fmt.Errorf("count active import jobs: %w", err)
	}
	if active >= b.cfg.MaxActive {
		return nil // wait for a slot
	}
	members, err := b.loadMembers(ctx, j.id)
	if err != nil {
		return err
	}
	var users []map[string]any
	var changed []string
	for _, e := range members {
		d, derr := b.r.desiredFor(e)
		if int64(e.version) != j.claimXmin || derr != nil || d.Blocked || d.Delete {
			changed = append(changed, e.ID)
			continue
		}
		users = append(users, b.importUser(e, d))
	}
	if len(changed) > 0 {
		if _, err := b.release(ctx, j.id, changed, j.uploads > 0, "row changed before its import job was uploaded"); err != nil {
			return err
		}
	}
	if len(users) == 0 {
		_, err := b.r.pool.Exec(ctx, `DELETE FROM syncd_import_jobs WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM employees WHERE auth0_import_job = $1)`, j.id)
		return err
	}
	file, err := json.Marshal(users)
	if err != nil {
		return fmt.Errorf("encode import file: %w", err)
	}
	if len(file) > auth0.MaxImportFileBytes {
		n, err := b.releaseAll(ctx, j, fmt.Sprintf("import file of %d bytes is over Auth0's limit", len(file)))
		b.done(0, n)
		return err
	}
	// The upload is counted (committed) before it is sent: a job found in
	// 'uploading' without an Auth0 id may exist in Auth0.
	if _, err := b.r.pool.Exec(ctx, `UPDATE syncd_import_jobs SET state = 'uploading', uploads = uploads + 1,
			members = $2, uploaded_at = now(), auth0_job_id = NULL WHERE id = $1`, j.id, len(users)); err != nil {
		return fmt.Errorf("record import upload: %w", err)
	}
	job, err := b.api.ImportUsers(ctx, auth0.ImportRequest{ConnectionID: b.connID, Users: file,
		ExternalID: fmt.Sprintf("syncd-%d", j.id)})
	var ae *auth0.APIError
	switch {
	case err == nil:
		if _, err := b.r.pool.Exec(ctx, `UPDATE syncd_import_jobs SET state = 'running', auth0_job_id = $2, last_error = NULL WHERE id = $1`,
			j.id, job.ID); err != nil {
			return fmt.Errorf("record import job id %s: %w", job.ID, err)
		}
		b.log.InfoContext(ctx, "import job uploaded", "import_job", j.id, "auth0_job_id", job.ID, "employees", len(users), "bytes", len(file), "upload", j.uploads+1)
		b.schedule(j.id, b.cfg.PollInterval)
		return nil
	case errors.Is(err, auth0.ErrTooManyImportJobs):
		// Nothing was created: undo the count. Two jobs run (maybe one whose
		// answer was lost, or someone else's); wait for a slot.
		b.slotsFull = true
		_, uerr := b.r.pool.Exec(ctx, `UPDATE syncd_import_jobs SET uploads = uploads - 1,
			state = CASE WHEN uploads - 1 = 0 THEN 'queued' ELSE 'uploading' END, last_error = $2 WHERE id = $1`, j.id, err.Error())
		return uerr
	case errors.As(err, &ae) && !errors.Is(err, auth0.ErrOutcomeUnknown) && ae.StatusCode >= 400 && ae.StatusCode < 500 && ae.StatusCode != 429:
		// Refused whole (400, 413, 403): no job exists; every row goes
		// the per-user way.
		n, rerr := b.releaseAll(ctx, j, "Auth0 refused the import job: "+err.Error())
		b.done(0, n)
		return rerr
	default:
		// No answer, or one that may hide a job: upload again next tick;
		// upsert=false and the fixed user ids make that harmless.
		_, _ = b.r.pool.Exec(context.WithoutCancel(ctx), `UPDATE syncd_import_jobs SET last_error = $2 WHERE id = $1`, j.id, err.Error())
		return fmt.Errorf("upload: %w", err)
	}
}

func (b *Bulk) schedule(job int64, after time.Duration) {
	b.mu.Lock()
	b.nextPoll[job] = time.Now().Add(after)
	b.mu.Unlock()
}

func (b *Bulk) due(job int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !time.Now().Before(b.nextPoll[job])
}

// poll reads a running job; a finished one has its result recorded.
func (b *Bulk) poll(ctx context.Context, j jobRow) error {
	if j.auth0ID == nil {
		return nil
	}
	if !b.due(j.id) {
		return nil
	}
	job, err := b.api.GetImportJob(ctx, *j.auth0ID)
	if errors.Is(err, auth0.ErrNotFound) {
		n, rerr := b.releaseAll(ctx, j, fmt.Sprintf("Auth0 no longer knows import job %s", *j.auth0ID))
		b.done(0, n)
		return rerr
	}
	if err != nil {
		return fmt.Errorf("read import job %s: %w", *j.auth0ID, err)
	}
	switch job.Status {
	case auth0.JobCompleted:
		return b.finish(ctx, j, job)
	case auth0.JobFailed:
		b.log.WarnContext(ctx, "import job failed whole; its rows go the per-user way", "import_job", j.id, "auth0_job_id", job.ID)
		n, err := b.releaseAll(ctx, j, fmt.Sprintf("import job %s failed", job.ID))
		b.done(0, n)
		return err
	}
	if j.uploadedAt != nil && time.Since(*j.uploadedAt) > b.cfg.JobTimeout {
		n, err := b.releaseAll(ctx, j, fmt.Sprintf("import job %s did not finish within %s", job.ID, b.cfg.JobTimeout))
		b.done(0, n)
		return err
	}
	// Poll again in about a quarter of what Auth0 says is left.
	wait := max(b.cfg.PollInterval, min(time.Duration(job.TimeLeftSeconds)*time.Second/4, 15*time.Second))
	b.schedule(j.id, wait)
	return nil
}

// finish records a completed job: the rows /errors names go the per-user
// way; the others, if the summary accounts for them, get their roles.
func (b *Bulk) finish(ctx context.Context, j jobRow, job *auth0.ImportJob) error {
	errs, err := b.api.ImportJobErrors(ctx, job.ID)
	if err != nil {
		return fmt.Errorf("read import job errors: %w", err)
	}
	s := job.Summary
	if s == nil || s.Total != j.members || s.Inserted+s.Updated+s.Failed != s.Total || s.Failed != len(errs) {
		n, rerr := b.releaseAll(ctx, j, fmt.Sprintf("import job %s ended with a summary that does not account for its %d users", job.ID, j.members))
		b.done(0, n)
		return rerr
	}
	var failedIDs []string
	var reasons []string
	var byEmail map[string]string
	for _, ue := range errs {
		id, ok := employeeOfImportUser(ue.User)
		if !ok {
			if byEmail == nil {
				members, err := b.loadMembers(ctx, j.id)
				if err != nil {
					return err
				}
				byEmail = map[string]string{}
				for _, e := range members {
					if d, err := b.r.desiredFor(e); err == nil {
						byEmail[d.Email] = e.ID
					}
				}
			}
			email, _ := ue.User["email"].(string)
			if id, ok = byEmail[normalizeEmail(email)]; !ok {
				continue
			}
		}
		codes := ue.Codes()
		if codes == "DUPLICATED_USER" && j.uploads > 1 {
			// An earlier upload whose answer was lost may have created it:
			// the role batch confirms that auth0|syncd-emp-N exists (a 404
			// sends the batch the per-user way).
			continue
		}
		failedIDs = append(failedIDs, id)
		reasons = append(reasons, "import job "+job.ID+": "+ue.Message())
	}
	tx, err := b.r.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("record import job result: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if len(failedIDs) > 0 {
		if _, err := releaseTx(ctx, tx, j.id, failedIDs, reasons, false); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE syncd_import_jobs SET state = 'roles' WHERE id = $1`, j.id); err != nil {
		return fmt.Errorf("record import job result: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("record import job result: %w", err)
	}
	b.log.InfoContext(ctx, "import job completed", "import_job", j.id, "auth0_job_id", job.ID,
		"inserted", s.Inserted, "failed", s.Failed, "to_per_user", len(failedIDs))
	if len(failedIDs) > 0 {
		b.done(0, len(failedIDs))
	}
	j.state = "roles"
	return b.assignRoles(ctx, j)
}

// employeeOfImportUser reads the employee key from a user object's user_id.
func employeeOfImportUser(u map[string]any) (string, bool) {
	s, _ := u["user_id"].(string)
	s = strings.TrimPrefix(s, "auth0|")
	part, ok := strings.CutPrefix(s, BulkUserIDPrefix)
	if !ok {
		return "", false
	}
	return bulkKeyFromPart(part)
}

// assignRoles gives the imported rows their role, one batch per call, and
// marks each batch's rows synced once its call succeeded. A 404 (a user of
// the batch does not exist) sends the batch the per-user way.
func (b *Bulk) assignRoles(ctx context.Context, j jobRow) error {
	members, err := b.loadMembers(ctx, j.id)
	if err != nil {
		return err
	}
	type batch struct {
		role string
		emps []*Employee
	}
	byRole := map[string][]*Employee{}
	var order []string
	for _, e := range members {
		d, err := b.r.desiredFor(e)
		if err != nil || d.Role == "" {
			// Invalid now (the row or the mapping changed), or no role to
			// batch: the per-user path reports or finishes it.
			why := "no role to assign in a batch"
			if err != nil {
				why = err.Error()
			}
			if _, err := b.release(ctx, j.id, []string{e.ID}, true, why); err != nil {
				return err
			}
			continue
		}
		role := d.Role
		if _, ok := byRole[role]; !ok {
			order = append(order, role)
		}
		byRole[role] = append(byRole[role], e)
	}
	var batches []batch
	for _, role := range order {
		emps := byRole[role]
		for len(emps) > 0 {
			n := min(len(emps), b.cfg.RoleBatch)
			batches = append(batches, batch{role: role, emps: emps[:n]})
			emps = emps[n:]
		}
	}
	imported, perUser := 0, 0
	for _, bt := range batches {
		roleID, err := b.r.roles.id(ctx, b.r.api, bt.role)
		if err != nil {
			return err
		}
		ids := make([]string, len(bt.emps))
		for i, e := range bt.emps {
			ids[i] = bulkAccountID(e.ID)
		}
		err = b.api.AssignRoleUsers(ctx, roleID, ids)
		if errors.Is(err, auth0.ErrNotFound) {
			empIDs := make([]string, len(bt.emps))
			for i, e := range bt.emps {
				empIDs[i] = e.ID
			}
			n, rerr := b.release(ctx, j.id, empIDs, true, "role batch: "+err.Error())
			if rerr != nil {
				return rerr
			}
			perUser += n
			continue
		}
		if err != nil {
			return fmt.Errorf("assign role %s: %w", bt.role, err)
		}
		n, err := b.markSynced(ctx, j, bt.emps, bt.role, roleID)
		if err != nil {
			return err
		}
		imported += n
	}
	if _, err := b.r.pool.Exec(ctx, `DELETE FROM syncd_import_jobs WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM employees WHERE auth0_import_job = $1)`, j.id); err != nil {
		return fmt.Errorf("delete finished import job: %w", err)
	}
	b.done(imported, perUser)
	return nil
}

func (b *Bulk) done(imported, perUser int) {
	if b.cfg.OnDone != nil && imported+perUser > 0 {
		b.cfg.OnDone(imported, perUser)
	}
}

// markSynced records a batch of imported rows: synced with the state the
// file carried, in one transaction with their audit rows. A row that
// changed meanwhile keeps only the account link and goes the per-user way;
// a row deleted meanwhile gets a delete outbox row naming its account.
func (b *Bulk) markSynced(ctx context.Context, j jobRow, emps []*Employee, role, roleID string) (int, error) {
	now := b.r.cfg.Now()
	var ids []string
	var states []string
	var hashes []*string
	var users []string
	var created, roles []string
	for _, e := range emps {
		d, err := b.r.desiredFor(e)
		if err != nil {
			continue // changed since: its xmin moved and it goes back below
		}
		raw, err := json.Marshal(d.State)
		if err != nil {
			return 0, fmt.Errorf("encode synced state: %w", err)
		}
		uid := bulkAccountID(e.ID)
		ids = append(ids, e.ID)
		states = append(states, string(raw))
		hashes = append(hashes, e.viewHash())
		users = append(users, uid)
		c, _ := json.Marshal(map[string]any{"user_id": uid, "via": "users-import", "import_job": j.id, "auth0_job_id": deref(j.auth0ID),
			"email": d.Email, "name": d.Name, "app_metadata": managedOnly(d.App, auditAppKeys(d.Keys))})
		created = append(created, string(c))
		r, _ := json.Marshal(map[string]any{"user_id": uid, "role": role, "role_id": roleID, "via": "role-batch"})
		roles = append(roles, string(r))
	}
	tx, err := b.r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("mark imported rows: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, `UPDATE employees e SET auth0_sync_status = 'synced', auth0_sync_error = NULL, auth0_sync_attempts = 0,
			auth0_next_attempt_at = NULL, auth0_synced_at = $3, auth0_user_id = m.uid,
			auth0_account_created_at = COALESCE(e.auth0_account_created_at, $3), auth0_synced_state = m.state::jsonb,
			auth0_import_job = NULL, auth0_locked_until = NULL, auth0_locked_by = NULL, auth0_desired_hash = m.hash
		FROM unnest(syncd_keys($1), $2::text[], $4::text[], $7::text[]) AS m(id, state, uid, hash)
		WHERE e.id = m.id AND e.auth0_import_job = $5 AND e.xmin::text::bigint = $6
		RETURNING e.id::text`,
		ids, states, now, users, j.id, j.claimXmin, hashes)
	var marked []string
	if err == nil {
		marked, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return 0, fmt.Errorf("mark imported rows: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO auth0_sync_logs (employee_id, auth0_user_id, action, status, response_data, reconcile_id)
		SELECT m.id, m.uid, a.action, 'success', a.resp::jsonb, $5
		  FROM unnest(syncd_keys($1), $2::text[], $3::text[], $4::text[]) AS m(id, uid, c, r)
		  CROSS JOIN LATERAL (VALUES ('create', m.c), ('assign_role', m.r)) AS a(action, resp)
		 WHERE m.id = ANY(syncd_keys($6))`,
		ids, users, created, roles, "import-"+strconv.FormatInt(j.id, 10), marked); err != nil {
		return 0, fmt.Errorf("write audit log: %w", err)
	}
	// The rest of the batch changed or went away while in the job. A row
	// deleted meanwhile leaves an account no row claims: a delete outbox row
	// names it, so that it is deprovisioned like any leaver's.
	left := make([]string, len(emps))
	for i, e := range emps {
		left[i] = e.ID
	}
	if _, err := tx.Exec(ctx, `INSERT INTO auth0_outbox (employee_id, op, auth0_user_id)
		SELECT m.id, 'delete', m.uid
		  FROM unnest(syncd_keys($1), $2::text[]) AS m(id, uid)
		 WHERE NOT EXISTS (SELECT 1 FROM employees e WHERE e.id = m.id)`,
		left, bulkAccountIDs(left)); err != nil {
		return 0, fmt.Errorf("queue deprovision of deleted rows: %w", err)
	}
	var stale []string
	rows, err = tx.Query(ctx, `SELECT id::text FROM employees WHERE id = ANY(syncd_keys($1)) AND auth0_import_job = $2`, left, j.id)
	if err == nil {
		stale, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return 0, fmt.Errorf("mark imported rows: %w", err)
	}
	if len(stale) > 0 {
		reasons := make([]string, len(stale))
		for i := range reasons {
			reasons[i] = "row changed while in import job; the per-user path applies the change"
		}
		if _, err := releaseTx(ctx, tx, j.id, stale, reasons, true); err != nil {
			return 0, err
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify('auth0_outbox', '')`); err != nil {
		return 0, fmt.Errorf("notify: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("mark imported rows: %w", err)
	}
	return len(marked), nil
}

// release sends rows of job back to the per-user path; link: the job may
// have created (or may still create) their accounts (see releaseTx).
func (b *Bulk) release(ctx context.Context, job int64, ids []string, link bool, reason string) (int, error) {
	tx, err := b.r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("release import job rows: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	reasons := make([]string, len(ids))
	for i := range reasons {
		reasons[i] = reason
	}
	n, err := releaseTx(ctx, tx, job, ids, reasons, link)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("release import job rows: %w", err)
	}
	return n, nil
}

// releaseAll sends every row of j the per-user way and forgets the job.
func (b *Bulk) releaseAll(ctx context.Context, j jobRow, reason string) (int, error) {
	tx, err := b.r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("release import job: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, `SELECT id::text FROM employees WHERE auth0_import_job = $1`, j.id)
	var ids []string
	if err == nil {
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return 0, fmt.Errorf("release import job: %w", err)
	}
	reasons := make([]string, len(ids))
	for i := range reasons {
		reasons[i] = reason
	}
	// An upload may have reached Auth0: its job may have created some of
	// these accounts, or (its answer lost) may still create them.
	n, err := releaseTx(ctx, tx, j.id, ids, reasons, j.uploads > 0)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM syncd_import_jobs WHERE id = $1`, j.id); err != nil {
		return 0, fmt.Errorf("release import job: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("release import job: %w", err)
	}
	b.log.WarnContext(ctx, "import job's rows go the per-user way", "import_job", j.id, "employees", n, "reason", reason)
	return n, nil
}

// releaseTx takes rows out of job: status pending (their attempt stays
// counted, so the per-user path looks for an account before creating one),
// an audit row with the reason, and an outbox row each. link, if set,
// links the account a job created or may still create (bulkAccountID)
// without marking anything synced: the per-user path reads that id first,
// and if it does not exist yet, creates the account with that same id, so
// that Auth0 refuses whichever of the two creates comes second — even a job
// whose 202 was lost that inserts the row's old email later.
func releaseTx(ctx context.Context, tx pgx.Tx, job int64, ids []string, reasons []string, link bool) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	rows, err := tx.Query(ctx, `UPDATE employees e SET auth0_import_job = NULL,
			auth0_sync_status = CASE WHEN e.auth0_sync_status = 'syncing' THEN 'pending' ELSE e.auth0_sync_status END,
			auth0_user_id = CASE WHEN $3 THEN m.uid ELSE e.auth0_user_id END,
			auth0_synced_state = NULL, auth0_next_attempt_at = NULL
		  FROM unnest(syncd_keys($1), $4::text[]) AS m(id, uid)
		WHERE e.id = m.id AND e.auth0_import_job = $2
		RETURNING e.id::text`, ids, job, link, bulkAccountIDs(ids))
	var done []string
	if err == nil {
		done, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return 0, fmt.Errorf("release import job rows: %w", err)
	}
	if len(done) == 0 {
		return 0, nil
	}
	if _, err := tx.Exec(ctx, `WITH r AS (SELECT * FROM unnest(syncd_keys($1), $2::text[]) AS t(id, reason) WHERE t.id = ANY(syncd_keys($3))),
		logs AS (INSERT INTO auth0_sync_logs (employee_id, action, status, error, reconcile_id)
			SELECT id, 'import', 'per_user', reason, $4 FROM r)
		INSERT INTO auth0_outbox (employee_id, op) SELECT id, 'resync' FROM r ORDER BY id`,
		ids, reasons, done, "import-"+strconv.FormatInt(job, 10)); err != nil {
		return 0, fmt.Errorf("release import job rows: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify('auth0_outbox', '')`); err != nil {
		return 0, fmt.Errorf("notify: %w", err)
	}
	return len(done), nil
}
