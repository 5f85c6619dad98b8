package breaker

import "net/http"

// CauseOfStatus classifies one Auth0 API answer by its HTTP status for
// Record; 0 means no answer (a connection error or a timeout). Only failures
// that say something about Auth0 or the credentials count against it: a 4xx
// other than 401 is the data's fault (CauseNone, a success here). A 429
// is neither: rate limiting is the client's to absorb, so record is false.
// Nor is a 403: the API answers it for a scope not granted, a fault of the
// configuration that the caller recognises by its error code and trips the
// breaker for (Trip, CauseConfiguration) — counted here, one missing scope
// among granted ones would pass for bad credentials, or not open it at all.
func CauseOfStatus(status int) (c Cause, record bool) {
	switch {
	case status == 0:
		return CauseUnreachable, true
	case status == http.StatusTooManyRequests, status == http.StatusForbidden:
		return CauseNone, false
	case status >= 500:
		return CauseServer, true
	case status == http.StatusUnauthorized:
		return CauseCredentials, true
	}
	return CauseNone, true
}

// CauseOfTokenFailure classifies a failed token request by the HTTP status of
// its answer; 0 means no answer. The token endpoint answers 400, 401 or 403
// to wrong credentials or a missing grant; anything else means it cannot be
// used now.
func CauseOfTokenFailure(status int) Cause {
	switch status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		return CauseCredentials
	}
	if status >= 500 {
		return CauseServer
	}
	return CauseUnreachable
}

// Label is the cause's short name, for a metric label.
func (c Cause) Label() string {
	switch c {
	case CauseCredentials:
		return "credentials"
	case CauseUnreachable:
		return "unreachable"
	case CauseServer:
		return "server"
	case CauseConfiguration:
		return "configuration"
	case CauseNone:
		return "none"
	}
	return "other"
}
