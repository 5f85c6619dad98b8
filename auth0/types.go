package auth0

import (
	"encoding/json"
	"time"
)

// User is an Auth0 user as the Management API returns it. Fields syncd does not
// use are dropped.
type User struct {
	UserID        string         `json:"user_id"`
	Email         string         `json:"email,omitempty"`
	EmailVerified bool           `json:"email_verified,omitempty"`
	Username      string         `json:"username,omitempty"`
	Name          string         `json:"name,omitempty"`
	Nickname      string         `json:"nickname,omitempty"`
	Blocked       bool           `json:"blocked,omitempty"`
	AppMetadata   map[string]any `json:"app_metadata,omitempty"`
	UserMetadata  map[string]any `json:"user_metadata,omitempty"`
	Identities    []Identity     `json:"identities,omitempty"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
}

// Identity is one of a user's identities; the first is the primary one.
type Identity struct {
	Connection string `json:"connection"`
	UserID     string `json:"user_id"`
	Provider   string `json:"provider"`
	IsSocial   bool   `json:"isSocial"`
}

// InConnection says whether one of the user's identities is in connection.
func (u *User) InConnection(connection string) bool {
	for _, id := range u.Identities {
		if id.Connection == connection {
			return true
		}
	}
	return false
}

// CreateUserRequest is the body of POST /api/v2/users.
type CreateUserRequest struct {
	// UserID, if set, makes the account auth0|UserID (a database
	// connection); Auth0 refuses a second account with it (409).
	UserID        string         `json:"user_id,omitempty"`
	Connection    string         `json:"connection"`
	Email         string         `json:"email,omitempty"`
	Username      string         `json:"username,omitempty"`
	Name          string         `json:"name,omitempty"`
	Password      string         `json:"password,omitempty"`
	VerifyEmail   *bool          `json:"verify_email,omitempty"`
	EmailVerified *bool          `json:"email_verified,omitempty"`
	Blocked       *bool          `json:"blocked,omitempty"`
	AppMetadata   map[string]any `json:"app_metadata,omitempty"`
	UserMetadata  map[string]any `json:"user_metadata,omitempty"`
}

// UpdateUserRequest is the body of PATCH /api/v2/users/{id}. A nil pointer is
// left out of the body. In AppMetadata and UserMetadata a key whose value is
// nil is sent as an explicit JSON null, which makes Auth0 delete that key
// (metadata is merged at the first level).
type UpdateUserRequest struct {
	Email         *string        `json:"email,omitempty"`
	EmailVerified *bool          `json:"email_verified,omitempty"`
	VerifyEmail   *bool          `json:"verify_email,omitempty"`
	Name          *string        `json:"name,omitempty"`
	Blocked       *bool          `json:"blocked,omitempty"`
	Connection    string         `json:"connection,omitempty"`
	AppMetadata   map[string]any `json:"app_metadata,omitempty"`
	UserMetadata  map[string]any `json:"user_metadata,omitempty"`
}

// IsEmpty says whether the request would change nothing.
func (r *UpdateUserRequest) IsEmpty() bool {
	return r.Email == nil && r.EmailVerified == nil && r.VerifyEmail == nil && r.Name == nil &&
		r.Blocked == nil && len(r.AppMetadata) == 0 && len(r.UserMetadata) == 0
}

// Role is an Auth0 role.
type Role struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// RoleMember is a user as GET /api/v2/roles/{id}/users lists it.
type RoleMember struct {
	UserID string `json:"user_id"`
	Email  string `json:"email,omitempty"`
	Name   string `json:"name,omitempty"`
}

// SearchUsersRequest are the parameters of GET /api/v2/users.
type SearchUsersRequest struct {
	Query   string // q, Lucene syntax (search_engine=v3)
	Page    int    // 0-based
	PerPage int    // 1..100; 0 means Auth0's default (50)
	Fields  []string
	// IncludeTotals asks for the total count; it is always requested so that
	// SearchUsersPage.Total is filled.
}

// SearchUsersPage is one page of GET /api/v2/users?include_totals=true.
type SearchUsersPage struct {
	Users []User `json:"users"`
	Start int    `json:"start"`
	Limit int    `json:"limit"`
	Total int    `json:"total"`
}

// ExportJob is a users-export job.
type ExportJob struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Status   string `json:"status"` // pending, processing, completed, failed
	Format   string `json:"format"`
	Location string `json:"location,omitempty"`
	// ConnectionID limits the export to one connection (con_…); empty is all.
	ConnectionID string    `json:"connection_id,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	// Connection is the name of the connection exported, if one was given.
	Connection string `json:"connection,omitempty"`
	// Limit and Fields echo the request.
	Limit  int           `json:"limit,omitempty"`
	Fields []ExportField `json:"fields,omitempty"`
}

// ExportField is one field of a users export: its name in the user profile
// (user_id, email, app_metadata, identities[0].connection, …) and an optional
// name in the file.
type ExportField struct {
	Name     string `json:"name"`
	ExportAs string `json:"export_as,omitempty"`
}

// ExportedUser is one line of a users export in JSON (NDJSON) format: the
// requested fields, raw.
type ExportedUser map[string]json.RawMessage

// ExportRequest are the parameters of a users export (POST
// /api/v2/jobs/users-exports); the format is always JSON (NDJSON).
type ExportRequest struct {
	// ConnectionID limits the export to one connection (con_…); empty is all.
	ConnectionID string
	// Fields to export; empty means Auth0's default set.
	Fields []ExportField
	// Limit caps the number of users; 0 is all.
	Limit int
	// PollInterval is the first wait between polls of the job; it grows by
	// half on each poll up to 10s. Default 500ms.
	PollInterval time.Duration
	// JobTimeout bounds the wait for the job to complete; default 30m. A job
	// still pending or processing then fails the export.
	JobTimeout time.Duration
}
