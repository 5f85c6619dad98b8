package auth0

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// pageSize is the largest page Auth0 serves.
const pageSize = 100

// maxPages bounds a paging loop against a server that never says "last page".
const maxPages = 10_000

// rolesPage is {roles, start, limit, total} of GET /roles and
// GET /users/{id}/roles with include_totals=true.
type rolesPage struct {
	Roles []Role `json:"roles"`
	Start int    `json:"start"`
	Limit int    `json:"limit"`
	Total int    `json:"total"`
}

// listRoles reads every page of an offset-paged list of roles.
func (c *Client) listRoles(ctx context.Context, endpoint, path string, extra url.Values) ([]Role, error) {
	var all []Role
	for page := 0; page < maxPages; page++ {
		q := url.Values{
			"page":           {strconv.Itoa(page)},
			"per_page":       {strconv.Itoa(pageSize)},
			"include_totals": {"true"},
		}
		for k, v := range extra {
			q[k] = v
		}
		var p rolesPage
		if err := c.do(ctx, request{method: http.MethodGet, endpoint: endpoint, path: path, query: q, out: &p}); err != nil {
			return nil, err
		}
		all = append(all, p.Roles...)
		if len(p.Roles) < pageSize || len(all) >= p.Total {
			return all, nil
		}
	}
	return nil, fmt.Errorf("%s: more than %d pages", endpoint, maxPages)
}

// ListUserRoles lists every role of a user (GET /api/v2/users/{id}/roles, all
// pages). An unknown user is ErrNotFound.
func (c *Client) ListUserRoles(ctx context.Context, userID string) ([]Role, error) {
	if userID == "" {
		return nil, fmt.Errorf("list auth0 user roles: %w", errEmptyID)
	}
	roles, err := c.listRoles(ctx, "GET /api/v2/users/{id}/roles", "/api/v2/users/"+pathEscape(userID)+"/roles", nil)
	if err != nil {
		return nil, fmt.Errorf("list auth0 user roles: %w", err)
	}
	return roles, nil
}

// AssignUserRoles gives a user these roles (POST /api/v2/users/{id}/roles,
// 204). Assigning a role the user has is a no-op, so it is safe to repeat. No
// role ids: no request.
func (c *Client) AssignUserRoles(ctx context.Context, userID string, roleIDs []string) error {
	if err := c.userRoles(ctx, http.MethodPost, userID, roleIDs); err != nil {
		return fmt.Errorf("assign auth0 user roles: %w", err)
	}
	return nil
}

// RemoveUserRoles takes these roles from a user (DELETE
// /api/v2/users/{id}/roles, 204); safe to repeat. No role ids: no request.
func (c *Client) RemoveUserRoles(ctx context.Context, userID string, roleIDs []string) error {
	if err := c.userRoles(ctx, http.MethodDelete, userID, roleIDs); err != nil {
		return fmt.Errorf("remove auth0 user roles: %w", err)
	}
	return nil
}

func (c *Client) userRoles(ctx context.Context, method, userID string, roleIDs []string) error {
	if userID == "" {
		return errEmptyID
	}
	if len(roleIDs) == 0 {
		return nil
	}
	return c.do(ctx, request{
		method:   method,
		endpoint: method + " /api/v2/users/{id}/roles",
		path:     "/api/v2/users/" + pathEscape(userID) + "/roles",
		body: struct {
			Roles []string `json:"roles"`
		}{roleIDs},
	})
}

// ListRoles lists the tenant's roles (GET /api/v2/roles, all pages); a
// non-empty nameFilter keeps the roles whose name contains it, ignoring case.
func (c *Client) ListRoles(ctx context.Context, nameFilter string) ([]Role, error) {
	var extra url.Values
	if nameFilter != "" {
		extra = url.Values{"name_filter": {nameFilter}}
	}
	roles, err := c.listRoles(ctx, "GET /api/v2/roles", "/api/v2/roles", extra)
	if err != nil {
		return nil, fmt.Errorf("list auth0 roles: %w", err)
	}
	return roles, nil
}

// ListRoleUsers hands every member of a role to each, one page at a time (GET
// /api/v2/roles/{id}/users with checkpoint paging: take=100, then from=<next>
// until Auth0 sends no next). Checkpoint paging has no 1,000-result cap. An
// error from each stops the listing and is returned as it is.
func (c *Client) ListRoleUsers(ctx context.Context, roleID string, each func([]RoleMember) error) error {
	if roleID == "" {
		return fmt.Errorf("list auth0 role users: %w", errEmptyID)
	}
	from := ""
	for range maxPages {
		q := url.Values{"take": {strconv.Itoa(pageSize)}}
		if from != "" {
			q.Set("from", from)
		}
		var p struct {
			Users []RoleMember `json:"users"`
			Next  string       `json:"next"`
		}
		err := c.do(ctx, request{
			method:   http.MethodGet,
			endpoint: "GET /api/v2/roles/{id}/users",
			path:     "/api/v2/roles/" + pathEscape(roleID) + "/users",
			query:    q,
			out:      &p,
		})
		if err != nil {
			return fmt.Errorf("list auth0 role users: %w", err)
		}
		if len(p.Users) > 0 {
			if err := each(p.Users); err != nil {
				return err
			}
		}
		if p.Next == "" {
			return nil
		}
		if p.Next == from {
			return fmt.Errorf("list auth0 role users: %w", errors.New("the server sent the same checkpoint twice"))
		}
		from = p.Next
	}
	return fmt.Errorf("list auth0 role users: more than %d pages", maxPages)
}
