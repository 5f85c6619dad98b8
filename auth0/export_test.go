package auth0_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
)

func TestExportUsers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// The job is pending for a while: long enough that a loaded machine still
	// polls it at least twice (every 20ms at first).
	f := setup(t, emulator.Options{ExportDelay: time.Second}, nil)
	want := map[string]string{} // user_id → employee_id
	for i := range 120 {
		u := f.createUser(ctx, map[string]any{"employee_id": fmt.Sprint(i), "nested": map[string]any{"a": 1}})
		want[u.UserID] = fmt.Sprint(i)
	}

	req := auth0.ExportRequest{
		ConnectionID: f.e.ConnectionID(f.connection()),
		Fields:       []auth0.ExportField{{Name: "user_id"}, {Name: "email"}, {Name: "app_metadata"}, {Name: "identities[0].connection", ExportAs: "connection"}},
		PollInterval: 20 * time.Millisecond,
	}
	got := map[string]string{}
	err := f.c.ExportUsers(ctx, req, func(u auth0.ExportedUser) error {
		var id, conn string
		var md struct {
			EmployeeID string         `json:"employee_id"`
			Nested     map[string]int `json:"nested"`
		}
		require.NoError(t, json.Unmarshal(u["user_id"], &id))
		require.NoError(t, json.Unmarshal(u["app_metadata"], &md))
		require.NoError(t, json.Unmarshal(u["connection"], &conn))
		require.Equal(t, f.connection(), conn)
		require.Equal(t, map[string]int{"a": 1}, md.Nested)
		require.NotContains(t, got, id)
		got[id] = md.EmployeeID
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.GreaterOrEqual(t, f.e.CallCount("GET /api/v2/jobs/{id}"), int64(2), "polled until the job completed")
	require.EqualValues(t, 1, f.e.CallCount(emulator.EndpointExport))

	// Limit, and an error from each stops the export and comes back as it is.
	stop := errors.New("enough")
	n := 0
	err = f.c.ExportUsers(ctx, auth0.ExportRequest{Limit: 5, PollInterval: 20 * time.Millisecond}, func(auth0.ExportedUser) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	require.Equal(t, stop, errors.Unwrap(err), "wrapped once by ExportUsers")
	require.ErrorIs(t, err, stop)
	require.Equal(t, 3, n)

	n = 0
	require.NoError(t, f.c.ExportUsers(ctx, auth0.ExportRequest{Limit: 5, PollInterval: 20 * time.Millisecond}, func(auth0.ExportedUser) error { n++; return nil }))
	require.Equal(t, 5, n)

	job, err := f.c.GetJob(ctx, "job_0000000000000000")
	require.ErrorIs(t, err, auth0.ErrNotFound)
	require.Nil(t, job)
}
