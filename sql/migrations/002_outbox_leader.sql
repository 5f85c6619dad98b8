-- syncd schema, version 2: what the change sources of outbox/ need beyond
-- version 1. Additive and idempotent.

-- The leader of replication mode: one row per replication slot, held by the
-- one process that streams it and renewed while it does (as River's
-- river_leader). Unlogged: after a crash nobody leads, which is what is true.
CREATE UNLOGGED TABLE IF NOT EXISTS syncd_leader (
    name       text PRIMARY KEY,
    leader_id  text NOT NULL,
    elected_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    CONSTRAINT syncd_leader_name_length CHECK (char_length(name) BETWEEN 1 AND 127),
    CONSTRAINT syncd_leader_leader_id_length CHECK (char_length(leader_id) BETWEEN 1 AND 127)
);

-- Lease renewal and release find the rows of one process without a scan.
CREATE INDEX IF NOT EXISTS auth0_outbox_locked_by_idx ON auth0_outbox (locked_by)
    WHERE locked_by IS NOT NULL;
