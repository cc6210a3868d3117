package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// Phrases that give away the other language on a page; page data
// (customer names, catalog texts in German) never contains them.
var (
	germanTells  = []string{"Bestellnummer", "Eingegangene Bestellungen", "Abmelden", "Vertragsmodell", "Nachrichten zur Prüfung", "Verbindlich seit", "Entscheidung erfassen", "bitte wählen", "Zum Inhalt springen", "Seite nicht gefunden", "verarbeitet", "Angenommen", "Ansprechperson", "Bestätigt durch", "Technische Begründung", "MEZ"}
	englishTells = []string{"Order number", "Incoming orders", "Sign out", "Contract model", "Messages for review", "Binding since", "Record the decision", "please choose", "Skip to content", "Page not found", "Processed", "Accepted", "Contact person", "cknowledged by", "Technical reason", " CET"}
	tags         = regexp.MustCompile(`(?s)<[^>]*>`)
)

// visibleText is a page's text without markup and without the parts
// marked lang="en" on purpose (the daemon's technical reasons).
func visibleText(body string) string {
	body = regexp.MustCompile(`(?s)<(p|span) [^>]*lang="en"[^>]*>.*?</(p|span)>`).ReplaceAllString(body, "")
	body = regexp.MustCompile(`(?s)<a [^>]*hreflang="(de|en)"[^>]*>.*?</a>`).ReplaceAllString(body, "")
	return tags.ReplaceAllString(body, " ")
}

// TestPagesBothLanguages renders every page in German and in English:
// the language comes from Accept-Language, the switch overrides it, and
// no page mixes the two.
func TestPagesBothLanguages(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newPageEnv(t, driver, false)
			seeds := seedAllStatuses(t, env.flow)
			rej := seeds[mailflow.StatusRejectedProviderDV]
			o, _ := env.st.Order(t.Context(), rej.Number)
			ids := conversationFixture(t, env.st, o, time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC))
			reviewID := strings.TrimPrefix(ids["review"], "eingang-")

			for _, lang := range []struct {
				name, accept, htmlLang string
				own, other             []string
			}{
				{"German", "de-DE,de;q=0.9", "de", germanTells, englishTells},
				{"English", "en-GB,en;q=0.9", "en", englishTells, germanTells},
			} {
				c := env.client()
				hdr := map[string]string{"Accept-Language": lang.accept}
				get := func(path string, status int) string {
					t.Helper()
					resp, body := c.do("GET", path, nil, hdr)
					if resp.StatusCode != status {
						t.Fatalf("%s %s: %d, want %d", lang.name, path, resp.StatusCode, status)
					}
					if !strings.Contains(body, `<html lang="`+lang.htmlLang+`">`) || resp.Header.Get("Content-Language") != lang.htmlLang {
						t.Errorf("%s %s: not marked as %s", lang.name, path, lang.htmlLang)
					}
					text := visibleText(body)
					for _, w := range lang.other {
						if strings.Contains(text, w) {
							t.Errorf("%s %s shows %q", lang.name, path, w)
						}
					}
					return text
				}
				get("/anmelden", 200)
				c.login()
				pages := []string{"/bestellungen", "/bestellungen?q=gibt-es-nicht", "/bestellungen?status=ordered"}
				for _, s := range mailflow.Statuses {
					pages = append(pages, "/bestellungen/"+seeds[s].Number)
				}
				all := ""
				for _, p := range pages {
					all += get(p, 200)
				}
				// The review queue and one message in it.
				all += get("/pruefung", 200)
				all += get("/pruefung/"+reviewID, 200)
				all += get("/gibt-es-nicht", 404)
				all += get("/bestellungen/2026-999999", 404)
				all += get("/bestellungen?q="+strings.Repeat("x", 201), 422)
				for _, w := range lang.own {
					if !strings.Contains(all, w) {
						t.Errorf("%s pages never show %q", lang.name, w)
					}
				}
				// A failed decision form, too.
				resp, body := c.do("POST", "/bestellungen/"+seeds[mailflow.StatusOpen].Number+"/entscheidungen",
					url.Values{"csrf": {c.csrf}, "party": {"provider"}, "intent": {"reject"}}, hdr)
				want := map[string]string{"de": "Für eine Ablehnung ist ein Grund erforderlich.", "en": "A rejection needs a reason."}[lang.htmlLang]
				if resp.StatusCode != 422 || !strings.Contains(body, want) {
					t.Errorf("%s decision form: %d, lacks %q", lang.name, resp.StatusCode, want)
				}
				// Its language switch leads back to the order, not to the
				// form's POST address.
				if !strings.Contains(body, `weiter=%2Fbestellungen%2F`+seeds[mailflow.StatusOpen].Number+`" lang=`) {
					t.Errorf("%s decision form: the language switch does not lead back to the order", lang.name)
				}
			}

			// The switch: a cookie that outlasts the browser's preference.
			c := env.client()
			c.login()
			resp, _ := c.get("/sprache/en?weiter=" + url.QueryEscape("/bestellungen/"+rej.Number))
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/bestellungen/"+rej.Number {
				t.Fatalf("switch: %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			_, body := c.do("GET", "/bestellungen/"+rej.Number, nil, map[string]string{"Accept-Language": "de"})
			if !strings.Contains(body, `<html lang="en">`) || !strings.Contains(body, `href="/sprache/de?weiter=%2Fbestellungen%2F`+rej.Number+`" lang="de" hreflang="de">Deutsch</a>`) {
				t.Error("after switching to English the page is not English or offers no way back")
			}
			if !strings.Contains(body, `Reason for the rejection:</strong></p><p class="reason">Kapazität in`) {
				t.Error("the rejection's reason is not next to the status")
			}
			for _, bad := range []string{"/sprache/fr", "/sprache/en?weiter=//evil.example/"} {
				resp, _ := c.get(bad)
				if loc := resp.Header.Get("Location"); strings.Contains(loc, "evil") || bad == "/sprache/fr" && resp.StatusCode != 404 {
					t.Errorf("%s: %d %q", bad, resp.StatusCode, loc)
				}
			}
			// The login page switches too, without a session.
			anon := env.client()
			if resp, _ := anon.get("/sprache/en?weiter=/anmelden"); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("switch without session: %d", resp.StatusCode)
			}
			if _, body := anon.get("/anmelden"); !strings.Contains(body, `<html lang="en">`) {
				t.Error("the login page ignores the switch")
			}
		})
	}
}
