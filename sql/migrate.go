// Package sql holds syncd's schema as ordered, embedded migrations and the
// function that applies them.
//
// Migrations are additive: they create what is missing and never drop or rewrite
// data. They are applied with tern's migrate package, which serialises
// concurrent runs with a session advisory lock on the one connection it uses.
package sql

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// VersionTable is the table in which the applied schema version is kept.
const VersionTable = "public.syncd_schema_version"

// Channel is the LISTEN/NOTIFY channel the employees triggers signal on.
const Channel = "auth0_outbox"

// Publication is the publication of auth0_outbox inserts used by replication mode.
const Publication = "syncd_outbox"

// NewerSchemaError is Migrate's refusal of a database migrated by a newer
// syncd: this build does not know the newest migrations, so it cannot tell
// what they did, and tern would try to migrate down. Schema changes are
// additive, so an older syncd may go on running against the newer schema
// (`syncd run` without --migrate); it only never migrates it.
type NewerSchemaError struct {
	Have  int32 // the database's schema version
	Known int32 // the newest version this build knows (Latest)
}

func (e *NewerSchemaError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this syncd knows (%d): a newer syncd migrated it; migrate with that version or a later one", e.Have, e.Known)
}

// Result says what Migrate did.
type Result struct {
	From, To int32 // schema version before and after
}

// Migrate brings the database behind conn to the newest schema version. It is
// safe to call concurrently from several processes and a no-op when the schema
// is current.
//
// The employees table's key decides the type of syncd's own employee_id
// columns; a table whose key syncd cannot serve is refused (an
// *UnsupportedKeyError) before anything is changed.
func Migrate(ctx context.Context, conn *pgx.Conn) (Result, error) {
	keyType, err := KeyType(ctx, conn)
	if err != nil {
		return Result{}, err
	}
	m, err := newMigrator(ctx, conn, keyType)
	if err != nil {
		return Result{}, err
	}
	from, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("read schema version: %w", err)
	}
	known := int32(len(m.Migrations))
	if from > known {
		return Result{From: from, To: from}, &NewerSchemaError{Have: from, Known: known}
	}
	if err := m.Migrate(ctx); err != nil {
		// A newer syncd may have migrated between the look above and
		// tern's own, under its lock.
		if now, verr := m.GetCurrentVersion(ctx); verr == nil && now > known {
			return Result{From: now, To: now}, &NewerSchemaError{Have: now, Known: known}
		}
		return Result{}, fmt.Errorf("migrate: %w", err)
	}
	to, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("read schema version: %w", err)
	}
	return Result{From: from, To: to}, nil
}

// MigrateURL connects to url and applies Migrate.
func MigrateURL(ctx context.Context, url string) (Result, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return Result{}, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return Migrate(ctx, conn)
}

// Latest is the newest schema version this build knows.
func Latest() int32 {
	names, err := migrate.FindMigrations(sub())
	if err != nil {
		panic(err) // the embedded files are part of the build
	}
	return int32(len(names))
}

// Files is the embedded migrations directory.
func Files() fs.FS { return sub() }

func sub() fs.FS {
	f, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err)
	}
	return f
}

// newMigrator loads the migrations for a table whose key syncd carries as
// keyType (KeyType): tern renders them as templates when it loads them.
func newMigrator(ctx context.Context, conn *pgx.Conn, keyType string) (*migrate.Migrator, error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return nil, fmt.Errorf("prepare schema version table: %w", err)
	}
	m.Data["key_type"] = keyType
	if err := m.LoadMigrations(sub()); err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return m, nil
}
