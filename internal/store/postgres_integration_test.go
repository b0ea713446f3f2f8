//go:build integration

package store_test

import (
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/store/storetest"
)

// PostgresDSN returns a DSN for a fresh schema in IOG_TEST_POSTGRES, dropped at test end.
func postgresDSN(t *testing.T) string { return postgresDSNB(t) }

func postgresDSNB(t testing.TB) string {
	t.Helper()
	base := os.Getenv("IOG_TEST_POSTGRES")
	if base == "" {
		t.Fatal("IOG_TEST_POSTGRES is not set: integration tests need PostgreSQL (.ci/run starts it)")
	}
	schema := "t_" + strings.ToLower(rand.Text()[:12])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE") })
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%ssearch_path=%s", base, sep, schema)
}

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.DB {
		db, err := store.Open(t.Context(), postgresDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if db.Engine() != store.Postgres {
			t.Fatalf("engine %s", db.Engine())
		}
		return db
	})
}
