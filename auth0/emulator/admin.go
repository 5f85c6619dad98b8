package emulator

import (
	"encoding/json"
	"net"
	"net/http"
)

// serveAdmin answers the admin endpoint, outside /api/v2 and never counted,
// rate limited or faulted:
//
//	GET  /admin/faults        the faults in effect (durations as "150ms")
//	PUT  /admin/faults        replace them: {"latency":"50ms","error_rate":0.1,"script":[…]}
//	GET  /admin/calls         {"calls":[{"endpoint","status","count"}],"writes":n}
//	POST /admin/calls/reset   zero the counters
//	GET  /admin/rate          {"plan":…,"rate":…,"burst":…}
//	PUT  /admin/rate          {"plan":"free"} or {"rate":10,"burst":5}
//	GET  /admin/imports       {"jobs":[…],"faults":{…}} (users-import jobs, jobs.go)
//	PUT  /admin/imports       {"fail_next":1,"fail_after":100,"slow":10,"delay":"30s"}
//	POST /admin/users/{id}/logins   a login: one session and one refresh token
//	GET  /admin/users/{id}/access   sessions, refresh tokens and revocations
//
// It answers only loopback clients unless Options.AdminRemote is set.
func (e *Emulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if !e.opts.AdminRemote && !loopbackClient(r) {
		writeError(w, errorf(http.StatusForbidden, "", "The admin endpoint answers loopback clients only."))
		return
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /admin/faults":
		writeJSON(w, http.StatusOK, e.CurrentFaults().toJSON())
	case "PUT /admin/faults":
		var fj faultsJSON
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&fj); err != nil {
			writeError(w, errorf(http.StatusBadRequest, "invalid_body", "faults: %v", err))
			return
		}
		f, err := fj.faults()
		if err != nil {
			writeError(w, errorf(http.StatusBadRequest, "invalid_body", "faults: %v", err))
			return
		}
		e.SetFaults(f)
		writeJSON(w, http.StatusOK, e.CurrentFaults().toJSON())
	case "GET /admin/calls":
		writeJSON(w, http.StatusOK, map[string]any{"calls": e.Calls(), "writes": e.WriteCount()})
	case "POST /admin/calls/reset":
		e.ResetCalls()
		w.WriteHeader(http.StatusNoContent)
	case "GET /admin/rate":
		e.rateMu.Lock()
		rs := e.rateSetting
		e.rateMu.Unlock()
		writeJSON(w, http.StatusOK, rs)
	case "PUT /admin/rate":
		var rs rateSetting
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&rs); err != nil {
			writeError(w, errorf(http.StatusBadRequest, "invalid_body", "rate: %v", err))
			return
		}
		if err := e.SetRate(rs.Plan, rs.Rate, rs.Burst); err != nil {
			writeError(w, errorf(http.StatusBadRequest, "invalid_body", "rate: %v", err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case "GET /admin/imports", "PUT /admin/imports":
		e.serveAdminImports(w, r)
	default:
		if e.serveAccessAdmin(w, r) {
			return
		}
		writeError(w, errorf(http.StatusNotFound, "", "Not Found"))
	}
}

// rateSetting is the rate limit as last set.
type rateSetting struct {
	Plan  string  `json:"plan"`
	Rate  float64 `json:"rate,omitempty"`
	Burst int     `json:"burst,omitempty"`
}

func loopbackClient(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
