-- syncd schema, version 10: the mapping is SQL (issue 15). Additive and
-- idempotent. The template value key_type is how syncd's tables carry the
-- employees key (bigint, uuid or text; see sql.KeyType).
--
-- What a row asks of Auth0 is the row of the view syncd_desired with the same
-- id. The operator owns the view (`syncd mapping check`, `syncd mapping
-- apply`); this migration creates it only where none exists, with the mapping
-- syncd had built in, so that nothing changes for an existing install. Its
-- columns are the contract:
--
--   id             the employees key (the table's key type)
--   email          text: the account's email (syncd trims and lower-cases it)
--   name           text: the account's name
--   role_code      text: a code that --roles maps to an Auth0 role name
--                  (--roles may list a role name alone: it maps to itself),
--                  or NULL for no managed role
--   blocked        boolean: the account is blocked (deleted instead under
--                  --deprovision delete)
--   app_metadata   jsonb object: the managed app_metadata keys it gives
--   user_metadata  jsonb object: the managed user_metadata keys it gives
--
-- syncd itself sets app_metadata.employee_id (the key, how syncd finds an
-- account again) and app_metadata.created_by (--created-by).

-- syncd_trim(t) trims what Go's strings.TrimSpace trims (Unicode white
-- space; ASCII white space where the database is not UTF-8), so that the
-- default mapping gives exactly what syncd's built-in mapping gave.
DO $do$
DECLARE
    spaces text := ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13);
BEGIN
    IF getdatabaseencoding() = 'UTF8' THEN
        spaces := spaces || chr(133) || chr(160) || chr(5760) || chr(8192) || chr(8193) || chr(8194) || chr(8195)
            || chr(8196) || chr(8197) || chr(8198) || chr(8199) || chr(8200) || chr(8201) || chr(8202)
            || chr(8232) || chr(8233) || chr(8239) || chr(8287) || chr(12288);
    END IF;
    EXECUTE format('CREATE OR REPLACE FUNCTION syncd_trim(t text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L', format('SELECT btrim(t, %L)', spaces));
END;
$do$;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'syncd_desired'
                     AND relnamespace = current_schema()::regnamespace) THEN
        CREATE VIEW syncd_desired AS
        SELECT e.id,
               e.email,
               e.name,
               e.role_code,
               NOT e.active AS blocked,
               jsonb_strip_nulls(jsonb_build_object(
                   'internal_id', to_jsonb(e.id),
                   'role_code', e.role_code,
                   'department', nullif(syncd_trim(e.department), ''),
                   'connecteam_id', nullif(syncd_trim(e.connecteam_id), ''),
                   'sync_status', CASE WHEN e.active THEN 'active' ELSE 'terminated' END)) AS app_metadata,
               jsonb_strip_nulls(jsonb_build_object(
                   'employee_id', to_jsonb(e.id),
                   'full_name', syncd_trim(e.name),
                   'department', nullif(syncd_trim(e.department), ''),
                   'phone_number', nullif(syncd_trim(e.phone_number), ''))) AS user_metadata
          FROM employees e;
    END IF;
END;
$do$;

-- The metadata keys syncd owns: it sets them from the view, and removes them
-- (null) when the view stops giving them. Keys not listed here are never
-- touched. app_metadata.employee_id and created_by are always syncd's.
CREATE TABLE IF NOT EXISTS syncd_managed_keys (
    metadata text NOT NULL CHECK (metadata IN ('app_metadata', 'user_metadata')),
    key      text NOT NULL CHECK (key <> '' AND key !~ '[.$]'),
    PRIMARY KEY (metadata, key)
);
INSERT INTO syncd_managed_keys (metadata, key) VALUES
    ('app_metadata', 'employee_id'), ('app_metadata', 'internal_id'), ('app_metadata', 'department'),
    ('app_metadata', 'role_code'), ('app_metadata', 'connecteam_id'), ('app_metadata', 'created_by'),
    ('app_metadata', 'sync_status'),
    ('user_metadata', 'employee_id'), ('user_metadata', 'full_name'), ('user_metadata', 'department'),
    ('user_metadata', 'phone_number')
ON CONFLICT DO NOTHING;

-- syncd_desired_of(key) is what syncd reads for one employee: the view's
-- contract columns with the managed keys, as one jsonb object; or
-- {"error": "..."} when the view has no row for the key, more than one, or
-- fails on this row's data (a division by zero, a cast, a subquery giving two
-- rows, an exception a function raises). Such an error stays this row's: it
-- is caught here, so that a statement reading many rows is not failed by one.
-- Errors that are not the row's (no such view or column, no privilege, the
-- server going away) fail the statement: syncd retries, and nothing is marked
-- failed for a fault of the setup. The view is named only in this body: an
-- operator may drop and create it again.
CREATE OR REPLACE FUNCTION syncd_desired_of(k {{.key_type}}) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    got jsonb;
BEGIN
    SELECT jsonb_agg(jsonb_build_object(
               'email', d.email, 'name', d.name, 'role_code', d.role_code, 'blocked', d.blocked,
               'app_metadata', d.app_metadata, 'user_metadata', d.user_metadata))
      INTO got
      FROM syncd_desired d WHERE d.id = k;
    IF got IS NULL THEN
        RETURN jsonb_build_object('error', 'syncd_desired has no row for this employee');
    ELSIF jsonb_array_length(got) > 1 THEN
        RETURN jsonb_build_object('error', format('syncd_desired has %s rows for this employee; it must have one', jsonb_array_length(got)));
    END IF;
    RETURN (got -> 0) || jsonb_build_object('managed', (
        SELECT jsonb_object_agg(metadata, keys) FROM (
            SELECT metadata, jsonb_agg(key ORDER BY key) AS keys FROM syncd_managed_keys GROUP BY metadata) m));
EXCEPTION WHEN data_exception OR cardinality_violation OR plpgsql_error THEN
    RETURN jsonb_build_object('error', 'syncd_desired: ' || SQLERRM);
END;
$$;

-- The hash (md5 of syncd_desired_of(id)::text) of what the row's last recorded
-- outcome was decided from. The mapping sweep and `syncd mapping apply` mark
-- pending the rows whose hash no longer matches the view: a changed mapping,
-- or a change the triggers cannot see (a joined table, the date).
ALTER TABLE employees ADD COLUMN IF NOT EXISTS auth0_desired_hash text;
UPDATE employees SET auth0_desired_hash = md5(syncd_desired_of(id)::text)
 WHERE auth0_sync_status IN ('synced', 'failed', 'conflict', 'deprovisioned');
