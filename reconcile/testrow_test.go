package reconcile

import (
	"encoding/json"
	"strings"
)

// testRow is an employees row of the reference guide's columns, for the pure
// tests: employee gives what the default mapping (migration 10's view
// syncd_desired) reads from such a row. TestDefaultViewIsTheBuiltInMapping
// checks this against the real view.
type testRow struct {
	ID                                                 string
	Name, Email, Department, PhoneNumber, ConnecteamID *string
	RoleCode                                           string
	Active                                             bool
}

func testEmployee() *testRow {
	return &testRow{ID: "42", Name: ptr("Ada Lovelace"), Email: ptr("  Ada@Example.COM "), Department: ptr("Heat Press"),
		PhoneNumber: ptr("+15550100"), ConnecteamID: ptr("ct-9"), RoleCode: "associate", Active: true}
}

// employee is the row as syncd reads it: its key and its syncd_desired_of.
func (r *testRow) employee() *Employee {
	trimmed := func(s *string) any {
		if s == nil || strings.TrimSpace(*s) == "" {
			return nil
		}
		return strings.TrimSpace(*s)
	}
	strip := func(m map[string]any) map[string]any {
		for k, v := range m {
			if v == nil {
				delete(m, k)
			}
		}
		return m
	}
	key := json.RawMessage(r.ID)
	status := "active"
	if !r.Active {
		status = "terminated"
	}
	var fullName any
	if r.Name != nil {
		fullName = strings.TrimSpace(*r.Name)
	}
	view := map[string]any{
		"email": r.Email, "name": r.Name, "role_code": r.RoleCode, "blocked": !r.Active,
		"app_metadata": strip(map[string]any{"internal_id": key, "role_code": r.RoleCode, "department": trimmed(r.Department),
			"connecteam_id": trimmed(r.ConnecteamID), "sync_status": status}),
		"user_metadata": strip(map[string]any{"employee_id": key, "full_name": fullName, "department": trimmed(r.Department),
			"phone_number": trimmed(r.PhoneNumber)}),
	}
	raw, err := json.Marshal(view)
	if err != nil {
		panic(err)
	}
	return &Employee{ID: r.ID, IDValue: key, View: raw}
}

// desiredOf is DesiredFor of r under cfg and the default managed keys.
func desiredOf(r *testRow, cfg Config) (Desired, error) {
	return DesiredFor(r.employee(), cfg)
}
