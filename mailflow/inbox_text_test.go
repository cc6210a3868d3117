package mailflow_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// Text from a received message is stored whatever its bytes: a subject
// cut at its limit stays valid UTF-8 (29 ASCII bytes and 600 "ü" cut by
// bytes at 500 ended in half a character, which PostgreSQL refused on
// every try), and NUL bytes, invalid sequences or an overlong Message-ID
// do not fail the transaction. The reply is applied each time.
func TestInboxStoresAnyText(t *testing.T) {
	const ascii29 = "AW: Bitte um Rueckmeldung...!"
	if len(ascii29) != 29 {
		t.Fatalf("prefix has %d bytes", len(ascii29))
	}
	tests := []struct {
		name, subject, body, wantSubject string
		id                               string // Message-ID; "" for a fresh one
	}{
		{"29 ASCII and 600 ü", ascii29 + strings.Repeat("ü", 600), "BESTÄTIGT\n", ascii29 + strings.Repeat("ü", 471), ""},
		// Raw 8-bit headers are read as windows-1252.
		{"NUL and invalid bytes", "Antwort\x00 zur Bestellung \xfc", "BESTÄTIGT\x00\n\xff\xfe\n", "Antwort zur Bestellung ü", ""},
		// A longer Message-ID exceeded PostgreSQL's index entry limit.
		{"Message-ID of 4000 bytes", "Antwort", "BESTÄTIGT\n", "Antwort", "<" + incompressible(4000) + "@client.example>"},
	}
	for _, driver := range storagetest.Drivers() {
		for _, tt := range tests {
			t.Run(driver+"/"+tt.name, func(t *testing.T) {
				e := newInboxEnv(t, driver)
				ctx := context.Background()
				m := rmail{from: "bestellungen@dataport.example", to: e.replyAddr(e.dv, "provider"), subject: tt.subject, body: tt.body, id: tt.id}
				dest, err := e.inbox.Process(ctx, mailflow.FetchedMessage{Raw: m.raw(), Mailbox: "INBOX", UIDValidity: 1, UID: 1})
				if err != nil {
					t.Fatalf("process: %v", err)
				}
				if dest != mailflow.FolderProcessed {
					t.Errorf("moved to %q, want processed", dest)
				}
				list, err := e.st.InboundList(ctx, false, 0, 1)
				if err != nil || len(list) != 1 {
					t.Fatalf("inbound list: %v %v", list, err)
				}
				if got := list[0]; got.Verdict != mailflow.VerdictApplied || got.Subject != tt.wantSubject {
					t.Errorf("stored verdict %q (%s), subject %q, want applied with %q", got.Verdict, got.Reason, got.Subject, tt.wantSubject)
				}
				if o, _ := e.st.Order(ctx, e.dv.Number); o == nil || o.Status != mailflow.StatusOrdered {
					t.Errorf("order status %v, want %s", o, mailflow.StatusOrdered)
				}
			})
		}
	}
}

// incompressible returns n hex digits without repetition, which PostgreSQL
// cannot compress below its index entry limit.
func incompressible(n int) string {
	var b strings.Builder
	sum := sha256.Sum256([]byte("seed"))
	for b.Len() < n {
		b.WriteString(hex.EncodeToString(sum[:]))
		sum = sha256.Sum256(sum[:])
	}
	return b.String()[:n]
}
