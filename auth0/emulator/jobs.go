package emulator

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Users-import jobs (auth0-bulk.md §1): POST /api/v2/jobs/users-imports
// takes a multipart upload of a JSON array of users; the job then inserts
// them one by one at the plan's import speed. There is no goroutine: a job
// advances whenever the emulator answers an API request (or ImportJobs is
// read), by as many users as the time elapsed allows, so what a client
// observes (users appearing one by one, percentage_done, the final summary)
// is what a worker would produce, and a test leaks nothing.

// Import speeds of the plan presets, in users per second for the whole
// tenant: the jobs running at once share it. Auth0 publishes none; these
// follow its staff's estimates (auth0-bulk.md §1.11): about 400k users an
// hour on the enterprise import tier with two jobs in parallel (≈ 111
// users/s), the production tier a third of that, free a tenth.
const (
	ImportRateEnterprise   = 111.0
	ImportRateProfessional = 37.0
	ImportRateFree         = 11.0
	ImportRateUnlimited    = 20_000.0
)

// Import limits, as Auth0's.
const (
	maxImportBody      = 512_000
	maxActiveImports   = 2
	importJobTimeout   = 2 * time.Hour
	maxImportProfile   = 10 * 1024
	tooManyImportsText = "There are 2 active import users jobs, please wait until some of them are finished and try again"
)

// ImportFaults are failures of import jobs, injected with SetImportFaults
// (or PUT /admin/imports). A lost 202 is a scripted fault (Faults.Script,
// LoseAnswer on "POST /api/v2/jobs/users-imports"): the job runs anyway.
type ImportFaults struct {
	// FailNext makes the next FailNext jobs created fail whole: after
	// FailAfter users are inserted, the job's status becomes failed, with no
	// summary, and /errors answers 204 (auth0.net#443).
	FailNext  int `json:"fail_next"`
	FailAfter int `json:"fail_after"`
	// Slow divides the import speed of jobs created from now on (> 1 = slower).
	Slow float64 `json:"slow"`
}

// importJob is a users-import job.
type importJob struct {
	id         string
	conn       *connection
	created    time.Time // tenant clock
	start      time.Time // real clock: processing begins
	rate       float64   // users per second of the tenant, shared with the other running jobs
	progress   float64   // users due so far
	lastAt     time.Time // real clock: progress is counted up to here
	share      float64   // users per second this job got at the last advance
	users      []any     // nil with parseErr set: the file was not a JSON array
	parseErr   bool
	upsert     bool
	externalID string
	next       int // users processed
	inserted   int
	updated    int
	errs       []map[string]any
	status     string // pending, processing, completed, failed
	failAfter  int    // -1 = never fails whole
}

type importState struct {
	jobs   map[string]*importJob
	faults ImportFaults
	delay  time.Duration
}

// SetImportFaults replaces the import faults at run time.
func (e *Emulator) SetImportFaults(f ImportFaults) {
	e.mu.Lock()
	e.importsLocked().faults = f
	e.mu.Unlock()
}

// SetImportDelay makes jobs created from now on stay pending this long (real
// time) before they process their first user.
func (e *Emulator) SetImportDelay(d time.Duration) {
	e.mu.Lock()
	e.importsLocked().delay = d
	e.mu.Unlock()
}

// StartImportJobs ends the wait of every job still held pending by the
// import delay: they start processing now.
func (e *Emulator) StartImportJobs() {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	for _, j := range e.importsLocked().jobs {
		if j.start.After(now) {
			j.start = now
		}
	}
}

func (e *Emulator) importsLocked() *importState {
	if e.imports == nil {
		e.imports = &importState{jobs: map[string]*importJob{}}
	}
	return e.imports
}

// ImportJob is an import job as ImportJobs reports it.
type ImportJob struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Total    int    `json:"total"`
	Inserted int    `json:"inserted"`
	Failed   int    `json:"failed"`
}

