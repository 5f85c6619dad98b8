package auth0

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// MaxImportFileBytes is Auth0's limit on a users-import file: the 413 says
// "Payload content length greater than maximum allowed: 512000". Whether the
// multipart framing counts is not documented, so callers pack files to
// ImportFileTarget and leave the rest for the framing.
const (
	MaxImportFileBytes = 512_000
	ImportFileTarget   = 500_000
)

// ErrTooManyImportJobs is the 429 of POST /api/v2/jobs/users-imports when the
// tenant already has two import jobs pending or processing ("There are 2
// active import users jobs, please wait until some of them are finished and
// try again"). It is not retried by the client: the caller waits for one of
// its jobs to finish.
var ErrTooManyImportJobs = errors.New("auth0: too many active import jobs")

// ImportRequest is one users-import job.
type ImportRequest struct {
	// ConnectionID is the database connection's con_… id (see ConnectionID).
	ConnectionID string
	// Users is the file: a JSON array of user objects in Auth0's import
	// schema, at most MaxImportFileBytes.
	Users []byte
	// Upsert lets the job update users that exist (matched on email). syncd
	// never sets it: an upsert replaces app_metadata and user_metadata whole.
	Upsert bool
	// ExternalID is echoed on the job.
	ExternalID string
	// SendCompletionEmail mails the tenant's admins when the job ends.
	SendCompletionEmail bool
}

// ImportJob is a users-import job as GET /api/v2/jobs/{id} returns it.
type ImportJob struct {
	ID           string         `json:"id"`
	Type         string         `json:"type"`
	Status       string         `json:"status"` // pending, processing, completed, failed
	ConnectionID string         `json:"connection_id"`
	Connection   string         `json:"connection"`
	ExternalID   string         `json:"external_id,omitempty"`
	CreatedAt    time.Time      `json:"created_at"`
	Summary      *ImportSummary `json:"summary,omitempty"`
	// PercentageDone and TimeLeftSeconds are set while it is processing.
	PercentageDone  int `json:"percentage_done,omitempty"`
	TimeLeftSeconds int `json:"time_left_seconds,omitempty"`
}

// ImportSummary counts the users of a finished import job.
type ImportSummary struct {
	Failed   int `json:"failed"`
	Updated  int `json:"updated"`
	Inserted int `json:"inserted"`
	Total    int `json:"total"`
}

// ImportUserError is one user of a job that was not imported: the user
// object as given in the file (password hashes redacted) and why.
type ImportUserError struct {
	User   map[string]any `json:"user"`
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Path    string `json:"path,omitempty"`
	} `json:"errors"`
}

// Codes returns the error codes of e, joined with ",".
func (e ImportUserError) Codes() string {
	codes := make([]string, 0, len(e.Errors))
	for _, x := range e.Errors {
		codes = append(codes, x.Code)
	}
	return strings.Join(codes, ",")
}

// Message returns the first error's code and message.
func (e ImportUserError) Message() string {
	if len(e.Errors) == 0 {
		return "no reason given"
	}
	return e.Errors[0].Code + ": " + e.Errors[0].Message
}

// ImportUsers starts a users-import job (POST /api/v2/jobs/users-imports,
// multipart, 202). It is never repeated once sent: a lost answer is
// ErrOutcomeUnknown (a job may exist; there is no way to list jobs). A 429
// for the two-active-jobs limit is ErrTooManyImportJobs, at once.
func (c *Client) ImportUsers(ctx context.Context, req ImportRequest) (*ImportJob, error) {
	if req.ConnectionID == "" {
		return nil, errors.New("import auth0 users: connection id is required")
	}
	if len(req.Users) > MaxImportFileBytes {
		return nil, fmt.Errorf("import auth0 users: file of %d bytes is over Auth0's limit of %d", len(req.Users), MaxImportFileBytes)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fields := [][2]string{
		{"connection_id", req.ConnectionID},
		{"upsert", strconv.FormatBool(req.Upsert)},
		{"send_completion_email", strconv.FormatBool(req.SendCompletionEmail)},
	}
	if req.ExternalID != "" {
		fields = append(fields, [2]string{"external_id", req.ExternalID})
	}
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return nil, fmt.Errorf("import auth0 users: %w", err)
		}
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="users"; filename="users.json"`)
	h.Set("Content-Type", "application/json")
	part, err := mw.CreatePart(h)
	if err == nil {
		_, err = part.Write(req.Users)
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("import auth0 users: %w", err)
	}
	var job ImportJob
	err = c.do(ctx, request{
		method:      http.MethodPost,
		endpoint:    "POST /api/v2/jobs/users-imports",
		path:        "/api/v2/jobs/users-imports",
		raw:         buf.Bytes(),
		contentType: mw.FormDataContentType(),
		out:         &job,
		unsafe:      true,
		final429:    true,
	})
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusTooManyRequests && strings.Contains(ae.Message, "active import users jobs") {
		return nil, fmt.Errorf("import auth0 users: %w: %w", ErrTooManyImportJobs, err)
	}
	if err != nil {
		return nil, fmt.Errorf("import auth0 users: %w", err)
	}
	return &job, nil
}

// GetImportJob reads an import job (GET /api/v2/jobs/{id}). Auth0 keeps a
// job 24 hours; after that it is ErrNotFound.
func (c *Client) GetImportJob(ctx context.Context, id string) (*ImportJob, error) {
	return getJob[ImportJob](ctx, c, id, "get auth0 import job")
}

// ImportJobErrors reads the users a finished import job did not import (GET
// /api/v2/jobs/{id}/errors). 204 (no errors) is an empty list; a generic
// failure, answered as a job object, is an empty list too (the job's status
// says failed).
func (c *Client) ImportJobErrors(ctx context.Context, id string) ([]ImportUserError, error) {
	if id == "" {
		return nil, fmt.Errorf("get auth0 import job errors: %w", errEmptyID)
	}
	var raw json.RawMessage
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: "GET /api/v2/jobs/{id}/errors",
		path:     "/api/v2/jobs/" + pathEscape(id) + "/errors",
		out:      &raw,
	})
	if err != nil {
		return nil, fmt.Errorf("get auth0 import job errors: %w", err)
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return nil, nil
	}
	var out []ImportUserError
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("get auth0 import job errors: decode answer: %w", err)
	}
	return out, nil
}

// AssignRoleUsers gives one role to many users (POST
// /api/v2/roles/{id}/users, 200). Auth0 answers 404 "One or more of the users
// do not exist." when any id is unknown, and assigns none of them then.
// Assigning a role a user has is a no-op, so it is safe to repeat.
func (c *Client) AssignRoleUsers(ctx context.Context, roleID string, userIDs []string) error {
	if roleID == "" {
		return fmt.Errorf("assign auth0 role users: %w", errEmptyID)
	}
	if len(userIDs) == 0 {
		return nil
	}
	err := c.do(ctx, request{
		method:   http.MethodPost,
		endpoint: "POST /api/v2/roles/{id}/users",
		path:     "/api/v2/roles/" + pathEscape(roleID) + "/users",
		body: struct {
			Users []string `json:"users"`
		}{userIDs},
	})
	if err != nil {
		return fmt.Errorf("assign auth0 role users: %w", err)
	}
	return nil
}

// ConnectionID finds the con_… id of the named connection (GET
// /api/v2/connections, scope read:connections); ErrNotFound if the tenant has
// none by that name.
func (c *Client) ConnectionID(ctx context.Context, name string) (string, error) {
	conn, err := c.ConnectionByName(ctx, name)
	if err != nil {
		return "", err
	}
	return conn.ID, nil
}
