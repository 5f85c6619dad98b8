package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/reconcile"
)

// driftResult is scenario 4 for one size.
type driftResult struct {
	Users   int `json:"managed_users"`
	Drifted int `json:"drifted_made"`
	// What the scan found.
	Found   int `json:"drifted_found"`
	Orphans int `json:"orphans_found"`
	// Auth0 requests of the scan: every request (token, /api/v2, export
	// download) and /api/v2 alone.
	Calls    int64 `json:"calls"`
	APICalls int64 `json:"api_calls"`
	// Wall time of the scan subprocess (start to exit) and of Scan itself.
	WallS float64 `json:"wall_s"`
	ScanS float64 `json:"scan_s"`
	CPUS  float64 `json:"cpu_s"`
	// Peak RSS of the scan subprocess (its VmHWM).
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	SeedS      float64 `json:"seed_s"`
	Verified   bool    `json:"verified"`
}

// scanChildCommand is the hidden subcommand that runs one drift scan.
const scanChildCommand = "scan-child"

// scanChildOutput is what the scan subprocess prints.
type scanChildOutput struct {
	Employees    int                         `json:"employees"`
	Compared     int                         `json:"compared"`
	ManagedUsers int                         `json:"managed_users"`
	Drifted      int                         `json:"drifted"`
	Orphans      int                         `json:"orphans"`
	Kinds        map[reconcile.DriftKind]int `json:"kinds"`
	TookS        float64                     `json:"took_s"`
	// VmHWM is the child's own peak RSS from /proc/self/status. (The
	// parent cannot use getrusage's ru_maxrss for it: Linux starts a
	// vforked child's maxrss at the parent's RSS at exec, which here is
	// the emulator's.)
	VmHWM int64 `json:"vm_hwm_bytes"`
}

// runScanChild runs reconcile.Scan once, as `syncd run` and `syncd plan` do,
// against SYNCBENCH_DATABASE_URL and the emulator at SYNCBENCH_AUTH0_DOMAIN.
func runScanChild(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	base, err := auth0.ParseDomain(getenv("SYNCBENCH_AUTH0_DOMAIN"))
	if err != nil {
		return fmt.Errorf("SYNCBENCH_AUTH0_DOMAIN: %w", err)
	}
	api, err := auth0.New(auth0.Config{BaseURL: base, ClientID: emulator.DefaultClientID, ClientSecret: emulator.DefaultClientSecret})
	if err != nil {
		return fmt.Errorf("auth0 client: %w", err)
	}
	pool, err := pgxpool.New(ctx, getenv("SYNCBENCH_DATABASE_URL"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()
	rec, err := reconcile.New(pool, api, reconcile.Config{})
	if err != nil {
		return err
	}
	if dir := getenv("SYNCBENCH_PROFILE_DIR"); dir != "" {
		stop, err := profileScan(dir, getenv("SYNCBENCH_PROFILE_NAME"))
		if err != nil {
			return err
		}
		defer stop()
	}
	res, err := rec.Scan(ctx)
	if err != nil {
		return err
	}
	out := scanChildOutput{Employees: res.Employees, Compared: res.Compared, ManagedUsers: res.ManagedUsers,
		Drifted: len(res.Drifted), Orphans: len(res.Orphans), Kinds: map[reconcile.DriftKind]int{}, TookS: res.Took.Seconds()}
	for _, d := range res.Drifted {
		for _, k := range d.Kinds {
			out.Kinds[k]++
		}
	}
	if _, out.VmHWM, err = procMem(os.Getpid()); err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(out)
}

func (b *bench) runDrift(ctx context.Context, n int) (*driftResult, error) {
	res := &driftResult{Users: n}
	db, dropDB, err := b.newDatabase(ctx)
	if err != nil {
		return nil, err
	}
	defer dropDB()
	e, err := startEmulator(emulator.Options{})
	if err != nil {
		return nil, err
	}
	defer e.Close()

	start := time.Now()
	api := newSeeder(e)
	defer api.client.CloseIdleConnections()
	if err := api.seedUsers(ctx, n, b.cfg.Sizes.DriftSeedWorkers); err != nil {
		return nil, err
	}
	if err := seedEmployees(ctx, db, n); err != nil {
		return nil, err
	}
	tampered, err := api.tamper(ctx, n, b.cfg.Sizes.DriftSeedWorkers)
	if err != nil {
		return nil, err
	}
	res.Drifted = tampered
	res.SeedS = round(time.Since(start).Seconds(), 1)
	db.pool.Reset()

	e.ResetCalls()
	cmd := exec.CommandContext(ctx, b.self, scanChildCommand) //nolint:gosec // our own binary
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), childEnv + "=" + scanChildCommand, "SYNCBENCH_DATABASE_URL=" + db.url, "SYNCBENCH_AUTH0_DOMAIN=" + e.URL}
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GODEBUG"} {
		if v := os.Getenv(k); v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	if b.cfg.ProfileDir != "" {
		cmd.Env = append(cmd.Env, "SYNCBENCH_PROFILE_DIR="+b.cfg.ProfileDir, fmt.Sprintf("SYNCBENCH_PROFILE_NAME=scan-%d", n))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return res, fmt.Errorf("scan subprocess: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	res.WallS = round(time.Since(t0).Seconds(), 3)
	_ = os.WriteFile(filepath.Join(b.tmp, fmt.Sprintf("scan-%d.stderr", n)), stderr.Bytes(), 0o644)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.CPUS = round(time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds(), 3)
	}
	var out scanChildOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return res, fmt.Errorf("scan subprocess output: %w", err)
	}
	res.ScanS = round(out.TookS, 3)
	res.PeakRSSMiB = round(float64(out.VmHWM)/(1<<20), 1)
	res.Found, res.Orphans = out.Drifted, out.Orphans
	res.Calls, res.APICalls = e.allCalls(), e.apiCalls()
	if out.ManagedUsers != n || out.Drifted != tampered || out.Orphans != 0 {
		return res, fmt.Errorf("scan of %d users with %d tampered found %d managed, %d drifted (%v), %d orphans", n, tampered, out.ManagedUsers, out.Drifted, out.Kinds, out.Orphans)
	}
	res.Verified = true
	return res, nil
}

