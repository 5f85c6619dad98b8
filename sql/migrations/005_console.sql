-- syncd schema, version 5: the operator console. Additive and idempotent.

-- The console's employee list: keyset pages by id, filtered by status, and
-- searched by the start of an email, stay index scans at 100,000 rows.
CREATE INDEX IF NOT EXISTS employees_console_status_id_idx ON employees (auth0_sync_status, id);
CREATE INDEX IF NOT EXISTS employees_console_email_idx ON employees (lower(email) text_pattern_ops);

-- syncd_resync(ids) asks the running daemon to reconcile employees again,
-- reading Auth0 first, from ordinary SQL: what `syncd resync --employee` and
-- the console's Sync now do. All or nothing: an id without a row raises
-- no_data_found and changes nothing. Each employee gets an audit row naming
-- the calling role. It runs with its owner's rights (the tables need not be
-- granted to the caller); EXECUTE is granted separately (see the README):
--   GRANT EXECUTE ON FUNCTION syncd_resync(bigint[]) TO app;  (uuid[] or text[] for such keys)
CREATE OR REPLACE FUNCTION syncd_resync(ids {{.key_type}}[]) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    wanted  {{.key_type}}[];
    missing {{.key_type}}[];
    n       bigint;
BEGIN
    SELECT coalesce(array_agg(DISTINCT i ORDER BY i), '{}') INTO wanted FROM unnest(ids) AS i WHERE i IS NOT NULL;
    PERFORM 1 FROM employees WHERE id = ANY(wanted) ORDER BY id FOR UPDATE;
    SELECT array_agg(i ORDER BY i) INTO missing
      FROM unnest(wanted) AS i WHERE NOT EXISTS (SELECT 1 FROM employees e WHERE e.id = i);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'syncd_resync: no employee with id %; nothing was changed', array_to_string(missing, ', ')
            USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO auth0_sync_logs (employee_id, action, status, response_data)
    SELECT i, 'resync_request', 'requested', jsonb_build_object('actor', 'sql:' || session_user)
      FROM unnest(wanted) AS i;
    WITH marked AS (
        UPDATE employees SET auth0_sync_status = 'pending', auth0_synced_state = NULL, auth0_next_attempt_at = NULL
         WHERE id = ANY(wanted) RETURNING id)
    INSERT INTO auth0_outbox (employee_id, op) SELECT id, 'resync' FROM marked ORDER BY id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pg_notify('auth0_outbox', '');
    END IF;
    RETURN n;
END;
$$;
REVOKE ALL ON FUNCTION syncd_resync({{.key_type}}[]) FROM PUBLIC;
