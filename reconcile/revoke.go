package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/auth0"
)

// Ending a leaver's access. Blocking an account stops new logins; the
// sessions the person has and the refresh tokens their applications hold
// live on. After syncd blocks an account (or before it deletes one) it
// revokes both (DELETE /api/v2/users/{id}/sessions and /refresh-tokens), and
// a row is deprovisioned only once that is done too.
//
// What remains to be revoked is never a guess. syncd_access_revocations
// records, per account, which of the two parts were revoked; a deprovision
// owes the parts not recorded there. The block itself needs no record of its
// own: Auth0 keeps it (blocked: true), and a repeated PATCH is harmless. So
// after a crash between the block and the revocations, the next attempt sees
// the account blocked and revokes what the table does not list; after a
// crash between the revocations and their record, it revokes again (both
// calls are idempotent) — the only repeat, in a window of one database round
// trip. When syncd blocks an account anew (it was unblocked meanwhile, by a
// returning employee or by hand) the record is dropped first: sessions made
// since the last revocation are revoked too.

// ActionKinds of the revocations.
const (
	ActionRevokeSessions      ActionKind = "revoke_sessions"       // DELETE /users/{id}/sessions
	ActionRevokeRefreshTokens ActionKind = "revoke_refresh_tokens" // DELETE /users/{id}/refresh-tokens
)

// Revocation results reported to Config.OnRevoke.
const (
	RevokeSuccess     = "success"     // revoked (Auth0 accepted it)
	RevokeFailure     = "failure"     // failed; retried like any transient failure
	RevokeUnavailable = "unavailable" // the tenant's plan lacks the endpoint
	RevokeGone        = "gone"        // the account no longer exists: nothing to revoke
)

// Revokes says whether the plan revokes sessions or refresh tokens.
func (p Plan) Revokes() bool { return p.Has(ActionRevokeSessions) || p.Has(ActionRevokeRefreshTokens) }

// revoked is what syncd_access_revocations records of an account.
type revoked struct {
	sessions, refreshTokens bool
}

func (m revoked) any() bool { return m.sessions || m.refreshTokens }

// WithRevocations adds the revocations owed to plan: after the block, or,
// when the plan deletes the account, before the delete (once the account is
// gone its id names nothing to revoke). It is pure, as Diff is.
func WithRevocations(plan Plan, owed []ActionKind) Plan {
	if len(owed) == 0 {
		return plan
	}
	acts := make(Plan, 0, len(owed))
	for _, k := range owed {
		acts = append(acts, Action{Kind: k})
	}
	for i, a := range plan {
		if a.Kind == ActionDelete {
			out := append(append(append(Plan{}, plan[:i]...), acts...), plan[i:]...)
			return out
		}
	}
	return append(append(Plan{}, plan...), acts...)
}

// owedRevocations is what a deprovision owes: nothing if revocation is off
// or unavailable or the account is not deprovisioned; everything if the plan
// blocks the account now (access may have been granted since any earlier
// revocation); else the parts the record does not list.
func (r *Reconciler) owedRevocations(plan Plan, d Desired, rec revoked) []ActionKind {
	if r.cfg.KeepSessions || r.RevocationUnavailable() != "" || !(d.Blocked || d.Delete) {
		return nil
	}
	if plan.Has(ActionBlock) {
		rec = revoked{}
	}
	var owed []ActionKind
	if !rec.sessions {
		owed = append(owed, ActionRevokeSessions)
	}
	if !rec.refreshTokens {
		owed = append(owed, ActionRevokeRefreshTokens)
	}
	return owed
}

// RevocationUnavailable says why revocation is not available ("" if it is,
// or if it has not been refused yet): the tenant's plan lacks the endpoints.
// It is learnt from the first refusal and kept for the process's life.
func (r *Reconciler) RevocationUnavailable() string {
	if p := r.unavailable.Load(); p != nil {
		return *p
	}
	return ""
}

// markUnavailable records that the tenant refused revocation for its plan;
// the first time, it says so once.
func (r *Reconciler) markUnavailable(ctx context.Context, err error) {
	msg := fmt.Sprintf("the tenant's plan does not include session and refresh-token revocation (Auth0 Enterprise only): %v", err)
	if r.unavailable.CompareAndSwap(nil, &msg) {
		r.cfg.Logger.WarnContext(ctx, "session and refresh-token revocation is not available on this Auth0 tenant: syncd stops calling it; "+
			"blocks and deletes still count as done. Leavers' sessions and refresh tokens live until they expire; keep their lifetimes short",
			keyError, err)
		if r.cfg.OnRevocationUnavailable != nil {
			r.cfg.OnRevocationUnavailable(msg)
		}
	}
}

