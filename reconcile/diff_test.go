package reconcile

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func ptr[T any](v T) *T { return &v }

func TestDesiredFor(t *testing.T) {
	t.Parallel()
	cfg := Config{}.WithDefaults()
	d, err := desiredOf(testEmployee(), cfg)
	require.NoError(t, err)
	require.Equal(t, "ada@example.com", d.Email)
	require.Equal(t, "Ada Lovelace", d.Name)
	require.False(t, d.Blocked)
	require.Equal(t, "production_associate", d.Role)
	require.Equal(t, map[string]any{"employee_id": 42.0, "internal_id": 42.0, "department": "Heat Press", "role_code": "associate",
		"connecteam_id": "ct-9", "created_by": "productivity_system", "sync_status": "active"}, d.App)
	require.Equal(t, map[string]any{"employee_id": 42.0, "full_name": "Ada Lovelace", "department": "Heat Press", "phone_number": "+15550100"}, d.User)

	e := testEmployee()
	e.Active, e.Department, e.PhoneNumber, e.ConnecteamID = false, nil, ptr("  "), nil
	d, err = desiredOf(e, cfg)
	require.NoError(t, err)
	require.True(t, d.Blocked)
	require.False(t, d.Delete)
	require.Equal(t, "terminated", d.App["sync_status"])
	require.NotContains(t, d.App, "department")
	require.NotContains(t, d.App, "connecteam_id")
	require.NotContains(t, d.User, "phone_number")

	del := cfg
	del.Deprovision = DeprovisionDelete
	d, err = desiredOf(e, del)
	require.NoError(t, err)
	require.True(t, d.Delete)
}

func TestDesiredForInvalidRows(t *testing.T) {
	t.Parallel()
	cfg := Config{}.WithDefaults()
	for _, tt := range []struct {
		name  string
		edit  func(*testRow)
		field string
	}{
		{"null email", func(e *testRow) { e.Email = nil }, "email"},
		{"blank email", func(e *testRow) { e.Email = ptr("   ") }, "email"},
		{"null name", func(e *testRow) { e.Name = nil }, "name"},
		{"blank name", func(e *testRow) { e.Name = ptr("\t") }, "name"},
		{"unknown role", func(e *testRow) { e.RoleCode = "wizard" }, "role_code"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := testEmployee()
			tt.edit(e)
			_, err := desiredOf(e, cfg)
			var ir *InvalidRowError
			require.ErrorAs(t, err, &ir)
			require.Equal(t, tt.field, ir.Field)
		})
	}
	e := testEmployee()
	e.RoleCode = "wizard"
	_, err := desiredOf(e, cfg)
	require.EqualError(t, err, `role_code: "wizard" has no Auth0 role mapping (known: associate)`)
}

func TestDiff(t *testing.T) {
	t.Parallel()
	cfg := Config{Roles: map[string]string{"associate": "production_associate", "lead": "production_lead"}}.WithDefaults()
	base, err := desiredOf(testEmployee(), cfg)
	require.NoError(t, err)
	converged := func() *Observed {
		return &Observed{UserID: "auth0|1", State: State{Email: base.Email, Name: base.Name, App: maps.Clone(base.App), User: maps.Clone(base.User)},
			Roles: []string{"production_associate"}, Linked: true}
	}
	kinds := func(p Plan) []string {
		var out []string
		for _, a := range p {
			out = append(out, a.String())
		}
		return out
	}
	tests := []struct {
		name    string
		desired func(Desired) Desired
		obs     func(*Observed) *Observed
		want    []string
	}{
		{"converged", nil, nil, nil},
		{"no account", nil, func(*Observed) *Observed { return nil }, []string{"create", "assign_role production_associate"}},
		{"no account, inactive", func(d Desired) Desired { d.Blocked = true; return d }, func(*Observed) *Observed { return nil }, nil},
		{"no account, delete mode", func(d Desired) Desired { d.Blocked, d.Delete = true, true; return d }, func(*Observed) *Observed { return nil }, nil},
		{"adopt", nil, func(o *Observed) *Observed { o.Linked = false; return o }, []string{"link auth0|1"}},
		{"department changed", func(d Desired) Desired {
			d.App = maps.Clone(d.App)
			d.User = maps.Clone(d.User)
			d.App["department"], d.User["department"] = "Shipping", "Shipping"
			return d
		}, nil, []string{`update app_metadata.department: "Heat Press" → "Shipping"`, `update user_metadata.department: "Heat Press" → "Shipping"`}},
		{"email and name", func(d Desired) Desired { d.Email, d.Name = "new@example.com", "Ada L"; return d }, nil,
			[]string{`update email: "ada@example.com" → "new@example.com"`, `update name: "Ada Lovelace" → "Ada L"`}},
		{"stale managed key removed, foreign key kept", func(d Desired) Desired {
			d.User = maps.Clone(d.User)
			delete(d.User, "phone_number") // the row's phone_number became NULL
			return d
		}, func(o *Observed) *Observed {
			o.State.App["billing_plan"] = "gold" // keys syncd does not own
			o.State.User["nickname"] = "ada"
			o.State.User["phone_number"] = "+1"
			return o
		}, []string{`remove user_metadata.phone_number (was "+1")`}},
		{"managed key to remove", func(d Desired) Desired {
			d.App = maps.Clone(d.App)
			delete(d.App, "connecteam_id")
			return d
		}, nil, []string{`remove app_metadata.connecteam_id (was "ct-9")`}},
		{"terminate", func(d Desired) Desired {
			d.Blocked = true
			d.App = maps.Clone(d.App)
			d.App["sync_status"] = "terminated"
			return d
		}, nil, []string{`update app_metadata.sync_status: "active" → "terminated"`, "block"}},
		{"reactivate", nil, func(o *Observed) *Observed { o.State.Blocked = true; return o }, []string{"unblock"}},
		{"delete mode", func(d Desired) Desired { d.Blocked, d.Delete = true, true; return d }, nil, []string{"delete auth0|1"}},
		{"role swapped", func(d Desired) Desired { d.Role = "production_lead"; return d }, nil,
			[]string{"assign_role production_lead", "remove_role production_associate"}},
		{"role removed by hand", nil, func(o *Observed) *Observed { o.Roles = nil; return o }, []string{"assign_role production_associate"}},
		{"extra managed role", nil, func(o *Observed) *Observed { o.Roles = append(o.Roles, "production_lead"); return o },
			[]string{"remove_role production_lead"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := base
			if tt.desired != nil {
				d = tt.desired(d)
			}
			o := converged()
			if tt.obs != nil {
				o = tt.obs(o)
			}
			require.Equal(t, tt.want, kinds(Diff(d, o)))
		})
	}
}

