package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/syncd/syncd/reconcile"
)

// Actors recorded in auth0_sync_logs.response_data.actor.
const (
	actorPage = "console"
	actorAPI  = "console api"
)

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// apiErrorBody is every API error's body.
type apiErrorBody struct {
	Error      string   `json:"error"`
	UnknownIDs []string `json:"unknown_ids,omitempty"`
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiErrorBody{Error: msg})
}

// fail answers an error: the caller's mistakes are 4xx with the reason,
// the rest 500 with a generic message (logged).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, body := c.classify(r, err)
	writeJSON(w, code, body)
}

func (c *Console) classify(r *http.Request, err error) (int, apiErrorBody) {
	var unknown *reconcile.UnknownEmployeesError
	var refused *reconcile.LinkRefusedError
	switch {
	case errors.As(err, &unknown):
		return http.StatusNotFound, apiErrorBody{Error: err.Error(), UnknownIDs: unknown.IDs}
	case errors.Is(err, reconcile.ErrNoEmployee):
		return http.StatusNotFound, apiErrorBody{Error: err.Error()}
	case errors.As(err, &refused):
		return http.StatusUnprocessableEntity, apiErrorBody{Error: err.Error()}
	case errors.Is(err, errBadQuery), errors.Is(err, errBadID), errors.Is(err, reconcile.ErrNotAKey):
		return http.StatusBadRequest, apiErrorBody{Error: err.Error()}
	case errors.As(err, new(*http.MaxBytesError)):
		return http.StatusRequestEntityTooLarge, apiErrorBody{Error: fmt.Sprintf("request body larger than %d bytes", maxBody)}
	case errors.Is(err, errBadJSON):
		return http.StatusBadRequest, apiErrorBody{Error: err.Error()}
	}
	c.log.ErrorContext(r.Context(), "console request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	return http.StatusInternalServerError, apiErrorBody{Error: "internal error; see syncd's log"}
}

var (
	errBadID   = errors.New("bad employee id")
	errBadJSON = errors.New("malformed JSON body")
)

// pathID is the employee key of the path (the table's key, as text; the
// database says whether a row has it).
func pathID(r *http.Request) (string, error) {
	s := r.PathValue("id")
	if s == "" || len(s) > maxKeyLen {
		return "", fmt.Errorf("%w: %q is not an employee key", errBadID, s)
	}
	return s, nil
}

// maxKeyLen bounds the keys the console takes.
const maxKeyLen = 1024

// apiKey is an employee key in a JSON body: a string, or a number for an
// integer key.
type apiKey string

func (k *apiKey) UnmarshalJSON(b []byte) error {
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return err
	}
	s, ok := reconcile.KeyOf(v)
	if !ok || len(s) > maxKeyLen {
		return fmt.Errorf("%w: %s is not an employee key", errBadID, b)
	}
	*k = apiKey(s)
	return nil
}

// decode reads exactly one JSON object into v, refusing unknown fields.
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err // *http.MaxBytesError
	}
	return decodeBytes(body, v)
}

// decodeOptional is decode for a body that may also be empty.
func decodeOptional(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return decodeBytes(body, v)
}

func decodeBytes(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", errBadJSON, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: more than one JSON value", errBadJSON)
	}
	return nil
}

// GET /api/v1/status
func (c *Console) apiStatus(w http.ResponseWriter, r *http.Request) {
	st, err := c.status(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func listQuery(r *http.Request) (ListQuery, error) {
	v := r.URL.Query()
	q := ListQuery{Status: v.Get("status"), Search: v.Get("q")}
	q.After = v.Get("after")
	if len(q.After) > maxKeyLen {
		return q, fmt.Errorf("%w: after is longer than a key", errBadQuery)
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return q, fmt.Errorf("%w: limit must be 1..500, got %q", errBadQuery, s)
		}
		q.Limit = n
	}
	return q, nil
}

// GET /api/v1/employees?status=&q=&after=&limit=
func (c *Console) apiEmployees(w http.ResponseWriter, r *http.Request) {
	q, err := listQuery(r)
	if err == nil {
		var page *ListPage
		if page, err = c.listEmployees(r.Context(), q); err == nil {
			writeJSON(w, http.StatusOK, page)
			return
		}
	}
	c.fail(w, r, err)
}

// GET /api/v1/employees/{id}[?auth0=1]
func (c *Console) apiEmployee(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		var d *Detail
		if d, err = c.detail(r.Context(), id, r.URL.Query().Get("auth0") == "1"); err == nil {
			writeJSON(w, http.StatusOK, d)
			return
		}
	}
	c.fail(w, r, err)
}

// resyncAnswer is the answer of a resync request.
type resyncAnswer struct {
	Marked int64    `json:"marked"`
	IDs    []string `json:"ids"`
}

// POST /api/v1/employees/{id}/resync; the body may be empty, or the
// reference endpoint's {"force": bool}, which changes nothing: a resync
// always reads Auth0 first and never makes a second account.
func (c *Console) apiResyncOne(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		var req struct {
			Force *bool `json:"force"`
		}
		err = decodeOptional(r, &req)
	}
	if err == nil {
		err = c.resync(w, r, []string{id})
	}
	if err != nil {
		c.fail(w, r, err)
	}
}

// POST /api/v1/resync {"ids": [1, 2]}
func (c *Console) apiResync(w http.ResponseWriter, r *http.Request) {
	var req struct {
		IDs []apiKey `json:"ids"`
	}
	err := decode(r, &req)
	if err == nil && len(req.IDs) == 0 {
		err = fmt.Errorf("%w: ids must list at least one employee id", errBadJSON)
	}
	if err == nil && len(req.IDs) > 10000 {
		err = fmt.Errorf("%w: at most 10000 ids per request, got %d", errBadJSON, len(req.IDs))
	}
	if err == nil {
		ids := make([]string, len(req.IDs))
		for i, k := range req.IDs {
			ids[i] = string(k)
		}
		err = c.resync(w, r, ids)
	}
	if err != nil {
		c.fail(w, r, err)
	}
}

func (c *Console) resync(w http.ResponseWriter, r *http.Request, ids []string) error {
	n, err := reconcile.RequeueBy(r.Context(), c.cfg.Pool, ids, actorAPI)
	if err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "console: resync requested", "employees", n, "actor", actorAPI)
	writeJSON(w, http.StatusAccepted, resyncAnswer{Marked: n, IDs: ids})
	return nil
}

// POST /api/v1/employees/{id}/link {"auth0_user_id": "auth0|…"}
func (c *Console) apiLink(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	var req struct {
		UserID string `json:"auth0_user_id"`
	}
	if err == nil {
		err = decode(r, &req)
	}
	if err == nil {
		err = c.cfg.Reconciler.Link(r.Context(), id, req.UserID, actorAPI)
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.log.InfoContext(r.Context(), "console: account linked", "employee_id", id, "auth0_user_id", req.UserID, "actor", actorAPI)
	writeJSON(w, http.StatusAccepted, map[string]any{"employee_id": id, "auth0_user_id": req.UserID, "marked": 1})
}
