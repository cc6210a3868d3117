package storage_test

import (
	"os"
	"testing"

	"mailflow/storage/storagetest"
)

// On PostgreSQL (built with lz4, as Debian's is) outbound messages are
// compressed with lz4, not pglz.
func TestOutboxRawLZ4(t *testing.T) {
	if os.Getenv("MAILFLOW_TEST_POSTGRES") == "" {
		t.Skip("MAILFLOW_TEST_POSTGRES not set")
	}
	s := storagetest.Open(t, "postgres")
	var lz4 bool
	if err := s.DB().Get(&lz4, `SELECT COUNT(*) > 0 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)`); err != nil {
		t.Fatal(err)
	}
	var method string
	if err := s.DB().Get(&method, `SELECT attcompression::text FROM pg_attribute WHERE attrelid = 'outbox_raw'::regclass AND attname = 'raw'`); err != nil {
		t.Fatal(err)
	}
	if want := map[bool]string{true: "l", false: ""}[lz4]; method != want {
		t.Errorf("outbox_raw.raw compression %q, want %q (server supports lz4: %v)", method, want, lz4)
	}
}
