package web

import (
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/language"

	"mailflow/mailflow"
	"mailflow/templates"
)

// The status page speaks German or English (docs/operations.md "The
// status page", "Language"). Every phrase the page shows goes through one
// table, english below, keyed by its German text: templates call
// {{t "German text" args…}}, Go code calls tr. Codes with a label (a
// status, a party, an intent …) take it from templates.Label, the table
// the mails use too, so a status reads the same on the page and in a mail.

// Languages of the page.
const (
	langDE = "de"
	langEN = "en"
)

// langCookie keeps a person's choice of language for a year.
const langCookie = "mailflow_lang"

// langMatcher picks German or English from Accept-Language; German, the
// portal's language, is the default for everything else.
var langMatcher = language.NewMatcher([]language.Tag{language.German, language.English})

// langFrom chooses the language of a response: the cookie set by the
// language switch (or by a sign-in, from the person's stored choice),
// else the browser's Accept-Language, else German.
func langFrom(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == langDE || c.Value == langEN) {
		return c.Value
	}
	tag, _ := language.MatchStrings(langMatcher, r.Header.Get("Accept-Language"))
	if base, _ := tag.Base(); base.String() == langEN {
		return langEN
	}
	return langDE
}

// tr returns the page phrase de (the German text, the table's key) in
// lang, formatted with args like fmt.Sprintf. An unknown phrase is an
// error, so a template that names one fails its render test.
func tr(lang, de string, args ...any) (string, error) {
	en, ok := english[de]
	if !ok {
		return "", fmt.Errorf("web: no English for page phrase %q", de)
	}
	s := de
	if lang == langEN {
		s = en
	}
	if len(args) > 0 {
		s = fmt.Sprintf(s, args...)
	}
	return s, nil
}

// msg is tr for Go code, for a phrase without verbs: an unknown phrase
// shows as it is rather than failing a request (TestPagePhrases finds
// them).
func msg(lang, de string) string {
	s, err := tr(lang, de)
	if err != nil {
		return de
	}
	return s
}

// msgf is msg for a phrase with verbs.
func msgf(lang, format string, args ...any) string {
	s, err := tr(lang, format, args...)
	if err != nil {
		return fmt.Sprintf(format, args...)
	}
	return s
}

// switchLink is the header's link to the other language.
type switchLink struct {
	URL, Lang, Label string
}

func languageSwitch(r *http.Request, lang string) switchLink {
	back := r.URL.RequestURI()
	if r.Method != http.MethodGet {
		// A form's answer (a failed decision, a refused login) has no
		// address of its own: switch on the page the form is part of.
		back = path.Dir(r.URL.Path)
	}
	if lang == langEN {
		return switchLink{URL: "/sprache/de?weiter=" + url.QueryEscape(back), Lang: langDE, Label: "Deutsch"}
	}
	return switchLink{URL: "/sprache/en?weiter=" + url.QueryEscape(back), Lang: langEN, Label: "English"}
}

// setLanguage stores the chosen language in a cookie and, for a
// signed-in person, in the database, so that it follows them to another
// browser at their next sign-in (startSession); then it returns to the
// page the person came from. It is a plain link (no script, no form), so
// it works on the login page too; it changes nothing but the language,
// which makes a GET harmless.
func (p *Pages) setLanguage(w http.ResponseWriter, r *http.Request) {
	lang := r.PathValue("lang")
	if lang != langDE && lang != langEN {
		p.errorKey(w, r, http.StatusNotFound, "Seite nicht gefunden", "Diese Seite gibt es nicht.")
		return
	}
	v, err := p.session(r)
	if err == nil && v != nil {
		err = p.Auth.SetPageLanguage(r.Context(), v.Role, v.Org, v.Subject, lang, p.Now())
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.setLangCookie(w, lang)
	http.Redirect(w, r, safeNext(r.URL.Query().Get("weiter")), http.StatusSeeOther)
}

// setLangCookie keeps lang as this browser's language for a year.
func (p *Pages) setLangCookie(w http.ResponseWriter, lang string) {
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: lang, Path: "/", MaxAge: 365 * 24 * 3600,
		HttpOnly: true, Secure: p.SecureCookies, SameSite: http.SameSiteLaxMode})
}

