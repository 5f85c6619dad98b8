package reconcile_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/reconcile"
)

// TestConflictAccount: the account a conflict names is read back from the
// message ConflictError writes to auth0_sync_error, whatever its reason.
func TestConflictAccount(t *testing.T) {
	t.Parallel()
	for _, reason := range []string{"which belongs to employee 7", "which syncd did not create (no app_metadata.employee_id); link it by setting auth0_user_id, or run with --adopt=adopt"} {
		msg := (&reconcile.ConflictError{Email: "maria@example.com", UserID: "auth0|65f0a1b2c3", Reason: reason}).Error()
		require.Equal(t, "auth0|65f0a1b2c3", reconcile.ConflictAccount(msg), msg)
	}
	for _, msg := range []string{"", "role_code: no mapping", "email x@example.com is invalid",
		(&reconcile.UsernameConflictError{Username: "maria", Email: "maria@example.com"}).Error()} {
		require.Empty(t, reconcile.ConflictAccount(msg), msg)
	}
}
