package storage_test

import (
	"os"
	"testing"

	"mailflow/storage/storagetest"
)

// On PostgreSQL outbound messages are compressed with lz4, not pglz
// (docs/benchmarks.md).
func TestOutboxRawLZ4(t *testing.T) {
	if os.Getenv("MAILFLOW_TEST_POSTGRES") == "" {
		t.Skip("MAILFLOW_TEST_POSTGRES not set")
	}
	s := storagetest.Open(t, "postgres")
	var method string
	if err := s.DB().Get(&method, `SELECT attcompression::text FROM pg_attribute WHERE attrelid = 'outbox_raw'::regclass AND attname = 'raw'`); err != nil {
		t.Fatal(err)
	}
	if method != "l" {
		t.Errorf("outbox_raw.raw compression %q, want lz4 (l)", method)
	}
}
