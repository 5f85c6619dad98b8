package console_test

import (
	"fmt"
	stdhtml "html"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers/pgtest"
)

// The console shows and takes the table's own keys: uuids, and text keys
// that need escaping in a URL.
func TestConsoleAnyKey(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"uuid", "text"} {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			b := setupOn(t, pgtest.NewKeyedDatabase(t, key))
			ids := []string{b.insert("Ada", "ada@example.com", "associate"), b.insert("Bo", "bo@example.com", "associate")}
			if key == "text" {
				b.exec(`INSERT INTO employees (id, name, email) VALUES ('HR/7 #1', 'Cy', 'cy@example.com')`)
				ids = append(ids, "HR/7 #1")
			}
			for _, id := range ids {
				require.Equal(t, "synced", b.reconcile(id).Status)
			}

			type page struct {
				Employees []struct {
					ID string `json:"id"`
				} `json:"employees"`
				NextAfter *string `json:"next_after"`
			}
			seen := map[string]bool{}
			path := "/api/v1/employees?limit=1"
			for {
				p := decodeJSON[page](t, mustCall(t, b, path))
				for _, e := range p.Employees {
					require.False(t, seen[e.ID], "keyset paging by %s keys shows each row once", key)
					seen[e.ID] = true
				}
				if p.NextAfter == nil {
					break
				}
				path = "/api/v1/employees?limit=1&after=" + url.QueryEscape(*p.NextAfter)
			}
			require.Len(t, seen, len(ids))

			for _, id := range ids {
				body := mustCall(t, b, "/api/v1/employees/"+url.PathEscape(id))
				require.Contains(t, body, fmt.Sprintf(`"id": %q`, id))
				code, body := b.call("POST", "/api/v1/resync", fmt.Sprintf(`{"ids":[%q]}`, id))
				require.Equal(t, 202, code, body)
			}
			code, body := b.call("POST", "/api/v1/resync", `{"ids":["nope"]}`)
			if key == "uuid" {
				require.Equal(t, 400, code, body)
				require.Contains(t, body, "is not an employee key (the employees key is uuid)")
			} else {
				require.Equal(t, 404, code, body)
				require.Contains(t, body, "no employee with id nope")
			}

			c := b.browser()
			code, html := get(t, c, b.srv.URL+"/employees")
			require.Equal(t, 200, code)
			for _, id := range ids {
				require.Contains(t, html, `href="/employees/`+strings.ReplaceAll(url.PathEscape(id), "#", "%23")+`"`)
				code, html := get(t, c, b.srv.URL+"/employees/"+url.PathEscape(id))
				require.Equal(t, 200, code, html)
				require.Contains(t, html, "Employee "+stdhtml.EscapeString(id))
			}
		})
	}
}
