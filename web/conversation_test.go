package web_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/storage"
	"mailflow/storage/storagetest"
)

// conversationFixture stores, for order o, the mails of a typical
// exchange: the notification, a reply with markup in its text, the
// acknowledgement it caused (at the same instant), an HTML-only
// auto-reply and a reply without a keyword that went to review.
func conversationFixture(t *testing.T, st *storage.Store, o *mailflow.Order, t0 time.Time) (ids map[string]string) {
	t.Helper()
	ctx := context.Background()
	ids = map[string]string{}
	ref := int64(100)
	enqueue := func(name, kind string, at time.Time, raw string) {
		t.Helper()
		ref++
		m := &mailflow.OutboxMessage{OrderID: o.ID, Ref: ref, Kind: kind, Party: "provider", Sender: "bestellungen+b@example.org",
			Recipients: []string{"bestellungen@dataport.example"}, MessageID: "<" + name + "@example.org>",
			Subject: "[Bestellung " + o.Number + "] " + name, Raw: []byte(raw), CreatedAt: at}
		if err := st.InTx(ctx, func(tx mailflow.Tx) error { return tx.Enqueue(m) }); err != nil {
			t.Fatal(err)
		}
		ids[name] = fmt.Sprint("ausgang-", m.ID)
	}
	receive := func(name, verdict string, review bool, at time.Time, raw string) {
		t.Helper()
		m := &mailflow.InboundMessage{MessageID: "<" + name + "@dataport.example>", SHA256: name, ReceivedAt: at,
			From: "bestellungen@dataport.example", Subject: "Re: [Bestellung " + o.Number + "]", Size: int64(len(raw)), Raw: []byte(raw)}
		err := st.InboxTx(ctx, func(tx mailflow.InboxTx) error {
			if _, err := tx.ClaimInbound(m); err != nil {
				return err
			}
			m.Verdict, m.OrderID, m.NeedsReview = verdict, o.ID, review
			m.Reason = "matched by reply token; found keyword; effect applied"
			if verdict == mailflow.VerdictApplied {
				m.Party, m.Intent = "provider", mailflow.IntentWorking
			}
			return tx.FinishInbound(m)
		})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = fmt.Sprint("eingang-", m.ID)
	}
	// Stored out of time order on purpose: the page sorts by time.
	receive("review", mailflow.VerdictNoIntent, true, t0.Add(3*time.Hour),
		"From: Anna Beispiel <bestellungen@dataport.example>\r\nTo: bestellungen@example.org\r\nSubject: Frage\r\nMessage-ID: <review@dataport.example>\r\n\r\nWir melden uns.\r\nZeile zwei.\r\n")
	enqueue("notification", mailflow.KindNotification, t0,
		"From: DVC Bestellservice <bestellungen@example.org>\r\nTo: bestellungen@dataport.example\r\nSubject: Neue Bestellung\r\nMessage-ID: <notification@example.org>\r\n"+
			"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBitte best\xc3\xa4tigen Sie die Bestellung.\r\n"+
			"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>HTML-Fassung</p>\r\n--b--\r\n")
	receive("reply", mailflow.VerdictApplied, false, t0.Add(time.Hour+3*time.Second),
		"From: bestellungen@dataport.example\r\nTo: bestellungen+tok@example.org\r\nSubject: Re\r\nMessage-ID: <reply@dataport.example>\r\n\r\nIN BEARBEITUNG\r\n<script>alert(1)</script> & Co.\r\n")
	enqueue("ack", mailflow.KindAck, t0.Add(time.Hour+3*time.Second),
		"From: bestellungen@example.org\r\nTo: bestellungen@dataport.example\r\nSubject: Eingang\r\nMessage-ID: <ack@example.org>\r\n\r\nDanke f\xc3\xbcr Ihre Antwort.\r\n")
	receive("auto", mailflow.VerdictAutoReply, false, t0.Add(2*time.Hour),
		"From: bestellungen@dataport.example\r\nTo: bestellungen+b@example.org\r\nSubject: Abwesend\r\nAuto-Submitted: auto-replied\r\nMessage-ID: <auto@dataport.example>\r\n"+
			"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p{}</style></head><body><p>Ich bin <b>abwesend</b>.</p><script>alert(2)</script><img src=\"https://tracker.example/x.png\"></body></html>\r\n")
	return ids
}

var mailEntry = regexp.MustCompile(`(?s)<li class="mail mail-(\w+)" id="nachricht-([\w-]+)" data-direction="\w+">(.*?)</li>`)

// TestPagesConversation: the order page shows every mail of the order in
// time order, in and out, with its readable text, safely escaped, with
// times to the second and the zone, in German and English.
func TestPagesConversation(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newPageEnv(t, driver, false)
			o := createOrder(t, env.flow, "order-dv.json", "conv-1", "")
			t0 := time.Date(2026, 12, 5, 8, 14, 3, 0, time.UTC) // 09:14:03 MEZ
			ids := conversationFixture(t, env.st, o, t0)
			c := env.client()
			c.login()
			_, body := c.get("/bestellungen/" + o.Number)
			entries := mailEntry.FindAllStringSubmatch(body, -1)
			var order []string
			texts := map[string]string{}
			for _, e := range entries {
				order = append(order, e[2])
				texts[e[2]] = e[3]
			}
			want := []string{ids["notification"], ids["reply"], ids["ack"], ids["auto"], ids["review"]}
			if strings.Join(order, " ") != strings.Join(want, " ") {
				t.Fatalf("conversation order %v, want %v", order, want)
			}
			for _, tc := range []struct{ entry, want string }{
				{"notification", `<time datetime="2026-12-05T08:14:03Z">05.12.2026 09:14:03 MEZ</time>`},
				{"notification", "Bitte bestätigen Sie die Bestellung."},
				{"notification", "DVC Bestellservice &lt;bestellungen@example.org&gt;"},
				{"notification", "Bestellmitteilung – an Anbieter"},
				{"notification", `href="/nachrichten/ausgang/`},
				{"reply", "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co."},
				{"reply", "verarbeitet – Anbieter: In Bearbeitung"},
				{"reply", `<p lang="en" class="wrap">matched by reply token; found keyword; effect applied</p>`},
				{"auto", "Ich bin abwesend."},
				{"auto", "automatische Antwort"},
				{"review", `>zur Prüfung</a>`},
				{"review", "Anna Beispiel &lt;bestellungen@dataport.example&gt;"},
				{"review", "Wir melden uns.\nZeile zwei.</pre>"},
			} {
				if !strings.Contains(texts[ids[tc.entry]], tc.want) {
					t.Errorf("%s lacks %q:\n%s", tc.entry, tc.want, texts[ids[tc.entry]])
				}
			}
			for _, bad := range []string{"<script>", "<b>abwesend", "tracker.example", "HTML-Fassung", "p{}"} {
				if strings.Contains(body, bad) {
					t.Errorf("the page shows %q from a mail", bad)
				}
			}
			// The text is shown, never raw HTML, and the German page has
			// no English verdict line: the English reason sits apart,
			// marked lang="en".
			if strings.Contains(body, "verarbeitet: matched") {
				t.Error("mixed-language verdict line")
			}

			// English: ISO date order, CET, English labels.
			_, body = c.do("GET", "/bestellungen/"+o.Number, nil, map[string]string{"Accept-Language": "en-GB,en;q=0.9"})
			for _, want := range []string{`<html lang="en">`, "2026-12-05 09:14:03 CET", "Order notification – to Provider", "Processed – Provider: In progress", "Messages"} {
				if !strings.Contains(body, want) {
					t.Errorf("English page lacks %q", want)
				}
			}
		})
	}
}
