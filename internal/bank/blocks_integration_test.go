//go:build integration

package bank

import (
	"fmt"
	"testing"
	"time"

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

// TestBlockMatchesPerDevicePostgres is TestBlockMatchesPerDevice on PostgreSQL, whose text
// collation orders the device ids otherwise than SQLite does.
func TestBlockMatchesPerDevicePostgres(t *testing.T) {
	for _, seed := range []uint64{1, uint64(time.Now().UnixNano())} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { checkBatchedBlock(t, storetest.OpenPostgres(t), seed) })
	}
}
