package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/syncd/syncd/auth0"
)

// apply carries out plan through the Auth0 client: link, create, one PATCH
// for every field, key and blocked change, the role changes, delete. It stops
// at the first failure; what took effect is in a.applied and a.logs.
func (a *attempt) apply(ctx context.Context, d Desired, o *Observed, plan Plan) error {
	var (
		patch     auth0.UpdateUserRequest
		patchActs Plan
		revoking  bool
	)
	flush := func() error {
		if len(patchActs) == 0 {
			return nil
		}
		err := a.patch(ctx, patch, patchActs)
		patch, patchActs = auth0.UpdateUserRequest{}, nil
		return err
	}
	for _, act := range plan {
		switch act.Kind {
		case ActionLink:
			a.userID = act.UserID
			a.done(act, nil)
		case ActionCreate:
			if err := a.create(ctx, d); err != nil {
				return err
			}
		case ActionUpdate, ActionRemoveKey, ActionBlock, ActionUnblock:
			addToPatch(&patch, act)
			patchActs = append(patchActs, act)
		case ActionAssignRole, ActionRemoveRole:
			if err := flush(); err != nil {
				return err
			}
			if err := a.role(ctx, act); err != nil {
				return err
			}
		case ActionRevokeSessions, ActionRevokeRefreshTokens:
			if revoking {
				continue // carried out with the first one
			}
			if err := flush(); err != nil {
				return err
			}
			revoking = true
			var acts []Action
			for _, x := range plan {
				if x.Kind == ActionRevokeSessions || x.Kind == ActionRevokeRefreshTokens {
					acts = append(acts, x)
				}
			}
			if err := a.revokeAll(ctx, acts); err != nil {
				return err
			}
		case ActionDelete:
			if err := flush(); err != nil {
				return err
			}
			if err := a.r.api.DeleteUser(ctx, act.UserID); err != nil {
				a.audit(string(act.Kind), "failed", nil, err)
				return err
			}
			a.done(act, map[string]any{"user_id": act.UserID})
			a.deleted = true
		}
	}
	return flush()
}

func addToPatch(p *auth0.UpdateUserRequest, act Action) {
	switch act.Kind {
	case ActionBlock, ActionUnblock:
		b := act.Kind == ActionBlock
		p.Blocked = &b
		return
	}
	switch act.Field {
	case "email":
		s := act.To.(string)
		p.Email = &s
		return
	case "name":
		s := act.To.(string)
		p.Name = &s
		return
	}
	prefix, key := splitField(act.Field)
	m := &p.AppMetadata
	if prefix == "user_metadata" {
		m = &p.UserMetadata
	}
	if *m == nil {
		*m = map[string]any{}
	}
	if act.Kind == ActionRemoveKey {
		(*m)[key] = nil // an explicit null deletes the key
	} else {
		(*m)[key] = act.To
	}
}

func splitField(f string) (prefix, key string) {
	for i := 0; i < len(f); i++ {
		if f[i] == '.' {
			return f[:i], f[i+1:]
		}
	}
	return "", f
}

func (a *attempt) patch(ctx context.Context, req auth0.UpdateUserRequest, acts Plan) error {
	u, err := a.r.api.UpdateUser(ctx, a.userID, req)
	switch {
	case err == nil:
		summary := userSummary(u, a.observedKeys())
		for _, act := range acts {
			a.done(act, summary)
		}
		return nil
	case errors.Is(err, auth0.ErrNotFound):
		a.audit("update", "failed", nil, err)
		return errReobserve
	case req.Email != nil && (errors.Is(err, auth0.ErrConflict) || apiErrorCode(err) == "auth0_idp_error"):
		// Auth0 answers a taken email with 409 (or 400 auth0_idp_error).
		a.audit("update", "conflict", nil, err)
		return &ConflictError{Email: *req.Email, UserID: "(another account)", Reason: "so the email change cannot be applied: " + apiMessage(err)}
	default:
		a.audit("update", "failed", nil, err)
		return err
	}
}