// seeder writes to the emulator through its HTTP API, as an operator's
// tooling would, many requests at once.
type seeder struct {
	e      *emu
	token  string
	client *http.Client
	roleID string
}

func newSeeder(e *emu) *seeder {
	u, _ := url.Parse(e.URL)
	return &seeder{e: e, token: e.IssueToken(u.Host), roleID: e.RoleID(emulator.DefaultRole),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute}}
}

func (s *seeder) do(ctx context.Context, method, path string, body any, want int) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, s.e.URL+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, msg)
	}
	return nil
}

// The seeded employee i, as the reconciler would have created it (see
// reconcile.DesiredFor and the create step).
var departments = []string{"Production", "Shipping", "Quality", "Maintenance"}

func seedUserID(i int) string { return fmt.Sprintf("auth0|%024x", i) }

func (s *seeder) createUser(ctx context.Context, i int) error {
	name := fmt.Sprintf("Drift Employee %d", i)
	dept := departments[i%len(departments)]
	body := map[string]any{
		"connection":   emulator.DefaultConnection,
		"user_id":      fmt.Sprintf("%024x", i),
		"email":        fmt.Sprintf("drift%06d@bench.example", i),
		"name":         name,
		"password":     "Bench-Passw0rd-2024",
		"verify_email": true,
		"app_metadata": map[string]any{"employee_id": i, "internal_id": i, "department": dept, "role_code": "associate",
			"connecteam_id": fmt.Sprintf("ct-%d", i), "created_by": "productivity_system", "sync_status": "active",
			"created_at": "2026-01-01T00:00:00Z"},
		"user_metadata": map[string]any{"employee_id": i, "full_name": name, "department": dept,
			"phone_number": fmt.Sprintf("+1555%07d", i), "timezone": "America/Chicago"},
	}
	return s.do(ctx, http.MethodPost, "/api/v2/users", body, http.StatusCreated)
}

