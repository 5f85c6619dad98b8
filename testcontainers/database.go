package testcontainers

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"sync"

	"github.com/jackc/pgx/v5"

	syncdsql "github.com/syncd/syncd/sql"
)

// Server is a PostgreSQL server to make databases in: the local one, a Docker
// container, or one named by SYNCD_TEST_DATABASE_URL.
type Server interface {
	// URL is the connection string of database db, as a superuser.
	URL(db string) string
}

// URLServer is a Server reached through a connection string of one of its
// databases (postgres://user:pass@host:port/db?…); other databases are reached
// by replacing the path.
type URLServer string

// URL implements Server.
func (s URLServer) URL(db string) string { return WithDatabase(string(s), db) }

// WithDatabase returns the connection URL u with its database replaced by db.
func WithDatabase(u, db string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return u
	}
	parsed.Path = "/" + db
	return parsed.String()
}

// Cloner makes freshly migrated databases in milliseconds: it migrates a
// template database once, then each database is CREATE DATABASE … TEMPLATE.
type Cloner struct {
	srv Server

	mu       sync.Mutex
	template string
}

// NewCloner returns a Cloner for srv.
func NewCloner(srv Server) *Cloner { return &Cloner{srv: srv} }

// Create makes a new migrated database and returns its name and URL.
func (c *Cloner) Create(ctx context.Context) (name, dbURL string, err error) {
	tpl, err := c.ensureTemplate(ctx)
	if err != nil {
		return "", "", err
	}
	name = "syncd_test_" + randomHex(6)
	if err := c.exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tpl)); err != nil {
		return "", "", fmt.Errorf("clone template: %w", err)
	}
	return name, c.srv.URL(name), nil
}

// CreateEmpty makes a new database with no schema at all.
func (c *Cloner) CreateEmpty(ctx context.Context) (name, dbURL string, err error) {
	name = "syncd_empty_" + randomHex(6)
	if err := c.exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", "", fmt.Errorf("create database: %w", err)
	}
	return name, c.srv.URL(name), nil
}

// Drop removes database name, cutting its connections and its replication
// slots.
func (c *Cloner) Drop(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.srv.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, name)
	if err != nil {
		return fmt.Errorf("drop replication slots: %w", err)
	}
	_, err = conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{name}.Sanitize()))
	if err != nil {
		return fmt.Errorf("drop database: %w", err)
	}
	return nil
}

func (c *Cloner) exec(ctx context.Context, stmt string) error {
	conn, err := pgx.Connect(ctx, c.srv.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, stmt)
	return err
}

// ensureTemplate creates and migrates the template database once. Its name
// carries a hash of the migrations, so that servers shared between checkouts
// (SYNCD_TEST_DATABASE_URL) never clone a stale schema; an advisory lock keeps
// concurrent test binaries from building it twice.
func (c *Cloner) ensureTemplate(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.template != "" {
		return c.template, nil
	}
	name := "syncd_template_" + migrationsHash()
	conn, err := pgx.Connect(ctx, c.srv.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(7428815)"); err != nil {
		return "", fmt.Errorf("lock template: %w", err)
	}
	defer conn.Exec(ctx, "SELECT pg_advisory_unlock(7428815)") //nolint:errcheck
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look for template: %w", err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s", name)); err != nil {
			return "", fmt.Errorf("drop half-made template: %w", err)
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			return "", fmt.Errorf("create template: %w", err)
		}
		if _, err := syncdsql.MigrateURL(ctx, c.srv.URL(name)); err != nil {
			return "", fmt.Errorf("migrate template: %w", err)
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s WITH IS_TEMPLATE true", name)); err != nil {
			return "", fmt.Errorf("mark template: %w", err)
		}
	}
	c.template = name
	return name, nil
}

func migrationsHash() string {
	h := sha256.New()
	_ = fs.WalkDir(syncdsql.Files(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(syncdsql.Files(), path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
