package reconcile

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/syncd/syncd/auth0"
)

// Auth0 is what the reconciler needs of the Management API; *auth0.Client
// satisfies it.
type Auth0 interface {
	CreateUser(ctx context.Context, req auth0.CreateUserRequest) (*auth0.User, error)
	GetUser(ctx context.Context, id string) (*auth0.User, error)
	UpdateUser(ctx context.Context, id string, req auth0.UpdateUserRequest) (*auth0.User, error)
	DeleteUser(ctx context.Context, id string) error
	UsersByEmail(ctx context.Context, email string) ([]auth0.User, error)
	SearchUsers(ctx context.Context, req auth0.SearchUsersRequest) (*auth0.SearchUsersPage, error)
	ListUserRoles(ctx context.Context, userID string) ([]auth0.Role, error)
	AssignUserRoles(ctx context.Context, userID string, roleIDs []string) error
	RemoveUserRoles(ctx context.Context, userID string, roleIDs []string) error
	ListRoles(ctx context.Context, nameFilter string) ([]auth0.Role, error)
	// Ending a leaver's access (revoke.go).
	DeleteUserSessions(ctx context.Context, userID string) error
	DeleteUserRefreshTokens(ctx context.Context, userID string) error
	// Bulk reads of the drift scan.
	ListRoleUsers(ctx context.Context, roleID string, each func([]auth0.RoleMember) error) error
	ExportUsers(ctx context.Context, req auth0.ExportRequest, each func(auth0.ExportedUser) error) error
}

// employeeIDOf reads app_metadata.employee_id, which Auth0 returns as a JSON
// number (or, if someone typed it by hand, a string).
func employeeIDOf(u *auth0.User) (string, bool) {
	return KeyOf(u.AppMetadata["employee_id"])
}

// observedState extracts the managed part of an Auth0 user.
func observedState(u *auth0.User, keys ManagedKeys) State {
	return State{
		Email:   normalizeEmail(u.Email),
		Name:    u.Name,
		Blocked: u.Blocked,
		App:     managedOnly(u.AppMetadata, keys.App),
		User:    managedOnly(u.UserMetadata, keys.User),
	}
}

// roleCache resolves role names to ids: all roles are listed once and cached;
// a name that is missing triggers one refresh (at most every refreshEvery).
type roleCache struct {
	mu          sync.Mutex
	ids         map[string]string
	refreshedAt time.Time
}

const refreshEvery = 30 * time.Second

// unknownRoleError says that a mapped role does not exist in the tenant; it
// fails the reconcile that needs the role (the row retries: someone may
// create the role), and its message says what to do.
type unknownRoleError struct{ name string }

func (e *unknownRoleError) Error() string {
	return fmt.Sprintf("auth0 role %q does not exist in the tenant (create it, or fix the role mapping)", e.name)
}

func (c *roleCache) id(ctx context.Context, api Auth0, name string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.ids[name]; ok {
		return id, nil
	}
	if c.ids == nil || time.Since(c.refreshedAt) > refreshEvery {
		if err := c.refresh(ctx, api); err != nil {
			return "", err
		}
		if id, ok := c.ids[name]; ok {
			return id, nil
		}
	}
	return "", &unknownRoleError{name: name}
}

func (c *roleCache) refresh(ctx context.Context, api Auth0) error {
	roles, err := api.ListRoles(ctx, "")
	if err != nil {
		return fmt.Errorf("list roles: %w", err)
	}
	c.ids = make(map[string]string, len(roles))
	for _, r := range roles {
		c.ids[r.Name] = r.ID
	}
	c.refreshedAt = time.Now()
	return nil
}
