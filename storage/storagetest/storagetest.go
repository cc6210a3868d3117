// Package storagetest opens real stores for tests: a SQLite file in the
// test's temp dir always, and a fresh schema in the PostgreSQL database
// named by MAILFLOW_TEST_POSTGRES when it is set (CI sets it).
package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"mailflow/storage"
)

// EnvPostgres names the variable with the PostgreSQL DSN for tests.
const EnvPostgres = "MAILFLOW_TEST_POSTGRES"

// Drivers returns the drivers to test: always sqlite, postgres when configured.
func Drivers() []string {
	if os.Getenv(EnvPostgres) != "" {
		return []string{"sqlite", "postgres"}
	}
	return []string{"sqlite"}
}

// Open returns a new, empty, migrated store of the driver, closed at the
// end of the test.
func Open(t testing.TB, driver string) *storage.Store {
	t.Helper()
	driver, dsn := DSN(t, driver)
	s, err := storage.Open(context.Background(), driver, dsn)
	if err != nil {
		t.Fatalf("open %s store: %v", driver, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// DSN returns a driver and DSN for a new, empty database: a file in the
// test's temp dir, or a new PostgreSQL schema dropped after the test.
func DSN(t testing.TB, driver string) (string, string) {
	t.Helper()
	if driver == "sqlite" {
		return "sqlite", filepath.Join(t.TempDir(), "mailflow.db")
	}
	base := os.Getenv(EnvPostgres)
	if base == "" {
		t.Skip(EnvPostgres + " is not set")
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	admin, err := sqlx.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		admin.Close()
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	// lib/pq passes unknown keys on as run-time parameters.
	return "postgres", base + sep + "search_path=" + schema
}
