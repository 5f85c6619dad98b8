package sql_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	syncdsql "github.com/syncd/syncd/sql"
	"github.com/syncd/syncd/testcontainers/pgtest"
)

// TestMigrateRefusesNewerSchema: a database migrated by a newer syncd (its
// version above Latest) is refused with a NewerSchemaError and left as it is;
// tern would otherwise try to migrate it down.
func TestMigrateRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	_, err := conn.Exec(ctx, "UPDATE "+syncdsql.VersionTable+" SET version = $1", syncdsql.Latest()+1)
	require.NoError(t, err)

	_, err = syncdsql.MigrateURL(ctx, url)
	var newer *syncdsql.NewerSchemaError
	require.True(t, errors.As(err, &newer), "got %v", err)
	require.Equal(t, syncdsql.Latest()+1, newer.Have)
	require.Equal(t, syncdsql.Latest(), newer.Known)
	require.NotContains(t, err.Error(), "\n")
	require.Equal(t, int(syncdsql.Latest()+1), count(t, conn, "SELECT version FROM "+syncdsql.VersionTable))
}
