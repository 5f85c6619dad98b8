package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	syncdsql "github.com/syncd/syncd/sql"
)

// offboardResult is the offboarding scenario (issue 17): a leaver's access
// ended, measured from the commit of `UPDATE … SET active = false` to the
// moment the emulator has revoked both the sessions and the refresh tokens.
type offboardResult struct {
	Employees int     `json:"employees"`
	Leavers   int     `json:"leavers"`
	P50       float64 `json:"p50_ms"`
	P95       float64 `json:"p95_ms"`
	P99       float64 `json:"p99_ms"`
	Max       float64 `json:"max_ms"`
	// BlockP50 is commit → the block (PATCH blocked) applied, median.
	BlockP50 float64 `json:"block_p50_ms"`
	// Calls per leaver: every /api/v2 request, and the three that matter.
	CallsPerLeaver    float64 `json:"calls_per_leaver"`
	BlocksPerLeaver   float64 `json:"blocks_per_leaver"`
	SessionsPerLeaver float64 `json:"session_revocations_per_leaver"`
	TokensPerLeaver   float64 `json:"refresh_token_revocations_per_leaver"`
	// Verified: every leaver deprovisioned, blocked, with no session and no
	// refresh token left, each revoked exactly once.
	Verified bool `json:"verified"`
}

// offboardTracker follows the requests of the one leaver in flight.
type offboardTracker struct {
	block, sessions, tokens atomic.Pointer[time.Time]
	done                    chan struct{}
	closed                  atomic.Bool
}

func (t *offboardTracker) see(ev apiEvent) {
	if ev.status >= 300 {
		return
	}
	at := ev.end
	switch {
	case ev.method == "PATCH" && strings.HasPrefix(ev.path, "/api/v2/users/"):
		t.block.CompareAndSwap(nil, &at)
	case ev.method == "DELETE" && strings.HasSuffix(ev.path, "/sessions"):
		t.sessions.CompareAndSwap(nil, &at)
	case ev.method == "DELETE" && strings.HasSuffix(ev.path, "/refresh-tokens"):
		t.tokens.CompareAndSwap(nil, &at)
	}
	if t.sessions.Load() != nil && t.tokens.Load() != nil && t.closed.CompareAndSwap(false, true) {
		close(t.done)
	}
}

// runOffboard starts syncd with its defaults (the guard at 10 %, its fast
// path on; --revoke-sessions on), syncs the employees, gives each leaver a
// login, and sets leavers inactive one at a time.
func (b *bench) runOffboard(ctx context.Context) (*offboardResult, error) {
	n, leavers := b.cfg.Sizes.OffboardEmployees, b.cfg.Sizes.OffboardLeavers
	db, e, p, stop, err := b.startStack(ctx, syncdsql.KeyBigint, "offboard", "notify")
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := db.exec(ctx, `INSERT INTO employees (name, email, department, phone_number, connecteam_id)
		SELECT 'Offboard ' || g, 'off-' || g || '@bench.example', 'Production', '+15550100', 'ct-' || g FROM generate_series(1, $1) g`, n); err != nil {
		return nil, fmt.Errorf("seed employees: %w", err)
	}
	if _, _, err := waitSynced(ctx, db.pool, int64(n), 20*time.Millisecond, b.cfg.Sizes.ConvergeTimeout); err != nil {
		return nil, err
	}
	if err := waitOutboxEmpty(ctx, db.pool, time.Minute); err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, `SELECT id, auth0_user_id FROM employees ORDER BY id LIMIT $1`, leavers)
	if err != nil {
		return nil, fmt.Errorf("read leavers: %w", err)
	}
	type leaver struct {
		id  int64
		uid string
	}
	ls, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (leaver, error) {
		var l leaver
		return l, r.Scan(&l.id, &l.uid)
	})
	if err != nil {
		return nil, fmt.Errorf("read leavers: %w", err)
	}
	for _, l := range ls {
		if !e.Login(l.uid) { // each has a session and a refresh token to lose
			return nil, fmt.Errorf("no account %s", l.uid)
		}
	}
	settle(e, 20*time.Second)

	writer, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer writer.Close(context.WithoutCancel(ctx))
	var cur atomic.Pointer[offboardTracker]
	e.setHook(func(ev apiEvent) {
		if t := cur.Load(); t != nil {
			t.see(ev)
		}
	})
	defer e.setHook(nil)

	e.ResetCalls()
	var total, block []float64
	for _, l := range ls {
		t := &offboardTracker{done: make(chan struct{})}
		cur.Store(t)
		if _, err := writer.Exec(ctx, `UPDATE employees SET active = false WHERE id = $1`, l.id); err != nil {
			return nil, fmt.Errorf("deactivate: %w", err)
		}
		committed := time.Now() // autocommit: Exec returns once the commit is done
		select {
		case <-t.done:
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("employee %d: sessions and refresh tokens not revoked 30s after the commit; statuses: %s", l.id, statusSummary(ctx, db.pool))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		cur.Store(nil)
		// The emulator's own time of each revocation (before its answer).
		acc := e.Access(l.uid)
		if len(acc.Revoked) == 0 || len(acc.TokensRevoked) == 0 {
			return nil, fmt.Errorf("employee %d: the emulator recorded no revocation", l.id)
		}
		end := acc.Revoked[0].At
		if acc.TokensRevoked[0].At.After(end) {
			end = acc.TokensRevoked[0].At
		}
		total = append(total, msOf(end.Sub(committed)))
		if bt := t.block.Load(); bt != nil {
			block = append(block, msOf(bt.Sub(committed)))
		}
	}
	e.setHook(nil)
	k := float64(len(ls))
	res := &offboardResult{Employees: n, Leavers: len(ls),
		CallsPerLeaver:    float64(e.apiCalls()) / k,
		BlocksPerLeaver:   float64(e.CallCount("PATCH /api/v2/users/{id}")) / k,
		SessionsPerLeaver: float64(e.CallCount("DELETE /api/v2/users/{id}/sessions")) / k,
		TokensPerLeaver:   float64(e.CallCount("DELETE /api/v2/users/{id}/refresh-tokens")) / k}
	s := sortedCopy(total)
	res.P50, res.P95, res.P99, res.Max = percentile(s, .5), percentile(s, .95), percentile(s, .99), s[len(s)-1]
	if len(block) > 0 {
		res.BlockP50 = percentile(sortedCopy(block), .5)
	}
	// Verify once the rows are recorded.
	deadline := time.Now().Add(30 * time.Second)
	for {
		done, err := db.count(ctx, `SELECT count(*) FROM employees WHERE NOT active AND auth0_sync_status = 'deprovisioned'`)
		if err != nil {
			return res, err
		}
		if done == int64(len(ls)) {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("%d of %d leavers deprovisioned 30s after the last one; statuses: %s", done, len(ls), statusSummary(ctx, db.pool))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, l := range ls {
		acc := e.Access(l.uid)
		u := e.User(l.uid)
		if u == nil || u["blocked"] != true || acc.Sessions != 0 || acc.RefreshTokens != 0 || len(acc.Revoked) != 1 || len(acc.TokensRevoked) != 1 {
			return res, fmt.Errorf("leaver %d (%s): blocked %v, %d sessions and %d refresh tokens left, revoked %d and %d times",
				l.id, l.uid, u["blocked"], acc.Sessions, acc.RefreshTokens, len(acc.Revoked), len(acc.TokensRevoked))
		}
	}
	res.Verified = true
	if err := p.stop(); err != nil {
		return res, err
	}
	return res, nil
}
