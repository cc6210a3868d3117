// Package testdb names a fresh database for a test: a SQLite file in the
// test's temp dir, or a new schema in the PostgreSQL database named by
// MAILFLOW_TEST_POSTGRES, dropped after the test. It imports nothing of
// mailflow, so that storage's own internal tests can use it.
package testdb

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"
)

// EnvPostgres names the variable with the PostgreSQL DSN for tests.
const EnvPostgres = "MAILFLOW_TEST_POSTGRES"

// Drivers returns the drivers to test: always sqlite, postgres when
// configured.
func Drivers() []string {
	if os.Getenv(EnvPostgres) != "" {
		return []string{"sqlite", "postgres"}
	}
	return []string{"sqlite"}
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
