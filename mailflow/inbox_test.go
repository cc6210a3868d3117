package mailflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/storage"
	"mailflow/storage/storagetest"
)

type inboxEnv struct {
	t      *testing.T
	st     *storage.Store
	flow   *mailflow.Flow
	inbox  *mailflow.Inbox
	tokens *mailflow.Tokens
	dv, uv *mailflow.Order
}

func readJSON(t *testing.T, path string, v any) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func newInboxEnv(t *testing.T, driver string) *inboxEnv {
	ctx := context.Background()
	st := storagetest.Open(t, driver)
	var cat mailflow.Catalog
	readJSON(t, "../examples/catalog.json", &cat)
	if err := mailflow.ValidateCatalog(&cat); err != nil {
		t.Fatal(err)
	}
	if err := st.ImportCatalog(ctx, &cat); err != nil {
		t.Fatal(err)
	}
	tokens, _ := mailflow.NewTokens([]string{testSecret})
	e := &inboxEnv{t: t, st: st, tokens: tokens}
	e.flow = &mailflow.Flow{Store: st}
	e.inbox = &mailflow.Inbox{Flow: e.flow, Store: st, Tokens: tokens}
	for _, name := range []string{"order-dv.json", "order-uv.json"} {
		var req mailflow.OrderRequest
		readJSON(t, "../examples/"+name, &req)
		o, _, err := e.flow.CreateOrder(ctx, &req)
		if err != nil {
			t.Fatal(err)
		}
		if o.ContractModel == mailflow.ModelDV {
			e.dv = o
		} else {
			e.uv = o
		}
	}
	return e
}

// token returns the reply address of a party of an order.
func (e *inboxEnv) replyAddr(o *mailflow.Order, party string) string {
	return "bestellungen+" + e.tokens.Sign(mailflow.Token{OrderID: o.ID, Party: party, NotificationID: 42}) + "@example.org"
}

func (e *inboxEnv) msgID(o *mailflow.Order, party string) string {
	return o.Number + "." + e.tokens.Sign(mailflow.Token{OrderID: o.ID, Party: party, NotificationID: 43}) + "@example.org"
}

type rmail struct {
	from, to, subject, inReplyTo, body, extra, id string
}

