// Package docker runs the throwaway PostgreSQL server in a Docker container
// with testcontainers-go. It is chosen with SYNCD_TEST_POSTGRES=docker and
// kept apart from package testcontainers so that the syncd binary never links
// a Docker client.
package docker

import (
	"context"
	"fmt"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/wait"

	synctc "github.com/syncd/syncd/testcontainers"
)

// Image is the PostgreSQL image started.
const Image = "postgres:15-alpine"

// Container is a PostgreSQL server in a container.
type Container struct {
	c   *postgres.PostgresContainer
	url string
}

// Start runs a container with wal_level=logical and replication enabled.
func Start(ctx context.Context) (*Container, error) {
	c, err := postgres.Run(ctx, Image,
		postgres.WithDatabase("postgres"),
		postgres.WithUsername("postgres"),
		postgres.WithPassword("postgres"),
		testcontainers.WithCmd("postgres",
			"-c", "fsync=off", "-c", "wal_level=logical",
			"-c", "max_wal_senders=20", "-c", "max_replication_slots=20", "-c", "max_connections=300"),
		testcontainers.WithWaitStrategy(wait.ForLog("database system is ready to accept connections").
			WithOccurrence(2).WithStartupTimeout(60*time.Second)),
	)
	if err != nil {
		return nil, fmt.Errorf("start postgres container: %w", err)
	}
	url, err := c.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		_ = testcontainers.TerminateContainer(c)
		return nil, fmt.Errorf("container connection string: %w", err)
	}
	return &Container{c: c, url: url}, nil
}

// URL implements testcontainers.Server.
func (c *Container) URL(db string) string { return synctc.WithDatabase(c.url, db) }

// Close removes the container.
func (c *Container) Close(ctx context.Context) error {
	return testcontainers.TerminateContainer(c.c)
}
