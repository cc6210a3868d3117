package mailflow_test

import (
	"bytes"
	"context"
	"fmt"
	"mailflow/mailflow/outbound"
	"slices"
	"strings"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// TestAckOnlyToOwnAddress: a party that allows a whole domain as reply
// sender gets its acknowledgements at its own registered address, never at
// whichever address of that domain wrote. The answer is delivered over
// SMTP and the envelope recipient is checked.
func TestAckOnlyToOwnAddress(t *testing.T) {
	tests := []struct {
		name, model, party, from, want string
	}{
		// dataport registers bestellungen@dataport.example and @dataport.example.
		{"exact registered sender", "dv", mailflow.PartyProvider, "bestellungen@dataport.example", "bestellungen@dataport.example"},
		{"domain sender gets no ack", "dv", mailflow.PartyProvider, "anna@dataport.example", "bestellungen@dataport.example"},
		// IT.NRW registers only @it.nrw.example.
		{"domain-only party", "uv", mailflow.PartyProvider, "someone@it.nrw.example", "orders@it.nrw.example"},
	}
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			e.start(t)
			inbox := &mailflow.Inbox{Flow: e.flow, Store: e.store, Tokens: e.tokens, OnEnqueue: e.sender.Wake}
			ctx := context.Background()
			for _, tt := range tests {
				o := e.createOrder(t, tt.model)
				addr := "bestellungen+" + e.tokens.Sign(mailflow.Token{OrderID: o.ID, Party: tt.party, NotificationID: 7}) + "@example.org"
				m := rmail{from: tt.from, to: addr, subject: "AW: [Bestellung " + o.Number + "]", body: "IN BEARBEITUNG\n"}
				if _, err := inbox.Process(ctx, mailflow.FetchedMessage{Raw: m.raw()}); err != nil {
					t.Fatal(err)
				}
				rows := e.waitOutbox(t)
				delivered := e.waitMessages(t, len(rows))
				var ack *mailflow.OutboxMessage
				for _, r := range rows {
					if r.OrderID == o.ID && r.Kind == mailflow.KindAck {
						ack = r
					}
				}
				if ack == nil {
					t.Fatalf("%s: no acknowledgement", tt.name)
				}
				if !slices.Equal(ack.Recipients, []string{tt.want}) {
					t.Errorf("%s: ack to %v, want %s", tt.name, ack.Recipients, tt.want)
				}
				for _, d := range delivered {
					if slices.Contains(d.To, tt.from) && tt.from != tt.want {
						t.Errorf("%s: a message was delivered to the unregistered sender %s", tt.name, tt.from)
					}
				}
			}
		})
	}
}

const testBounceBase = "bestellungen@example.org"

// dsn is a Postfix-style delivery status notification (RFC 3464) by MTA
// mx for the message with Message-ID id, addressed to `to` with extra
// header lines.
func dsn(mx, to, extra, id string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "Return-Path: <>\r\nDelivered-To: %s\r\n%sFrom: Mail Delivery System <MAILER-DAEMON@%s>\r\nTo: %s\r\n", to, extra, mx, to)
	fmt.Fprintf(&b, "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <%d@mx.dataport.example>\r\n", time.Now().UnixNano())
	b.WriteString("Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n")
	b.WriteString("--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n")
	b.WriteString("--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.dataport.example\r\n\r\n" +
		"Final-Recipient: rfc822; bestellungen@dataport.example\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n")
	fmt.Fprintf(&b, "--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <%s>\r\nSubject: Neue Bestellung\r\n\r\n--b--\r\n", id)
	return []byte(b.String())
}

