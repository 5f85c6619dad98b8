package emulator_test

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/syncd/syncd/auth0/emulator"
)

// modelUser is what a small, obviously right model expects of a user.
type modelUser struct {
	email   string
	name    string
	blocked *bool
	app     map[string]any
	meta    map[string]any
	roles   map[string]bool
}

// TestModel runs random sequences of creates, patches, deletes and role
// changes over HTTP and checks that the emulator's observable state (and each
// answer's status) matches the model after every step.
func TestModel(t *testing.T) {
	t.Parallel()
	emails := []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com"}
	metaKeys := []string{"k1", "k2", "k3"}
	roleNames := []string{"production_associate", "production_lead"}

	rapid.Check(t, func(rt *rapid.T) {
		srv, err := emulator.Listen("127.0.0.1:0", emulator.Options{Roles: roleNames})
		require.NoError(rt, err)
		tr := &http.Transport{}
		defer func() {
			tr.CloseIdleConnections()
			_ = srv.Close()
		}()
		f := &fixture{t: rt, srv: srv, e: srv.Emulator, client: &http.Client{Transport: tr}}
		f.token = srv.Emulator.IssueToken(f.host())

		model := map[string]*modelUser{}
		var ids []string // every id ever created, deleted ones too

		metaPatch := func(rt *rapid.T, label string) map[string]any {
			n := rapid.IntRange(0, 3).Draw(rt, label+"_n")
			m := map[string]any{}
			for i := range n {
				k := rapid.SampledFrom(metaKeys).Draw(rt, fmt.Sprintf("%s_key%d", label, i))
				if rapid.Bool().Draw(rt, fmt.Sprintf("%s_null%d", label, i)) {
					m[k] = nil
				} else {
					m[k] = float64(rapid.IntRange(0, 9).Draw(rt, fmt.Sprintf("%s_val%d", label, i)))
				}
			}
			return m
		}
		// merge is the first-level merge; a PATCH with {} leaves an empty
		// user_metadata ({}, keepEmpty) but no app_metadata.
		merge := func(old map[string]any, patch map[string]any, keepEmpty bool) map[string]any {
			if len(patch) == 0 {
				if keepEmpty {
					return map[string]any{}
				}
				return nil
			}
			out := maps.Clone(old)
			if out == nil {
				out = map[string]any{}
			}
			for k, v := range patch {
				if v == nil {
					delete(out, k)
				} else {
					out[k] = v
				}
			}
			if len(out) == 0 {
				return nil
			}
			return out
		}
		emailTaken := func(email, except string) bool {
			for id, u := range model {
				if u.email == email && id != except {
					return true
				}
			}
			return false
		}
		pickID := func(rt *rapid.T) string {
			if len(ids) == 0 || rapid.IntRange(0, 9).Draw(rt, "unknown") == 0 {
				return "auth0|000000000000000000000000"
			}
			return rapid.SampledFrom(ids).Draw(rt, "id")
		}

		rt.Repeat(map[string]func(*rapid.T){
			"create": func(rt *rapid.T) {
				email := rapid.SampledFrom(emails).Draw(rt, "email")
				if rapid.Bool().Draw(rt, "upper") {
					email = strings.ToUpper(email)
				}
				body := map[string]any{"connection": emulator.DefaultConnection, "email": email, "password": goodPassword}
				app := metaPatch(rt, "app")
				for k, v := range app {
					if v == nil {
						delete(app, k)
					}
				}
				if len(app) > 0 {
					body["app_metadata"] = app
				}
				status, _, b := f.call(http.MethodPost, "/api/v2/users", body)
				lower := strings.ToLower(email)
				if emailTaken(lower, "") {
					require.Equal(rt, http.StatusConflict, status, string(b))
					return
				}
				require.Equal(rt, http.StatusCreated, status, string(b))
				id := decodeObj(rt, b)["user_id"].(string)
				ids = append(ids, id)
				mu := &modelUser{email: lower, name: lower, roles: map[string]bool{}}
				if len(app) > 0 {
					mu.app = app
				}
				model[id] = mu
			},
			"patch": func(rt *rapid.T) {
				id := pickID(rt)
				body := map[string]any{}
				if rapid.Bool().Draw(rt, "set_name") {
					body["name"] = rapid.SampledFrom([]string{"Ann", "Bob", "Cy"}).Draw(rt, "name")
				}
				if rapid.Bool().Draw(rt, "set_blocked") {
					body["blocked"] = rapid.Bool().Draw(rt, "blocked")
				}
				if rapid.Bool().Draw(rt, "set_app") {
					body["app_metadata"] = metaPatch(rt, "app")
				}
				if rapid.Bool().Draw(rt, "set_meta") {
					body["user_metadata"] = metaPatch(rt, "meta")
				}
				if rapid.IntRange(0, 3).Draw(rt, "set_email") == 0 {
					body["email"] = rapid.SampledFrom(emails).Draw(rt, "new_email")
				}
				status, _, b := f.call(http.MethodPatch, userPath(id), body)
				mu := model[id]
				switch {
				case len(body) == 0:
					require.Equal(rt, http.StatusBadRequest, status, string(b))
				case mu == nil:
					require.Equal(rt, http.StatusNotFound, status, string(b))
				case body["email"] != nil && emailTaken(body["email"].(string), id):
					require.Equal(rt, http.StatusBadRequest, status, string(b))
				default:
					require.Equal(rt, http.StatusOK, status, string(b))
					if v, ok := body["name"]; ok {
						mu.name = v.(string)
					}
					if v, ok := body["blocked"]; ok {
						bv := v.(bool)
						mu.blocked = &bv
					}
					if v, ok := body["app_metadata"]; ok {
						mu.app = merge(mu.app, v.(map[string]any), false)
					}
					if v, ok := body["user_metadata"]; ok {
						mu.meta = merge(mu.meta, v.(map[string]any), true)
					}
					if v, ok := body["email"]; ok {
						mu.email = v.(string)
					}
				}
			},
			"delete": func(rt *rapid.T) {
				id := pickID(rt)
				status, _, _ := f.call(http.MethodDelete, userPath(id), nil)
				require.Equal(rt, http.StatusNoContent, status)
				delete(model, id)
			},
			"roles": func(rt *rapid.T) {
				id := pickID(rt)
				name := rapid.SampledFrom(roleNames).Draw(rt, "role")
				add := rapid.Bool().Draw(rt, "add")
				method := http.MethodDelete
				if add {
					method = http.MethodPost
				}
				status, _, b := f.call(method, userPath(id)+"/roles", map[string]any{"roles": []string{srv.Emulator.RoleID(name)}})
				mu := model[id]
				if mu == nil {
					require.Equal(rt, http.StatusNotFound, status, string(b))
					return
				}
				require.Equal(rt, http.StatusNoContent, status, string(b))
				if add {
					mu.roles[name] = true
				} else {
					delete(mu.roles, name)
				}
			},
			"": func(rt *rapid.T) {
				users := srv.Emulator.Users()
				require.Len(rt, users, len(model))
				for _, u := range users {
					id := u["user_id"].(string)
					mu := model[id]
					require.NotNil(rt, mu, id)
					require.Equal(rt, mu.email, u["email"])
					require.Equal(rt, mu.name, u["name"])
					if mu.blocked == nil {
						require.NotContains(rt, u, "blocked")
					} else {
						require.Equal(rt, *mu.blocked, u["blocked"])
					}
					requireMeta(rt, mu.app, u["app_metadata"])
					requireMeta(rt, mu.meta, u["user_metadata"])
					require.Equal(rt, append([]string{}, slices.Sorted(maps.Keys(mu.roles))...), srv.Emulator.UserRoles(id))
				}
			},
		})
	})
}

func requireMeta(t tester, want map[string]any, got any) {
	t.Helper()
	if want == nil {
		require.Nil(t, got)
		return
	}
	require.Equal(t, want, got)
}

func decodeObj(t tester, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, jsonUnmarshal(b, &m))
	return m
}
