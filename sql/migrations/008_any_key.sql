-- syncd schema, version 8: employees keys other than integers (uuid, text).
-- Additive and idempotent. The template value key_type is how syncd's tables
-- carry the key (bigint, uuid or text; see sql.KeyType).

-- syncd_keys(keys) turns the text form of keys (what syncd's Go code carries)
-- into an array of the key's type, so that one statement serves every key
-- type and `id = ANY(syncd_keys($1))` stays an index scan (the function is
-- inlined). A text that is not a key of that type raises an error.
CREATE OR REPLACE FUNCTION syncd_keys(keys text[]) RETURNS {{.key_type}}[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT keys::{{.key_type}}[] $$;

-- An orphan's deprovision has no employee: NULL, not 0 (no key type but an
-- integer has a 0).
ALTER TABLE syncd_deprovisions ALTER COLUMN employee_id DROP NOT NULL;
ALTER TABLE syncd_deprovisions ALTER COLUMN employee_id DROP DEFAULT;
{{if eq .key_type "bigint"}}UPDATE syncd_deprovisions SET employee_id = NULL WHERE employee_id = 0 AND kind = 'orphan';{{end}}

-- syncd_parse_keys(texts) reads texts a person or Auth0 gave (`resync
-- --employee`, the console, app_metadata.employee_id) as keys: one row per
-- text, key NULL when the text is no key of this type, so that a wrong text
-- is reported rather than failing the statement. For small lists: each text
-- is its own subtransaction.
CREATE OR REPLACE FUNCTION syncd_parse_keys(texts text[]) RETURNS TABLE (given text, key {{.key_type}})
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY coalesce(texts, '{}'::text[]) LOOP
        given := t;
        BEGIN
            key := t::{{.key_type}};
        EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
            key := NULL;
        END;
        RETURN NEXT;
    END LOOP;
END;
$$;