func (m rmail) raw() []byte {
	id := m.id
	if id == "" {
		id = fmt.Sprintf("<%d@client.example>", time.Now().UnixNano())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: Fri, 27 Nov 2026 10:00:00 +0100\r\nMessage-ID: %s\r\n", m.from, m.to, m.subject, id)
	if m.inReplyTo != "" {
		fmt.Fprintf(&b, "In-Reply-To: <%s>\r\nReferences: <%s>\r\n", m.inReplyTo, m.inReplyTo)
	}
	b.WriteString(m.extra)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(strings.ReplaceAll(m.body, "\n", "\r\n"))
	return []byte(b.String())
}

func TestInboxVerdicts(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newInboxEnv(t, driver)
			ctx := context.Background()
			dvTag := "AW: [Bestellung " + e.dv.Number + "] Neue Bestellung"
			uvTag := "AW: [Bestellung " + e.uv.Number + "] Neue Bestellung"
			forged := []byte(e.tokens.Sign(mailflow.Token{OrderID: e.dv.ID, Party: "provider", NotificationID: 42}))
			forged[20] ^= 1
			if forged[20] < 'a' || forged[20] > 'z' {
				forged[20] = 'q'
			}
			steps := []struct {
				name    string
				m       rmail
				verdict string
				status  mailflow.Status // of the order afterwards ("" = not checked)
				order   *mailflow.Order
			}{
				{"forged token", rmail{from: "bestellungen@dataport.example", to: "bestellungen+" + string(forged) + "@example.org", subject: dvTag, body: "BESTÄTIGT"}, mailflow.VerdictUnauthenticated, mailflow.StatusOpen, nil},
				{"right token, wrong sender", rmail{from: "mallory@evil.example", to: e.replyAddr(e.dv, "provider"), subject: dvTag, body: "BESTÄTIGT"}, mailflow.VerdictUnauthenticated, mailflow.StatusOpen, nil},
				{"other party's sender", rmail{from: "auftrag@govdigital.example", to: e.replyAddr(e.uv, "provider"), subject: uvTag, body: "BESTÄTIGT"}, mailflow.VerdictUnauthenticated, mailflow.StatusOpen, nil},
				{"no match", rmail{from: "bestellungen@dataport.example", to: "bestellungen@example.org", subject: "Frage", body: "BESTÄTIGT"}, mailflow.VerdictUnmatched, "", nil},
				{"no intent", rmail{from: "bestellungen@dataport.example", to: e.replyAddr(e.dv, "provider"), subject: dvTag, body: "Wir melden uns.\n"}, mailflow.VerdictNoIntent, mailflow.StatusOpen, nil},
				{"auto-reply", rmail{from: "bestellungen@dataport.example", to: e.replyAddr(e.dv, "provider"), subject: "Abwesenheitsnotiz: " + dvTag, body: "Ich bin bis Montag nicht im Büro.\n", extra: "Auto-Submitted: auto-replied\r\n"}, mailflow.VerdictAutoReply, mailflow.StatusOpen, nil},
				{"working by token", rmail{from: "anna@dataport.example", to: e.replyAddr(e.dv, "provider"), subject: dvTag, body: "IN BEARBEITUNG\n\nGruß"}, mailflow.VerdictApplied, mailflow.StatusWorkingProviderDV, e.dv},
				{"accept by References (no plus-addressing)", rmail{from: "bestellungen@dataport.example", to: "bestellungen@example.org", inReplyTo: e.msgID(e.dv, "provider"), subject: dvTag, body: "Bestätigt.\n"}, mailflow.VerdictApplied, mailflow.StatusOrdered, e.dv},
				{"late reject is a conflict", rmail{from: "bestellungen@dataport.example", to: e.replyAddr(e.dv, "provider"), subject: dvTag, body: "ABGELEHNT: doch nicht\n"}, mailflow.VerdictConflict, mailflow.StatusOrdered, e.dv},
				{"subject tag alone decides nothing", rmail{from: "orders@it.nrw.example", to: "bestellungen@example.org", subject: "Re: [Bestellung " + e.uv.Number + "] New order", body: "CONFIRMED\n"}, mailflow.VerdictUnauthenticated, mailflow.StatusOpen, e.uv},
				{"uv provider first by token", rmail{from: "orders@it.nrw.example", to: e.replyAddr(e.uv, "provider"), subject: "Re: [Bestellung " + e.uv.Number + "] New order", body: "CONFIRMED\n"}, mailflow.VerdictApplied, mailflow.StatusOpen, e.uv},
				{"uv intermediary rejects", rmail{from: "auftrag@govdigital.example", to: e.replyAddr(e.uv, "intermediary"), subject: uvTag, body: "ABGELEHNT\nDer Kunde ist nicht Mitglied der Genossenschaft.\n"}, mailflow.VerdictApplied, mailflow.StatusRejectedIntermediary, e.uv},
			}
			for _, s := range steps {
				res, err := e.inbox.Process(ctx, mailflow.FetchedMessage{Raw: s.m.raw(), Mailbox: "INBOX", UID: 1})
				if err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				_ = res
				list, _ := e.st.InboundList(ctx, false, 0, 1)
				got := list[0]
				if got.Verdict != s.verdict {
					t.Errorf("%s: verdict %q (%s), want %q", s.name, got.Verdict, got.Reason, s.verdict)
				}
				wantDest := mailflow.FolderReview
				if s.verdict == mailflow.VerdictApplied || s.verdict == mailflow.VerdictAutoReply || s.verdict == mailflow.VerdictDuplicate {
					wantDest = mailflow.FolderProcessed
				}
				if res != wantDest {
					t.Errorf("%s: moved to %s, want %s", s.name, res, wantDest)
				}
				if s.status != "" {
					o := s.order
					if o == nil {
						o = e.dv
						if strings.Contains(s.m.subject, e.uv.Number) {
							o = e.uv
						}
					}
					now, _ := e.st.Order(ctx, o.Number)
					if now.Status != s.status {
						t.Errorf("%s: order %s status %s, want %s", s.name, o.Number, now.Status, s.status)
					}
				}
			}
			// The auto-reply stays with its order (found by the reply
			// token), so the order page shows it; it decided nothing.
			auto := 0
			all, _ := e.st.InboundList(ctx, false, e.dv.ID, 100)
			for _, m := range all {
				if m.Verdict == mailflow.VerdictAutoReply {
					auto++
				}
			}
			if auto != 1 {
				t.Errorf("order %s has %d auto-replies, want 1", e.dv.Number, auto)
			}
			// The rejection reason on the next line is recorded.
			uv, _ := e.st.Order(ctx, e.uv.Number)
			last := uv.History[len(uv.History)-1]
			if last.Reason != "Der Kunde ist nicht Mitglied der Genossenschaft." || last.Source != "email" || last.Actor != "auftrag@govdigital.example" {
				t.Errorf("recorded decision %+v", last)
			}
			// The same message again is a duplicate and changes nothing.
			dup := rmail{from: "anna@dataport.example", to: e.replyAddr(e.dv, "provider"), subject: dvTag, body: "BESTÄTIGT", id: "<same@client.example>"}
			e.inbox.Process(ctx, mailflow.FetchedMessage{Raw: dup.raw()})
			before, _ := e.st.Order(ctx, e.dv.Number)
			dest, err := e.inbox.Process(ctx, mailflow.FetchedMessage{Raw: dup.raw()})
			after, _ := e.st.Order(ctx, e.dv.Number)
			if err != nil || dest != mailflow.FolderProcessed || len(after.History) != len(before.History) {
				t.Errorf("duplicate: dest %s err %v, history %d → %d", dest, err, len(before.History), len(after.History))
			}
			// Too large: kept without content, to review.
			dest, _ = e.inbox.Process(ctx, mailflow.FetchedMessage{TooLarge: true, Size: 30 << 20, Mailbox: "INBOX", UIDValidity: 1, UID: 99})
			if list, _ := e.st.InboundList(ctx, true, 0, 1); dest != mailflow.FolderReview || list[0].Verdict != mailflow.VerdictTooLarge {
				t.Errorf("too large: %s %+v", dest, list[0])
			}
		})
	}
}

