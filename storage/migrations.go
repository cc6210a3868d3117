package storage

import (
	"context"
	"embed"
	"fmt"
	"strings"
)

// schemaFiles are the schema's SQL, a file per dialect and version.
//
//go:embed schema/*.sql
var schemaFiles embed.FS

// migrations take the schema from one version to the next: migrations[0]
// creates version 1, the baseline, and migrations[v] goes from version v
// to v+1. Each is plain SQL per dialect, applied in one transaction;
// statements end with a semicolon at the end of a line. Never edit a
// released one: append a new one (docs/operations.md, Schema).
var migrations = []struct{ sqlite, postgres string }{
	{sqlite: "schema/sqlite.sql", postgres: "schema/postgres.sql"},
}

// SchemaVersion is the schema version this binary knows.
var SchemaVersion = len(migrations)

// Migrate brings the schema up to SchemaVersion. It refuses a schema
// newer than the binary knows, so an old binary cannot corrupt the data
// of a newer one.
func (s *Store) Migrate(ctx context.Context) error {
	if _, err := s.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("storage: migrate: %w", err)
	}
	for {
		done, err := s.migrateOne(ctx)
		if err != nil || done {
			return err
		}
	}
}

func (s *Store) migrateOne(ctx context.Context) (done bool, err error) {
	err = s.inTx(ctx, func(tx *Tx) error {
		if s.d.name == "postgres" {
			// Several daemons may start at once.
			if _, err := tx.exec(`SELECT pg_advisory_xact_lock(7246001)`); err != nil {
				return err
			}
		}
		var versions []int
		if err := tx.sel(&versions, `SELECT version FROM schema_version`); err != nil {
			return err
		}
		v := 0
		if len(versions) > 0 {
			v = versions[0]
		}
		if v > len(migrations) {
			return fmt.Errorf("database schema version %d is newer than this binary's %d: upgrade mailflow", v, len(migrations))
		}
		if v == len(migrations) {
			done = true
			return nil
		}
		file := migrations[v].sqlite
		if s.d.name == "postgres" {
			file = migrations[v].postgres
		}
		ddl, err := schemaFiles.ReadFile(file)
		if err != nil {
			return err
		}
		for _, stmt := range strings.Split(string(ddl), ";\n") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if _, err := tx.tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
		}
		if v == 0 {
			_, err = tx.exec(`INSERT INTO schema_version (version) VALUES (?)`, v+1)
		} else {
			_, err = tx.exec(`UPDATE schema_version SET version = ?`, v+1)
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("storage: migrate: %w", err)
	}
	return done, nil
}
