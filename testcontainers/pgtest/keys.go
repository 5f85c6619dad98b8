package pgtest

import (
	"context"
	"testing"
	"time"

	syncdsql "github.com/syncd/syncd/sql"
)

// Keys are the kinds of employees key the key-parametrised tests run syncd
// on: the bigint key syncd creates, a uuid key, and a text key (an HR
// system's employee number).
var Keys = []string{syncdsql.KeyBigint, syncdsql.KeyUUID, syncdsql.KeyText}

// NewKeyedDatabase is NewDatabase with an employees table whose key is of
// kind key (one of Keys), migrated by syncd; an INSERT that names no id
// works for every kind (testcontainers.Cloner.CreateKeyed).
func NewKeyedDatabase(tb testing.TB, key string) string {
	tb.Helper()
	c := server(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name, url, err := c.CreateKeyed(ctx, key)
	if err != nil {
		tb.Fatalf("create %s-keyed test database: %v", key, err)
	}
	tb.Cleanup(func() { drop(tb, c, name) })
	return url
}
