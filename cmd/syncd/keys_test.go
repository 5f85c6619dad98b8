package main

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

// keyOf returns an inserted row's key as syncd carries it (id::text) and as
// app_metadata.employee_id carries it once decoded (a float64 for an integer
// key, a string otherwise).
func (x *e2e) insertKeyed(name, email string) (key string, value any) {
	x.t.Helper()
	var raw []byte
	require.NoError(x.t, x.pool.QueryRow(x.ctx, `INSERT INTO employees (name, email) VALUES ($1, $2) RETURNING id::text, to_jsonb(id)::text`,
		name, email).Scan(&key, &raw))
	require.NoError(x.t, json.Unmarshal(raw, &value))
	return key, value
}

// The whole life of an employee, on an employees table keyed by bigint, uuid
// or text, through both change sources: create (app_metadata.employee_id is
// the table's own key, typed), change, drift healed, an orphan blocked, a
// deleted row's account blocked, a leaver blocked, and the CLI taking the
// table's keys.
func TestEndToEndAnyKey(t *testing.T) {
	t.Parallel()
	for _, key := range pgtest.Keys {
		for _, source := range []string{"notify", "replication"} {
			t.Run(key+"/"+source, func(t *testing.T) {
				t.Parallel()
				x := newE2EOn(t, emulator.Options{}, pgtest.NewKeyedDatabase(t, key))
				// An orphan, a deleted row and a leaver: three deprovisions of
				// four accounts.
				d := x.start(source, emulator.DefaultClientSecret, "--resync-interval", "1s", "--max-deprovision", "10", "--deprovision-settle", "200ms")
				running := true
				defer func() {
					if running {
						d.stop(t)
					}
				}()

				ada, adaValue := x.insertKeyed("Ada Lovelace", "ada@example.com")
				uid := x.waitStatus(ada, "synced")
				u := x.user(uid)
				require.Equal(t, adaValue, u["app_metadata"].(map[string]any)["employee_id"], "the account names its row by the table's key")
				require.Equal(t, adaValue, u["user_metadata"].(map[string]any)["employee_id"])
				if key == "bigint" {
					require.IsType(t, float64(0), adaValue, "an integer key stays a JSON number")
				} else {
					require.Equal(t, ada, adaValue, "a %s key is a string", key)
				}

				x.exec(`UPDATE employees SET role_code = 'lead' WHERE id = $1`, ada)
				require.True(t, assertEventually(func() bool {
					r := x.emu.Emulator.UserRoles(uid)
					return len(r) == 1 && r[0] == "production_lead"
				}, 30*time.Second), "role swapped")
				x.waitStatus(ada, "synced")

				// Drift: an account deleted by hand is made again; an account
				// that names a key no row has is an orphan, blocked.
				bo, _ := x.insertKeyed("Bo", "bo@example.com")
				boUID := x.waitStatus(bo, "synced")
				cy, _ := x.insertKeyed("Cy", "cy@example.com")
				cyUID := x.waitStatus(cy, "synced")
				require.NoError(t, x.api.DeleteUser(x.ctx, cyUID))
				ghostKey := map[string]any{"bigint": 999999, "uuid": "00000000-0000-4000-8000-000000000000", "text": "E-99999"}[key]
				ghost, err := x.api.CreateUser(x.ctx, auth0.CreateUserRequest{Connection: "Username-Password-Authentication", Email: "ghost@example.com",
					Password: "Str0ng!Passw0rd", AppMetadata: map[string]any{"employee_id": ghostKey, "created_by": "productivity_system"}})
				require.NoError(t, err)
				require.True(t, assertEventually(func() bool {
					_, newCy, _ := x.status(cy)
					g := x.user(ghost.UserID)
					return newCy != "" && newCy != cyUID && x.user(newCy) != nil && g != nil && g["blocked"] == true
				}, 60*time.Second), "drift healed and the orphan blocked by the scan")

				// A deleted row's account and a leaver's are blocked.
				x.exec(`DELETE FROM employees WHERE id = $1`, bo)
				x.exec(`UPDATE employees SET active = false WHERE id = $1`, ada)
				x.waitStatus(ada, "deprovisioned")
				require.True(t, assertEventually(func() bool {
					b := x.user(boUID)
					return b != nil && b["blocked"] == true
				}, 30*time.Second), "the deleted row's account is blocked")
				require.Equal(t, true, x.user(uid)["blocked"])

				// The CLI takes the table's keys and names what is not one.
				out, err := x.cli("resync", "--employee", cy)
				require.NoError(t, err)
				require.Contains(t, out, "marked 1 employee pending")
				x.waitStatus(cy, "synced")
				_, err = x.cli("resync", "--employee", "not a key")
				if key == "text" {
					require.Error(t, err, "a text key that no row has")
				} else {
					require.ErrorContains(t, err, `"not a key" is not an employee key (the employees key is `+key+`)`)
				}
				out, err = x.cli("status", "--json")
				require.NoError(t, err)
				require.Contains(t, out, `"counts"`)
				// Drift on one row, with the daemon stopped (its scan would
				// heal it): plan names it by its key and prints the resync
				// line that takes it.
				cyUID = x.waitStatus(cy, "synced")
				d.stop(t)
				running = false
				_, err = x.api.UpdateUser(x.ctx, cyUID, auth0.UpdateUserRequest{AppMetadata: map[string]any{"department": "Hacked"}})
				require.NoError(t, err)
				out, err = x.cli("plan", "--json")
				require.NoError(t, err)
				var plan struct {
					Plan []struct {
						EmployeeID string `json:"employee_id"`
					} `json:"plan"`
					Apply string `json:"apply"`
				}
				require.NoError(t, json.Unmarshal([]byte(out), &plan), out)
				require.Len(t, plan.Plan, 1, out)
				require.Equal(t, cy, plan.Plan[0].EmployeeID)
				require.Equal(t, "syncd resync --employee "+cy, plan.Apply)
			})
		}
	}
}

// keyTexts is integer keys as syncd writes them in JSON.
func keyTexts(ids []int64) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.FormatInt(id, 10)
	}
	return out
}
