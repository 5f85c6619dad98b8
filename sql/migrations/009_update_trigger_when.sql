-- syncd schema: the outbox trigger of UPDATEs fires only for rows whose
-- desired state changed (issue 13). Additive and idempotent.
--
-- Until now it was a statement-level trigger with transition tables: it ran
-- for every UPDATE of employees, syncd's own writes of sync columns too (two
-- or three per reconcile), captured the old and new rows, ran a set
-- difference and inserted nothing. A statement-level trigger cannot look at
-- columns in a WHEN clause, and one with transition tables cannot be limited
-- to columns (UPDATE OF), so it becomes a row-level trigger whose WHEN clause
-- is the same comparison as the BEFORE trigger's that marks the row pending:
-- an UPDATE of sync columns alone (or `SET name = name`) does not even call
-- it. A row whose desired state changed gets its outbox row and a
-- notification; Postgres folds the notifications of a transaction into one.
-- The id is compared too, as the set difference did (a changed key names new
-- work).

CREATE OR REPLACE FUNCTION syncd_employees_outbox_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO auth0_outbox (employee_id, op) VALUES (NEW.id, 'update');
    PERFORM pg_notify('auth0_outbox', '');
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS syncd_employees_outbox_update ON employees;

CREATE TRIGGER syncd_employees_outbox_update
    AFTER UPDATE ON employees
    FOR EACH ROW
    WHEN ((OLD.id, OLD.name, OLD.email, OLD.department, OLD.phone_number, OLD.connecteam_id, OLD.role_code, OLD.active)
          IS DISTINCT FROM
          (NEW.id, NEW.name, NEW.email, NEW.department, NEW.phone_number, NEW.connecteam_id, NEW.role_code, NEW.active))
    EXECUTE FUNCTION syncd_employees_outbox_updated();
