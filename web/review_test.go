package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// putInReview stores a received message as the inbox leaves one for a
// person: verdict, reason, and the order when a token matched it.
func (e *pageEnv) putInReview(from, subject, body, verdict, reason string, orderID int64) *mailflow.InboundMessage {
	e.t.Helper()
	id := fmt.Sprintf("<r%d@client.example>", time.Now().UnixNano())
	raw := []byte("From: " + from + "\r\nTo: bestellungen@example.org\r\nSubject: " + subject + "\r\nMessage-ID: " + id +
		"\r\nDate: Wed, 25 Nov 2026 09:59:58 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		strings.ReplaceAll(body, "\n", "\r\n"))
	m := &mailflow.InboundMessage{MessageID: id, SHA256: "x", ReceivedAt: e.clock.Now(), From: from, Subject: subject, Size: int64(len(raw)), Raw: raw}
	err := e.st.InboxTx(context.Background(), func(tx mailflow.InboxTx) error {
		if _, err := tx.ClaimInbound(m); err != nil {
			return err
		}
		m.Verdict, m.Reason, m.OrderID, m.NeedsReview = verdict, reason, orderID, verdict != mailflow.VerdictApplied
		return tx.FinishInbound(m)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

var queueRowRe = regexp.MustCompile(`(?s)<tr data-inbound="(\d+)">(.*?)</tr>`)

// queueRows returns the rows of the review queue by message id.
func queueRows(body string) map[string]string {
	out := map[string]string{}
	for _, m := range queueRowRe.FindAllStringSubmatch(body, -1) {
		out[m[1]] = m[2]
	}
	return out
}

func mustContainAll(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

func TestReviewQueuePage(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newPageEnv(t, driver, false)
			o := createOrder(t, env.flow, "order-dv.json", "x-1", "")
			unmatched := env.putInReview("info@werbung.example", `<script>alert(1)</script> Angebot`, "Kaufen Sie jetzt!\n", mailflow.VerdictUnmatched,
				"no reply token, no known In-Reply-To/References and no subject tag", 0)
			env.clock.Add(time.Second)
			tokenMatched := env.putInReview("mallory@evil.example", "AW: [Bestellung "+o.Number+"]", "BESTÄTIGT\n", mailflow.VerdictUnauthenticated,
				"sender is not registered to answer for the provider", o.ID)
			tagOnly := env.putInReview("bestellungen@dataport.example", "AW: [Bestellung "+o.Number+"]",
				"Guten Tag,\n\nABGELEHNT: keine Kapazität <b>frei</b>\n\n> Ihre Bestellung\n", mailflow.VerdictUnauthenticated,
				"matched order "+o.Number+" by subject tag only — needs a person", 0)
			applied := env.putInReview("bestellungen@dataport.example", "AW", "IN BEARBEITUNG\n", mailflow.VerdictApplied, "", o.ID)

			c := env.client()
			if resp, _ := c.get("/pruefung"); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("queue without login: %d, want a redirect to the login", resp.StatusCode)
			}
			c.login()
			_, body := c.get("/bestellungen")
			mustContainAll(t, "order list", body, `<a href="/pruefung">Nachrichten zur Prüfung: <span id="review-count">3</span></a>`)

			resp, body := c.get("/pruefung")
			if resp.StatusCode != 200 {
				t.Fatalf("queue: %d", resp.StatusCode)
			}
			rows := queueRows(body)
			if len(rows) != 3 || rows[fmt.Sprint(applied.ID)] != "" {
				t.Fatalf("queue rows %v, want the three messages in review", rows)
			}
			if strings.Index(body, fmt.Sprintf(`data-inbound="%d"`, unmatched.ID)) > strings.Index(body, fmt.Sprintf(`data-inbound="%d"`, tagOnly.ID)) {
				t.Error("the queue is not oldest first")
			}
			mustContainAll(t, "unmatched row", rows[fmt.Sprint(unmatched.ID)], "25.11.2026 10:00:00 MEZ", "info@werbung.example",
				"&lt;script&gt;alert(1)&lt;/script&gt; Angebot", "nicht zugeordnet", "no reply token", `<span class="empty">keine</span>`,
				fmt.Sprintf(`href="/pruefung/%d"`, unmatched.ID), fmt.Sprintf(`href="/nachrichten/eingang/%d.eml"`, unmatched.ID))
			mustContainAll(t, "token-matched row", rows[fmt.Sprint(tokenMatched.ID)], "25.11.2026 10:00:01 MEZ", "Absender nicht berechtigt",
				`<a href="/bestellungen/`+o.Number+`">`+o.Number+`</a>`)
			mustContainAll(t, "subject-only row", rows[fmt.Sprint(tagOnly.ID)], o.Number+` <span class="small">(nur im Betreff genannt)</span>`)
			if strings.Contains(body, "<script>") {
				t.Error("the queue does not escape a subject")
			}

			// The message page shows the text safely, and the forms start
			// from what the message says.
			resp, body = c.get(fmt.Sprintf("/pruefung/%d", tagOnly.ID))
			if resp.StatusCode != 200 {
				t.Fatalf("message page: %d", resp.StatusCode)
			}
			mustContainAll(t, "message page", body, "ABGELEHNT: keine Kapazität &lt;b&gt;frei&lt;/b&gt;", "&gt; Ihre Bestellung",
				`value="`+o.Number+`"`, `<option value="provider" selected>`, `<option value="reject" selected>`,
				`>keine Kapazität &lt;b&gt;frei&lt;/b&gt;</textarea>`, "25.11.2026 09:59:58 MEZ", "bestellungen@example.org",
				`action="/pruefung/`+fmt.Sprint(tagOnly.ID)+`/zuordnen"`, `action="/pruefung/`+fmt.Sprint(tagOnly.ID)+`/ablegen"`)
			if strings.Contains(body, "<b>frei") {
				t.Error("the message text is not escaped")
			}
			// A processed message is shown without forms.
			_, body = c.get(fmt.Sprintf("/pruefung/%d", applied.ID))
			if strings.Contains(body, "/zuordnen") || !strings.Contains(body, "wartet nicht auf Prüfung") {
				t.Error("a processed message offers the review forms")
			}
			// From the order's page, a message in review links to its page.
			_, body = c.get("/bestellungen/" + o.Number)
			mustContainAll(t, "order page", body, fmt.Sprintf(`<a class="flag" href="/pruefung/%d">zur Prüfung</a>`, tokenMatched.ID))

			// A message that could not be processed has no stored bytes:
			// its page says where it is and still offers both ways out.
			poison := &mailflow.InboundMessage{MessageID: "unprocessable:INBOX:7:42", ReceivedAt: env.clock.Now(), Mailbox: "INBOX", UID: 42,
				Verdict: mailflow.VerdictUnprocessable, Reason: "not processed after 3 attempts: boom", NeedsReview: true}
			err := env.st.InboxTx(context.Background(), func(tx mailflow.InboxTx) error {
				if _, err := tx.ClaimInbound(poison); err != nil {
					return err
				}
				return tx.FinishInbound(poison)
			})
			if err != nil {
				t.Fatal(err)
			}
			_, body = c.get("/pruefung")
			mustContainAll(t, "queue with an unprocessable message", queueRows(body)[fmt.Sprint(poison.ID)], "nicht verarbeitbar", "not processed after 3 attempts", "unbekannt")
			resp, body = c.get(fmt.Sprintf("/pruefung/%d", poison.ID))
			if resp.StatusCode != 200 {
				t.Fatalf("unprocessable message page: %d", resp.StatusCode)
			}
			mustContainAll(t, "unprocessable message page", body, "nicht in der Datenbank gespeichert", "INBOX, UID 42", "/zuordnen", "/ablegen")

			for _, path := range []string{"/pruefung/999999", "/pruefung/abc", "/pruefung/0"} {
				if resp, _ := c.get(path); resp.StatusCode != 404 {
					t.Errorf("%s: %d, want 404", path, resp.StatusCode)
				}
			}
		})
	}
}

func TestReviewAttachPage(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newPageEnv(t, driver, false)
			ctx := context.Background()
			o := createOrder(t, env.flow, "order-uv.json", "x-1", "")
			m := env.putInReview("auftrag@govdigital.example", "Freigabe", "BESTÄTIGT\n", mailflow.VerdictUnmatched, "no subject tag", 0)
			c := env.client()
			c.login()
			path := fmt.Sprintf("/pruefung/%d/zuordnen", m.ID)

			// Refused input is shown again with its errors; nothing changes.
			resp, body := c.do("POST", path, url.Values{"csrf": {c.csrf}, "order": {"2026-999999"}, "party": {"intermediary"}, "intent": {"accept"}}, nil)
			if resp.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("unknown order: %d", resp.StatusCode)
			}
			mustContainAll(t, "refused attach", body, "Bestellnummer: Keine Bestellung hat diese Nummer.", `value="2026-999999"`,
				`<option value="intermediary" selected>`, `aria-describedby="order-error"`)
			resp, body = c.do("POST", path, url.Values{"csrf": {c.csrf}, "order": {o.Number}, "party": {"intermediary"}, "intent": {"reject"}}, nil)
			if resp.StatusCode != 422 || !strings.Contains(body, "Grund: Für eine Ablehnung ist ein Grund erforderlich.") {
				t.Errorf("reject without reason: %d", resp.StatusCode)
			}
			if got, _ := env.st.Order(ctx, o.Number); len(got.History) != 0 {
				t.Fatalf("a refused attach recorded %+v", got.History)
			}

			form := url.Values{"csrf": {c.csrf}, "order": {o.Number}, "party": {"intermediary"}, "intent": {"accept"}}
			resp, _ = c.do("POST", path, form, nil)
			wantRedirect(t, resp, fmt.Sprintf("/pruefung?erledigt=%d", m.ID))
			got, err := env.st.Order(ctx, o.Number)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != mailflow.StatusWorkingIntermediary || len(got.History) != 1 ||
				got.History[0].Source != mailflow.SourceReview || got.History[0].Actor != pageUser || got.History[0].MessageID != m.MessageID {
				t.Fatalf("after attaching: %s %+v", got.Status, got.History)
			}
			_, body = c.get(fmt.Sprintf("/pruefung?erledigt=%d", m.ID))
			if len(queueRows(body)) != 0 {
				t.Error("the attached message is still in the queue")
			}
			mustContainAll(t, "queue after attaching", body, `id="erledigt-hinweis">Erledigt: Nachricht `+fmt.Sprint(m.ID),
				"der Bestellung <a href=\"/bestellungen/"+o.Number+"\">"+o.Number+"</a> zugeordnet; erfasste Erklärung: Angenommen (Intermediär)",
				"durch <strong>"+pageUser+"</strong>")
			_, body = c.get("/bestellungen/" + o.Number)
			mustContainAll(t, "order page", body, `data-label="Quelle">geprüfte Nachricht</td>`, "Nachrichten aus der Prüfung",
				fmt.Sprintf(`<li data-inbound="%d" data-action="attached">`, m.ID), fmt.Sprintf(`href="/pruefung/%d"`, m.ID),
				fmt.Sprintf(`(<a href="#nachricht-eingang-%d">Nachricht</a>)`, m.ID))

			// The same post again (a double click, a second coordinator)
			// is told who was first and changes nothing.
			other := env.client()
			other.login()
			form.Set("csrf", other.csrf)
			form.Set("intent", "reject")
			form.Set("reason", "zu spät")
			resp, body = other.do("POST", path, form, nil)
			if resp.StatusCode != http.StatusConflict {
				t.Errorf("second attach: %d, want 409", resp.StatusCode)
			}
			mustContainAll(t, "second attach", body, "Bereits erledigt.", "nichts wurde geändert", "durch <strong>"+pageUser+"</strong>")
			if strings.Contains(body, `action="`+path+`"`) {
				t.Error("the answer to a late post offers the form again")
			}
			resp, _ = other.do("POST", fmt.Sprintf("/pruefung/%d/ablegen", m.ID), url.Values{"csrf": {other.csrf}, "reason": {"doppelt"}}, nil)
			if resp.StatusCode != http.StatusConflict {
				t.Errorf("dismissing an attached message: %d, want 409", resp.StatusCode)
			}
			if got, _ := env.st.Order(ctx, o.Number); len(got.History) != 1 || got.Status != mailflow.StatusWorkingIntermediary {
				t.Errorf("a late post changed the order: %s %+v", got.Status, got.History)
			}
		})
	}
}

