package reconcile

import (
	"encoding/json"
	"time"
)

// Employee is a row of the employees table as syncd reads it. Nullable
// columns are pointers: a table that predates syncd may hold NULLs anywhere.
type Employee struct {
	ID           int64
	Name         *string
	Email        *string
	Department   *string
	PhoneNumber  *string
	ConnecteamID *string
	RoleCode     string
	Active       bool

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
const employeeColumns = `id, name, email, department, phone_number, connecteam_id, role_code, active,
	auth0_user_id, auth0_account_created_at, auth0_sync_status, auth0_sync_attempts, auth0_synced_state, xmin`

type scanner interface{ Scan(dest ...any) error }

func scanEmployee(row scanner) (*Employee, error) {
	var e Employee
	var xmin uint32
	err := row.Scan(&e.ID, &e.Name, &e.Email, &e.Department, &e.PhoneNumber, &e.ConnecteamID, &e.RoleCode, &e.Active,
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

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