// parallel runs f(i) for i in [1, n] on workers goroutines.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1))
				if i > n {
					return
				}
				if err := f(ctx, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return first
}

func (s *seeder) seedUsers(ctx context.Context, n, workers int) error {
	if err := parallel(ctx, n, workers, s.createUser); err != nil {
		return fmt.Errorf("seed users: %w", err)
	}
	// The role, a thousand members per request.
	const chunk = 1000
	for lo := 1; lo <= n; lo += chunk {
		var ids []string
		for i := lo; i < lo+chunk && i <= n; i++ {
			ids = append(ids, seedUserID(i))
		}
		if err := s.do(ctx, http.MethodPost, "/api/v2/roles/"+s.roleID+"/users", map[string]any{"users": ids}, http.StatusOK); err != nil {
			return fmt.Errorf("seed role members: %w", err)
		}
	}
	return nil
}

// tamper changes 1 % of the accounts by hand, five kinds of drift in turn,
// and returns how many it changed.
func (s *seeder) tamper(ctx context.Context, n, workers int) (int, error) {
	k := n / 100
	err := parallel(ctx, k, workers, func(ctx context.Context, j int) error {
		i := (j-1)*100 + 50 // employees 50, 150, 250, …
		path := "/api/v2/users/" + url.PathEscape(seedUserID(i))
		switch j % 5 {
		case 0:
			return s.do(ctx, http.MethodPatch, path, map[string]any{"app_metadata": map[string]any{"department": "Tampered"}}, http.StatusOK)
		case 1:
			return s.do(ctx, http.MethodPatch, path, map[string]any{"blocked": true}, http.StatusOK)
		case 2:
			return s.do(ctx, http.MethodDelete, path+"/roles", map[string]any{"roles": []string{s.roleID}}, http.StatusNoContent)
		case 3:
			return s.do(ctx, http.MethodPatch, path, map[string]any{"name": "Tampered Name"}, http.StatusOK)
		default:
			return s.do(ctx, http.MethodPatch, path, map[string]any{"user_metadata": map[string]any{"phone_number": "+10000000000"}}, http.StatusOK)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("tamper: %w", err)
	}
	return k, nil
}

// seedEmployees writes n rows already linked and synced, with the
// last-applied record the reconciler keeps, in one INSERT with syncd's
// triggers off for the session (they would mark every row pending).
func seedEmployees(ctx context.Context, db *database, n int) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		return fmt.Errorf("triggers off: %w", err)
	}
	_, err = tx.Exec(ctx, `WITH r AS (
			SELECT g, 'Drift Employee ' || g AS name, 'drift' || lpad(g::text, 6, '0') || '@bench.example' AS email,
			       (ARRAY['Production', 'Shipping', 'Quality', 'Maintenance'])[g % 4 + 1] AS dept,
			       '+1555' || lpad(g::text, 7, '0') AS phone, 'ct-' || g AS ct
			  FROM generate_series(1, $1::int) g)
		INSERT INTO employees (id, name, email, department, phone_number, connecteam_id, role_code, active,
			auth0_user_id, auth0_account_created_at, auth0_sync_status, auth0_synced_at, auth0_synced_state)
		SELECT g, name, email, dept, phone, ct, 'associate', true,
		       'auth0|' || lpad(to_hex(g), 24, '0'), now(), 'synced', now(),
		       jsonb_build_object('email', email, 'name', name, 'blocked', false,
		           'app_metadata', jsonb_build_object('employee_id', g, 'internal_id', g, 'department', dept, 'role_code', 'associate',
		               'connecteam_id', ct, 'created_by', 'productivity_system', 'sync_status', 'active'),
		           'user_metadata', jsonb_build_object('employee_id', g, 'full_name', name, 'department', dept, 'phone_number', phone),
		           'role', 'production_associate')
		  FROM r`, n)
	if err != nil {
		return fmt.Errorf("seed employees: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('employees', 'id'), $1)`, n); err != nil {
		return fmt.Errorf("advance id sequence: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return db.exec(ctx, "VACUUM ANALYZE employees")
}