func TestReviewDismissPage(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newPageEnv(t, driver, false)
			o := createOrder(t, env.flow, "order-dv.json", "x-1", "")
			m := env.putInReview("mallory@evil.example", "AW: [Bestellung "+o.Number+"]", "BESTÄTIGT\n", mailflow.VerdictUnauthenticated, "forged", o.ID)
			c := env.client()
			c.login()
			path := fmt.Sprintf("/pruefung/%d/ablegen", m.ID)
			for _, reason := range []string{"", "   ", strings.Repeat("x", 4001)} {
				resp, body := c.do("POST", path, url.Values{"csrf": {c.csrf}, "reason": {reason}}, nil)
				if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `<span class="field-error" id="dismiss-reason-error">Grund: `) {
					t.Errorf("dismiss with reason of %d characters: %d", len(reason), resp.StatusCode)
				}
			}
			if n, _ := env.st.CountReview(context.Background()); n != 1 {
				t.Fatal("a refused dismissal took the message out of review")
			}
			resp, _ := c.do("POST", path, url.Values{"csrf": {c.csrf}, "reason": {"Gefälschter Absender <i>Mallory</i>\nbei Dataport nachgefragt"}}, nil)
			wantRedirect(t, resp, fmt.Sprintf("/pruefung?erledigt=%d", m.ID))
			_, body := c.get("/bestellungen/" + o.Number)
			mustContainAll(t, "order page", body, fmt.Sprintf(`<li data-inbound="%d" data-action="dismissed">`, m.ID),
				"ohne Entscheidung abgelegt", `Grund: <span class="reason">Gefälschter Absender &lt;i&gt;Mallory&lt;/i&gt;`+"\nbei Dataport nachgefragt</span>")
			if resp, raw := c.get(fmt.Sprintf("/nachrichten/eingang/%d.eml", m.ID)); resp.StatusCode != 200 || raw != string(m.Raw) {
				t.Errorf("the dismissed message is not kept: %d", resp.StatusCode)
			}
			_, body = c.get(fmt.Sprintf("/pruefung/%d", m.ID))
			if strings.Contains(body, `action="`+path+`"`) || !strings.Contains(body, "Erledigt: Nachricht") {
				t.Error("a dismissed message still offers its forms")
			}
		})
	}
}

