package testcontainers

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	syncdsql "github.com/syncd/syncd/sql"
)

// keyedTables are employees tables keyed by uuid and by text, created
// before syncd migrates. Each key has a default, so that an INSERT that
// names no id works for every kind: uuid keys are random, text keys are an
// HR system's employee numbers, E-00001, E-00002, ….
var keyedTables = map[string]string{
	syncdsql.KeyUUID: `CREATE TABLE employees (
		id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
		name text NOT NULL, email text NOT NULL, department text, phone_number text, connecteam_id text)`,
	syncdsql.KeyText: `CREATE SEQUENCE employees_number_seq;
		CREATE TABLE employees (
		id text PRIMARY KEY DEFAULT 'E-' || lpad(nextval('employees_number_seq')::text, 5, '0'),
		name text NOT NULL, email text NOT NULL, department text, phone_number text, connecteam_id text)`,
}

// CreateKeyed is Create with an employees table whose key is of kind key
// (syncdsql.KeyBigint, KeyUUID or KeyText), migrated by syncd: a clone of
// the migrated template for bigint (the table syncd creates), else an empty
// database given the keyed table, then migrated.
func (c *Cloner) CreateKeyed(ctx context.Context, key string) (name, dbURL string, err error) {
	if key == syncdsql.KeyBigint {
		return c.Create(ctx)
	}
	ddl, ok := keyedTables[key]
	if !ok {
		return "", "", fmt.Errorf("no employees table for key %q", key)
	}
	name, dbURL, err = c.CreateEmpty(ctx)
	if err != nil {
		return "", "", err
	}
	if err := migrateKeyed(ctx, dbURL, key, ddl); err != nil {
		if derr := c.Drop(context.WithoutCancel(ctx), name); derr != nil {
			err = fmt.Errorf("%w (and drop database: %v)", err, derr)
		}
		return "", "", err
	}
	return name, dbURL, nil
}

func migrateKeyed(ctx context.Context, dbURL, key, ddl string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("create %s-keyed employees: %w", key, err)
	}
	if _, err := syncdsql.Migrate(ctx, conn); err != nil {
		return fmt.Errorf("migrate %s-keyed employees: %w", key, err)
	}
	got, err := syncdsql.KeyType(ctx, conn)
	if err != nil {
		return err
	}
	if got != key {
		return fmt.Errorf("the %s-keyed employees table reads as key %s", key, got)
	}
	return nil
}