// ImportJobs returns every import job, oldest first, after advancing them.
func (e *Emulator) ImportJobs() []ImportJob {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advanceImportsLocked()
	var out []ImportJob
	for _, j := range e.importsLocked().jobs {
		out = append(out, ImportJob{ID: j.id, Status: j.status, Total: len(j.users), Inserted: j.inserted, Failed: len(j.errs)})
	}
	slices.SortFunc(out, func(a, b ImportJob) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// importRate is the speed of the plan in effect.
func (e *Emulator) importRate() float64 {
	e.rateMu.Lock()
	plan := e.rateSetting.Plan
	e.rateMu.Unlock()
	if e.opts.ImportRate > 0 {
		return e.opts.ImportRate
	}
	switch plan {
	case PlanEnterprise:
		return ImportRateEnterprise
	case PlanProfessional:
		return ImportRateProfessional
	case PlanFree:
		return ImportRateFree
	}
	return ImportRateUnlimited
}

// advanceImports moves every running job on to the present.
func (e *Emulator) advanceImports() {
	e.mu.Lock()
	e.advanceImportsLocked()
	e.mu.Unlock()
}

func (e *Emulator) advanceImportsLocked() {
	if e.imports == nil {
		return
	}
	now := time.Now()
	var running []*importJob
	for _, j := range e.imports.jobs {
		if j.status != "pending" && j.status != "processing" {
			continue
		}
		if now.Before(j.start) {
			continue
		}
		if j.parseErr {
			j.status = "failed"
			continue
		}
		if now.Sub(j.start) > importJobTimeout {
			j.status = "failed"
			continue
		}
		running = append(running, j)
	}
	for _, j := range running {
		j.status = "processing"
		// The tenant's speed is shared by the jobs running now (the
		// interval since the last advance is short: every API request
		// advances the jobs).
		j.share = j.rate / float64(len(running))
		from := j.start
		if j.lastAt.After(from) {
			from = j.lastAt
		}
		j.progress += now.Sub(from).Seconds() * j.share
		j.lastAt = now
		due := min(len(j.users), int(math.Floor(j.progress)))
		for j.next < due {
			if j.failAfter >= 0 && j.next >= j.failAfter {
				j.status = "failed"
				break
			}
			e.importOneLocked(j, j.users[j.next])
			j.next++
		}
		if j.status == "processing" && j.next == len(j.users) {
			if j.failAfter >= 0 && j.failAfter <= j.next {
				j.status = "failed"
			} else {
				j.status = "completed"
			}
		}
	}
}

// Properties of the import schema (auth0-bulk.md §1.3, additionalProperties false).
var (
	importProps = set("email", "email_verified", "phone_number", "phone_verified", "user_id", "username", "given_name",
		"family_name", "name", "nickname", "picture", "blocked", "password_hash", "custom_password_hash",
		"app_metadata", "user_metadata", "mfa_factors")
	importReservedApp = set("__tenant", "_id", "blocked", "clientID", "created_at", "email_verified", "email", "globalClientID",
		"global_client_id", "identities", "lastIP", "lastLogin", "loginsCount", "metadata", "multifactor_last_modified",
		"multifactor", "updated_at", "user_id")
)

func importError(j *importJob, u any, code, msg, path string) {
	item := map[string]any{"code": code, "message": msg}
	if path != "" {
		item["path"] = path
	}
	doc := map[string]any{"user": redactHashes(u), "errors": []any{item}}
	j.errs = append(j.errs, doc)
}

func redactHashes(u any) any {
	m, ok := u.(map[string]any)
	if !ok {
		return u
	}
	out := maps.Clone(m)
	if _, ok := out["password_hash"]; ok {
		out["password_hash"] = "*****"
	}
	if h, ok := out["custom_password_hash"].(map[string]any); ok {
		h = maps.Clone(h)
		if hv, ok := h["hash"].(map[string]any); ok {
			hv = maps.Clone(hv)
			hv["value"] = "*****"
			h["hash"] = hv
		}
		out["custom_password_hash"] = h
	}
	return out
}

// importOneLocked validates one user of a job and inserts it.
func (e *Emulator) importOneLocked(j *importJob, raw any) {
	u, ok := raw.(map[string]any)
	if !ok {
		importError(j, raw, "INVALID_TYPE", "Expected type object but found type "+jsonKind(raw), "")
		return
	}
	for _, k := range slices.Sorted(maps.Keys(u)) {
		if !importProps[k] {
			// The validator's code for an extra property is not documented
			// (auth0-bulk.md §1.7); this is the JSON-schema validator's.
			importError(j, u, "OBJECT_ADDITIONAL_PROPERTIES", "Additional properties not allowed: "+k, k)
			return
		}
	}
	email, ok := u["email"].(string)
	if !ok {
		if _, has := u["email"]; has {
			importError(j, u, "INVALID_TYPE", "Expected type string but found type "+jsonKind(u["email"]), "email")
		} else {
			importError(j, u, "OBJECT_REQUIRED", "Missing required property: email", "email")
		}
		return
	}
	if !emailRe.MatchString(email) {
		importError(j, u, "FORMAT", "Object didn't pass validation for format email: "+email, "email")
		return
	}
	for _, k := range []string{"user_id", "username", "given_name", "family_name", "name", "nickname", "picture", "phone_number", "password_hash"} {
		if v, has := u[k]; has {
			s, ok := v.(string)
			if !ok {
				importError(j, u, "INVALID_TYPE", "Expected type string but found type "+jsonKind(v), k)
				return
			}
			if l, ok := lengths[k]; ok && utf8.RuneCountInString(s) > l[1] {
				importError(j, u, "MAX_LENGTH", "String is too long", k)
				return
			}
		}
	}
	for _, k := range []string{"email_verified", "phone_verified", "blocked"} {
		if v, has := u[k]; has && jsonKind(v) != "boolean" {
			importError(j, u, "INVALID_TYPE", "Expected type boolean but found type "+jsonKind(v), k)
			return
		}
	}
	for _, k := range []string{"app_metadata", "user_metadata"} {
		if v, has := u[k]; has && jsonKind(v) != "object" {
			importError(j, u, "INVALID_TYPE", "Expected type object but found type "+jsonKind(v), k)
			return
		}
	}
	app, _ := u["app_metadata"].(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(app)) {
		if importReservedApp[k] {
			importError(j, u, "NOT_PASSED", "app_metadata must not contain "+k, "app_metadata."+k)
			return
		}
	}
	if b, _ := json.Marshal(u); len(b) > maxImportProfile {
		importError(j, u, "PROFILE_SIZE_EXCEEDED", "The user profile is larger than 10KB", "")
		return
	}
	email = strings.ToLower(email)
	custom, _ := u["user_id"].(string)
	username, _ := u["username"].(string)
	username = strings.ToLower(username)
	id := ""
	if custom != "" {
		id = "auth0|" + custom
	}
	dup := e.byKey[emailKey(j.conn, email)] != "" || (id != "" && e.users[id] != nil) ||
		(username != "" && e.byKey[usernameKey(j.conn, username)] != "")
	if dup && !j.upsert {
		importError(j, u, "DUPLICATED_USER", "The user already exist and upsert parameter is false", "")
		return
	}
	now := e.now()
	if dup {
		// upsert: only an email match updates, and only the upsertable fields.
		old := e.users[e.byKey[emailKey(j.conn, email)]]
		if old == nil {
			importError(j, u, "CONFLICT", "The user conflicts with an existing user", "")
			return
		}
		for _, k := range []string{"given_name", "family_name", "name", "nickname", "picture"} {
			if v, ok := u[k]; ok {
				old.attrs[k] = v
			}
		}
		old.attrs["email_verified"] = u["email_verified"] == true
		if v, ok := u["app_metadata"].(map[string]any); ok {
			old.app = maps.Clone(v)
		}
		if v, ok := u["user_metadata"].(map[string]any); ok {
			old.meta = maps.Clone(v)
		}
		old.updated = now
		e.indexLocked(old.id, old)
		j.updated++
		return
	}
	nu := &user{conn: j.conn, attrs: map[string]any{}, roles: map[string]time.Time{}, created: now, updated: now}
	for k, v := range u {
		switch k {
		case "user_id", "app_metadata", "user_metadata", "password_hash", "custom_password_hash", "mfa_factors":
		case "email":
			nu.attrs[k] = email
		case "username":
			nu.attrs[k] = username
		default:
			nu.attrs[k] = v
		}
	}
	nu.attrs["email_verified"] = u["email_verified"] == true
	local, _, _ := strings.Cut(email, "@")
	nu.attrs["name"] = cmp.Or(nu.str("name"), email)
	nu.attrs["nickname"] = cmp.Or(nu.str("nickname"), local)
	nu.attrs["picture"] = cmp.Or(nu.str("picture"), gravatar(email))
	if len(app) > 0 {
		nu.app = maps.Clone(app)
	}
	if meta, _ := u["user_metadata"].(map[string]any); len(meta) > 0 {
		nu.meta = maps.Clone(meta)
	}
	nu.id = id
	if nu.id == "" {
		nu.id = "auth0|" + newUserID()
	}
	e.seq++
	nu.seq = e.seq
	e.users[nu.id] = nu
	e.byKey[emailKey(j.conn, email)] = nu.id
	if username != "" {
		e.byKey[usernameKey(j.conn, username)] = nu.id
	}
	e.indexLocked(nu.id, nu)
	j.inserted++
}

func (j *importJob) render() map[string]any {
	doc := map[string]any{
		"type": "users_import", "status": j.status, "connection_id": j.conn.id, "connection": j.conn.name,
		"created_at": ts(j.created), "id": j.id,
	}
	if j.externalID != "" {
		doc["external_id"] = j.externalID
	}
	switch j.status {
	case "processing":
		n := max(1, len(j.users))
		doc["percentage_done"] = 100 * j.next / n
		doc["time_left_seconds"] = int(math.Ceil(float64(len(j.users)-j.next) / max(j.share, 1e-9)))
	case "completed":
		doc["summary"] = map[string]any{"failed": len(j.errs), "updated": j.updated, "inserted": j.inserted, "total": len(j.users)}
	}
	return doc
}

// createImport is POST /api/v2/jobs/users-imports.
func (e *Emulator) createImport(w http.ResponseWriter, r *http.Request, _ *call) {
	if r.ContentLength > maxImportBody {
		writeError(w, errorf(http.StatusRequestEntityTooLarge, "", "Payload content length greater than maximum allowed: %d.", maxImportBody))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxImportBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, errorf(http.StatusRequestEntityTooLarge, "", "Payload content length greater than maximum allowed: %d.", maxImportBody))
			return
		}
		writeError(w, errorf(http.StatusBadRequest, "", "Invalid request payload input"))
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		writeError(w, errorf(http.StatusBadRequest, "", "Invalid request payload input"))
		return
	}
	form, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).ReadForm(maxImportBody)
	if err != nil {
		writeError(w, errorf(http.StatusBadRequest, "", "Invalid request payload input"))
		return
	}
	defer func() { _ = form.RemoveAll() }()
	value := func(name string) (string, bool) {
		if v := form.Value[name]; len(v) > 0 {
			return v[0], true
		}
		return "", false
	}
	var file []byte
	if fh := form.File["users"]; len(fh) > 0 {
		f, err := fh[0].Open()
		if err == nil {
			file, err = io.ReadAll(f)
			_ = f.Close()
		}
		if err != nil {
			writeError(w, errorf(http.StatusBadRequest, "", "Invalid request payload input"))
			return
		}
	} else if v, ok := value("users"); ok {
		file = []byte(v)
	} else {
		writeError(w, errMissing("users"))
		return
	}
	connID, ok := value("connection_id")
	if !ok {
		writeError(w, errMissing("connection_id"))
		return
	}
	if !connectionIDRe.MatchString(connID) {
		writeError(w, errProp("connection_id", "String does not match pattern ^con_[A-Za-z0-9]{16}$: %s", connID))
		return
	}
	upsert := false
	for _, name := range []string{"upsert", "send_completion_email"} {
		if v, ok := value(name); ok && v != "true" && v != "false" {
			writeError(w, errProp(name, "Expected type boolean but found type string"))
			return
		}
	}
	if v, _ := value("upsert"); v == "true" {
		upsert = true
	}
	if len(bytes.TrimSpace(file)) == 0 {
		writeError(w, errorf(http.StatusBadRequest, "", "Users file must not be empty."))
		return
	}
	conn := e.connectionByID(connID)
	if conn == nil {
		writeError(w, errorf(http.StatusBadRequest, "", "The connection does not exist."))
		return
	}
	ext, _ := value("external_id")
	var users []any
	parseErr := false
	if v, err := decodeJSON(file); err != nil {
		parseErr = true
	} else if arr, ok := v.([]any); ok {
		users = arr
	} else {
		parseErr = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advanceImportsLocked()
	st := e.importsLocked()
	active := 0
	for _, j := range st.jobs {
		if j.status == "pending" || j.status == "processing" {
			active++
		}
	}
	if active >= maxActiveImports {
		writeError(w, errorf(http.StatusTooManyRequests, "", tooManyImportsText))
		return
	}
	rate := e.importRate()
	if st.faults.Slow > 1 {
		rate /= st.faults.Slow
	}
	j := &importJob{id: "job_" + randomAlnum(16), conn: conn, created: e.now(), start: time.Now().Add(st.delay),
		rate: rate, users: users, parseErr: parseErr, upsert: upsert, externalID: ext, status: "pending", failAfter: -1}
	if st.faults.FailNext > 0 {
		st.faults.FailNext--
		j.failAfter = st.faults.FailAfter
	}
	for id, old := range st.jobs {
		if e.now().Sub(old.created) > jobTTL {
			delete(st.jobs, id)
		}
	}
	st.jobs[j.id] = j
	writeJSON(w, http.StatusAccepted, j.render())
}