func TestReviewCSRF(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newPageEnv(t, driver, false)
			o := createOrder(t, env.flow, "order-dv.json", "x-1", "")
			m := env.putInReview("x@unknown.example", "?", "BESTÄTIGT\n", mailflow.VerdictUnmatched, "", 0)
			c := env.client()
			c.login()
			for _, action := range []string{"zuordnen", "ablegen"} {
				path := fmt.Sprintf("/pruefung/%d/%s", m.ID, action)
				form := func(token string) url.Values {
					return url.Values{"csrf": {token}, "order": {o.Number}, "party": {"provider"}, "intent": {"accept"}, "reason": {"weg"}}
				}
				for name, tc := range map[string]struct {
					form url.Values
					hdr  map[string]string
				}{
					"missing token":   {form(""), nil},
					"wrong token":     {form("AAAA" + c.csrf[4:]), nil},
					"foreign origin":  {form(c.csrf), map[string]string{"Origin": "https://evil.example"}},
					"foreign referer": {form(c.csrf), map[string]string{"Referer": "https://evil.example/pruefung"}},
				} {
					resp, body := c.do("POST", path, tc.form, tc.hdr)
					if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "CSRF") {
						t.Errorf("%s %s: %d, want 403", action, name, resp.StatusCode)
					}
				}
			}
			if n, _ := env.st.CountReview(context.Background()); n != 1 {
				t.Error("a refused post took the message out of review")
			}
			if got, _ := env.st.Order(context.Background(), o.Number); len(got.History) != 0 {
				t.Errorf("a refused post recorded %+v", got.History)
			}
		})
	}
}
