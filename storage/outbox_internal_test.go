package storage

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"mailflow/internal/testdb"
	"mailflow/mailflow"
)

// columns lists the columns of a table.
func columns(t *testing.T, s *Store, table string) []string {
	t.Helper()
	var cols []string
	q := `SELECT name FROM pragma_table_info(?)`
	if s.d.name == "postgres" {
		q = `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?`
	}
	if err := s.DB().Select(&cols, s.DB().Rebind(q), table); err != nil {
		t.Fatal(err)
	}
	return cols
}

// Outbound messages stored before migration 6, in the outbox row, keep
// their exact bytes after the upgrade: a pending one is claimed and sent
// with them, a sent one still shows them (outbox list, the order page).
func TestUpgradeMovesOutboxRaw(t *testing.T) {
	for _, driver := range testdb.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			_, dsn := testdb.DSN(t, driver)
			old := openAtVersion(t, driver, dsn, 3)
			now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
			raws := map[string][]byte{
				"pending": []byte("Message-ID: <p@example.org>\r\nSubject: =?utf-8?q?Best=C3=A4tigt?=\r\n\r\nBitte best\xc3\xa4tigen.\r\n"),
				"sent":    bytes.Repeat([]byte("0123456789abcdef\r\n"), 600),
			}
			for i, status := range []string{"pending", "sent"} {
				if _, err := old.DB().Exec(old.DB().Rebind(`INSERT INTO outbox (ref, kind, sender, recipients, message_id, subject, raw,
					status, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
					i+1, mailflow.KindAlert, "a@example.org", `["b@example.org"]`, status+"@example.org", "s", raws[status],
					status, now, now); err != nil {
					t.Fatal(err)
				}
			}
			s := upgrade(t, old, driver, dsn)
			claimed, err := s.ClaimOutbox(ctx, now, 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(claimed) != 1 || claimed[0].MessageID != "pending@example.org" || !bytes.Equal(claimed[0].Raw, raws["pending"]) {
				t.Fatalf("claimed after the upgrade: %+v", claimed)
			}
			rows, err := s.OutboxList(ctx, "", 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				raw, err := s.OutboxRaw(ctx, r.ID)
				if err != nil || !bytes.Equal(raw, raws[r.Status]) {
					t.Errorf("%s row: %d bytes, %v; want its %d bytes", r.Status, len(raw), err, len(raws[r.Status]))
				}
			}
			// The bytes have left the outbox row.
			if slices.Contains(columns(t, s, "outbox"), "raw") {
				t.Errorf("outbox still has the column raw")
			}
		})
	}
}
