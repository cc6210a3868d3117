// Package storagetest opens real stores for tests: a SQLite file in the
// test's temp dir always, and a fresh schema in the PostgreSQL database
// named by MAILFLOW_TEST_POSTGRES when it is set (CI sets it).
package storagetest

import (
	"context"
	"testing"

	"mailflow/internal/testdb"
	"mailflow/storage"
)

// EnvPostgres names the variable with the PostgreSQL DSN for tests.
const EnvPostgres = testdb.EnvPostgres

// Drivers returns the drivers to test: always sqlite, postgres when configured.
func Drivers() []string { return testdb.Drivers() }

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
	return testdb.DSN(t, driver)
}
