//go:build integration

package bank

import (
	"testing"

	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/store/storetest"
)

// TestBlocksOncePostgres is TestBlocksOnce on PostgreSQL, where several coordinators share the
// database.
func TestBlocksOncePostgres(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	blocksOnce(t, func() *store.DB {
		db, err := store.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
