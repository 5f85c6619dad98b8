package auth0

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrFeatureUnavailable matches the answer of a tenant whose plan lacks an
// endpoint: the session and refresh-token endpoints of the Management API
// exist on Enterprise plans only. Auth0 answers 403 Forbidden for a feature a
// tenant's subscription does not include (errorCode operation_not_supported,
// or a message asking to upgrade the subscription); a 403 insufficient_scope
// is a missing grant instead, and is not this.
var ErrFeatureUnavailable = errors.New("auth0: feature not available on the tenant's plan")

// featureError marks a 403 that says the plan lacks the feature; it keeps the
// *APIError for errors.As and matches ErrFeatureUnavailable.
type featureError struct{ *APIError }

func (e *featureError) Unwrap() []error { return []error{e.APIError, ErrFeatureUnavailable} }

// planRefusal classifies err: a 403 that is not about scopes is the tenant's
// plan refusing the endpoint.
func planRefusal(err error) error {
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusForbidden || ae.ErrorCode == "insufficient_scope" {
		return err
	}
	msg := strings.ToLower(ae.Message)
	if ae.ErrorCode == "operation_not_supported" || ae.ErrorCode == "feature_not_enabled" ||
		strings.Contains(msg, "upgrade your subscription") || strings.Contains(msg, "not allowed to perform this operation") ||
		strings.Contains(msg, "enterprise") {
		return &featureError{ae}
	}
	return err
}

// DeleteUserSessions ends every session of a user (DELETE
// /api/v2/users/{id}/sessions, 202; scope delete:sessions). Auth0 carries it
// out asynchronously; deleting sessions is what triggers OIDC back-channel
// logout. Idempotent, so it is retried like a read. A tenant whose plan lacks
// the endpoint answers ErrFeatureUnavailable; an unknown user is ErrNotFound.
func (c *Client) DeleteUserSessions(ctx context.Context, userID string) error {
	if userID == "" {
		return fmt.Errorf("delete auth0 user sessions: %w", errEmptyID)
	}
	err := c.do(ctx, request{
		method:   http.MethodDelete,
		endpoint: "DELETE /api/v2/users/{id}/sessions",
		path:     "/api/v2/users/" + pathEscape(userID) + "/sessions",
	})
	if err != nil {
		return fmt.Errorf("delete auth0 user sessions: %w", planRefusal(err))
	}
	return nil
}

// DeleteUserRefreshTokens revokes every refresh token of a user (DELETE
// /api/v2/users/{id}/refresh-tokens, 202; scope delete:refresh_tokens).
// Idempotent. Like DeleteUserSessions, Enterprise plans only
// (ErrFeatureUnavailable otherwise).
func (c *Client) DeleteUserRefreshTokens(ctx context.Context, userID string) error {
	if userID == "" {
		return fmt.Errorf("delete auth0 user refresh tokens: %w", errEmptyID)
	}
	err := c.do(ctx, request{
		method:   http.MethodDelete,
		endpoint: "DELETE /api/v2/users/{id}/refresh-tokens",
		path:     "/api/v2/users/" + pathEscape(userID) + "/refresh-tokens",
	})
	if err != nil {
		return fmt.Errorf("delete auth0 user refresh tokens: %w", planRefusal(err))
	}
	return nil
}
