package mailflow_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"testing"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// BenchmarkInboxProcess measures Inbox.Process for one reply, without
// IMAP: parse, match, authenticate, extract the intent, record the
// decision and compose and enqueue the acknowledgement, in one
// transaction. Each iteration answers an order of its own, so the store
// grows as it does in production. cmd/mailflow-load measures the same
// end to end through Dovecot (docs/benchmarks.md).
func BenchmarkInboxProcess(b *testing.B) {
	for _, driver := range storagetest.Drivers() {
		for _, tc := range []struct {
			name       string
			attachment int // bytes before base64; 0: none
		}{{"text", 0}, {"attachment-10MB", 10 << 20}} {
			b.Run(driver+"/"+tc.name, func(b *testing.B) {
				benchInboxProcess(b, driver, tc.attachment)
			})
		}
	}
}

func benchInboxProcess(b *testing.B, driver string, attachment int) {
	ctx := context.Background()
	e := newEnv(b, driver)
	inbox := &mailflow.Inbox{Flow: e.flow, Store: e.store, Tokens: e.tokens, Alerter: e.composer}
	var att []byte
	if attachment > 0 {
		raw := make([]byte, attachment)
		rand.NewChaCha8([32]byte{7}).Read(raw)
		enc := base64.StdEncoding.EncodeToString(raw)
		var buf bytes.Buffer
		for len(enc) > 76 {
			buf.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		buf.WriteString(enc + "\r\n")
		att = buf.Bytes()
	}
	msgs := make([][]byte, b.N)
	for i := range msgs {
		o := e.createOrder(b, "dv")
		to := "bestellungen+" + e.tokens.Sign(mailflow.Token{OrderID: o.ID, Party: "provider", NotificationID: 1}) + "@example.org"
		msgs[i] = benchReply(i, o.Number, to, att)
	}
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		dest, err := inbox.Process(ctx, mailflow.FetchedMessage{Raw: msgs[i], Size: int64(len(msgs[i])), Mailbox: "INBOX", UIDValidity: 1, UID: uint32(i + 1)})
		if err != nil || dest != mailflow.FolderProcessed {
			b.Fatalf("reply %d: dest %q, err %v", i, dest, err)
		}
	}
	b.StopTimer()
	counts, err := e.store.InboundVerdictCounts(ctx)
	if err != nil || counts[mailflow.VerdictApplied] != b.N {
		b.Fatalf("verdicts %v (%v), want %d applied", counts, err, b.N)
	}
}

// benchReply is a provider's confirmation as Thunderbird writes it: the
// keyword, a signature and the quoted notification, optionally with a PDF.
func benchReply(i int, number, to string, att []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Anna Admin <anna%d@dataport.example>\r\nTo: %s\r\nSubject: AW: [Bestellung %s] Neue Bestellung\r\n"+
		"Date: Fri, 27 Nov 2026 10:00:00 +0100\r\nMessage-ID: <bench-%d@client.example>\r\nMIME-Version: 1.0\r\n", i%100, to, number, i)
	text := "Bestätigt.\r\n\r\nMit freundlichen Grüßen\r\nAnna Admin\r\n\r\nAm 20.11.2026 um 10:00 schrieb DVC Bestellservice:\r\n"
	for range 40 {
		text += "> Bitte antworten Sie mit BESTÄTIGT oder ABGELEHNT: Grund. Kunde: Stadt Musterstadt, Leitweg-ID 04011000-12345-03\r\n"
	}
	plain := "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text
	if att == nil {
		b.WriteString(plain)
		return b.Bytes()
	}
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n" + plain + "--b1\r\n" +
		"Content-Type: application/pdf; name=\"Leistungsschein.pdf\"\r\nContent-Disposition: attachment; filename=\"Leistungsschein.pdf\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	b.Write(att)
	b.WriteString("--b1--\r\n")
	return b.Bytes()
}
