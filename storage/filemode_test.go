//go:build unix

package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"mailflow/storage"
)

// TestSQLiteFilesPrivate: the database, its -wal and its -shm are 0600
// even under a umask that lets SQLite create world-readable files; a
// file that exists keeps the mode its operator gave it.
func TestSQLiteFilesPrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	tests := []struct {
		name string
		dsn  func(path string) string
	}{
		{"file name", func(p string) string { return p }},
		{"file URI with options", func(p string) string { return "file:" + p + "?_pragma=journal_mode(WAL)&_txlock=immediate" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mailflow.db")
			s, err := storage.Open(context.Background(), "sqlite", tt.dsn(path))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// A write, so that the -wal holds something and both exist.
			if err := s.ImportCatalog(context.Background(), loadCatalog(t)); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if mode := fi.Mode().Perm(); mode != 0o600 {
					t.Errorf("%s: mode %#o, want 0600", filepath.Base(p), mode)
				}
			}
		})
	}
	t.Run("existing file keeps its mode", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "mailflow.db")
		if err := os.WriteFile(path, nil, 0o640); err != nil {
			t.Fatal(err)
		}
		s, err := storage.Open(context.Background(), "sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("mode %v, %v; want 0640", fi.Mode().Perm(), err)
		}
	})
}
