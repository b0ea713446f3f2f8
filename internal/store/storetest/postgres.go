package storetest

import (
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver

	"github.com/iognet/iog/internal/store"
)

// PostgresDSN returns a DSN for a fresh schema in the database IOG_TEST_POSTGRES names, dropped
// when the test ends. It fails the test when the variable is not set: integration tests need a
// real PostgreSQL, which .ci/run starts.
func PostgresDSN(t testing.TB) string {
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

// OpenPostgres opens a store on a fresh schema (PostgresDSN), closed when the test ends.
func OpenPostgres(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if db.Engine() != store.Postgres {
		t.Fatalf("engine %s", db.Engine())
	}
	return db
}