// berlin is the time zone the page shows times in.
var berlin = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return time.UTC // cmd/mailflow embeds time/tzdata, so only bare tests get here
	}
	return loc
}()

// Time formats: German as German offices write it, English in ISO 8601
// order, which no reader misreads as month-first.
var timeFormats = map[string][3]string{
	// minutes, seconds with zone, date
	langDE: {"02.01.2006 15:04", "02.01.2006 15:04:05", "02.01.2006"},
	langEN: {"2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02"},
}

// zoneName is the zone's abbreviation in lang: MEZ/MESZ in German,
// CET/CEST in English.
func zoneName(lang string, t time.Time) string {
	name, _ := t.Zone()
	if lang == langDE {
		switch name {
		case "CET":
			return "MEZ"
		case "CEST":
			return "MESZ"
		}
	}
	return name
}

// formatTime shows t in Berlin time: to the minute, or with seconds and
// the zone where the order of messages matters.
func formatTime(lang string, t any, seconds bool) string {
	var tt time.Time
	switch v := t.(type) {
	case time.Time:
		tt = v
	case *time.Time:
		if v == nil {
			return "–"
		}
		tt = *v
	default:
		return "–"
	}
	tt = tt.In(berlin)
	f := timeFormats[lang]
	if !seconds {
		return tt.Format(f[0])
	}
	return tt.Format(f[1]) + " " + zoneName(lang, tt)
}

func formatDate(lang string, d any) string {
	switch d := d.(type) {
	case mailflow.Date:
		return d.Format(timeFormats[lang][2])
	case *mailflow.Date:
		if d != nil {
			return d.Format(timeFormats[lang][2])
		}
	}
	return msg(lang, "unbefristet")
}

// decimal writes f with the language's decimal mark.
func decimal(lang string, f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if lang == langDE {
		s = strings.ReplaceAll(s, ".", ",")
	}
	return s
}

func propertyValue(lang string, v any) string {
	switch v := v.(type) {
	case bool:
		if v {
			return msg(lang, "ja")
		}
		return msg(lang, "nein")
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			return strconv.FormatInt(int64(v), 10)
		}
		return decimal(lang, v)
	case nil:
		return "–"
	}
	return fmt.Sprint(v)
}

// label is templates.Label with English labels starting upper case where
// they stand alone on the page (a card, a table cell).
func label(lang, kind, code string) string {
	s := templates.Label(lang, kind, code)
	if lang == langEN {
		s = capFirst(s)
	}
	return s
}

func capFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// termsDoc is one of the contract texts an order binds.
type termsDoc struct {
	Kind  string
	Terms mailflow.Terms
}

