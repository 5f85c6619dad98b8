package auth0

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// errEmptyID is returned before any request when an id argument is empty:
// "/api/v2/users/" + "" would name a different endpoint.
var (
	errEmptyID    = errors.New("empty id")
	errEmptyEmail = errors.New("empty e-mail")
)

// CreateUser creates a user (POST /api/v2/users, 201). It is retried only when
// nothing can have been applied (a 429, a connection that was never made).
// When the request went out and its answer was lost (timeout, dropped
// connection, 5xx) the error matches ErrOutcomeUnknown and keeps the cause:
// look the user up by e-mail before creating it again. A 409 (ErrConflict)
// means the e-mail (or username) is taken in that connection.
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (*User, error) {
	var u User
	err := c.do(ctx, request{
		method:   http.MethodPost,
		endpoint: "POST /api/v2/users",
		path:     "/api/v2/users",
		body:     req,
		out:      &u,
		unsafe:   true,
		secrets:  []string{req.Password},
	})
	if err != nil {
		return nil, fmt.Errorf("create auth0 user: %w", err)
	}
	return &u, nil
}

// GetUser reads one user by id (GET /api/v2/users/{id}); immediately
// consistent. A missing user is ErrNotFound.
func (c *Client) GetUser(ctx context.Context, id string) (*User, error) {
	if id == "" {
		return nil, fmt.Errorf("get auth0 user: %w", errEmptyID)
	}
	var u User
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: "GET /api/v2/users/{id}",
		path:     "/api/v2/users/" + pathEscape(id),
		out:      &u,
	})
	if err != nil {
		return nil, fmt.Errorf("get auth0 user: %w", err)
	}
	return &u, nil
}

// UpdateUser changes a user (PATCH /api/v2/users/{id}) and returns it as it
// is now. Metadata is merged by Auth0 at the first level; a key set to nil in
// req is sent as null and deleted. A request that changes nothing (IsEmpty)
// makes no PATCH: it reads the user instead.
func (c *Client) UpdateUser(ctx context.Context, id string, req UpdateUserRequest) (*User, error) {
	if id == "" {
		return nil, fmt.Errorf("update auth0 user: %w", errEmptyID)
	}
	if req.IsEmpty() {
		u, err := c.GetUser(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("update auth0 user: %w", err)
		}
		return u, nil
	}
	var u User
	err := c.do(ctx, request{
		method:   http.MethodPatch,
		endpoint: "PATCH /api/v2/users/{id}",
		path:     "/api/v2/users/" + pathEscape(id),
		body:     req,
		out:      &u,
	})
	if err != nil {
		return nil, fmt.Errorf("update auth0 user: %w", err)
	}
	return &u, nil
}

// DeleteUser deletes a user (DELETE /api/v2/users/{id}, 204). Deleting a user
// that does not exist succeeds, as it does in Auth0.
func (c *Client) DeleteUser(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("delete auth0 user: %w", errEmptyID)
	}
	err := c.do(ctx, request{
		method:   http.MethodDelete,
		endpoint: "DELETE /api/v2/users/{id}",
		path:     "/api/v2/users/" + pathEscape(id),
	})
	if err != nil {
		return fmt.Errorf("delete auth0 user: %w", err)
	}
	return nil
}

// UsersByEmail lists the users with this e-mail in every connection (GET
// /api/v2/users-by-email); immediately consistent. The e-mail is trimmed and
// lower-cased first: Auth0 stores database users' e-mails lower-cased and
// matches this parameter case-sensitively.
func (c *Client) UsersByEmail(ctx context.Context, email string) ([]User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return nil, fmt.Errorf("find auth0 users by email: %w", errEmptyEmail)
	}
	var users []User
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: "GET /api/v2/users-by-email",
		path:     "/api/v2/users-by-email",
		query:    url.Values{"email": {email}},
		out:      &users,
	})
	if err != nil {
		return nil, fmt.Errorf("find auth0 users by email: %w", err)
	}
	return users, nil
}

// SearchUsers runs one page of a user search (GET /api/v2/users with
// search_engine=v3 and include_totals=true). The search index is eventually
// consistent: a user written a moment ago may be missing. Auth0 serves only
// the first 1,000 results of a query (ErrBadRequest, errorCode
// invalid_paging, beyond that); use ExportUsers to read every user.
func (c *Client) SearchUsers(ctx context.Context, req SearchUsersRequest) (*SearchUsersPage, error) {
	q := url.Values{
		"search_engine":  {"v3"},
		"include_totals": {"true"},
		"page":           {strconv.Itoa(req.Page)},
	}
	if req.Query != "" {
		q.Set("q", req.Query)
	}
	if req.PerPage > 0 {
		q.Set("per_page", strconv.Itoa(req.PerPage))
	}
	if len(req.Fields) > 0 {
		q.Set("fields", strings.Join(req.Fields, ","))
		q.Set("include_fields", "true")
	}
	var page SearchUsersPage
	err := c.do(ctx, request{
		method:   http.MethodGet,
		endpoint: "GET /api/v2/users",
		path:     "/api/v2/users",
		query:    q,
		out:      &page,
	})
	if err != nil {
		return nil, fmt.Errorf("search auth0 users: %w", err)
	}
	return &page, nil
}