// TestInboxExplainChangesNothing: explain gives the verdict and rolls back.
func TestInboxExplainChangesNothing(t *testing.T) {
	e := newInboxEnv(t, "sqlite")
	ctx := context.Background()
	m := rmail{from: "bestellungen@dataport.example", to: e.replyAddr(e.dv, "provider"), subject: "AW: [Bestellung " + e.dv.Number + "]", body: "BESTÄTIGT\n"}
	res, err := e.inbox.Explain(ctx, m.raw())
	if err != nil || res.Verdict != mailflow.VerdictApplied || res.Status != mailflow.StatusOrdered || res.Intent != mailflow.IntentAccept {
		t.Fatalf("explain: %+v %v", res, err)
	}
	o, _ := e.st.Order(ctx, e.dv.Number)
	list, _ := e.st.InboundList(ctx, false, 0, 10)
	if o.Status != mailflow.StatusOpen || len(o.History) != 0 || len(list) != 0 {
		t.Errorf("explain changed state: %s, %d decisions, %d inbound", o.Status, len(o.History), len(list))
	}
}

// TestInboxSubjectTagNeedsDMARC: a reply matched by its subject tag alone
// (no token, none of our Message-IDs) carries no secret, so it decides only
// when the topmost Authentication-Results of our own MX authenticates the
// From domain; otherwise it goes to a person and changes nothing. A forged
// pass below the MX's header, or one by another server, counts for nothing.
func TestInboxSubjectTagNeedsDMARC(t *testing.T) {
	const mx = "mx.example.org"
	ar := func(vs ...string) string {
		var b strings.Builder
		for _, v := range vs {
			b.WriteString("Authentication-Results: " + v + "\r\n")
		}
		return b.String()
	}
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newInboxEnv(t, driver)
			e.inbox.Config.TrustedAuthServID = mx
			ctx := context.Background()
			tag := "AW: [Bestellung " + e.dv.Number + "] Neue Bestellung"
			tests := []struct {
				name, from, extra string
				verdict           string
			}{
				{"no Authentication-Results", "anna@dataport.example", "", mailflow.VerdictUnauthenticated},
				{"trusted dmarc=fail", "anna@dataport.example", ar(mx + "; dmarc=fail header.from=dataport.example"), mailflow.VerdictUnauthenticated},
				{"forged pass below the MX's fail", "anna@dataport.example",
					ar(mx+"; dmarc=fail header.from=dataport.example; dkim=fail header.d=dataport.example; spf=fail smtp.mailfrom=dataport.example",
						mx+"; dmarc=pass header.from=dataport.example; dkim=pass header.d=dataport.example; spf=pass smtp.mailfrom=dataport.example"),
					mailflow.VerdictUnauthenticated},
				{"pass by another server", "anna@dataport.example", ar("mx.evil.example; dmarc=pass header.from=dataport.example"), mailflow.VerdictUnauthenticated},
				{"pass for another domain", "anna@dataport.example", ar(mx + "; dmarc=pass header.from=evil.example; dkim=pass header.d=evil.example; spf=pass smtp.mailfrom=evil.example"), mailflow.VerdictUnauthenticated},
				{"authenticated but unregistered sender", "mallory@evil.example", ar(mx + "; dmarc=pass header.from=evil.example"), mailflow.VerdictUnauthenticated},
				{"dmarc=pass", "anna@dataport.example", ar(mx + "; dmarc=pass header.from=dataport.example"), mailflow.VerdictApplied},
				{"aligned dkim=pass", "anna@dataport.example", ar(mx + "; dkim=pass header.d=mail.dataport.example"), mailflow.VerdictApplied},
				{"aligned spf=pass", "anna@dataport.example", ar(mx + "; spf=pass smtp.mailfrom=bounce@dataport.example"), mailflow.VerdictApplied},
				{"spf=pass for helo only", "anna@dataport.example", ar(mx + "; spf=pass smtp.helo=mx.dataport.example"), mailflow.VerdictUnauthenticated},
				{"topmost trusted pass, forged fail below", "anna@dataport.example", ar(mx+"; dmarc=pass header.from=dataport.example", mx+"; dmarc=fail"), mailflow.VerdictApplied},
			}
			for _, tt := range tests {
				before, _ := e.st.Order(ctx, e.dv.Number)
				m := rmail{from: tt.from, to: "bestellungen@example.org", subject: tag, body: "IN BEARBEITUNG\n", extra: tt.extra}
				dest, err := e.inbox.Process(ctx, mailflow.FetchedMessage{Raw: m.raw()})
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				list, _ := e.st.InboundList(ctx, false, 0, 1)
				after, _ := e.st.Order(ctx, e.dv.Number)
				got := list[0]
				if got.Verdict != tt.verdict {
					t.Errorf("%s: verdict %q (%s), want %q", tt.name, got.Verdict, got.Reason, tt.verdict)
				}
				decided := len(after.History) - len(before.History)
				if tt.verdict == mailflow.VerdictApplied {
					if dest != mailflow.FolderProcessed || decided != 1 {
						t.Errorf("%s: moved to %s, %d decisions recorded; want processed, 1", tt.name, dest, decided)
					}
					continue
				}
				if dest != mailflow.FolderReview || decided != 0 || after.Status != before.Status {
					t.Errorf("%s: moved to %s, %d decisions, status %s → %s; want review and no change", tt.name, dest, decided, before.Status, after.Status)
				}
				if !strings.Contains(got.Reason, "subject tag only — needs a person") {
					t.Errorf("%s: reason %q does not say it needs a person", tt.name, got.Reason)
				}
			}
		})
	}
}

