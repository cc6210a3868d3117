package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"mailflow/internal/exampletest"
	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// TestReviewCoordinatorsOnly: someone signed in who is not a coordinator
// (a provider, once parties sign in) finds no review queue: 404 on every
// route, also with a valid CSRF token, and nothing changes.
func TestReviewCoordinatorsOnly(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			st := storagetest.Open(t, driver)
			now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
			p, err := NewPages(Pages{Flow: &mailflow.Flow{Store: st}, Store: st, Username: "koordination", Password: "geheim-und-lang-genug",
				Now: func() time.Time { return now }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(p.Handler())
			defer srv.Close()
			m := &mailflow.InboundMessage{MessageID: "<x@y>", SHA256: "x", ReceivedAt: now, From: "a@b.example", Subject: "Geheim", Raw: []byte("Subject: Geheim\r\n\r\nx")}
			err = st.InboxTx(ctx, func(tx mailflow.InboxTx) error {
				if _, err := tx.ClaimInbound(m); err != nil {
					return err
				}
				m.Verdict, m.NeedsReview = mailflow.VerdictUnmatched, true
				return tx.FinishInbound(m)
			})
			if err != nil {
				t.Fatal(err)
			}

			do := func(id string, method, path string, form url.Values) (int, string) {
				var body io.Reader
				if form != nil {
					body = strings.NewReader(form.Encode())
				}
				req, _ := http.NewRequest(method, srv.URL+path, body)
				if form != nil {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				req.AddCookie(&http.Cookie{Name: sessionCookie, Value: id})
				resp, err := http.DefaultTransport.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			// Sessions as signing in makes them: a provider's by link, the
			// coordinator's by password.
			if err := st.ImportCatalog(ctx, exampletest.Catalog(t)); err != nil {
				t.Fatal(err)
			}
			newSession := func(role, org, subject string) (id, csrf string) {
				id, csrf = randomToken(32), randomToken(32)
				err := p.Auth.CreateSession(ctx, &mailflow.Session{IDHash: hashHex(id), Role: role, Org: org, Subject: subject, CSRF: csrf,
					Created: now, LastSeen: now, IdleUntil: now.Add(sessionIdle), Expires: now.Add(sessionLifetime)})
				if err != nil {
					t.Fatal(err)
				}
				return id, csrf
			}
			provider, pcsrf := newSession(mailflow.PartyProvider, "dataport", "bestellungen@dataport.example")
			coordinator, _ := newSession(mailflow.RoleCoordinator, "", "koordination")
			for _, r := range []struct {
				method, path string
				form         url.Values
			}{
				{"GET", "/pruefung", nil},
				{"GET", "/pruefung/1", nil},
				{"POST", "/pruefung/1/ablegen", url.Values{"csrf": {pcsrf}, "reason": {"weg"}}},
				{"POST", "/pruefung/1/zuordnen", url.Values{"csrf": {pcsrf}, "order": {"2026-000001"}, "party": {"provider"}, "intent": {"accept"}}},
			} {
				if code, body := do(provider, r.method, r.path, r.form); code != http.StatusNotFound || strings.Contains(body, "Geheim") {
					t.Errorf("%s %s as a provider: %d, want 404", r.method, r.path, code)
				}
			}
			if n, _ := st.CountReview(ctx); n != 1 {
				t.Error("a provider's post took the message out of review")
			}
			// The coordinator's session, made the same way, gets through.
			if code, body := do(coordinator, "GET", "/pruefung", nil); code != 200 || !strings.Contains(body, "Geheim") {
				t.Errorf("coordinator: %d", code)
			}
		})
	}
}