// applyModel applies a plan to an observed state the way Auth0 would: a
// model of PATCH's first-level metadata merge, blocked and roles.
func applyModel(d Desired, o *Observed, p Plan) *Observed {
	for _, a := range p {
		switch a.Kind {
		case ActionCreate:
			o = &Observed{UserID: "auth0|new", Linked: true, State: State{Email: d.Email, Name: d.Name, App: maps.Clone(d.App), User: maps.Clone(d.User)}}
		case ActionLink:
			o.Linked = true
		case ActionDelete:
			return nil
		case ActionBlock:
			o.State.Blocked = true
		case ActionUnblock:
			o.State.Blocked = false
		case ActionAssignRole:
			o.Roles = append(o.Roles, a.Role)
		case ActionRemoveRole:
			o.Roles = slices.DeleteFunc(o.Roles, func(r string) bool { return r == a.Role })
		case ActionUpdate, ActionRemoveKey:
			prefix, key := splitField(a.Field)
			switch {
			case a.Field == "email":
				o.State.Email = a.To.(string)
			case a.Field == "name":
				o.State.Name = a.To.(string)
			default:
				m := &o.State.App
				if prefix == "user_metadata" {
					m = &o.State.User
				}
				if *m == nil {
					*m = map[string]any{}
				}
				if a.Kind == ActionRemoveKey {
					delete(*m, key)
				} else {
					(*m)[key] = a.To
				}
			}
		}
	}
	return o
}

func genState(t *rapid.T, label string) State {
	meta := func(keys []string) map[string]any {
		m := map[string]any{}
		for _, k := range keys {
			switch rapid.IntRange(0, 2).Draw(t, label+k) {
			case 1:
				m[k] = rapid.SampledFrom([]string{"a", "b", "Heat Press"}).Draw(t, label+k+"v")
			case 2:
				m[k] = float64(rapid.IntRange(0, 3).Draw(t, label+k+"n"))
			}
		}
		return m
	}
	return State{
		Email:   rapid.SampledFrom([]string{"a@x.io", "b@x.io"}).Draw(t, label+"email"),
		Name:    rapid.SampledFrom([]string{"A", "B"}).Draw(t, label+"name"),
		Blocked: rapid.Bool().Draw(t, label+"blocked"),
		App:     meta(DefaultManagedKeys.withOwn().App),
		User:    meta(DefaultManagedKeys.withOwn().User),
	}
}

// foreignKeys are metadata keys syncd does not own (set by people or other
// tools); an observed account may carry any of them.
var foreignKeys = []string{"billing_plan", "nickname", "employee", "timezone"}

// withForeignKeys adds some keys syncd does not own to an observed state.
func withForeignKeys(t *rapid.T, s State) State {
	for _, k := range foreignKeys {
		if rapid.Bool().Draw(t, "app foreign "+k) {
			s.App[k] = "x"
		}
		if rapid.Bool().Draw(t, "user foreign "+k) {
			s.User[k] = "y"
		}
	}
	return s
}

// managedCount counts the managed keys of m.
func managedCount(m map[string]any, keys []string) int {
	n := 0
	for k := range m {
		if slices.Contains(keys, k) {
			n++
		}
	}
	return n
}

