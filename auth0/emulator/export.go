package emulator

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// job is a users-export job. Its file is made when the job is created (a
// snapshot of that moment) and offered once it is due.
type job struct {
	id        string
	created   time.Time // tenant clock
	readyAt   time.Time // real clock
	conn      *connection
	format    string
	limit     int
	fields    []any
	file      []byte // gzipped
	usersSeen int
}

// Export links are valid this long and jobs are kept this long (Auth0's).
const (
	exportLinkTTL = 60 * time.Second
	jobTTL        = 24 * time.Hour
)

var (
	connectionIDRe = regexp.MustCompile(`^con_[A-Za-z0-9]{16}$`)
	indexedSegRe   = regexp.MustCompile(`^([^\[\]]+)\[([0-9]+)\]$`)
)

func (j *job) render() map[string]any {
	doc := map[string]any{
		"type": "users_export", "status": "pending", "format": j.format,
		"created_at": ts(j.created), "id": j.id,
	}
	if j.conn != nil {
		doc["connection_id"] = j.conn.id
		doc["connection"] = j.conn.name
	}
	if j.limit > 0 {
		doc["limit"] = j.limit
	}
	if j.fields != nil {
		doc["fields"] = j.fields
	}
	return doc
}

// createExport is POST /api/v2/jobs/users-exports: 200 with a pending job.
func (e *Emulator) createExport(w http.ResponseWriter, r *http.Request, _ *call) {
	body, aerr := readObject(w, r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	for _, k := range slices.Sorted(maps.Keys(body)) {
		if !slices.Contains([]string{"connection_id", "format", "limit", "fields"}, k) {
			writeError(w, errExtra(k))
			return
		}
	}
	j := &job{id: "job_" + randomAlnum(16), created: e.now(), readyAt: time.Now().Add(e.opts.ExportDelay), format: "json"}
	if v, ok := body["connection_id"]; ok {
		s, _ := v.(string)
		if !connectionIDRe.MatchString(s) {
			writeError(w, errProp("connection_id", "String does not match pattern ^con_[A-Za-z0-9]{16}$: %v", v))
			return
		}
		if j.conn = e.connectionByID(s); j.conn == nil {
			writeError(w, errorf(http.StatusNotFound, "inexistent_connection", "The connection does not exist."))
			return
		}
	}
	if v, ok := body["format"]; ok {
		s, _ := v.(string)
		if s != "json" && s != "csv" {
			writeError(w, errProp("format", "No enum match for: %v", v))
			return
		}
		j.format = s
	}
	if v, ok := body["limit"]; ok {
		n, err := strconv.Atoi(stringOf(v))
		if err != nil || n < 1 {
			writeError(w, errProp("limit", "Value %v is less than minimum 1", v))
			return
		}
		j.limit = n
	}
	type field struct{ name, as string }
	var fields []field
	if v, ok := body["fields"]; ok {
		arr, ok := v.([]any)
		if !ok || len(arr) == 0 {
			writeError(w, errProp("fields", "Expected a non-empty array"))
			return
		}
		for _, x := range arr {
			m, ok := x.(map[string]any)
			name, _ := m["name"].(string)
			as, _ := m["export_as"].(string)
			if !ok || name == "" {
				writeError(w, errProp("fields", "Each field needs a name"))
				return
			}
			fields = append(fields, field{name, as})
		}
		j.fields = arr
	}
	if j.format == "csv" {
		if len(fields) > 30 {
			writeError(w, errorf(http.StatusBadRequest, "invalid_body", "Payload validation error: a CSV export can have at most 30 fields, got %d.", len(fields)))
			return
		}
		for _, f := range fields {
			if f.name == "app_metadata" || f.name == "user_metadata" {
				writeError(w, errorf(http.StatusBadRequest, "invalid_body", "Payload validation error: a CSV export cannot include the whole %s; name its fields (%s.key).", f.name, f.name))
				return
			}
		}
		if len(fields) == 0 {
			for _, n := range []string{"user_id", "email", "name", "created_at"} {
				fields = append(fields, field{name: n})
			}
		}
	}

	e.mu.Lock()
	all := slices.SortedFunc(maps.Values(e.users), func(a, b *user) int { return cmp.Compare(a.seq, b.seq) })
	var docs []map[string]any
	for _, u := range all {
		if j.conn == nil || u.conn == j.conn {
			docs = append(docs, u.render())
		}
		if j.limit > 0 && len(docs) == j.limit {
			break
		}
	}
	e.mu.Unlock()

	var raw bytes.Buffer
	if j.format == "csv" {
		cw := csv.NewWriter(&raw)
		header := make([]string, len(fields))
		for i, f := range fields {
			header[i] = cmp.Or(f.as, f.name)
		}
		_ = cw.Write(header)
		for _, d := range docs {
			row := make([]string, len(fields))
			for i, f := range fields {
				if v, ok := exportValue(d, f.name); ok {
					row[i] = csvEscape(stringOf(v))
				}
			}
			_ = cw.Write(row)
		}
		cw.Flush()
	} else {
		enc := json.NewEncoder(&raw)
		for _, d := range docs {
			line := d
			if fields != nil {
				line = map[string]any{}
				for _, f := range fields {
					if v, ok := exportValue(d, f.name); ok {
						line[cmp.Or(f.as, f.name)] = v
					}
				}
			}
			_ = enc.Encode(line)
		}
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(raw.Bytes())
	_ = zw.Close()
	j.file, j.usersSeen = gz.Bytes(), len(docs)

	e.mu.Lock()
	for id, old := range e.jobs {
		if e.now().Sub(old.created) > jobTTL {
			delete(e.jobs, id)
		}
	}
	e.jobs[j.id] = j
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, j.render())
}

// exportValue resolves a field name of the user profile structure:
// "email", "app_metadata", "app_metadata.key", "identities[0].connection".
// Roles are not part of the profile, so "roles" is never found.
func exportValue(doc map[string]any, name string) (any, bool) {
	var cur any = doc
	for seg := range strings.SplitSeq(name, ".") {
		idx := -1
		if m := indexedSegRe.FindStringSubmatch(seg); m != nil {
			seg = m[1]
			idx, _ = strconv.Atoi(m[2])
		}
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[seg]; !ok {
			return nil, false
		}
		if idx >= 0 {
			arr, ok := cur.([]any)
			if !ok || idx >= len(arr) {
				return nil, false
			}
			cur = arr[idx]
		}
	}
	return cur, true
}

func stringOf(v any) string {
	if s, ok := scalarString(v); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// csvEscape defuses formulas, as Auth0's OWASP escaping does.
func csvEscape(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// getJob is GET /api/v2/jobs/{id}.
func (e *Emulator) getJob(w http.ResponseWriter, r *http.Request, _ *call) {
	if e.serveImportJob(w, r.PathValue("id")) {
		return
	}
	e.mu.Lock()
	j := e.jobs[r.PathValue("id")]
	e.mu.Unlock()
	if j == nil || e.now().Sub(j.created) > jobTTL {
		writeError(w, errorf(http.StatusNotFound, "inexistent_job", "Job not found."))
		return
	}
	doc := j.render()
	if time.Now().Before(j.readyAt) {
		doc["status"] = "processing"
		doc["percentage_done"] = 0
		doc["time_left_seconds"] = max(1, int(time.Until(j.readyAt).Seconds()))
		writeJSON(w, http.StatusOK, doc)
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	exp := e.now().Add(exportLinkTTL).Unix()
	doc["status"] = "completed"
	doc["percentage_done"] = 100
	doc["time_left_seconds"] = 0
	doc["summary"] = map[string]any{"failed": 0, "updated": 0, "inserted": 0, "total": j.usersSeen}
	doc["location"] = scheme + "://" + r.Host + "/exports/" + j.id + "." + strconv.FormatInt(exp, 10) + "." + e.linkSig(j.id, exp)
	writeJSON(w, http.StatusOK, doc)
}

func (e *Emulator) linkSig(jobID string, exp int64) string {
	mac := hmac.New(sha256.New, e.key)
	mac.Write([]byte("export:" + jobID + ":" + strconv.FormatInt(exp, 10)))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// serveExport is the download of an export file: a signed link valid 60 s,
// no bearer token (Auth0's are pre-signed storage URLs). The file is gzipped
// NDJSON (or CSV) served as is, with no Content-Encoding.
func (e *Emulator) serveExport(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	defer func() { e.record(EndpointExport, sw.status) }()
	parts := strings.Split(r.PathValue("file"), ".")
	denied := func(msg string) {
		sw.Header().Set("Content-Type", "application/xml")
		sw.WriteHeader(http.StatusForbidden)
		_, _ = sw.Write([]byte("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>" + msg + "</Message></Error>"))
	}
	if len(parts) != 3 {
		denied("Access Denied")
		return
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || !hmac.Equal([]byte(parts[2]), []byte(e.linkSig(parts[0], exp))) {
		denied("Access Denied")
		return
	}
	if e.now().Unix() > exp {
		denied("Request has expired")
		return
	}
	e.mu.Lock()
	j := e.jobs[parts[0]]
	e.mu.Unlock()
	if j == nil {
		sw.WriteHeader(http.StatusNotFound)
		return
	}
	ext := ".json.gz"
	if j.format == "csv" {
		ext = ".csv.gz"
	}
	sw.Header().Set("Content-Type", "application/gzip")
	sw.Header().Set("Content-Disposition", `attachment; filename="`+strings.ReplaceAll(strings.Split(r.Host, ":")[0], `"`, "")+ext+`"`)
	sw.Header().Set("Content-Length", strconv.Itoa(len(j.file)))
	sw.WriteHeader(http.StatusOK)
	_, _ = sw.Write(j.file)
}
