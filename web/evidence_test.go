package web_test

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"mailflow/mailflow"
	"mailflow/mailflow/compose"
	"mailflow/mailflow/evidence"
	"mailflow/storage/storagetest"
	"mailflow/templates"
	"mailflow/web"
)

// The evidence bundle is served, signed, to the coordinator (API and
// page) and to the portal for its own final orders; a portal gets 404
// for another's and 409 while the order is open (its mails carry reply
// tokens); an altered stored mail answers an error, not a bundle.
func TestEvidenceDownload(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			st := storagetest.Open(t, driver)
			tokens, err := mailflow.NewTokens([]string{"reply-secret-0123456789"})
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := templates.New()
			if err != nil {
				t.Fatal(err)
			}
			composer, err := compose.New(compose.Config{From: "DVC Bestellservice <bestellungen@example.org>",
				Coordinator: "koordinierung@example.org", Tokens: tokens, Templates: tmpl})
			if err != nil {
				t.Fatal(err)
			}
			key, _, err := evidence.LoadOrCreateKey(filepath.Join(t.TempDir(), "evidence.key"))
			if err != nil {
				t.Fatal(err)
			}
			quiet := slog.New(slog.DiscardHandler)
			exp := &evidence.Exporter{Store: st, Key: key, Alerter: composer, Log: quiet}
			flow := &mailflow.Flow{Store: st, Notifier: composer}
			pages, err := web.NewPages(web.Pages{Flow: flow, Store: st, Username: pageUser, Password: pagePassword, Log: quiet, Evidence: exp})
			if err != nil {
				t.Fatal(err)
			}
			srv := &web.Server{Flow: flow, Store: st, Log: quiet, Evidence: exp, Extra: map[string]http.Handler{"/": pages.Handler()},
				Tokens: []web.Token{
					{Name: "portal", Role: web.RolePortal, Token: portalToken},
					{Name: "portal-b", Role: web.RolePortal, Token: portalBToken},
					{Name: "erika", Role: web.RoleCoordinator, Token: coordToken},
				}}
			hs := httptest.NewServer(srv.Handler())
			t.Cleanup(hs.Close)
			c := &apiClient{t: t, srv: hs, st: st}
			c.importCatalog()
			code, o := c.do("POST", "/api/v1/orders", portalToken, readExample(t, "order-dv.json"))
			if code != 201 {
				t.Fatalf("create: %d %v", code, o)
			}
			number := o["number"].(string)
			path := "/api/v1/orders/" + number + "/evidence"
			pub := key.Public().(ed25519.PublicKey)

			get := func(token string) (*http.Response, []byte) {
				t.Helper()
				req, _ := http.NewRequest("GET", hs.URL+path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp, b
			}
			wantBundle := func(who string, resp *http.Response, b []byte) {
				t.Helper()
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" {
					t.Fatalf("%s: %d %s: %.200s", who, resp.StatusCode, resp.Header.Get("Content-Type"), b)
				}
				res, err := evidence.Verify(bytes.NewReader(b), int64(len(b)), pub)
				if err != nil || !res.Valid() || res.Manifest.Order != number {
					t.Fatalf("%s: bundle does not verify: %v %v", who, err, res)
				}
			}
			resp, b := get(coordToken)
			wantBundle("coordinator, open order", resp, b)
			if resp, b := get(portalToken); resp.StatusCode != http.StatusConflict {
				t.Errorf("portal, open order: %d %s, want 409", resp.StatusCode, b)
			}
			if resp, b := get(portalBToken); resp.StatusCode != http.StatusNotFound {
				t.Errorf("another portal's order: %d %s, want 404", resp.StatusCode, b)
			}
			if code, body := c.do("POST", "/api/v1/orders/"+number+"/decisions", coordToken,
				map[string]string{"party": "provider", "intent": "accept"}); code != 200 {
				t.Fatalf("decide: %d %v", code, body)
			}
			resp, b = get(portalToken)
			wantBundle("portal, final order", resp, b)

			// The order page links the download, behind the session.
			jar, _ := cookiejar.New(nil)
			pc := &pageClient{t: t, base: hs.URL, c: &http.Client{Jar: jar,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
			link := "/bestellungen/" + number + "/nachweis.zip"
			if resp, _ := pc.get(link); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("download without a session: %d, want a redirect to the login", resp.StatusCode)
			}
			pc.login()
			if _, page := pc.get("/bestellungen/" + number); !strings.Contains(page, `href="`+link+`"`) {
				t.Error("the order page does not link the evidence download")
			}
			resp, body := pc.get(link)
			wantBundle("page", resp, []byte(body))

			// A sent mail altered in the database: no bundle, an error
			// naming it for the coordinator, nothing about it for the portal.
			db := st.DB()
			if _, err := db.Exec(db.Rebind(`UPDATE outbox_raw SET raw = ? WHERE outbox_id = (SELECT MIN(id) FROM outbox)`), []byte("From: forged\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			if resp, b := get(coordToken); resp.StatusCode != 500 || !strings.Contains(string(b), "sent message") {
				t.Errorf("coordinator, altered mail: %d %s", resp.StatusCode, b)
			}
			if resp, b := get(portalToken); resp.StatusCode != 500 || strings.Contains(string(b), "@") {
				t.Errorf("portal, altered mail: %d %s", resp.StatusCode, b)
			}
			if resp, page := pc.get(link); resp.StatusCode != 500 || !strings.Contains(page, "Beweismittel verändert") {
				t.Errorf("page, altered mail: %d", resp.StatusCode)
			}
		})
	}
}