// pageFuncs are the template functions in lang. Every page is parsed once
// per language with its own set, so a template never passes the language
// around.
func pageFuncs(lang string) template.FuncMap {
	return template.FuncMap{
		"t":       func(de string, args ...any) (string, error) { return tr(lang, de, args...) },
		"zeit":    func(t any) string { return formatTime(lang, t, false) },
		"zeitsek": func(t any) string { return formatTime(lang, t, true) },
		"iso":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"datum":   func(d any) string { return formatDate(lang, d) },
		"betrag":  func(cents int64, currency string) string { return templates.Money(lang, cents, currency) },
		"prozent": func(f float64) string { return decimal(lang, f) + " %" },
		"intervall": func(s string) string {
			return templates.Label(lang, templates.LabelInterval, s)
		},
		"partei":        func(s string) string { return label(lang, templates.LabelParty, s) },
		"erklaerung":    func(i mailflow.Intent) string { return label(lang, templates.LabelIntent, string(i)) },
		"quelle":        func(s string) string { return label(lang, templates.LabelSource, s) },
		"wirkung":       func(s string) string { return label(lang, templates.LabelEffect, s) },
		"art":           func(s string) string { return label(lang, templates.LabelKind, s) },
		"versandstatus": func(s string) string { return label(lang, templates.LabelOutboxStatus, s) },
		"ergebnis":      func(s string) string { return label(lang, templates.LabelVerdict, s) },
		"modell":        func(s string) string { return templates.Label(lang, templates.LabelModel, s) },
		"wert":          func(v any) string { return propertyValue(lang, v) },
		"join":          strings.Join,
		"deref":         func(t *time.Time) time.Time { return *t },
		"terms": func(s mailflow.Snapshot) []termsDoc {
			return []termsDoc{{msg(lang, "AGB"), s.Terms}, {msg(lang, "Leistungsbedingungen"), s.Conditions}}
		},
	}
}

