package sql_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	syncdsql "github.com/syncd/syncd/sql"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

// An existing employees table keyed by any supported type is migrated: the
// outbox and audit tables carry its key, the rows already there are pending
// with one outbox row each, and the triggers write its key.
func TestMigrateAnyKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ key, carried, value string }{
		{"smallint", "bigint", "7"},
		{"integer", "bigint", "7"},
		{"bigint", "bigint", "7"},
		{"uuid", "uuid", "3f2a0c5e-8f7b-4c1d-9e2a-0123456789ab"},
		{"text", "text", "E-00042"},
		{"varchar(20)", "text", "HR/7 #1"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := pgtest.NewEmptyDatabase(t)
			conn := connect(t, url)
			_, err := conn.Exec(ctx, `CREATE TABLE employees (id `+tc.key+` PRIMARY KEY, name text NOT NULL, email text NOT NULL);
				INSERT INTO employees (id, name, email) VALUES ('`+tc.value+`', 'Ada', 'ada@example.com')`)
			require.NoError(t, err)

			_, err = syncdsql.MigrateURL(ctx, url)
			require.NoError(t, err)

			kt, err := syncdsql.KeyType(ctx, conn)
			require.NoError(t, err)
			require.Equal(t, tc.carried, kt)
			for _, table := range []string{"auth0_outbox", "auth0_sync_logs", "syncd_deprovisions", "syncd_access_revocations"} {
				var typ string
				require.NoError(t, conn.QueryRow(ctx, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute
					WHERE attrelid = $1::regclass AND attname = 'employee_id'`, table).Scan(&typ))
				require.Equal(t, tc.carried, typ, "%s.employee_id", table)
			}
			var outboxKey, status string
			require.NoError(t, conn.QueryRow(ctx, `SELECT o.employee_id::text, e.auth0_sync_status FROM auth0_outbox o JOIN employees e ON e.id = o.employee_id`).
				Scan(&outboxKey, &status))
			require.Equal(t, tc.value, outboxKey, "the existing row is pending work")
			require.Equal(t, "pending", status)

			// The triggers write the key; syncd_keys and syncd_parse_keys read texts as keys.
			_, err = conn.Exec(ctx, `DELETE FROM auth0_outbox; UPDATE employees SET name = 'Ada L.'`)
			require.NoError(t, err)
			require.NoError(t, conn.QueryRow(ctx, `SELECT employee_id::text FROM auth0_outbox`).Scan(&outboxKey))
			require.Equal(t, tc.value, outboxKey)
			var n int
			require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM employees WHERE id = ANY(syncd_keys($1))`, []string{tc.value}).Scan(&n))
			require.Equal(t, 1, n)
			var parsed *string
			require.NoError(t, conn.QueryRow(ctx, `SELECT key::text FROM syncd_parse_keys($1)`, []string{"not-a-key-of-any-number"}).Scan(&parsed))
			if tc.carried == "text" {
				require.NotNil(t, parsed, "every text is a text key")
			} else {
				require.Nil(t, parsed, "a text that is no %s is no key", tc.key)
			}
		})
	}
}

// A table syncd cannot serve is refused with one line naming the table, the
// key found and what is supported, and nothing is changed.
func TestMigrateRefusesUnsupportedKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, ddl, found string }{
		{"no primary key", `CREATE TABLE employees (id bigint, name text, email text)`, "has no primary key"},
		{"composite", `CREATE TABLE employees (org int, id int, name text, email text, PRIMARY KEY (org, id))`,
			"has a composite primary key (org integer, id integer)"},
		{"numeric", `CREATE TABLE employees (id numeric PRIMARY KEY, name text, email text)`, "has primary key id of type numeric"},
		{"date", `CREATE TABLE employees (id date PRIMARY KEY, name text, email text)`, "has primary key id of type date"},
		{"not named id", `CREATE TABLE employees (employee_number text PRIMARY KEY, name text, email text)`,
			"has primary key employee_number (text), not named id"},
		{"a view", `CREATE TABLE staff (id bigint PRIMARY KEY, name text, email text); CREATE VIEW employees AS SELECT * FROM staff`,
			"has no table of that name (it is a view or another kind of relation)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := pgtest.NewEmptyDatabase(t)
			conn := connect(t, url)
			_, err := conn.Exec(ctx, tc.ddl)
			require.NoError(t, err)

			_, err = syncdsql.MigrateURL(ctx, url)
			require.ErrorIs(t, err, syncdsql.ErrUnsupportedKey)
			require.Equal(t, "table employees "+tc.found+"; syncd supports "+syncdsql.SupportedKeys+" (nothing was changed)", err.Error())

			var tables int
			require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname LIKE 'syncd%' OR relname LIKE 'auth0%'`).Scan(&tables))
			require.Zero(t, tables, "nothing was created")
			var cols int
			require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass('employees') AND attname LIKE 'auth0%'`).Scan(&cols))
			require.Zero(t, cols, "no column was added")
		})
	}
}
