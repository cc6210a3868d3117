package web_test

import (
	"io"
	"log/slog"
	"net/http"
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

// TestLanguageFollowsPerson: a signed-in person's choice of language is
// theirs, not the browser's: it holds in a fresh browser after a new
// sign-in, over that browser's cookie and Accept-Language; a later choice
// replaces it; a switch while signed out stores nothing for anyone, and
// another person, or the coordinator, keeps the default.
func TestLanguageFollowsPerson(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newSigninEnv(t, driver)
			lang := func(c *pageClient) string {
				t.Helper()
				_, body := c.do("GET", "/bestellungen", nil, map[string]string{"Accept-Language": "de-DE"})
				for _, l := range []string{"de", "en"} {
					if strings.Contains(body, `<html lang="`+l+`">`) {
						return l
					}
				}
				t.Fatalf("order list in no language: %.200s", body)
				return ""
			}
			first := env.client("192.0.2.1")
			env.signIn(first, dataportAddr, "")
			if got := lang(first); got != "de" {
				t.Fatalf("before any choice: %s, want de", got)
			}
			if resp, _ := first.get("/sprache/en?weiter=/bestellungen"); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("switch: %d", resp.StatusCode)
			}
			// A fresh browser that asks for German, and whose cookie says
			// German (switched while signed out): the sign-in form is
			// German, the pages after sign-in are English.
			second := env.client("192.0.2.2")
			second.get("/sprache/de?weiter=/anmelden")
			if _, body := second.get("/anmelden"); !strings.Contains(body, `<html lang="de">`) {
				t.Error("signed out, the sign-in form does not follow the browser's cookie")
			}
			env.signIn(second, dataportAddr, "")
			if got := lang(second); got != "en" {
				t.Errorf("after signing in in a fresh browser: %s, want en (the person's choice)", got)
			}
			// Another person and the coordinator are not affected.
			other := env.client("192.0.2.3")
			env.signIn(other, itnrwAddr, "")
			if got := lang(other); got != "de" {
				t.Errorf("another person: %s, want de", got)
			}
			coord := env.client("192.0.2.4")
			coord.login()
			if got := lang(coord); got != "de" {
				t.Errorf("the coordinator: %s, want de", got)
			}
			// A later choice replaces the earlier one.
			second.get("/sprache/de?weiter=/bestellungen")
			third := env.client("192.0.2.5")
			third.get("/sprache/en?weiter=/anmelden")
			env.signIn(third, dataportAddr, "")
			if got := lang(third); got != "de" {
				t.Errorf("after switching back to German: %s, want de", got)
			}
		})
	}
}
