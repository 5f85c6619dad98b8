package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxBody is Auth0's payload limit.
const maxBody = 1 << 20

// apiError is an error answer of the Management API:
// {"statusCode":404,"error":"Not Found","message":"…","errorCode":"…"}.
type apiError struct {
	StatusCode int    `json:"statusCode"`
	Error      string `json:"error"`
	Message    string `json:"message"`
	ErrorCode  string `json:"errorCode,omitempty"`
}

// errorf builds an apiError; code may be "" (Auth0 leaves errorCode out of
// some answers).
func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{StatusCode: status, Error: http.StatusText(status), Message: fmt.Sprintf(format, args...), ErrorCode: code}
}

// Common answers, worded as Auth0 words them.
func errUserNotFound() *apiError {
	return errorf(http.StatusNotFound, "inexistent_user", "The user does not exist.")
}

func errRoleNotFound() *apiError {
	return errorf(http.StatusNotFound, "", "The role does not exist.")
}

func errMissing(prop string) *apiError {
	return errorf(http.StatusBadRequest, "invalid_body", "Payload validation error: 'Missing required property: %s'.", prop)
}

func errExtra(prop string) *apiError {
	return errorf(http.StatusBadRequest, "invalid_body", "Payload validation error: 'Additional properties not allowed: %s'.", prop)
}

func errProp(prop, format string, args ...any) *apiError {
	desc := propDescriptions[prop]
	if desc != "" {
		desc = " (" + desc + ")"
	}
	return errorf(http.StatusBadRequest, "invalid_body", "Payload validation error: '%s' on property %s%s.", fmt.Sprintf(format, args...), prop, desc)
}

func errQuery(prop, format string, args ...any) *apiError {
	desc := queryDescriptions[prop]
	if desc != "" {
		desc = " (" + desc + ")"
	}
	return errorf(http.StatusBadRequest, "invalid_query_string", "Query validation error: '%s' on property %s%s.", fmt.Sprintf(format, args...), prop, desc)
}

var queryDescriptions = map[string]string{
	"per_page":       "Number of results per page.",
	"page":           "Page index of the results to return. First page is 0.",
	"include_totals": "Return results inside an object that contains the total result count (true) or as a direct array of results (false, default).",
	"email":          "Email address to search for (case-sensitive).",
	"take":           "Number of results per page. Defaults to 50.",
	"from":           "Optional Id from which to start selection.",
	"sort":           "Field to sort by. Use field:order where order is 1 for ascending and -1 for descending.",
}

var propDescriptions = map[string]string{
	"email":        "The user's email",
	"name":         "The user's full name",
	"nickname":     "The user's nickname",
	"given_name":   "The user's given name(s)",
	"family_name":  "The user's family name(s)",
	"username":     "The user's username. Only valid if the connection requires a username",
	"password":     "The user's password (mandatory for non SMS connections)",
	"phone_number": "The user's phone number (following the E.164 recommendation), only valid for users from SMS connections",
	"picture":      "A URI pointing to the user's picture",
	"user_id":      "The external user's id provided by the identity provider",
	"connection":   "The connection the user belongs to",
	"roles":        "List of roles IDs to associated with the user",
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"statusCode":500,"error":"Internal Server Error","message":"cannot encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, err *apiError) {
	writeJSON(w, err.StatusCode, err)
}

// oauthError is an error answer of the token endpoint.
type oauthError struct {
	status      int
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func writeOAuthError(w http.ResponseWriter, e oauthError) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, e.status, e)
}

// jsonKind names the JSON type of v as Auth0's validator does.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number, float64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}

// readObject decodes the request body as one JSON object, numbers kept exact.
func readObject(w http.ResponseWriter, r *http.Request) (map[string]any, *apiError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "", "Payload content length greater than maximum allowed: %d", maxBody)
		}
		return nil, errorf(http.StatusBadRequest, "", "Invalid request payload input")
	}
	v, err := decodeJSON(body)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "", "Invalid request payload JSON format")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errorf(http.StatusBadRequest, "invalid_body", "Payload validation error: 'Expected type object but found type %s'.", jsonKind(v))
	}
	return obj, nil
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// discardWriter takes an answer that will never be sent (a lost answer).
type discardWriter struct {
	header http.Header
	status int
}

func (d *discardWriter) Header() http.Header {
	if d.header == nil {
		d.header = http.Header{}
	}
	return d.header
}

func (d *discardWriter) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}

func (d *discardWriter) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return len(b), nil
}

// queryParams gives the parsed query of a request with Auth0's validation.
type queryParams struct {
	q   map[string][]string
	err *apiError
}

func (p *queryParams) has(name string) bool { _, ok := p.q[name]; return ok }

func (p *queryParams) str(name string) string {
	if v := p.q[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// int reads an integer parameter within [lo, hi] (hi < 0: no maximum).
func (p *queryParams) int(name string, def, lo, hi int) int {
	if p.err != nil || !p.has(name) {
		return def
	}
	s := p.str(name)
	n, ok := atoi(s)
	switch {
	case !ok:
		p.err = errQuery(name, "Expected type integer but found type string")
	case n < lo:
		p.err = errQuery(name, "Value %d is less than minimum %d", n, lo)
	case hi >= 0 && n > hi:
		p.err = errQuery(name, "Value %d is greater than maximum %d", n, hi)
	}
	return n
}

func (p *queryParams) bool(name string) bool {
	if p.err != nil || !p.has(name) {
		return false
	}
	switch p.str(name) {
	case "true":
		return true
	case "false":
		return false
	}
	p.err = errQuery(name, "Expected type boolean but found type string")
	return false
}

// fields reads fields/include_fields into a projection (nil = every field).
func (p *queryParams) fields() *projection {
	s := strings.TrimSpace(p.str("fields"))
	if s == "" {
		return nil
	}
	pr := &projection{include: true, names: map[string]bool{}}
	if p.has("include_fields") {
		pr.include = p.bool("include_fields")
	}
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			pr.names[f] = true
		}
	}
	return pr
}

func atoi(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n, neg := 0, false
	if s[0] == '-' {
		neg, s = true, s[1:]
		if s == "" {
			return 0, false
		}
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// projection is the fields/include_fields choice of a read.
type projection struct {
	include bool
	names   map[string]bool
}

func (p *projection) apply(doc map[string]any) map[string]any {
	if p == nil {
		return doc
	}
	out := make(map[string]any, len(p.names))
	for k, v := range doc {
		if p.names[k] == p.include {
			out[k] = v
		}
	}
	return out
}
