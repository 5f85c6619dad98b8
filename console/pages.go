package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/syncd/syncd/reconcile"
)

var funcs = template.FuncMap{
	// keypath is an employee key as one URL path segment (a text key may
	// hold '/', '?' or '#').
	"keypath": url.PathEscape,
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return roundDuration(time.Since(t)) + " ago"
	},
	"seconds": func(s float64) string { return roundDuration(time.Duration(s * float64(time.Second))) },
	"when": func(t *time.Time) string {
		if t == nil {
			return "—"
		}
		return t.Local().Format("2006-01-02 15:04:05")
	},
	"at": func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") },
	"str": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"json": func(v any) string {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err.Error()
		}
		return string(b)
	},
	"raw": func(b json.RawMessage) string {
		if len(b) == 0 {
			return ""
		}
		var out bytes.Buffer
		if json.Compact(&out, b) != nil {
			return string(b)
		}
		return out.String()
	},
	"bytes": func(n int64) string {
		switch {
		case n >= 1<<30:
			return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d B", n)
	},
}

func roundDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// render executes page with data into a buffer first, so that a template
// error is a clean 500, not half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, page string, data map[string]any) {
	if s := sessionOf(r.Context()); s != nil {
		data["CSRF"] = s.csrf
		data["LoggedIn"] = true
	}
	var buf bytes.Buffer
	if err := c.pages[page].Execute(&buf, data); err != nil {
		c.log.ErrorContext(r.Context(), "console template", "page", page, "error", err)
		http.Error(w, "500 internal error; see syncd's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// pageError shows err as a page with the status the API would answer.
func (c *Console) pageError(w http.ResponseWriter, r *http.Request, err error) {
	code, body := c.classify(r, err)
	c.render(w, r, code, "error", map[string]any{"Title": http.StatusText(code), "Code": code, "Message": body.Error})
}

type countRow struct {
	Status string
	N      int64
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	st, err := c.status(r.Context())
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	var counts []countRow
	var total int64
	for _, s := range Statuses {
		counts = append(counts, countRow{s, st.Counts[s]})
		total += st.Counts[s]
	}
	c.render(w, r, http.StatusOK, "overview", map[string]any{"Title": "Overview", "S": st, "Counts": counts, "Total": total,
		"Chart": newChart(st.History, c.cfg.SampleEvery)})
}

func (c *Console) employeesPage(w http.ResponseWriter, r *http.Request) {
	q, err := listQuery(r)
	var page *ListPage
	if err == nil {
		page, err = c.listEmployees(r.Context(), q)
	}
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	data := map[string]any{"Title": "Employees", "Q": q, "Page": page, "Statuses": Statuses}
	if page.NextAfter != nil {
		v := url.Values{"after": {*page.NextAfter}}
		if q.Status != "" {
			v.Set("status", q.Status)
		}
		if q.Search != "" {
			v.Set("q", q.Search)
		}
		data["Next"] = "/employees?" + v.Encode()
	}
	if q.After != "" {
		v := url.Values{}
		if q.Status != "" {
			v.Set("status", q.Status)
		}
		if q.Search != "" {
			v.Set("q", q.Search)
		}
		data["First"] = "/employees?" + v.Encode()
	}
	c.render(w, r, http.StatusOK, "employees", data)
}

func (c *Console) employeePage(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	var d *Detail
	if err == nil {
		d, err = c.detail(r.Context(), id, r.URL.Query().Get("auth0") == "1")
	}
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	data := map[string]any{"Title": "Employee " + d.Employee.ID, "D": d, "E": d.Employee, "Notice": r.URL.Query().Get("done")}
	switch d.Employee.Status {
	case reconcile.StatusPending, reconcile.StatusSyncing:
		// Watch it converge: reload (without the Auth0 read) until it settles.
		data["Refresh"] = "2; url=" + employeePath(d.Employee.ID)
	}
	c.render(w, r, http.StatusOK, "employee", data)
}

func (c *Console) syncForm(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		_, err = reconcile.RequeueBy(r.Context(), c.cfg.Pool, []string{id}, actorPage)
	}
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	c.log.InfoContext(r.Context(), "console: resync requested", "employee_id", id, "actor", actorPage)
	http.Redirect(w, r, employeePath(id)+"?done=sync", http.StatusSeeOther)
}

func (c *Console) linkForm(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	userID := r.PostForm.Get("auth0_user_id")
	if err == nil {
		err = c.cfg.Reconciler.Link(r.Context(), id, userID, actorPage)
	}
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	c.log.InfoContext(r.Context(), "console: account linked", "employee_id", id, "auth0_user_id", userID, "actor", actorPage)
	http.Redirect(w, r, employeePath(id)+"?done=link", http.StatusSeeOther)
}

// employeePath is the page of employee key.
func employeePath(key string) string { return "/employees/" + url.PathEscape(key) }
