package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	syncdsql "github.com/syncd/syncd/sql"
)

// Keys are the kinds of employees key the key-parametrised tests run syncd
// on: the bigint key syncd creates, a uuid key, and a text key (an HR
// system's employee number).
var Keys = []string{syncdsql.KeyBigint, syncdsql.KeyUUID, syncdsql.KeyText}

// keyedTables create, before syncd migrates, an employees table of each
// kind whose key has a default, so that an INSERT that names no id works
// for every kind: uuid keys are random, text keys are E-00001, E-00002, ….
var keyedTables = map[string]string{
	syncdsql.KeyUUID: `CREATE TABLE employees (
		id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
		name text NOT NULL, email text NOT NULL, department text, phone_number text, connecteam_id text)`,
	syncdsql.KeyText: `CREATE SEQUENCE employees_number_seq;
		CREATE TABLE employees (
		id text PRIMARY KEY DEFAULT 'E-' || lpad(nextval('employees_number_seq')::text, 5, '0'),
		name text NOT NULL, email text NOT NULL, department text, phone_number text, connecteam_id text)`,
}

// NewKeyedDatabase is NewDatabase with an employees table whose key is of
// kind key (one of Keys), migrated by syncd.
func NewKeyedDatabase(tb testing.TB, key string) string {
	tb.Helper()
	ddl, ok := keyedTables[key]
	if !ok {
		if key != syncdsql.KeyBigint {
			tb.Fatalf("pgtest: no employees table for key %q", key)
		}
		return NewDatabase(tb)
	}
	url := NewEmptyDatabase(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, ddl); err != nil {
		tb.Fatalf("create %s-keyed employees: %v", key, err)
	}
	if _, err := syncdsql.Migrate(ctx, conn); err != nil {
		tb.Fatalf("migrate %s-keyed employees: %v", key, err)
	}
	return url
}
