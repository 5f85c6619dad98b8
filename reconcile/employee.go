package reconcile

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Employee is a row of the employees table as syncd reads it. Nullable
// columns are pointers: a table that predates syncd may hold NULLs anywhere.
type Employee struct {
	// ID is the row's key in its text form (id::text): digits for an
	// integer key, the canonical form of a uuid, a text key as it is.
	ID string
	// IDValue is the key as app_metadata.employee_id carries it: a JSON
	// number for an integer key, a string otherwise (to_jsonb(id)).
	IDValue json.RawMessage
	// View is what the row asks of Auth0: syncd_desired_of(id), the row of
	// the mapping (the view syncd_desired) with the managed keys, or
	// {"error": ...} (DesiredFor reads it).
	View json.RawMessage

	Auth0UserID      *string
	AccountCreatedAt *time.Time
	Status           string
	Attempts         int
	// SyncedState is what syncd last applied (auth0_synced_state), or nil.
	SyncedState json.RawMessage

	// revoked is what syncd_access_revocations records of the stored
	// account (read with the claim).
	revoked revoked

	// version is the row's xmin when it was read: a row whose version changed
	// was edited meanwhile and must not be marked synced with stale data.
	version uint32
}

// employeeColumns are read in this order by scanEmployee.
const employeeColumns = `id::text AS employee_key, to_jsonb(id) AS employee_key_json, syncd_desired_of(id) AS desired,
	auth0_user_id, auth0_account_created_at, auth0_sync_status, auth0_sync_attempts, auth0_synced_state, xmin`

type scanner interface{ Scan(dest ...any) error }

func scanEmployee(row scanner) (*Employee, error) {
	var e Employee
	var xmin uint32
	err := row.Scan(&e.ID, &e.IDValue, &e.View,
		&e.Auth0UserID, &e.AccountCreatedAt, &e.Status, &e.Attempts, &e.SyncedState, &xmin)
	if err != nil {
		return nil, err
	}
	e.version = xmin
	return &e, nil
}

// revokedColumns read what syncd_access_revocations records of the row's
// account, after employeeColumns (see withRevoked).
const revokedColumns = `coalesce((SELECT r.sessions_revoked_at IS NOT NULL FROM syncd_access_revocations r WHERE r.auth0_user_id = employees.auth0_user_id), false),
	coalesce((SELECT r.refresh_tokens_revoked_at IS NOT NULL FROM syncd_access_revocations r WHERE r.auth0_user_id = employees.auth0_user_id), false)`

// withRevoked scans revokedColumns into rev after what scanEmployee reads.
func withRevoked(row scanner, rev *revoked) scanner {
	return revokedScanner{row: row, rev: rev}
}

type revokedScanner struct {
	row scanner
	rev *revoked
}

func (s revokedScanner) Scan(dest ...any) error {
	return s.row.Scan(append(dest, &s.rev.sessions, &s.rev.refreshTokens)...)
}

// keyValue is the key as app_metadata.employee_id carries it (keyJSON, its
// to_jsonb). A key not read from the table (no keyJSON) is taken to be an
// integer key when it is one.
func keyValue(key string, keyJSON json.RawMessage) any {
	if len(keyJSON) > 0 {
		return keyJSON
	}
	if isIntegerKey(key) {
		return json.Number(key)
	}
	return key
}

// viewHash identifies what the row's outcome is decided from: the md5 of its
// syncd_desired_of text, as auth0_desired_hash records it and the mapping
// sweep computes it (PostgreSQL gives jsonb in its one canonical text form).
func (e *Employee) viewHash() *string {
	if len(e.View) == 0 {
		return nil
	}
	sum := md5.Sum(e.View)
	h := hex.EncodeToString(sum[:])
	return &h
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
