package main

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/reconcile"
)

// row is an employee as the check reads it.
type row struct {
	// ID is the key as text (id::text); Key is the key as
	// app_metadata.employee_id must carry it (to_jsonb(id), decoded): a
	// float64 for an integer key, a string for a uuid or text key.
	ID                              string
	Key                             any
	Name, Email                     string
	Department, Phone, ConnecteamID *string
	RoleCode                        string
	Active                          bool
	Status, UserID, SyncError       string
	Attempts                        int
}

func (w *world) rows(ctx context.Context) ([]row, error) {
	rows, err := w.pool.Query(ctx, `SELECT employees.id::text, to_jsonb(employees.id), name, email, department, phone_number, connecteam_id, role_code, active,
		auth0_sync_status, coalesce(auth0_user_id, ''), coalesce(auth0_sync_error, ''), auth0_sync_attempts
		FROM employees ORDER BY employees.id`)
	if err != nil {
		return nil, fmt.Errorf("read employees: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[row])
}

// expectations of a check beyond "every row synced".
type expectations struct {
	// status is the expected final status of some rows (by id); "" or absent = synced.
	status map[string]string
	// foreign are accounts the harness made, not syncd: never orphans.
	foreign map[string]bool
	// oneOf groups rows of which exactly one must be synced and the others
	// conflict (two rows with one email).
	oneOf [][]string
}

// verify checks the end state: each row in its expected status; each synced
// row with exactly one account holding the right email, name, role,
// app_metadata and user_metadata; no account twice (by email or by
// employee_id); no managed account that no row links (an orphan); no row
// linked to a missing account. It notes the numbers on the result.
func (w *world) verify(ctx context.Context, ex expectations) {
	r := w.r
	rows, err := w.rows(ctx)
	if err != nil {
		r.fail("%v", err)
		return
	}
	users := w.emu.Users()
	byID := make(map[string]map[string]any, len(users))
	byEmployee := map[string][]string{} // by the key text app_metadata.employee_id names
	byEmail := map[string][]string{}
	for _, u := range users {
		id, _ := u["user_id"].(string)
		byID[id] = u
		if key, ok := reconcile.KeyOf(app(u)["employee_id"]); ok {
			byEmployee[key] = append(byEmployee[key], id)
		}
		if e, ok := u["email"].(string); ok {
			// Emails are unique per connection.
			key := connectionOf(u) + " " + strings.ToLower(e)
			byEmail[key] = append(byEmail[key], id)
		}
	}
	want := func(id string) string {
		if s := ex.status[id]; s != "" {
			return s
		}
		return "synced"
	}
	inOneOf := map[string]bool{}
	for _, g := range ex.oneOf {
		for _, id := range g {
			inOneOf[id] = true
		}
	}
	linked := map[string]string{}
	var synced, wrong, missing int
	const maxReports = 15
	report := func(format string, args ...any) {
		if wrong < maxReports {
			r.fail(format, args...)
		}
		wrong++
	}
	for _, e := range rows {
		if e.UserID != "" {
			if other, dup := linked[e.UserID]; dup {
				report("employees %s and %s are linked to one account %s", other, e.ID, e.UserID)
			}
			linked[e.UserID] = e.ID
		}
		if e.Status == "synced" {
			synced++
		}
		if !inOneOf[e.ID] && e.Status != want(e.ID) {
			report("employee %s: status %s, want %s (%s)", e.ID, e.Status, want(e.ID), truncate(e.SyncError, 200))
			continue
		}
		switch e.Status {
		case "synced":
			u := byID[e.UserID]
			if u == nil {
				missing++
				report("employee %s is synced but its account %q does not exist (lost)", e.ID, e.UserID)
				continue
			}
			for _, p := range accountProblems(e, u, w.emu.UserRoles(e.UserID)) {
				report("employee %s, account %s: %s", e.ID, e.UserID, p)
			}
		case "failed", "conflict":
			if e.SyncError == "" {
				report("employee %s is %s with no reason", e.ID, e.Status)
			}
			if e.Status == "failed" && len(byEmployee[e.ID]) > 0 {
				report("employee %s failed, yet accounts %v carry its employee_id", e.ID, byEmployee[e.ID])
			}
		case "deprovisioned":
			if len(byEmployee[e.ID]) > 0 && e.UserID == "" {
				report("employee %s is deprovisioned and unlinked, yet accounts %v carry its employee_id", e.ID, byEmployee[e.ID])
			}
		}
	}
	for _, g := range ex.oneOf {
		var got []string
		nSynced := 0
		for _, id := range g {
			for _, e := range rows {
				if e.ID == id {
					got = append(got, id+":"+e.Status)
					if e.Status == "synced" {
						nSynced++
					} else if e.Status != "conflict" {
						nSynced = -100
					}
				}
			}
		}
		if nSynced != 1 {
			report("rows %v share one email: want exactly one synced and the rest conflict, got %s", g, strings.Join(got, ", "))
		}
	}
	var dupEmployees, dupEmails, orphans int
	for eid, ids := range byEmployee {
		if len(ids) > 1 {
			dupEmployees++
			report("employee %s has %d accounts: %v", eid, len(ids), ids)
		}
	}
	for email, ids := range byEmail {
		if len(ids) > 1 {
			dupEmails++
			report("email %s (connection, address) has %d accounts: %v", email, len(ids), ids)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		u := byID[id]
		if _, ok := linked[id]; ok || ex.foreign[id] {
			continue
		}
		_, hasEID := app(u)["employee_id"]
		if hasEID || app(u)["created_by"] == "productivity_system" {
			orphans++
			report("orphan account %s (employee_id %v, blocked %v): no row links it", id, app(u)["employee_id"], u["blocked"])
		}
	}
	if wrong > maxReports {
		r.fail("… and %d more problems", wrong-maxReports)
	}
	r.note("%d rows, %d synced, %d accounts", len(rows), synced, len(users))
	r.note("dups %d, orphans %d, lost %d", dupEmployees+dupEmails, orphans, missing)
}

// connectionOf is the connection of an account's primary identity.
func connectionOf(u map[string]any) string {
	ids, _ := u["identities"].([]any)
	if len(ids) == 0 {
		return ""
	}
	id, _ := ids[0].(map[string]any)
	c, _ := id["connection"].(string)
	return c
}

func app(u map[string]any) map[string]any {
	m, _ := u["app_metadata"].(map[string]any)
	return m
}

// accountProblems compares an account with its row, by syncd's documented
// mapping (DESIGN.md, "Desired state"), written out again here on purpose.
func accountProblems(e row, u map[string]any, roles []string) []string {
	var out []string
	trim := func(p *string) string {
		if p == nil {
			return ""
		}
		return strings.TrimSpace(*p)
	}
	eq := func(field string, got, want any) {
		if !reflect.DeepEqual(got, want) {
			out = append(out, fmt.Sprintf("%s is %s, want %s", field, show(got), show(want)))
		}
	}
	opt := func(m map[string]any, field, want string) {
		_, key, _ := strings.Cut(field, ".")
		if want == "" {
			if v, ok := m[key]; ok {
				out = append(out, fmt.Sprintf("%s is %s, want absent", field, show(v)))
			}
			return
		}
		eq(field, m[key], want)
	}
	eq("email", u["email"], strings.ToLower(strings.TrimSpace(e.Email)))
	eq("name", u["name"], strings.TrimSpace(e.Name))
	if b, _ := u["blocked"].(bool); b != !e.Active {
		out = append(out, fmt.Sprintf("blocked is %v, want %v", b, !e.Active))
	}
	a := app(u)
	// The key as the row's to_jsonb(id): a number for an integer key, a
	// string otherwise; DeepEqual compares the JSON type too.
	eq("app_metadata.employee_id", a["employee_id"], e.Key)
	eq("app_metadata.internal_id", a["internal_id"], e.Key)
	eq("app_metadata.role_code", a["role_code"], e.RoleCode)
	eq("app_metadata.created_by", a["created_by"], "productivity_system")
	status := "active"
	if !e.Active {
		status = "terminated"
	}
	eq("app_metadata.sync_status", a["sync_status"], status)
	opt(a, "app_metadata.department", trim(e.Department))
	opt(a, "app_metadata.connecteam_id", trim(e.ConnecteamID))
	if _, ok := a["created_at"].(string); !ok && !strings.HasPrefix(e.UserID, "auth0|syncd-emp-") {
		// An imported account has none: the import schema reserves the key.
		out = append(out, "app_metadata.created_at is missing")
	}
	um, _ := u["user_metadata"].(map[string]any)
	eq("user_metadata.employee_id", um["employee_id"], e.Key)
	eq("user_metadata.full_name", um["full_name"], strings.TrimSpace(e.Name))
	opt(um, "user_metadata.department", trim(e.Department))
	opt(um, "user_metadata.phone_number", trim(e.Phone))
	if _, ok := um["timezone"].(string); !ok {
		out = append(out, "user_metadata.timezone is missing")
	}
	wantRoles := []string{roleMap[e.RoleCode]}
	got := slices.Sorted(slices.Values(roles))
	eq("roles", got, wantRoles)
	return out
}

func show(v any) string {
	s := fmt.Sprintf("%#v", v)
	return truncate(s, 80)
}
