//go:build integration

package store_test

import (
	"testing"

	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/store/storetest"
)

func postgresBench(b *testing.B) *store.DB {
	db, err := store.Open(b.Context(), storetest.PostgresDSN(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func BenchmarkPostPostgresSingle(b *testing.B)  { benchPost(b, postgresBench(b), 1) }
func BenchmarkPostPostgresBatched(b *testing.B) { benchPost(b, postgresBench(b), 100) }
