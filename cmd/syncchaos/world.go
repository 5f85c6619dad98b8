package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/auth0/emulator"
	syncdsql "github.com/syncd/syncd/sql"
	"github.com/syncd/syncd/testcontainers"
)

// The credentials of every emulator; random per run so that a leak cannot
// be confused with a constant that appears elsewhere.
var (
	clientID     = "syncd-chaos"
	clientSecret = "chaos-secret-" + randomHex(12)
	wrongSecret  = "chaos-wrong-secret-" + randomHex(12)
)

// roleMap is the --roles every syncd of the suite runs with.
var roleMap = map[string]string{"associate": "production_associate", "lead": "production_lead"}

const rolesFlag = "associate=production_associate,lead=production_lead"

// world is one scenario's database, emulator and syncd processes.
type world struct {
	s      *suite
	name   string
	r      *result
	cloner *testcontainers.Cloner
	dbName string
	dbURL  string // what syncd gets: with the (unchecked) password
	pool   *pgxpool.Pool
	emu    *emu
	slot   string
	procs  []*proc
}

// newWorld makes a fresh migrated database on cloner's server and starts an
// emulator with opts (no emulator if opts is nil).
func (s *suite) newWorld(ctx context.Context, name string, r *result, cloner *testcontainers.Cloner, opts *emulator.Options) (*world, error) {
	return s.newKeyedWorld(ctx, name, syncdsql.KeyBigint, r, cloner, opts)
}

