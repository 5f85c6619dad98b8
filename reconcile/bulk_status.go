package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ImportJobStatus is one of syncd's users-import jobs as `syncd status`
// shows it: its rows are 'syncing' until the job's outcome is recorded.
type ImportJobStatus struct {
	ID         int64      `json:"id"`
	State      string     `json:"state"` // queued, uploading, running, roles
	Auth0JobID string     `json:"auth0_job_id,omitempty"`
	Employees  int64      `json:"employees"`
	Uploads    int        `json:"uploads"`
	UploadedAt *time.Time `json:"uploaded_at,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
}

// readImportJobs lists the import jobs, oldest first.
func readImportJobs(ctx context.Context, db StatusQuerier) ([]ImportJobStatus, error) {
	rows, err := db.Query(ctx, `SELECT j.id, j.state, coalesce(j.auth0_job_id, ''),
			(SELECT count(*) FROM employees e WHERE e.auth0_import_job = j.id), j.uploads, j.uploaded_at, coalesce(j.last_error, '')
		FROM syncd_import_jobs j ORDER BY j.id`)
	if err != nil {
		return nil, fmt.Errorf("read import jobs: %w", err)
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ImportJobStatus, error) {
		var j ImportJobStatus
		err := r.Scan(&j.ID, &j.State, &j.Auth0JobID, &j.Employees, &j.Uploads, &j.UploadedAt, &j.LastError)
		return j, err
	})
	if err != nil {
		return nil, fmt.Errorf("read import jobs: %w", err)
	}
	if jobs == nil {
		jobs = []ImportJobStatus{}
	}
	return jobs, nil
}