// TestInboxRequireAuthenticatedTopmost: with require_authenticated_sender a
// tokened reply needs the topmost trusted header's pass; a pass forged
// below it does not count.
func TestInboxRequireAuthenticatedTopmost(t *testing.T) {
	const mx = "mx.example.org"
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newInboxEnv(t, driver)
			e.inbox.Config = mailflow.InboxConfig{RequireAuthenticatedSender: true, TrustedAuthServID: mx}
			ctx := context.Background()
			forged := "Authentication-Results: " + mx + "; dmarc=fail header.from=dataport.example\r\n" +
				"Authentication-Results: " + mx + "; dmarc=pass header.from=dataport.example\r\n"
			m := rmail{from: "anna@dataport.example", to: e.replyAddr(e.dv, "provider"), subject: "AW: [Bestellung " + e.dv.Number + "]", body: "BESTÄTIGT\n", extra: forged}
			res, err := e.inbox.Explain(ctx, m.raw())
			if err != nil || res.Verdict != mailflow.VerdictUnauthenticated {
				t.Errorf("forged pass below the MX's fail: %+v %v", res, err)
			}
			m.extra = "Authentication-Results: " + mx + "; dmarc=pass header.from=dataport.example\r\n"
			res, err = e.inbox.Explain(ctx, m.raw())
			if err != nil || res.Verdict != mailflow.VerdictApplied {
				t.Errorf("MX's pass: %+v %v", res, err)
			}
		})
	}
}
