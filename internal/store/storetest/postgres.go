package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver

	"github.com/iognet/iog/internal/iog"
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

// PageIDs returns device ids for the tests of reads a page of devices at a time: ids that sort
// differently byte-wise and in a database collation (PostgreSQL's), then n ordinary ones, since
// pages are in the store's order, whatever it is.
func PageIDs(n int) []string {
	return append([]string{"dev_A", "dev_a", "dev_B", "dev_b", "dev_0", "dev__", "dev-1", "DEV_z"}, NewIDs(n)...)
}

// NewIDs returns n new device ids.
func NewIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = iog.NewID("dev")
	}
	return ids
}

// OpenSQLite opens a store on a fresh SQLite file, closed when the test ends.
func OpenSQLite(tb testing.TB) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(tb.TempDir(), "iog.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// OpenBench opens a benchmark's store: on the PostgreSQL IOG_TEST_POSTGRES names when the
// environment variable env is "1", on SQLite otherwise.
func OpenBench(tb testing.TB, env string) *store.DB {
	if os.Getenv(env) == "1" {
		return OpenPostgres(tb)
	}
	return OpenSQLite(tb)
}
