package sql

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Key types syncd gives its own tables' employee_id columns: every integer
// key is carried as bigint, every character key as text.
const (
	KeyBigint = "bigint"
	KeyUUID   = "uuid"
	KeyText   = "text"
)

// supportedKeys maps the primary key types syncd serves (pg_type names) to
// the type its own tables carry the key as.
var supportedKeys = map[string]string{
	"int2": KeyBigint, "int4": KeyBigint, "int8": KeyBigint,
	"uuid":    KeyUUID,
	"text":    KeyText,
	"varchar": KeyText,
}

// SupportedKeys says, in words, which employees keys syncd serves.
const SupportedKeys = "a single-column primary key named id of type smallint, integer, bigint, uuid, text or varchar"

// UnsupportedKeyError is Migrate's refusal of an employees table whose key
// syncd cannot serve. Nothing was changed.
type UnsupportedKeyError struct {
	Table string // the table, as the database names it
	Found string // what its key is, in words
}

func (e *UnsupportedKeyError) Error() string {
	return fmt.Sprintf("table %s has %s; syncd supports %s (nothing was changed)", e.Table, e.Found, SupportedKeys)
}

// ErrUnsupportedKey matches every UnsupportedKeyError.
var ErrUnsupportedKey = errors.New("unsupported employees key")

func (e *UnsupportedKeyError) Is(target error) bool { return target == ErrUnsupportedKey }

// KeyType reads the key of the employees table syncd would serve (the one
// an unqualified "employees" names on conn's search path) and says how
// syncd's tables carry it: KeyBigint, KeyUUID or KeyText. A database without
// the table gets KeyBigint (Migrate creates it with a bigint key). A table
// with no primary key, a composite one, one not named id, or of another type
// is an *UnsupportedKeyError.
func KeyType(ctx context.Context, conn interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) (string, error) {
	rows, err := conn.Query(ctx, `
		SELECT c.oid::regclass::text, c.relkind::text, a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text
		  FROM pg_class c
		  LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
		  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
		  LEFT JOIN pg_type t ON t.oid = a.atttypid
		 WHERE c.oid = to_regclass('employees')
		 ORDER BY array_position(i.indkey::int2[], a.attnum)`)
	if err != nil {
		return "", fmt.Errorf("read the employees key: %w", err)
	}
	type col struct{ table, kind, name, typ, typname string }
	var cols []col
	for rows.Next() {
		var c col
		var name, typ, typname *string
		if err := rows.Scan(&c.table, &c.kind, &name, &typ, &typname); err != nil {
			rows.Close()
			return "", fmt.Errorf("read the employees key: %w", err)
		}
		if name != nil {
			c.name, c.typ, c.typname = *name, *typ, *typname
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("read the employees key: %w", err)
	}
	if len(cols) == 0 {
		return KeyBigint, nil // no table yet: migration 001 creates it
	}
	table := cols[0].table
	switch {
	case cols[0].kind != "r" && cols[0].kind != "p":
		return "", &UnsupportedKeyError{Table: table, Found: "no table of that name (it is a view or another kind of relation)"}
	case cols[0].name == "":
		return "", &UnsupportedKeyError{Table: table, Found: "no primary key"}
	case len(cols) > 1:
		names := make([]string, len(cols))
		for i, c := range cols {
			names[i] = c.name + " " + c.typ
		}
		return "", &UnsupportedKeyError{Table: table, Found: "a composite primary key (" + strings.Join(names, ", ") + ")"}
	}
	c := cols[0]
	kt, ok := supportedKeys[c.typname]
	if !ok {
		return "", &UnsupportedKeyError{Table: table, Found: fmt.Sprintf("primary key %s of type %s", c.name, c.typ)}
	}
	if c.name != "id" {
		return "", &UnsupportedKeyError{Table: table, Found: fmt.Sprintf("primary key %s (%s), not named id", c.name, c.typ)}
	}
	return kt, nil
}