func TestDiffConvergesProperty(t *testing.T) {
	t.Parallel()
	roles := []string{"r1", "r2", "r3"}
	rapid.Check(t, func(t *rapid.T) {
		d := Desired{State: genState(t, "d"), Keys: DefaultManagedKeys.withOwn()}
		d.Role = rapid.SampledFrom(append([]string{""}, roles...)).Draw(t, "role")
		d.Delete = d.Blocked && rapid.Bool().Draw(t, "delete")
		var o *Observed
		if rapid.Bool().Draw(t, "exists") {
			o = &Observed{UserID: "auth0|x", State: withForeignKeys(t, genState(t, "o")), Linked: rapid.Bool().Draw(t, "linked"),
				Roles: rapid.SliceOfDistinct(rapid.SampledFrom(roles), func(s string) string { return s }).Draw(t, "roles")}
		}
		var beforeApp, beforeUser map[string]any
		if o != nil {
			beforeApp, beforeUser = maps.Clone(o.State.App), maps.Clone(o.State.User)
		}
		p := Diff(d, o)
		after := applyModel(d, o, p)
		require.Empty(t, Diff(d, after), "plan %s does not converge", p)
		if after != nil {
			require.Equal(t, d.Email, after.State.Email)
			require.Equal(t, d.Blocked, after.State.Blocked)
			require.Equal(t, len(d.App), managedCount(after.State.App, DefaultManagedKeys.withOwn().App))
			require.Equal(t, len(d.User), managedCount(after.State.User, DefaultManagedKeys.withOwn().User))
		}
		if after != nil && o != nil {
			// Keys syncd does not own are as they were.
			for _, k := range foreignKeys {
				require.Equal(t, beforeApp[k], after.State.App[k], "app_metadata.%s", k)
				require.Equal(t, beforeUser[k], after.State.User[k], "user_metadata.%s", k)
			}
		}
		// Only managed keys ever appear.
		for _, a := range p {
			if a.Field != "" && a.Field != "email" && a.Field != "name" {
				prefix, key := splitField(a.Field)
				keys := DefaultManagedKeys.withOwn().App
				if prefix == "user_metadata" {
					keys = DefaultManagedKeys.withOwn().User
				}
				require.Contains(t, keys, key)
			}
		}
	})
}

func TestUsernameFor(t *testing.T) {
	t.Parallel()
	require.Equal(t, "ada.lovelace", usernameFor("Ada.Lovelace@example.com", 15))
	require.Equal(t, "averyveryverylo", usernameFor("averyveryverylongname@example.com", 15))
	require.Equal(t, "joesmith", usernameFor("joe+smith@x.io", 15), "+ is not allowed")
	require.Equal(t, "obrien_-2.x", usernameFor("O'Brien_-2.X!#@x.io", 15), "only letters, digits, _ . - are kept")
	require.Equal(t, "jos", usernameFor("josé@x.io", 15), "letters outside ASCII are dropped")
	require.Equal(t, "abc", usernameFor("abcdef@x.io", 3), "cut at max")
	require.Equal(t, "nodomain", usernameFor("nodomain", 15))
	require.Equal(t, "user", usernameFor("ü@x.io", 15))
	require.Equal(t, "user", usernameFor("+++@x.io", 15))
}

func TestNewPassword(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 200 {
		p := newPassword()
		require.Len(t, p, 24)
		require.True(t, strings.ContainsAny(p, "abcdefghijkmnopqrstuvwxyz"))
		require.True(t, strings.ContainsAny(p, "ABCDEFGHJKLMNPQRSTUVWXYZ"))
		require.True(t, strings.ContainsAny(p, "23456789"))
		require.True(t, strings.ContainsAny(p, "!@#$%^&*()-_=+[]{}"))
		require.False(t, seen[p])
		seen[p] = true
	}
}

func TestParseRoles(t *testing.T) {
	t.Parallel()
	m, err := ParseRoles("associate=production_associate, lead = Production Lead")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"associate": "production_associate", "lead": "Production Lead"}, m)
	for _, bad := range []string{"", "associate", "=x", "a=b,a=c"} {
		_, err := ParseRoles(bad)
		require.Error(t, err, bad)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, Config{}.WithDefaults().Validate())
	c := Config{Deprovision: "shred", Adopt: "maybe", Username: "full", Timezone: "Mars/Olympus"}.WithDefaults()
	err := c.Validate()
	require.ErrorContains(t, err, `Deprovision: must be block or delete, got "shred"`)
	require.ErrorContains(t, err, `Adopt: must be conflict or adopt, got "maybe"`)
	require.ErrorContains(t, err, `Username: must be off or local-part, got "full"`)
	require.ErrorContains(t, err, `Timezone: "Mars/Olympus" is not an IANA time zone`)
	// The setting's name travels in the error, typed.
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "Username", ce.Field, "the first problem")
	require.Equal(t, "full", ce.Value)
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		require.ErrorAs(t, e, &ce)
		fields = append(fields, ce.Field)
	}
	require.Equal(t, []string{"Username", "Deprovision", "Adopt", "Timezone"}, fields)
}
