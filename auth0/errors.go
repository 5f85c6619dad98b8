package auth0

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinels for errors.Is. An *APIError matches the one of its status code;
// ErrOutcomeUnknown matches a write whose answer was lost.
var (
	ErrNotFound     = errors.New("auth0: not found")
	ErrConflict     = errors.New("auth0: conflict")
	ErrRateLimited  = errors.New("auth0: rate limited")
	ErrUnauthorized = errors.New("auth0: unauthorized")
	ErrForbidden    = errors.New("auth0: forbidden")
	ErrBadRequest   = errors.New("auth0: bad request")
	// ErrOutcomeUnknown: the request was sent but its answer was lost
	// (timeout, dropped connection, 5xx after the body was sent); the write
	// may or may not have been applied. Look before writing again.
	ErrOutcomeUnknown = errors.New("auth0: outcome unknown")
)

// APIError is an error answer of the Management API or the token endpoint.
type APIError struct {
	StatusCode int    // HTTP status
	ErrorCode  string // Auth0's errorCode (or the token endpoint's "error"); sometimes absent
	Message    string // Auth0's message, safe to show to a person
	// RetryAfter is how long the server asked us to wait (429), if it said.
	RetryAfter int64 // seconds
}

func (e *APIError) Error() string {
	code := e.ErrorCode
	if code == "" {
		code = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("auth0: %d %s: %s", e.StatusCode, code, e.Message)
}

// Is maps the status code to a sentinel.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest
	}
	return false
}

// Temporary says whether the error is worth trying again later: rate limits,
// server errors, and lost answers.
func Temporary(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode == http.StatusTooManyRequests || ae.StatusCode >= 500 || ae.StatusCode == http.StatusRequestTimeout
	}
	return true // transport errors, timeouts, ErrOutcomeUnknown
}
