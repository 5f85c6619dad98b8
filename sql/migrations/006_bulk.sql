-- syncd schema, version 5: bulk creation through Auth0 users-import jobs
-- (issue 13). Additive and idempotent.

-- One row per import job syncd runs. Its members are the employees whose
-- auth0_import_job names it; they are 'syncing' and no reconcile claims them
-- while they are in the job (the job is their lease). A job row is owned by
-- one process at a time (locked_by/locked_until, renewed while it works), so
-- a killed process's jobs are taken over once the lease expires.
--   queued    members chosen, file not uploaded yet
--   uploading the upload was started (uploads counts them); auth0_job_id is
--             NULL until Auth0's 202 is recorded: a job found here with no id
--             lost its answer (or was never sent) and is uploaded again, which
--             upsert=false makes harmless
--   running   Auth0 processes it (auth0_job_id known)
--   roles     the job finished; the members still in it were imported and get
--             their role in batches, then are marked synced
-- A finished job's row is deleted with its last members.
CREATE TABLE IF NOT EXISTS syncd_import_jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state        text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'uploading', 'running', 'roles')),
    auth0_job_id text,
    uploads      int NOT NULL DEFAULT 0,
    -- xmin of the members when they were put in the job (one transaction):
    -- a member whose xmin moved was changed meanwhile and goes back to the
    -- per-user path instead of being marked from the job.
    claim_xmin   bigint NOT NULL,
    members      int NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    uploaded_at  timestamptz,
    locked_by    text,
    locked_until timestamptz,
    last_error   text
);

ALTER TABLE employees ADD COLUMN IF NOT EXISTS auth0_import_job bigint;
CREATE INDEX IF NOT EXISTS employees_auth0_import_job_idx ON employees (auth0_import_job)
    WHERE auth0_import_job IS NOT NULL;
-- The backlog bulk creation looks at: rows that never had an account nor an attempt.
CREATE INDEX IF NOT EXISTS employees_auth0_never_created_idx ON employees (id)
    WHERE auth0_user_id IS NULL AND auth0_account_created_at IS NULL AND auth0_sync_attempts = 0
      AND auth0_import_job IS NULL AND active;
