package testcontainers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// Not parallel: it changes PATH and the search glob.
func TestNoServerBinaries(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := debianGlob
	debianGlob = filepath.Join(t.TempDir(), "*", "bin", "initdb")
	defer func() { debianGlob = saved }()

	_, err := StartLocal(context.Background(), LocalOptions{})
	require.ErrorIs(t, err, ErrNoPostgres)
	require.Contains(t, err.Error(), "apt-get install postgresql")
}

func TestLocalServerLifecycle(t *testing.T) {
	ctx := context.Background()
	p, err := StartLocal(ctx, LocalOptions{})
	require.NoError(t, err)
	dir := p.dir
	defer p.Close()

	c := NewCloner(p)
	start := time.Now()
	name, url, err := c.Create(ctx)
	require.NoError(t, err)
	t.Logf("first migrated database (template made and migrated): %s", time.Since(start))
	start = time.Now()
	name2, _, err := c.Create(ctx)
	require.NoError(t, err)
	t.Logf("next migrated database (a clone of the template): %s", time.Since(start))

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	var walLevel string
	require.NoError(t, conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel))
	require.Equal(t, "logical", walLevel)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM employees").Scan(&n))
	conn.Close(ctx)

	// An outage and a restart keep the data.
	require.NoError(t, p.Stop())
	_, err = pgx.Connect(ctx, url)
	require.Error(t, err)
	require.NoError(t, p.Start(ctx))
	conn, err = pgx.Connect(ctx, url)
	require.NoError(t, err)
	conn.Close(ctx)

	require.NoError(t, c.Drop(ctx, name))
	require.NoError(t, c.Drop(ctx, name2))
	require.NoError(t, p.Close())
	_, err = os.Stat(dir)
	require.True(t, errors.Is(err, os.ErrNotExist), "Close removes the files")
}

func BenchmarkCloneDatabase(b *testing.B) {
	ctx := context.Background()
	p, err := StartLocal(ctx, LocalOptions{})
	require.NoError(b, err)
	defer p.Close()
	c := NewCloner(p)
	_, _, err = c.Create(ctx) // the template
	require.NoError(b, err)
	b.ResetTimer()
	for b.Loop() {
		name, _, err := c.Create(ctx)
		require.NoError(b, err)
		b.StopTimer()
		require.NoError(b, c.Drop(ctx, name))
		b.StartTimer()
	}
}

func TestListeningAddr(t *testing.T) {
	t.Parallel()
	log := []byte(`{"level":"INFO","msg":"migrated"}
not json, syncd running
{"level":"INFO","msg":"syncd running","metrics_addr":"127.0.0.1:4001"}
{"level":"INFO","msg":"stopped"}
{"level":"INFO","msg":"syncd running","metrics_addr":"127.0.0.1:4002"}
`)
	require.Equal(t, "127.0.0.1:4001", ListeningAddr(log, 0))
	require.Equal(t, "127.0.0.1:4002", ListeningAddr(log, 1))
	require.Empty(t, ListeningAddr(log, 2))
	require.Empty(t, ListeningAddr(nil, 0))
}
