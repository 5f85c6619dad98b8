package auth0

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// TokenError is a failed token request (POST /oauth/token): the credentials
// are refused, or the token endpoint cannot be reached. Its Err is an
// *APIError when the endpoint answered.
type TokenError struct{ Err error }

func (e *TokenError) Error() string { return tokenEndpoint + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *TokenError) Unwrap() error { return e.Err }

// RefreshToken drops the cached token and fetches a new one, so that a scope
// granted since the last token takes effect (Auth0 puts the scopes in the
// token when it issues it).
func (c *Client) RefreshToken(ctx context.Context) error {
	if s := c.tokens.current(); s != "" {
		c.tokens.drop(s)
	}
	_, err := c.tokens.get(ctx)
	return err
}

// GrantedScopes returns the scopes of the current access token (the JWT's
// scope claim, read without verifying it: it came from the tenant over TLS
// and serves only to say what is missing). ok is false when the token is not
// a JWT with a scope claim.
func (c *Client) GrantedScopes(ctx context.Context) (scopes []string, ok bool, err error) {
	tok, err := c.tokens.get(ctx)
	if err != nil {
		return nil, false, err
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false, nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, false, nil
	}
	var claims struct {
		Scope *string `json:"scope"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Scope == nil {
		return nil, false, nil
	}
	return strings.Fields(*claims.Scope), true, nil
}

// Connection is a tenant connection (GET /api/v2/connections).
type Connection struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Strategy string `json:"strategy"`
	Options  struct {
		RequiresUsername bool `json:"requires_username"`
	} `json:"options"`
}

// ConnectionByName looks a connection up by name (GET /api/v2/connections,
// scope read:connections). A connection that does not exist is ErrNotFound.
func (c *Client) ConnectionByName(ctx context.Context, name string) (*Connection, error) {
	var conns []Connection
	err := c.do(ctx, request{method: http.MethodGet, endpoint: "GET /api/v2/connections", path: "/api/v2/connections",
		query: url.Values{"name": {name}, "fields": {"id,name,strategy,options"}}, out: &conns})
	if err != nil {
		return nil, fmt.Errorf("get auth0 connection: %w", err)
	}
	for i := range conns {
		if conns[i].Name == name {
			return &conns[i], nil
		}
	}
	return nil, fmt.Errorf("get auth0 connection %q: %w", name, &APIError{StatusCode: http.StatusNotFound, ErrorCode: "inexistent_connection", Message: "The connection does not exist."})
}

// IsTokenError says whether err is a failed token request.
func IsTokenError(err error) bool { return errors.As(err, new(*TokenError)) }
