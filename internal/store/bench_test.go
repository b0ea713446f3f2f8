package store_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// benchPost measures ledger postings per second, one transaction per posting (single) or per
// batch of 100 (batched). Run: go test -run X -bench Post ./internal/store
func benchPost(b *testing.B, db *store.DB, batch int) {
	at := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	ps := make([]iog.Posting, 0, batch)
	n := 0
	b.ResetTimer()
	start := time.Now()
	for n < b.N {
		ps = ps[:0]
		for i := 0; i < batch && n < b.N; i++ {
			ps = append(ps, iog.Transfer(fmt.Sprintf("bench:%d:%d", batch, n), "bench", iog.IO, at, iog.AccExternal, iog.AccWallet(fmt.Sprintf("acc_%d", n%50)), 1, "bench"))
			n++
		}
		if _, err := db.Post(b.Context(), ps...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "postings/s")
}

func sqliteBench(b *testing.B) *store.DB {
	db, err := store.Open(b.Context(), "sqlite:"+filepath.Join(b.TempDir(), "iog.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func BenchmarkPostSQLiteSingle(b *testing.B)  { benchPost(b, sqliteBench(b), 1) }
func BenchmarkPostSQLiteBatched(b *testing.B) { benchPost(b, sqliteBench(b), 100) }
