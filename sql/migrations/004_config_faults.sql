-- syncd schema, version 4: what a configuration fault leaves behind. Additive
-- and idempotent.

-- The configuration a row's `failed` was decided under (a fingerprint of the
-- mapping settings: connection, username mode, roles, …). A failure decided
-- under another configuration, or before syncd recorded one, is retried by
-- itself when syncd starts with a different configuration: a wrong setting
-- must not leave rows failed until an operator thinks of `syncd resync`.
ALTER TABLE employees ADD COLUMN IF NOT EXISTS auth0_failed_config text;

-- What each running syncd holds its work for, when the cause is the
-- configuration or the tenant (a missing connection, role or scope, refused
-- credentials): written when the hold starts or its cause changes, renewed
-- while it lasts, deleted when it clears. `syncd status` shows the rows
-- renewed recently. Unlogged: after a crash the daemon says it again.
CREATE UNLOGGED TABLE IF NOT EXISTS syncd_holds (
    owner      text PRIMARY KEY, -- one running syncd
    cause      text NOT NULL,     -- configuration, credentials, unreachable, server
    message    text NOT NULL,     -- the fault and its fix, in words
    since      timestamptz NOT NULL,
    renewed_at timestamptz NOT NULL
);
