package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// createPrivate creates the SQLite database file of dsn with mode 0600
// unless it exists. The database holds customers' master data and the
// raw mail of every order; SQLite itself would create it 0644 minus the
// umask. SQLite gives the -wal and -shm files it creates beside the
// database the database file's mode, whatever the umask, so they are
// 0600 too. An existing file keeps its mode: the operator chose it.
func createPrivate(dsn string) error {
	path := strings.TrimPrefix(dsn, "file:")
	path, query, _ := strings.Cut(path, "?")
	if path == "" || path == ":memory:" || strings.Contains(query, "mode=memory") {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: create database file: %w", err)
	}
	return f.Close()
}