func (a *attempt) role(ctx context.Context, act Action) error {
	id, err := a.r.roles.id(ctx, a.r.api, act.Role)
	if err != nil {
		a.audit(string(act.Kind), "failed", nil, err)
		return err
	}
	if act.Kind == ActionAssignRole {
		err = a.r.api.AssignUserRoles(ctx, a.userID, []string{id})
	} else {
		err = a.r.api.RemoveUserRoles(ctx, a.userID, []string{id})
	}
	if errors.Is(err, auth0.ErrNotFound) {
		a.audit(string(act.Kind), "failed", nil, err)
		return errReobserve
	}
	if err != nil {
		a.audit(string(act.Kind), "failed", nil, err)
		return fmt.Errorf("%s: %w", act.Kind, err)
	}
	a.done(act, map[string]any{"user_id": a.userID, "role": act.Role, "role_id": id})
	return nil
}

// errCreateUnknown: a POST /users whose answer was lost, and a look found no
// account. The next attempt looks again before it creates; never now.
var errCreateUnknown = fmt.Errorf("create user: no account found after a lost answer yet: %w", auth0.ErrOutcomeUnknown)

func (a *attempt) create(ctx context.Context, d Desired) error {
	if a.createUnknown {
		return errCreateUnknown
	}
	cfg := a.r.cfg
	verify := true
	app := cloneMap(d.App)
	app["created_at"] = cfg.Now().UTC().Format(time.RFC3339Nano)
	user := cloneMap(d.User)
	user["timezone"] = cfg.Timezone
	req := auth0.CreateUserRequest{
		Connection:   cfg.Connection,
		Email:        d.Email,
		Name:         d.Name,
		Password:     newPassword(),
		VerifyEmail:  &verify,
		AppMetadata:  app,
		UserMetadata: user,
	}
	if cfg.Username == UsernameLocalPart {
		req.Username = usernameFor(d.Email, cfg.UsernameMaxLength)
	}
	if id, ok := strings.CutPrefix(deref(a.emp.Auth0UserID), "auth0|"+BulkUserIDPrefix); ok {
		// An import job may still create this employee's account (its
		// answer was lost, or it failed midway): the same id makes Auth0
		// refuse whichever of the two creates comes second (bulk.go).
		req.UserID = BulkUserIDPrefix + id
	}
	u, err := a.r.api.CreateUser(ctx, req)
	switch {
	case err == nil:
		a.userID = u.UserID
		created := u.CreatedAt
		if created.IsZero() {
			created = cfg.Now()
		}
		a.createdAt = &created
		a.done(Action{Kind: ActionCreate}, userSummary(u, a.observedKeys()))
		return nil
	case errors.Is(err, auth0.ErrConflict):
		// The email (or the username) exists in the connection: ours from a
		// lost answer, or someone else's. Look; if the look finds no account
		// with this email, it was the username (converge).
		a.audit(string(ActionCreate), "exists", nil, err)
		a.usernameConflict = req.Username
		return errReobserve
	case req.Username != "" && apiErrorCode(err) == "auth0_idp_error" && strings.Contains(strings.ToLower(apiMessage(err)), "username"):
		// Some tenants answer a taken username with 400 auth0_idp_error.
		a.audit(string(ActionCreate), "conflict", nil, err)
		return &UsernameConflictError{Username: req.Username, Email: d.Email}
	case errors.Is(err, auth0.ErrOutcomeUnknown):
		a.audit(string(ActionCreate), "unknown", nil, err)
		a.createUnknown = true
		return errReobserve
	default:
		a.audit(string(ActionCreate), "failed", nil, err)
		return err
	}
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// auditAppKeys are the app_metadata keys the audit log keeps: the managed
// ones and created_at, which syncd sets at creation.
func auditAppKeys(k ManagedKeys) []string { return append(slices.Clone(k.App), "created_at") }

// userSummary is what the audit log keeps of Auth0's answer: no password is
// ever in an answer, and of app_metadata only the keys syncd owns (another
// system's keys may hold anything, secrets included).
func userSummary(u *auth0.User, keys ManagedKeys) map[string]any {
	if u == nil {
		return nil
	}
	return map[string]any{
		"user_id":      u.UserID,
		"email":        u.Email,
		"name":         u.Name,
		"blocked":      u.Blocked,
		"app_metadata": managedOnly(u.AppMetadata, auditAppKeys(keys)),
		"created_at":   u.CreatedAt,
		"updated_at":   u.UpdatedAt,
	}
}

func apiErrorCode(err error) string {
	var ae *auth0.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode
	}
	return ""
}

func apiMessage(err error) string {
	var ae *auth0.APIError
	if errors.As(err, &ae) {
		return ae.Message
	}
	return err.Error()
}