// TestBounceVERP: every message goes out with its own envelope sender, a
// bounce address carrying a secret token of its outbox row, and unchanged
// raw bytes. A bounce marks a message failed only when it comes back to
// such an address; one that merely names our Message-ID, or whose token is
// altered or names no message, goes to a person and changes nothing.
func TestBounceVERP(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			var e *env
			e = newEnv(t, driver, func(c *outbound.Config) {
				c.EnvelopeSender = func(m *mailflow.OutboxMessage) string { return e.tokens.BounceAddress(testBounceBase, m.ID) }
			})
			e.start(t)
			inbox := &mailflow.Inbox{Flow: e.flow, Store: e.store, Tokens: e.tokens, Alerter: e.composer, OnEnqueue: e.sender.Wake}
			ctx := context.Background()
			o := e.createOrder(t, "dv")
			rows := e.waitOutbox(t)
			delivered := e.waitMessages(t, len(rows))
			byMsgID := map[string]*mailflow.OutboxMessage{}
			for _, r := range rows {
				byMsgID[r.MessageID] = r
			}
			var target *mailflow.OutboxMessage
			for _, d := range delivered {
				id := parseMessage(t, d.Data).messageID(t)
				r := byMsgID[id]
				if r == nil {
					t.Fatalf("delivered message %s is not in the outbox", id)
				}
				if want := e.tokens.BounceAddress(testBounceBase, r.ID); d.From != want {
					t.Errorf("MAIL FROM %q of outbox row %d, want %q", d.From, r.ID, want)
				}
				raw, _ := e.store.OutboxRaw(ctx, r.ID)
				if !bytes.Equal(raw, d.Data) {
					t.Errorf("outbox row %d: delivered bytes differ from the stored ones", r.ID)
				}
				if r.OrderID == o.ID && r.Kind == mailflow.KindNotification {
					target = r
				}
			}
			if target == nil {
				t.Fatal("no notification delivered")
			}
			verp := e.tokens.BounceAddress(testBounceBase, target.ID)
			tok := e.tokens.SignBounce(target.ID)
			altered := strings.Replace(verp, tok, tok[:10]+string('a'+(tok[10]-'a'+1)%26)+tok[11:], 1)
			if tok[10] >= '2' && tok[10] <= '7' {
				altered = strings.Replace(verp, tok, tok[:10]+"a"+tok[11:], 1)
			}
			tests := []struct {
				name, to, extra string
				verdict         string
				failed          bool
			}{
				{"names our Message-ID, no VERP token", "bestellungen@example.org", "", mailflow.VerdictUnauthenticated, false},
				{"altered token", altered, "", mailflow.VerdictUnauthenticated, false},
				{"valid token of no message", e.tokens.BounceAddress(testBounceBase, 987654), "", mailflow.VerdictUnauthenticated, false},
				{"VERP address only in X-Original-To", "bestellungen@example.org", "X-Original-To: " + verp + "\r\n", mailflow.VerdictBounce, true},
			}
			for i, tt := range tests {
				alertsBefore := countKind(t, e, mailflow.KindAlert)
				// Each from its own MTA: junk alerts are throttled per sender.
				mx := fmt.Sprintf("mx%d.dataport.example", i)
				dest, err := inbox.Process(ctx, mailflow.FetchedMessage{Raw: dsn(mx, tt.to, tt.extra, target.MessageID)})
				if err != nil {
					t.Fatal(err)
				}
				list, _ := e.store.InboundList(ctx, false, 0, 1)
				got := list[0]
				rows, _ := e.store.OutboxList(ctx, "", 1000)
				var status string
				for _, r := range rows {
					if r.ID == target.ID {
						status = r.Status
					}
				}
				if got.Verdict != tt.verdict {
					t.Errorf("%s: verdict %q (%s), want %q", tt.name, got.Verdict, got.Reason, tt.verdict)
				}
				if tt.failed != (status == mailflow.OutboxFailed) {
					t.Errorf("%s: outbox row %s (%s)", tt.name, status, got.Reason)
				}
				wantDest := mailflow.FolderReview
				if tt.failed {
					wantDest = mailflow.FolderProcessed
				}
				if dest != wantDest {
					t.Errorf("%s: moved to %s, want %s", tt.name, dest, wantDest)
				}
				if n := countKind(t, e, mailflow.KindAlert); n != alertsBefore+1 {
					t.Errorf("%s: %d coordinator alerts, want 1", tt.name, n-alertsBefore)
				}
			}
		})
	}
}

func countKind(t *testing.T, e *env, kind string) int {
	t.Helper()
	rows, err := e.store.OutboxList(context.Background(), "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rows {
		if r.Kind == kind {
			n++
		}
	}
	return n
}

// TestInboxJunkAlertsThrottled: anyone can send junk, so its coordinator
// alerts are throttled to one per sender and hour; every message still goes
// to review and is recorded, and the ones held back are counted.
func TestInboxJunkAlertsThrottled(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			now := time.Date(2026, 11, 27, 9, 10, 0, 0, time.UTC)
			e.flow.Now = func() time.Time { return now }
			inbox := &mailflow.Inbox{Flow: e.flow, Store: e.store, Tokens: e.tokens, Alerter: e.composer}
			ctx := context.Background()
			o := e.createOrder(t, "dv")
			tag := "AW: [Bestellung " + o.Number + "]"
			steps := []struct {
				name      string
				after     time.Duration // clock moves on by this first
				m         rmail
				verdict   string
				alert     bool
				heldSoFar int
			}{
				{"first forged reply alerts", 0, rmail{from: "mallory@evil.example", to: "bestellungen@example.org", subject: tag, body: "BESTÄTIGT"}, mailflow.VerdictUnauthenticated, true, 0},
				{"second in the hour is held back", 10 * time.Minute, rmail{from: "mallory@evil.example", to: "bestellungen@example.org", subject: tag, body: "BESTÄTIGT"}, mailflow.VerdictUnauthenticated, false, 1},
				{"unmatched junk of the same sender too", time.Minute, rmail{from: "Mallory@Evil.example", to: "bestellungen@example.org", subject: "Angebot", body: "Kaufen!"}, mailflow.VerdictUnmatched, false, 2},
				{"another sender alerts", 0, rmail{from: "eve@evil.example", to: "bestellungen@example.org", subject: "Angebot", body: "Kaufen!"}, mailflow.VerdictUnmatched, true, 2},
				{"next hour alerts again", time.Hour, rmail{from: "mallory@evil.example", to: "bestellungen@example.org", subject: tag, body: "BESTÄTIGT"}, mailflow.VerdictUnauthenticated, true, 2},
			}
			start := now
			for _, s := range steps {
				now = now.Add(s.after)
				before := countKind(t, e, mailflow.KindAlert)
				dest, err := inbox.Process(ctx, mailflow.FetchedMessage{Raw: s.m.raw()})
				if err != nil {
					t.Fatal(err)
				}
				list, _ := e.store.InboundList(ctx, true, 0, 1)
				got := list[0]
				if dest != mailflow.FolderReview || got.Verdict != s.verdict {
					t.Errorf("%s: %s, verdict %q (%s); want review, %q", s.name, dest, got.Verdict, got.Reason, s.verdict)
				}
				if alerted := countKind(t, e, mailflow.KindAlert) - before; alerted != map[bool]int{true: 1}[s.alert] {
					t.Errorf("%s: %d alerts, want alert %v", s.name, alerted, s.alert)
				}
				if held := strings.Contains(got.Reason, "alert held back"); held == s.alert {
					t.Errorf("%s: reason %q", s.name, got.Reason)
				}
				if n, err := e.store.CountSuppressedAlerts(ctx, start); err != nil || n != s.heldSoFar {
					t.Errorf("%s: %d alerts held back (%v), want %d", s.name, n, err, s.heldSoFar)
				}
			}
		})
	}
}
