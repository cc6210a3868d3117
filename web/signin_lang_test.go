package web_test

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"mailflow/mailflow"
	"mailflow/mailflow/compose"
	"mailflow/storage/storagetest"
	"mailflow/templates"
	"mailflow/web"
)

// TestSigninPagesBothLanguages: the sign-in form, the answer to a link
// request and a broken link's page speak the browser's language, German
// or English, without mixing.
func TestSigninPagesBothLanguages(t *testing.T) {
	st := storagetest.Open(t, "sqlite")
	importCatalogFile(t, st)
	tokens, err := mailflow.NewTokens([]string{"ein-geheimnis-fuer-die-sprachen"})
	if err != nil {
		t.Fatal(err)
	}
	composer, err := compose.New(compose.Config{From: "DVC Bestellservice <bestellungen@example.org>",
		Coordinator: "koordinierung@example.org", Tokens: tokens, Templates: templates.Must(templates.New())})
	if err != nil {
		t.Fatal(err)
	}
	pages, err := web.NewPages(web.Pages{Flow: &mailflow.Flow{Store: st}, Store: st, Username: pageUser, Password: pagePassword,
		PublicURL: "https://bestellungen.example.org", Mailer: composer, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(pages.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		accept, lang string
		want         []string
		other        []string
	}{
		{"de-DE", "de", []string{"Anbieter und Intermediäre", "Anmeldelink anfordern", "Passwort", "Er gilt 15 Minuten", "Diesen Anmeldelink gibt es nicht"},
			[]string{"Request a sign-in link", "Password", "valid for 15 minutes", "does not exist"}},
		{"en-GB", "en", []string{"Providers and intermediaries", "Request a sign-in link", "Password", "valid for 15 minutes", "This sign-in link does not exist"},
			[]string{"Anmeldelink anfordern", "Passwort", "Er gilt 15 Minuten", "gibt es nicht"}},
	} {
		c := &pageClient{t: t, base: srv.URL, c: srv.Client()}
		hdr := map[string]string{"Accept-Language": tc.accept}
		var all string
		_, body := c.do("GET", "/anmelden", nil, hdr)
		all += visibleText(body)
		resp, body := c.do("POST", "/anmelden/link", url.Values{"email": {"niemand@unbekannt.example"}}, hdr)
		if resp.StatusCode != 200 {
			t.Errorf("%s: link request %d", tc.lang, resp.StatusCode)
		}
		all += visibleText(body)
		resp, body = c.do("GET", "/anmelden/link/"+strings.Repeat("x", 43), nil, hdr)
		if resp.StatusCode != 404 || !strings.Contains(body, `<html lang="`+tc.lang+`">`) {
			t.Errorf("%s: unknown link %d", tc.lang, resp.StatusCode)
		}
		all += visibleText(body)
		for _, w := range tc.want {
			if !strings.Contains(all, w) {
				t.Errorf("%s sign-in pages lack %q", tc.lang, w)
			}
		}
		for _, w := range tc.other {
			if strings.Contains(all, w) {
				t.Errorf("%s sign-in pages show %q", tc.lang, w)
			}
		}
	}
}