// newKeyedWorld is newWorld with an employees key of kind key (see testcontainers.Cloner.CreateKeyed).
func (s *suite) newKeyedWorld(ctx context.Context, name, key string, r *result, cloner *testcontainers.Cloner, opts *emulator.Options) (*world, error) {
	dbName, plain, err := cloner.CreateKeyed(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	w := &world{s: s, name: name, r: r, cloner: cloner, dbName: dbName,
		slot: "chaos_" + strings.ReplaceAll(name, "-", "_") + "_" + randomHex(3)}
	u, err := url.Parse(plain)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	u.User = url.UserPassword(u.User.Username(), s.dbPassword)
	w.dbURL = u.String()
	pcfg, err := pgxpool.ParseConfig(plain)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	pcfg.MaxConns = 4
	if w.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if opts != nil {
		o := *opts
		o.ClientID, o.ClientSecret = clientID, clientSecret
		if w.emu, err = startEmu("127.0.0.1:0", o, s.secrets); err != nil {
			w.pool.Close()
			return nil, err
		}
	}
	return w, nil
}

// close kills what still runs, keeps the audit log for the secret search,
// and drops the database.
func (w *world) close() {
	for _, p := range w.procs {
		p.kill()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w.saveAudit(ctx)
	if w.emu != nil {
		_ = w.emu.Close()
	}
	w.pool.Close()
	if err := w.cloner.Drop(ctx, w.dbName); err != nil {
		w.logf("drop database: %v", err)
	}
}

// saveAudit writes auth0_sync_logs to the work dir: it must hold no secret.
func (w *world) saveAudit(ctx context.Context) {
	rows, err := w.pool.Query(ctx, `SELECT coalesce(action, '') || ' ' || coalesce(status, '') || ' ' ||
		coalesce(response_data::text, '') || ' ' || coalesce(error, '') FROM auth0_sync_logs ORDER BY id`)
	if err != nil {
		w.logf("read auth0_sync_logs: %v", err)
		return
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		w.logf("read auth0_sync_logs: %v", err)
		return
	}
	_ = os.WriteFile(filepath.Join(w.s.workDir, w.name+".audit"), []byte(strings.Join(lines, "\n")), 0o644)
}

func (w *world) logf(format string, args ...any) { w.s.logf(w.name, format, args...) }

// env is the environment of a syncd of this world.
func (w *world) env(domain, secret string) map[string]string {
	return map[string]string{
		"DATABASE_URL": w.dbURL, "AUTH0_DOMAIN": domain,
		"AUTH0_CLIENT_ID": clientID, "AUTH0_CLIENT_SECRET": secret,
		// The scenarios test the per-user path; the bulk one passes
		// --bulk-create auto, which wins over the environment.
		"SYNCD_BULK_CREATE": "off",
	}
}

// start runs a syncd against this world's database and emulator.
func (w *world) start(ctx context.Context, name, source string, extra ...string) (*proc, error) {
	return w.startWith(ctx, name, w.emu.URL, clientSecret, source, extra...)
}

// startWith runs a syncd with the given domain and secret. The reconcile
// timeout sets the employee lease (+15 s): 5 s keeps the rows of a process
// that died, or could not record an outcome, from waiting long.
func (w *world) startWith(ctx context.Context, name, domain, secret, source string, extra ...string) (*proc, error) {
	args := append([]string{"--source", source, "--slot", w.slot, "--poll-interval", "500ms", "--roles", rolesFlag,
		"--workers", "8", "--reconcile-timeout", "5s", "--resync-interval", "30s"}, extra...)
	p, err := w.s.startSyncd(ctx, w.name+"-"+name, w.env(domain, secret), args...)
	if err != nil {
		return nil, err
	}
	w.procs = append(w.procs, p)
	return p, nil
}

// stop stops p with SIGTERM after saving its /metrics; an unclean exit fails
// the scenario.
func (w *world) stop(p *proc) {
	if p.alive() {
		p.scrape(w.s.workDir)
	}
	if err := p.stop(); err != nil {
		w.r.fail("%v", err)
	}
}

// insertEmployees inserts employees from..to (numbers, not ids) in one
// statement, so one transaction: a backfill. Emails are p<n>@<tag>.chaos.example.
func (w *world) insertEmployees(ctx context.Context, tag string, from, to int) error {
	_, err := w.pool.Exec(ctx, `INSERT INTO employees (name, email, department, phone_number, connecteam_id, role_code)
		SELECT 'Chaos Person ' || g, 'p' || g || '@' || $3 || '.chaos.example',
		       (ARRAY['Heat Press', 'Packing', 'Shipping', NULL])[1 + g % 4],
		       CASE WHEN g % 3 = 0 THEN NULL ELSE '+1555' || lpad(g::text, 7, '0') END,
		       CASE WHEN g % 7 = 0 THEN NULL ELSE 'ct-' || g END,
		       CASE WHEN g % 5 = 0 THEN 'lead' ELSE 'associate' END
		  FROM generate_series($1::int, $2::int) g`, from, to, tag)
	if err != nil {
		return fmt.Errorf("insert employees: %w", err)
	}
	return nil
}

// counts is the employees table by status, and the outbox.
type counts struct {
	Total, Pending, Syncing, Synced, Retrying, Failed, Conflict, Deprovisioned, Outbox int
	Attempts                                                                           int64
}

func (c counts) settled() bool { return c.Pending+c.Syncing+c.Retrying == 0 && c.Outbox == 0 }

func (c counts) String() string {
	return fmt.Sprintf("%d synced, %d pending, %d syncing, %d retrying, %d failed, %d conflict, %d deprovisioned, %d outbox rows",
		c.Synced, c.Pending, c.Syncing, c.Retrying, c.Failed, c.Conflict, c.Deprovisioned, c.Outbox)
}

func (w *world) counts(ctx context.Context) (counts, error) {
	var c counts
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := w.pool.QueryRow(qctx, `SELECT count(*),
		count(*) FILTER (WHERE auth0_sync_status = 'pending'),
		count(*) FILTER (WHERE auth0_sync_status = 'syncing'),
		count(*) FILTER (WHERE auth0_sync_status = 'synced'),
		count(*) FILTER (WHERE auth0_sync_status = 'retrying'),
		count(*) FILTER (WHERE auth0_sync_status = 'failed'),
		count(*) FILTER (WHERE auth0_sync_status = 'conflict'),
		count(*) FILTER (WHERE auth0_sync_status = 'deprovisioned'),
		(SELECT count(*) FROM auth0_outbox),
		coalesce(sum(auth0_sync_attempts), 0)
		FROM employees`).Scan(&c.Total, &c.Pending, &c.Syncing, &c.Synced, &c.Retrying, &c.Failed, &c.Conflict, &c.Deprovisioned, &c.Outbox, &c.Attempts)
	return c, err
}

// waitFor polls counts until cond holds, ctx ends or timeout passes; it
// returns the last counts and whether cond held. Query errors (the database
// may be down) are retried.
func (w *world) waitFor(ctx context.Context, timeout time.Duration, cond func(counts) bool) (counts, bool) {
	deadline := time.Now().Add(timeout)
	var last counts
	for {
		c, err := w.counts(ctx)
		if err == nil {
			last = c
			if cond(c) {
				return c, true
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return last, false
		}
		sleep(ctx, 50*time.Millisecond)
	}
}

// waitSettled waits until no row is pending, syncing or retrying and the
// outbox is empty; a timeout fails the scenario.
func (w *world) waitSettled(ctx context.Context, timeout time.Duration) (counts, time.Duration, bool) {
	start := time.Now()
	c, ok := w.waitFor(ctx, timeout, counts.settled)
	took := time.Since(start)
	if !ok {
		w.r.fail("did not converge within %s: %s", timeout, c)
	}
	return c, took, ok
}

// leaderPID returns the pid of the process that holds the replication
// leadership of the world's slot (0 if none): leader ids are host:pid:hex.
func (w *world) leaderPID(ctx context.Context) int {
	var id string
	if err := w.pool.QueryRow(ctx, `SELECT leader_id FROM syncd_leader WHERE name = $1 AND expires_at > now()`, w.slot).Scan(&id); err != nil {
		return 0
	}
	parts := strings.Split(id, ":")
	if len(parts) < 3 {
		return 0
	}
	pid, _ := strconv.Atoi(parts[len(parts)-2])
	return pid
}

// expireLeases makes the leases of a killed process run out now, as if
// their time had passed: its outbox claims (locked_by names its pid), every
// employee lease (call it only while no syncd of the world runs) and its
// replication leadership.
func (w *world) expireLeases(ctx context.Context, pid int) (outbox, employees int64, err error) {
	pat := "%:" + strconv.Itoa(pid) + ":%"
	tag, err := w.pool.Exec(ctx, `UPDATE auth0_outbox SET locked_until = now() - interval '1 second' WHERE locked_by LIKE $1 AND locked_until > now()`, pat)
	if err != nil {
		return 0, 0, fmt.Errorf("expire outbox leases: %w", err)
	}
	outbox = tag.RowsAffected()
	tag, err = w.pool.Exec(ctx, `UPDATE employees SET auth0_locked_until = now() - interval '1 second' WHERE auth0_locked_until > now()`)
	if err != nil {
		return 0, 0, fmt.Errorf("expire employee leases: %w", err)
	}
	employees = tag.RowsAffected()
	if _, err := w.pool.Exec(ctx, `UPDATE syncd_leader SET expires_at = now() - interval '1 second' WHERE leader_id LIKE $1`, pat); err != nil {
		return 0, 0, fmt.Errorf("expire leadership: %w", err)
	}
	return outbox, employees, nil
}

// leased counts outbox rows leased by pid and employee rows leased by anyone.
func (w *world) leased(ctx context.Context, pid int) (outbox, employees int) {
	_ = w.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM auth0_outbox WHERE locked_by LIKE $1 AND locked_until > now()),
		(SELECT count(*) FROM employees WHERE auth0_locked_until > now())`, "%:"+strconv.Itoa(pid)+":%").Scan(&outbox, &employees)
	return outbox, employees
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