// readRevoked reads what syncd_access_revocations records of userID.
func (r *Reconciler) readRevoked(ctx context.Context, userID string) (revoked, error) {
	var m revoked
	if userID == "" {
		return m, nil
	}
	err := r.pool.QueryRow(ctx, `SELECT sessions_revoked_at IS NOT NULL, refresh_tokens_revoked_at IS NOT NULL
		FROM syncd_access_revocations WHERE auth0_user_id = $1`, userID).Scan(&m.sessions, &m.refreshTokens)
	if errors.Is(err, pgx.ErrNoRows) {
		return revoked{}, nil
	}
	if err != nil {
		return m, fmt.Errorf("read access revocations: %w", err)
	}
	return m, nil
}

// planRevocations adds the revocations owed to plan. When the plan blocks an
// account whose earlier revocation is on record, the record is dropped first,
// so that a crash after the block still leaves the revocation owed.
func (a *attempt) planRevocations(ctx context.Context, plan Plan, d Desired, userID string, rec revoked) (Plan, error) {
	owed := a.r.owedRevocations(plan, d, rec)
	if len(owed) == 0 {
		return plan, nil
	}
	if plan.Has(ActionBlock) && rec.any() {
		if _, err := a.r.pool.Exec(ctx, `DELETE FROM syncd_access_revocations WHERE auth0_user_id = $1`, userID); err != nil {
			return nil, fmt.Errorf("drop earlier access revocation: %w", err)
		}
	}
	return WithRevocations(plan, owed), nil
}

// revokeAll carries out the revocations of acts at once (they are
// independent). Each one done is recorded in a.revokedNow (written with the
// outcome, whatever it is); a plan refusal marks revocation unavailable and
// counts as done; the first other failure is returned.
func (a *attempt) revokeAll(ctx context.Context, acts []Action) error {
	errs := make([]error, len(acts))
	var wg sync.WaitGroup
	for i, act := range acts {
		wg.Go(func() {
			if act.Kind == ActionRevokeSessions {
				errs[i] = a.r.api.DeleteUserSessions(ctx, a.userID)
			} else {
				errs[i] = a.r.api.DeleteUserRefreshTokens(ctx, a.userID)
			}
		})
	}
	wg.Wait()
	var first error
	for i, act := range acts {
		err := errs[i]
		result := RevokeSuccess
		switch {
		case err == nil:
			a.done(act, map[string]any{"user_id": a.userID})
			a.revokedNow = append(a.revokedNow, act.Kind)
		case errors.Is(err, auth0.ErrFeatureUnavailable):
			result = RevokeUnavailable
			a.r.markUnavailable(ctx, err)
			a.audit(string(act.Kind), "unavailable", map[string]any{"user_id": a.userID}, err)
		case errors.Is(err, auth0.ErrNotFound):
			result = RevokeGone
			a.audit(string(act.Kind), "gone", map[string]any{"user_id": a.userID}, err)
		default:
			result = RevokeFailure
			a.audit(string(act.Kind), "failed", nil, err)
			if first == nil {
				first = fmt.Errorf("the account is blocked, but %s failed: %w", act.Kind, err)
			}
		}
		if a.r.cfg.OnRevoke != nil {
			a.r.cfg.OnRevoke(act.Kind, result)
		}
	}
	return first
}

// queueRevocations adds to b what this attempt learnt about the account's
// revocations: the parts revoked now, or the record dropped because syncd
// unblocked, created or deleted the account.
func (a *attempt) queueRevocations(b *pgx.Batch) {
	if a.userID == "" {
		return
	}
	if a.deleted || a.applied.Has(ActionUnblock) || a.applied.Has(ActionCreate) {
		b.Queue(`DELETE FROM syncd_access_revocations WHERE auth0_user_id = $1`, a.userID)
		return
	}
	if len(a.revokedNow) == 0 {
		return
	}
	var sessions, tokens bool
	for _, k := range a.revokedNow {
		sessions = sessions || k == ActionRevokeSessions
		tokens = tokens || k == ActionRevokeRefreshTokens
	}
	b.Queue(`INSERT INTO syncd_access_revocations (auth0_user_id, employee_id, sessions_revoked_at, refresh_tokens_revoked_at)
		VALUES ($1, $2, CASE WHEN $3 THEN now() END, CASE WHEN $4 THEN now() END)
		ON CONFLICT (auth0_user_id) DO UPDATE SET employee_id = coalesce(EXCLUDED.employee_id, syncd_access_revocations.employee_id),
			sessions_revoked_at = coalesce(EXCLUDED.sessions_revoked_at, syncd_access_revocations.sessions_revoked_at),
			refresh_tokens_revoked_at = coalesce(EXCLUDED.refresh_tokens_revoked_at, syncd_access_revocations.refresh_tokens_revoked_at),
			updated_at = now()`, a.userID, nullable(a.id), sessions, tokens)
}