// importJobLocked returns a job kept less than 24 hours, or nil.
func (e *Emulator) importJobLocked(id string) *importJob {
	if e.imports == nil {
		return nil
	}
	j := e.imports.jobs[id]
	if j == nil || e.now().Sub(j.created) > jobTTL {
		return nil
	}
	return j
}

// serveImportJob answers GET /api/v2/jobs/{id} for an import job; false if
// id is not one.
func (e *Emulator) serveImportJob(w http.ResponseWriter, id string) bool {
	e.mu.Lock()
	e.advanceImportsLocked()
	j := e.importJobLocked(id)
	var doc map[string]any
	if j != nil {
		doc = j.render()
	}
	e.mu.Unlock()
	if doc == nil {
		return false
	}
	writeJSON(w, http.StatusOK, doc)
	return true
}

// getJobErrors is GET /api/v2/jobs/{id}/errors: the users not imported, 204
// when there are none, or the job itself after a whole-job failure.
func (e *Emulator) getJobErrors(w http.ResponseWriter, r *http.Request, _ *call) {
	e.mu.Lock()
	e.advanceImportsLocked()
	j := e.importJobLocked(r.PathValue("id"))
	var errs []map[string]any
	var doc map[string]any
	if j != nil {
		errs = slices.Clone(j.errs)
		doc = j.render()
	}
	e.mu.Unlock()
	switch {
	case j == nil:
		writeError(w, errorf(http.StatusNotFound, "", "The job does not exist"))
	case doc["status"] == "failed" && j.parseErr:
		delete(doc, "summary")
		doc["status_details"] = "Failed to parse users file JSON when importing users."
		writeJSON(w, http.StatusOK, doc)
	case len(errs) == 0 || doc["status"] == "failed":
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusOK, errs)
	}
}

// serveAdminImports is GET and PUT /admin/imports.
func (e *Emulator) serveAdminImports(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		var body struct {
			ImportFaults
			Delay string `json:"delay"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&body); err != nil {
			writeError(w, errorf(http.StatusBadRequest, "invalid_body", "imports: %v", err))
			return
		}
		var delay time.Duration
		if body.Delay != "" {
			d, err := time.ParseDuration(body.Delay)
			if err != nil || d < 0 {
				writeError(w, errorf(http.StatusBadRequest, "invalid_body", "imports: delay: want a duration like 30s, got %q", body.Delay))
				return
			}
			delay = d
		}
		if body.FailNext < 0 || body.FailAfter < 0 || body.Slow < 0 {
			writeError(w, errorf(http.StatusBadRequest, "invalid_body", "imports: fail_next, fail_after and slow must not be negative"))
			return
		}
		e.SetImportFaults(body.ImportFaults)
		e.SetImportDelay(delay)
	}
	jobs := e.ImportJobs()
	e.mu.Lock()
	st := e.importsLocked()
	faults, delay := st.faults, st.delay
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs, "faults": faults, "delay": delay.String()})
}
