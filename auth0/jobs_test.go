package auth0_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
)

func importFile(t *testing.T, users ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(users)
	require.NoError(t, err)
	return b
}

func waitImport(t *testing.T, c *auth0.Client, id string) *auth0.ImportJob {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		job, err := c.GetImportJob(context.Background(), id)
		require.NoError(t, err)
		if job.Status == auth0.JobCompleted || job.Status == auth0.JobFailed {
			return job
		}
		require.True(t, time.Now().Before(deadline), "job %s still %s", id, job.Status)
		time.Sleep(5 * time.Millisecond)
	}
}

// An import job end to end: the connection's id, the multipart upload, the
// job read until completed, /errors, and one role given to many users.
func TestImportUsers(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{}, nil)
	ctx := context.Background()
	connID, err := f.c.ConnectionID(ctx, f.connection())
	require.NoError(t, err)
	require.Equal(t, f.e.ConnectionID(""), connID)
	_, err = f.c.ConnectionID(ctx, "no-such-connection")
	require.ErrorIs(t, err, auth0.ErrNotFound)

	file := importFile(t, map[string]any{"email": "one@example.com", "user_id": "one"},
		map[string]any{"email": "bad", "user_id": "two"})
	job, err := f.c.ImportUsers(ctx, auth0.ImportRequest{ConnectionID: connID, Users: file, ExternalID: "syncd-1"})
	require.NoError(t, err)
	require.Equal(t, "syncd-1", job.ExternalID)
	done := waitImport(t, f.c, job.ID)
	require.Equal(t, &auth0.ImportSummary{Failed: 1, Inserted: 1, Total: 2}, done.Summary)
	errs, err := f.c.ImportJobErrors(ctx, job.ID)
	require.NoError(t, err)
	require.Len(t, errs, 1)
	require.Equal(t, "FORMAT", errs[0].Codes())
	require.Equal(t, "two", errs[0].User["user_id"])

	role := f.e.RoleID(emulator.DefaultRole)
	require.NoError(t, f.c.AssignRoleUsers(ctx, role, []string{"auth0|one"}))
	require.Equal(t, []string{emulator.DefaultRole}, f.e.UserRoles("auth0|one"))
	err = f.c.AssignRoleUsers(ctx, role, []string{"auth0|one", "auth0|two"})
	require.ErrorIs(t, err, auth0.ErrNotFound, "all or nothing")

	// 204: no errors.
	job, err = f.c.ImportUsers(ctx, auth0.ImportRequest{ConnectionID: connID, Users: importFile(t, map[string]any{"email": "three@example.com"})})
	require.NoError(t, err)
	waitImport(t, f.c, job.ID)
	errs, err = f.c.ImportJobErrors(ctx, job.ID)
	require.NoError(t, err)
	require.Empty(t, errs)
	_, err = f.c.GetImportJob(ctx, "job_0000000000000000")
	require.ErrorIs(t, err, auth0.ErrNotFound)
}

// The "active import users jobs" 429 comes back at once, as
// ErrTooManyImportJobs: the caller waits for a slot. A lost 202 is
// ErrOutcomeUnknown, never repeated; a file over 512,000 bytes is refused
// before it is sent.
func TestImportUsersRefusals(t *testing.T) {
	t.Parallel()
	f := setup(t, emulator.Options{}, nil)
	ctx := context.Background()
	connID := f.e.ConnectionID("")
	f.e.SetImportDelay(time.Hour)
	for range 2 {
		_, err := f.c.ImportUsers(ctx, auth0.ImportRequest{ConnectionID: connID, Users: []byte(`[]`)})
		require.NoError(t, err)
	}
	_, err := f.c.ImportUsers(ctx, auth0.ImportRequest{ConnectionID: connID, Users: []byte(`[]`)})
	require.ErrorIs(t, err, auth0.ErrTooManyImportJobs)
	require.EqualValues(t, 1, f.calls("POST /api/v2/jobs/users-imports", http.StatusTooManyRequests), "not retried")

	f.e.StartImportJobs()
	f.e.SetFaults(emulator.Faults{Script: []emulator.ScriptedFault{{Endpoint: "POST /api/v2/jobs/users-imports", LoseAnswer: true}}})
	require.Eventually(t, func() bool {
		_, err = f.c.ImportUsers(ctx, auth0.ImportRequest{ConnectionID: connID, Users: []byte(`[]`)})
		return !errors.Is(err, auth0.ErrTooManyImportJobs)
	}, 30*time.Second, 5*time.Millisecond)
	require.ErrorIs(t, err, auth0.ErrOutcomeUnknown)
	require.EqualValues(t, 1, f.calls("POST /api/v2/jobs/users-imports", 0), "a lost answer is not repeated")

	big := []byte(`[{"email":"x@example.com","name":"` + strings.Repeat("x", auth0.MaxImportFileBytes) + `"}]`)
	before := f.e.CallCount("POST /api/v2/jobs/users-imports")
	_, err = f.c.ImportUsers(ctx, auth0.ImportRequest{ConnectionID: connID, Users: big})
	require.Error(t, err)
	require.Equal(t, before, f.e.CallCount("POST /api/v2/jobs/users-imports"))
}
