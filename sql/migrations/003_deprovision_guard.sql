-- syncd schema, version 3: the mass-deprovision guard's state, shared by every
-- replica and kept across restarts. Additive and idempotent.

-- Deprovisions (block or delete) that wait for the guard: settling (counted
-- with the rest of their batch once the settling window ends), held (the batch
-- was over --max-deprovision; waits for `syncd guard release`, or for the row
-- to stop asking), or allowed (let through by the guard or released by an
-- operator; the reconcile that carries it out removes the row). A deleted
-- employee's row keeps what its account is found by (auth0_user_id, email):
-- the outbox row that carried them is gone once the key was handled.
CREATE TABLE IF NOT EXISTS syncd_deprovisions (
    key           text PRIMARY KEY, -- "employee:42", or "account:auth0|…" for an orphan
    kind          text NOT NULL CHECK (kind IN ('inactive', 'deleted', 'orphan')),
    employee_id   {{.key_type}}, -- NULL for an orphan (before version 8: 0)
    auth0_user_id text,
    email         text,
    state         text NOT NULL CHECK (state IN ('settling', 'held', 'allowed')),
    requested_at  timestamptz NOT NULL,
    decided_at    timestamptz,
    reason        text,
    -- Who released a held deprovision (syncd guard release), NULL if the
    -- guard allowed it within the limit.
    released_by   text,
    -- When an allowed deprovision was handed back to the work queue (an
    -- outbox row written); NULL: not yet.
    queued_at     timestamptz
);
CREATE INDEX IF NOT EXISTS syncd_deprovisions_state_idx ON syncd_deprovisions (state);

-- The guard's sliding window: one row per deprovision it let through within
-- the limit, at the time it decided. Counted by every replica; rows older than
-- the window are deleted.
CREATE TABLE IF NOT EXISTS syncd_deprovision_window (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decided_at    timestamptz NOT NULL,
    key           text NOT NULL
);
CREATE INDEX IF NOT EXISTS syncd_deprovision_window_decided_at_idx ON syncd_deprovision_window (decided_at);