// english is the page's phrase table: German text → English text. A
// phrase with verbs (%d, %s) takes the same arguments in both.
var english = map[string]string{
	// Frame and navigation.
	"Zum Inhalt springen":                  "Skip to content",
	"mailflow · Eingegangene Bestellungen": "mailflow · Incoming orders",
	"mailflow · Koordinierungsstelle":      "mailflow · Coordination office",
	"Hauptnavigation":                      "Main navigation",
	"Eingegangene Bestellungen":            "Incoming orders",
	"Angemeldet als":                       "Signed in as",
	"Abmelden":                             "Sign out",
	"Anmelden":                             "Sign in",
	"Zur Übersicht der Bestellungen":       "To the list of orders",

	// The list.
	"Übersicht nach Status":              "Orders by status",
	"%d Bestellungen insgesamt":          "%d orders in total",
	"Nachrichten zur Prüfung":            "Messages for review",
	"Filtern und suchen":                 "Filter and search",
	"Status":                             "Status",
	"Alle Status":                        "All statuses",
	"Suche":                              "Search",
	"Bestellnummer, Kunde oder Anbieter": "Order number, customer or provider",
	"Anzeigen":                           "Show",
	"Filter zurücksetzen":                "Reset filter",
	"Bestellungen":                       "Orders",
	"1 Bestellung":                       "1 order",
	"%d Bestellungen":                    "%d orders",
	"gefunden":                           "found",
	"Seite %d von %d":                    "page %d of %d",
	"Liste als CSV herunterladen":        "Download the list as CSV",
	"(alle Treffer dieses Filters; Semikolon-getrennt, UTF-8, für Excel)": "(every order this filter finds; semicolon-separated, UTF-8, for Excel)",
	"Bestellungen, neueste zuerst":                                        "Orders, newest first",
	"Bestellnummer":                                                       "Order number",
	"Bestelldatum":                                                        "Order date",
	"Kunde":                                                               "Customer",
	"Anbieter":                                                            "Provider",
	"Leistung":                                                            "Service",
	"Vertragsmodell":                                                      "Contract model",
	"Widerspruch":                                                         "Conflict",
	"Keine Bestellungen gefunden.":                                        "No orders found.",
	"Seiten":                                                              "Pages",
	"Vorherige Seite":                                                     "Previous page",
	"Nächste Seite":                                                       "Next page",
	"Was die Status bedeuten":                                             "What the statuses mean",
	"Jede Gruppe hat eine eigene Farbe und ein eigenes Zeichen: Kreis gestrichelt – offen, halb gefüllter Kreis – in Bearbeitung, Lupe – in Prüfung, Haken – bestellt, Kreuz – abgelehnt.": "Each group has a colour and a sign of its own: dashed circle – open, half-filled circle – in progress, magnifier – in review, tick – ordered, cross – rejected.",

	// The order.
	"Alle Bestellungen":               "All orders",
	"Bestellung %s":                   "Order %s",
	"Grund der Ablehnung":             "Reason for the rejection",
	"Die Entscheidung wurde erfasst.": "The decision has been recorded.",
	"Nach dem Abschluss der Bestellung ist eine abweichende Erklärung eingegangen. Bitte klären Sie den Vorgang mit den Beteiligten.": "A differing declaration arrived after the order was final. Please settle the matter with those involved.",
	"Eckdaten":                          "Key facts",
	"Externe Kennung (Portal)":          "External id (portal)",
	"Eingegangen":                       "Received",
	"Intermediär":                       "Intermediary",
	"Leitweg-ID":                        "Leitweg-ID",
	"Verbindlich seit":                  "Binding since",
	"Bereitstellungsfrist":              "Provisioning deadline",
	"%d Tage nach Verbindlichkeit":      "%d days after it became binding",
	"Organisation":                      "Organisation",
	"Anschrift":                         "Address",
	"Ansprechperson":                    "Contact person",
	"E-Mail":                            "Email",
	"Telefon":                           "Phone",
	"Kundennummer":                      "Customer number",
	"Leistung und Preis":                "Service and price",
	"Beschreibung":                      "Description",
	"Bereitstellungszeit":               "Provisioning time",
	"%d Tage":                           "%d days",
	"Reifegrad":                         "Maturity level",
	"Softwarelieferant":                 "Software supplier",
	"Tarif":                             "Plan",
	"Preis":                             "Price",
	"%s %s, zzgl. %s USt.":              "%s %s, plus %s VAT",
	"Konfigurierte Eigenschaften":       "Configured properties",
	"Eigenschaft":                       "Property",
	"Wert":                              "Value",
	"ja":                                "yes",
	"nein":                              "no",
	"Vertragsbedingungen":               "Contract terms",
	"Dokument":                          "Document",
	"Version":                           "Version",
	"Gültig ab":                         "Valid from",
	"Gültig bis":                        "Valid until",
	"unbefristet":                       "open-ended",
	"AGB":                               "General terms",
	"Leistungsbedingungen":              "Service conditions",
	"Volltext: %s %s":                   "Full text: %s %s",
	"Verlauf":                           "History",
	"Zeit":                              "Time",
	"Partei":                            "Party",
	"Erklärung":                         "Declaration",
	"Quelle":                            "Source",
	"Absender/Akteur":                   "Sender/actor",
	"Wirkung":                           "Effect",
	"Grund":                             "Reason",
	"Nachricht":                         "Message",
	"Noch keine Erklärung eingegangen.": "No declaration yet.",
	"Nachrichten":                       "Messages",
	"Alle gesendeten und empfangenen Nachrichten dieser Bestellung in zeitlicher Folge, auch ignorierte automatische Antworten und Nachrichten zur Prüfung. Zeiten in deutscher Zeit (Europe/Berlin).": "Every message sent and received for this order in time order, including ignored automatic replies and messages for review. Times are German time (Europe/Berlin).",
	"Empfangen":                            "Received",
	"Gesendet":                             "Sent",
	"zur Prüfung":                          "for review",
	"Von":                                  "From",
	"An":                                   "To",
	"an":                                   "to",
	"Betreff":                              "Subject",
	"Ergebnis":                             "Outcome",
	"Art":                                  "Kind",
	"Versand":                              "Delivery",
	"Technische Begründung (auf Englisch)": "Technical reason",
	"Text der Nachricht":                   "Text of the message",
	"(gekürzt)":                            "(shortened)",
	"Die Nachricht enthält keinen lesbaren Text.":            "The message has no readable text.",
	"Original herunterladen":                                 "Download the original",
	"Die Nachricht war zu groß und wurde nicht gespeichert.": "The message was too large and was not stored.",
	"Noch keine Nachrichten.":                                "No messages yet.",
	"Entscheidung von Hand erfassen":                         "Record a decision by hand",
	"Erfassen Sie hier eine Erklärung, die auf anderem Weg eingegangen ist (etwa telefonisch oder per Brief). Sie wird mit Ihrem Benutzernamen protokolliert und löst dieselben Nachrichten aus wie eine Antwort per E-Mail.": "Record here a declaration that arrived some other way (by phone or letter, say). It is logged with your user name and sends the same messages as an answer by email.",
	"Die Bestellung ist abgeschlossen. Eine weitere Erklärung ändert den Status nicht; eine abweichende wird als Widerspruch protokolliert.":                                                                                  "The order is final. A further declaration does not change its status; a differing one is logged as a conflict.",
	"Bitte korrigieren Sie die folgenden Angaben:": "Please correct the following:",
	"– bitte wählen –":                             "– please choose –",
	"(bei Ablehnung erforderlich)":                 "(required for a rejection)",
	"Entscheidung erfassen":                        "Record the decision",

	// Form validation (fieldMessage).
	"Eine Bestellung im Direktvertrag (DV) hat keinen Intermediär.":                           "An order under a direct contract (DV) has no intermediary.",
	"Bitte wählen Sie die Partei, für die Sie die Erklärung erfassen.":                        "Please choose the party whose declaration you record.",
	"Bitte wählen Sie Anbieter oder Intermediär.":                                             "Please choose provider or intermediary.",
	"Bitte wählen Sie eine Erklärung: Angenommen, In Prüfung, In Bearbeitung oder Abgelehnt.": "Please choose a declaration: accepted, in review, in progress or rejected.",
	"Für eine Ablehnung ist ein Grund erforderlich.":                                          "A rejection needs a reason.",
	"Der Grund darf höchstens 4000 Zeichen lang sein.":                                        "The reason may be at most 4000 characters long.",
	"Der Grund enthält Zeichen, die kein Text sind.":                                          "The reason contains characters that are not text.",
	"Die Angabe ist ungültig.":                                                                "The entry is invalid.",

	// Error pages.
	"Seite nicht gefunden":               "Page not found",
	"Diese Seite gibt es nicht.":         "This page does not exist.",
	"Nicht gefunden":                     "Not found",
	"Das Gesuchte gibt es nicht (mehr).": "What you are looking for does not exist (any more).",
	"Diese Nachricht gibt es nicht.":     "This message does not exist.",
	"Nicht gespeichert":                  "Not stored",
	"Interner Fehler":                    "Internal error",
	"Die Anfrage ist fehlgeschlagen; der Fehler wurde protokolliert.": "The request failed; the error has been logged.",
	"Suchbegriff zu lang": "Search term too long",
	"Der Suchbegriff (q) darf höchstens %d Zeichen lang sein, nicht %d.": "The search term (q) may be at most %d characters long, not %d.",
	"Ungültige Anfrage":                         "Invalid request",
	"Das Formular konnte nicht gelesen werden.": "The form could not be read.",
	"Anfrage abgelehnt":                         "Request refused",
	"Die Anfrage kam nicht aus einem Formular dieser Seite (CSRF-Schutz). Bitte laden Sie die Seite neu und versuchen Sie es noch einmal.": "The request did not come from a form of this page (CSRF protection). Please reload the page and try again.",

	// Sign-in (login.html, signin.html, pageauth.go, signin.go).
	"Anbieter und Intermediäre": "Providers and intermediaries",
	"Geben Sie die E-Mail-Adresse ein, die im Katalog für Ihre Organisation eingetragen ist. Sie erhalten einen Anmeldelink, der 15 Minuten gilt.": "Enter the email address the catalog lists for your organisation. You will receive a sign-in link that is valid for 15 minutes.",
	"E-Mail-Adresse":        "Email address",
	"Anmeldelink anfordern": "Request a sign-in link",
	"Koordinierungsstelle":  "Coordination office",
	"Benutzername":          "User name",
	"Passwort":              "Password",
	"Wenn diese Adresse im Katalog für einen Anbieter oder Intermediär eingetragen ist, erhalten Sie in wenigen Minuten eine E-Mail mit einem Anmeldelink. Er gilt 15 Minuten und für eine Anmeldung.": "If the catalog lists this address for a provider or intermediary, you will receive an email with a sign-in link within a few minutes. It is valid for 15 minutes and for one sign-in.",
	"Zurück zur Anmeldung":        "Back to sign-in",
	"Neuen Anmeldelink anfordern": "Request a new sign-in link",
	"Anmelden als":                "Sign in as",
	"für":                         "for",
	"Jetzt anmelden":              "Sign in now",
	"Der Link meldet erst mit diesem Knopf an: Programme, die Links in E-Mails vorab prüfen, verbrauchen ihn so nicht.": "The link signs you in only with this button, so programs that check links in emails beforehand do not use it up.",
	"Anmeldelink angefordert":                  "Sign-in link requested",
	"Überall abmelden":                         "Sign out everywhere",
	"Beendet Ihre Anmeldung auf allen Geräten": "Ends your sign-in on every device",
	"Ihre Erklärung abgeben":                   "Give your declaration",
	"Ihre Erklärung wird wie eine Antwort per E-Mail erfasst, mit Ihrer angemeldeten Adresse als Absender, und löst dieselben Nachrichten aus. „Angenommen“ ist Ihre verbindliche Bestätigung.": "Your declaration is recorded like an answer by email, with your signed-in address as the sender, and sends the same messages. \"Accepted\" is your binding confirmation.",
	"Nicht erlaubt": "Not allowed",
	"Sie können nur die Erklärung Ihrer eigenen Organisation erfassen.":                                                                       "You can only record your own organisation's declaration.",
	"Die Anmeldung kam nicht aus dem Formular dieser Seite.":                                                                                  "The sign-in did not come from this page's form.",
	"Die Anfrage kam nicht aus dem Formular dieser Seite.":                                                                                    "The request did not come from this page's form.",
	"Zu viele fehlgeschlagene Anmeldeversuche.":                                                                                               "Too many failed sign-in attempts.",
	"Bitte versuchen Sie es in %d Minuten noch einmal.":                                                                                       "Please try again in %d minutes.",
	"Benutzername oder Passwort ist falsch.":                                                                                                  "User name or password is wrong.",
	"Bitte geben Sie eine E-Mail-Adresse ein, etwa name@behoerde.example.":                                                                    "Please enter an email address, such as name@agency.example.",
	"Für diese Adresse oder von diesem Rechner wurden zu viele Anmeldelinks angefordert.":                                                     "Too many sign-in links were requested for this address or from this computer.",
	"Diesen Anmeldelink gibt es nicht. Bitte prüfen Sie, ob er vollständig aus der E-Mail übernommen wurde, oder fordern Sie einen neuen an.": "This sign-in link does not exist. Please check that it was copied from the email in full, or request a new one.",
	"Dieser Anmeldelink wurde bereits benutzt. Jeder Link gilt für eine Anmeldung; bitte fordern Sie einen neuen an.":                         "This sign-in link has been used already. Each link is valid for one sign-in; please request a new one.",
	"Dieser Anmeldelink ist abgelaufen: Er gilt 15 Minuten. Bitte fordern Sie einen neuen an.":                                                "This sign-in link has expired: it is valid for 15 minutes. Please request a new one.",
	"Diese Adresse ist im Katalog nicht mehr für die Organisation eingetragen. Bitte wenden Sie sich an die Koordinierungsstelle.":            "The catalog no longer lists this address for the organisation. Please contact the coordination office.",

	// The review queue (review*.html, review.go).
	"Hier liegen alle eingegangenen Nachrichten, über die mailflow nicht selbst entscheiden durfte – auch die, die keiner Bestellung zugeordnet werden konnten. Öffnen Sie eine Nachricht, lesen Sie sie und ordnen Sie sie dann einer Bestellung zu und erfassen die Erklärung, die sie enthält, oder legen Sie sie mit einem Grund ohne Entscheidung ab. Abgelegte Nachrichten bleiben gespeichert.": "Here are all received messages that mailflow was not allowed to decide on by itself, including those that matched no order. Open a message, read it, and then attach it to an order and record the declaration it contains, or file it away with a reason and no decision. Filed messages stay stored.",
	"Erledigt":           "Done",
	"Warten auf Prüfung": "Waiting for review",
	"1 Nachricht zur Prüfung, älteste zuerst":    "1 message for review, oldest first",
	"%d Nachrichten zur Prüfung, älteste zuerst": "%d messages for review, oldest first",
	"Nachrichten zur Prüfung, älteste zuerst":    "Messages for review, oldest first",
	"Absender":                              "Sender",
	"Grund der Prüfung":                     "Why it needs review",
	"Bestellung":                            "Order",
	"unbekannt":                             "unknown",
	"(kein Betreff)":                        "(no subject)",
	"(nur im Betreff genannt)":              "(named in the subject only)",
	"keine":                                 "none",
	"Lesen und bearbeiten":                  "Read and handle",
	"Keine Nachricht wartet auf Prüfung.":   "No message is waiting for review.",
	"Zuletzt erledigt":                      "Recently handled",
	"Nachricht lesen":                       "Read the message",
	"Noch keine Nachricht erledigt.":        "No message handled yet.",
	"Nachricht %d":                          "Message %d",
	"von":                                   "from",
	"am":                                    "on",
	"durch":                                 "by",
	"der Bestellung":                        "attached to order",
	" zugeordnet":                           "",
	"(gelöscht)":                            "(deleted)",
	"erfasste Erklärung:":                   "declaration recorded:",
	"ohne Entscheidung abgelegt":            "filed away without a decision",
	"Nachrichten aus der Prüfung":           "Messages from the review queue",
	"Bitte geben Sie die Bestellnummer an.": "Please enter the order number.",
	"Keine Bestellung hat diese Nummer.":    "No order has this number.",
	"Die Erklärung dieser Nachricht ist bereits im Verlauf erfasst (Widerspruch nach Abschluss); legen Sie die Nachricht mit Grund ab.": "This message's declaration is already in the history (a conflict after the order was final); file the message away with a reason.",
	"Bitte geben Sie einen Grund an.": "Please give a reason.",
	"Bereits erledigt.":               "Already handled.",
	"Jemand hat diese Nachricht vor Ihnen bearbeitet; Ihre Eingabe wurde nicht übernommen und nichts wurde geändert.": "Someone handled this message before you; your entry was not taken and nothing was changed.",
	"Diese Nachricht wartet nicht auf Prüfung: mailflow hat sie selbst verarbeitet (Ergebnis: %s).":                   "This message is not waiting for review: mailflow processed it by itself (outcome: %s).",
	"Ihre Eingabe wurde nicht übernommen.": "Your entry was not taken.",
	"Empfänger":                            "Recipients",
	"Gesendet laut Absender":               "Sent, according to the sender",
	"(nur im Betreff genannt: der Betreff ist kein Nachweis)": "(named in the subject only: a subject proves nothing)",
	"keine zugeordnet": "none attached",
	"Postfach":         "Mailbox",
	"Original":         "Original",
	"%d Bytes":         "%d bytes",
	"Die Nachricht ist nicht in der Datenbank gespeichert (zu groß oder nicht verarbeitbar); sie liegt im Prüfordner des Postfachs.":        "The message is not stored in the database (too large or unprocessable); it is in the mailbox's review folder.",
	"Die Nachricht ließ sich nicht lesen (%s). Bitte laden Sie das Original herunter.":                                                      "The message could not be read (%s). Please download the original.",
	"Nur der Text wird gezeigt, zitierte Teile eingeschlossen; Anhänge, Bilder und Links werden nicht geladen. Das Original enthält alles.": "Only the text is shown, quoted parts included; attachments, images and links are not loaded. The original holds everything.",
	"Der Text ist gekürzt; das Original enthält ihn ganz.":                                                                                  "The text is shortened; the original holds all of it.",
	"Einer Bestellung zuordnen und Erklärung erfassen":                                                                                      "Attach to an order and record the declaration",
	"Die Erklärung wird erfasst wie eine Entscheidung von Hand: mit Ihrem Benutzernamen, der Quelle „geprüfte Nachricht“ und dem Verweis auf diese Nachricht. Sie ändert den Status und löst dieselben Nachrichten aus; der Absender erhält keine Eingangsbestätigung. Die Nachricht wird mit der Bestellung verknüpft und verlässt die Prüfliste.": "The declaration is recorded like a decision by hand: with your user name, the source \"reviewed message\" and a reference to this message. It changes the status and sends the same messages; the sender gets no acknowledgement. The message is linked to the order and leaves the review queue.",
	"Die Erklärung dieser Nachricht ist bereits im Verlauf der Bestellung erfasst (Widerspruch nach Abschluss). Legen Sie die Nachricht mit Grund ab, wenn der Vorgang geklärt ist.":                                                                                                                                                                "This message's declaration is already in the order's history (a conflict after the order was final). File the message away with a reason once the matter is settled.",
	"Zuordnen und Erklärung erfassen": "Attach and record the declaration",
	"Ohne Entscheidung ablegen":       "File away without a decision",
	"Für Nachrichten, die nichts erklären oder schon geklärt sind (Werbung, Rückfragen, gefälschte Absender, Doppel). Die Nachricht bleibt gespeichert; Grund, Zeit und Ihr Benutzername werden protokolliert.": "For messages that declare nothing or are settled already (advertising, questions, forged senders, duplicates). The message stays stored; the reason, the time and your user name are logged.",
	"Sie erscheinen im Verlauf der Bestellung %s.": "They appear in the history of order %s.",
	"(erforderlich, höchstens 4000 Zeichen)":       "(required, at most 4000 characters)",
	"Ablegen": "File away",

	// Evidence download (evidence.go).
	"Nachweis herunterladen": "Download the evidence",
	"(ZIP: Bestellung, Bedingungen, alle E-Mails, Erklärungen; signiert)": "(ZIP: order, terms, every email, declarations; signed)",
	"Nachweis noch nicht verfügbar":                                       "Evidence not yet available",
	"Den Nachweis erhalten Anbieter und Intermediär, sobald die Bestellung abgeschlossen ist (Bestellt oder Abgelehnt): Bis dahin enthält er die Antwortadressen aller Beteiligten, mit denen sich noch für sie entscheiden ließe.": "Providers and intermediaries get the evidence once the order is final (ordered or rejected): until then it holds every party's reply addresses, with which one could still decide for them.",
	"Nachweis nicht verfügbar": "Evidence not available",
	"Für diese Installation ist kein Signaturschlüssel eingerichtet (evidence.key_path).": "No signing key is set up for this installation (evidence.key_path).",
	"Beweismittel verändert": "Evidence altered",
	"Der Nachweis wurde nicht erstellt: %s stimmt nicht mehr mit dem beim Speichern festgehaltenen SHA-256 überein. Die Koordinierungsstelle wurde benachrichtigt.": "The evidence was not made: %s no longer matches the SHA-256 recorded when it was stored. The coordination office has been told.",

	// Without a status page (nopage.go).
	noPagesText: noPagesTextEN,

	// CSV export (csv.go).
	"Status-Code":                "Status code",
	"Bestellt (Ortszeit Berlin)": "Ordered (Berlin time)",
	"Konflikt":                   "Conflict",
}
