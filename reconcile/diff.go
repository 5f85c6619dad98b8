package reconcile

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// ActionKind names what an action does.
type ActionKind string

// The actions a plan is made of, in the order they are applied.
const (
	ActionLink       ActionKind = "link"        // record an existing account's id on the row (adoption)
	ActionCreate     ActionKind = "create"      // POST /users
	ActionUpdate     ActionKind = "update"      // set a field or a managed metadata key
	ActionRemoveKey  ActionKind = "remove_key"  // delete a managed metadata key (null)
	ActionBlock      ActionKind = "block"       // blocked: true
	ActionUnblock    ActionKind = "unblock"     // blocked: false
	ActionAssignRole ActionKind = "assign_role" // POST /users/{id}/roles
	ActionRemoveRole ActionKind = "remove_role" // DELETE /users/{id}/roles
	ActionDelete     ActionKind = "delete"      // DELETE /users/{id}
)

// Action is one step of a plan.
type Action struct {
	Kind ActionKind `json:"kind"`
	// Field is what an update or remove_key touches: "email", "name",
	// "app_metadata.department", "user_metadata.phone_number".
	Field string `json:"field,omitempty"`
	From  any    `json:"from,omitempty"`
	To    any    `json:"to,omitempty"`
	// Role is the role name of assign_role and remove_role.
	Role string `json:"role,omitempty"`
	// UserID is the account of link and delete.
	UserID string `json:"user_id,omitempty"`
}

func (a Action) String() string {
	switch a.Kind {
	case ActionUpdate:
		return fmt.Sprintf("update %s: %s → %s", a.Field, show(a.From), show(a.To))
	case ActionRemoveKey:
		return fmt.Sprintf("remove %s (was %s)", a.Field, show(a.From))
	case ActionAssignRole, ActionRemoveRole:
		return fmt.Sprintf("%s %s", a.Kind, a.Role)
	case ActionLink, ActionDelete:
		return fmt.Sprintf("%s %s", a.Kind, a.UserID)
	}
	return string(a.Kind)
}

func show(v any) string {
	if v == nil {
		return "∅"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// Plan is the ordered list of actions that takes Auth0 from observed to
// desired. An empty plan means converged.
type Plan []Action

func (p Plan) String() string {
	parts := make([]string, len(p))
	for i, a := range p {
		parts[i] = a.String()
	}
	return strings.Join(parts, "; ")
}

// Names lists the plan's actions without their values ("update email,
// block"): what a log line may say. Values stay in auth0_sync_logs.
func (p Plan) Names() string {
	parts := make([]string, len(p))
	for i, a := range p {
		switch {
		case a.Field != "":
			parts[i] = string(a.Kind) + " " + a.Field
		case a.Role != "":
			parts[i] = string(a.Kind) + " " + a.Role
		default:
			parts[i] = string(a.Kind)
		}
	}
	return strings.Join(parts, ", ")
}

// Has says whether the plan holds an action of kind k.
func (p Plan) Has(k ActionKind) bool {
	return slices.ContainsFunc(p, func(a Action) bool { return a.Kind == k })
}

// Deprovisions says whether the plan blocks or deletes an account.
func (p Plan) Deprovisions() bool { return p.Has(ActionBlock) || p.Has(ActionDelete) }

// Observed is what Auth0 holds for an employee.
type Observed struct {
	UserID string
	// State holds the managed fields as Auth0 has them (Role unused).
	State State
	// Roles are the managed role names the account has.
	Roles []string
	// Linked: the row already stores UserID.
	Linked bool
}

// Diff returns the actions that take o (nil: no account) to d. It is pure:
// it reads nothing and writes nothing, so `syncd plan` is a dry run by
// construction. Only managed fields, keys and roles ever appear in a plan.
func Diff(d Desired, o *Observed) Plan {
	var p Plan
	if o == nil {
		if d.Blocked || d.Delete {
			return nil // nobody creates an account to block it
		}
		p = append(p, Action{Kind: ActionCreate})
		if d.Role != "" {
			p = append(p, Action{Kind: ActionAssignRole, Role: d.Role})
		}
		return p
	}
	if !o.Linked {
		p = append(p, Action{Kind: ActionLink, UserID: o.UserID})
	}
	if d.Delete {
		return append(p, Action{Kind: ActionDelete, UserID: o.UserID})
	}
	if d.Email != o.State.Email {
		p = append(p, Action{Kind: ActionUpdate, Field: "email", From: o.State.Email, To: d.Email})
	}
	if d.Name != o.State.Name {
		p = append(p, Action{Kind: ActionUpdate, Field: "name", From: o.State.Name, To: d.Name})
	}
	p = diffMetadata(p, "app_metadata", d.Keys.App, d.App, o.State.App)
	p = diffMetadata(p, "user_metadata", d.Keys.User, d.User, o.State.User)
	switch {
	case d.Blocked && !o.State.Blocked:
		p = append(p, Action{Kind: ActionBlock})
	case !d.Blocked && o.State.Blocked:
		p = append(p, Action{Kind: ActionUnblock})
	}
	if d.Role != "" && !slices.Contains(o.Roles, d.Role) {
		p = append(p, Action{Kind: ActionAssignRole, Role: d.Role})
	}
	for _, r := range sortedStrings(o.Roles) {
		if r != d.Role {
			p = append(p, Action{Kind: ActionRemoveRole, Role: r})
		}
	}
	return p
}

func diffMetadata(p Plan, prefix string, keys []string, want, have map[string]any) Plan {
	for _, k := range keys {
		w, wok := want[k]
		h, hok := have[k]
		switch {
		case wok && (!hok || !reflect.DeepEqual(w, h)):
			p = append(p, Action{Kind: ActionUpdate, Field: prefix + "." + k, From: h, To: w})
		case !wok && hok:
			p = append(p, Action{Kind: ActionRemoveKey, Field: prefix + "." + k, From: h})
		}
	}
	return p
}

func sortedStrings(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
