package store_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/store/storetest"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.DB {
		db, err := store.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "iog.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

func TestOpenRejectsUnknownDSN(t *testing.T) {
	for _, dsn := range []string{"", "mysql://x", "sqlite:"} {
		if _, err := store.Open(t.Context(), dsn); iog.ErrorCode(err) != iog.EINVALID {
			t.Errorf("Open(%q) = %v, want EINVALID", dsn, err)
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := "sqlite:" + filepath.Join(t.TempDir(), "iog.db")
	db, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateAccount(t.Context(), iog.Account{ID: "acc_1", Name: "a", Roles: []iog.Role{iog.RoleRenter}}, "h", "p"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.AccountByName(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
}

func TestPathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a#b?c%d")
	db, err := store.Open(t.Context(), "sqlite:"+filepath.Join(dir, "iog.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := os.Stat(filepath.Join(dir, "iog.db")); err != nil {
		t.Fatalf("database not where it was asked to be: %v", err)
	}
}
