-- syncd schema: what syncd has revoked of a deprovisioned account's access
-- (issue 17). Additive and idempotent.

-- One row per Auth0 account whose sessions and/or refresh tokens syncd
-- revoked after blocking it (or before deleting it). Keyed by the account, so
-- it serves every kind of deprovision: an inactive row, a deleted row (whose
-- employee row is gone) and an orphan account (which never had one). A part
-- with a time is done and is not revoked again; the row goes when syncd
-- unblocks (or recreates, or deletes) the account, so the next deprovision
-- revokes afresh.
CREATE TABLE IF NOT EXISTS syncd_access_revocations (
    auth0_user_id             text PRIMARY KEY,
    employee_id               {{.key_type}},
    sessions_revoked_at       timestamptz,
    refresh_tokens_revoked_at timestamptz,
    updated_at                timestamptz NOT NULL DEFAULT now()
);
