package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"mailflow/mailflow"
	"mailflow/mailflow/compose"
	"mailflow/storage"
	"mailflow/storage/storagetest"
	"mailflow/templates"
	"mailflow/web"
)

// layoutReport is what layoutJS measures on a page.
type layoutReport struct {
	ScrollWidth int      `json:"scrollWidth"`
	InnerWidth  int      `json:"innerWidth"`
	Badges      int      `json:"badges"`
	CutBadges   []string `json:"cutBadges"`
	Clipped     []string `json:"clipped"`
}

// layoutJS measures horizontal overflow: the document against the
// window, every status card against its own box (a cut label scrolls
// inside it), and every other element that hides or scrolls overflow.
const layoutJS = `(() => {
	const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && el.className.baseVal === undefined ? '.' + String(el.className).trim().replace(/\s+/g, '.') : '');
	const cut = [], clipped = [];
	const badges = document.querySelectorAll('.status');
	badges.forEach(b => { if (b.scrollWidth > b.clientWidth) cut.push(b.textContent.trim() + ' ' + b.scrollWidth + '>' + b.clientWidth); });
	document.querySelectorAll('body *').forEach(el => {
		const cs = getComputedStyle(el);
		if (!['auto', 'scroll', 'hidden', 'clip'].includes(cs.overflowX)) return;
		if (el.clientWidth <= 1) return; // visually hidden, for screen readers
		if (el.scrollWidth > el.clientWidth + 1) clipped.push(name(el) + ' ' + el.scrollWidth + '>' + el.clientWidth);
	});
	return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
		badges: badges.length, cutBadges: cut, clipped: clipped};
})()`

// seedLongOrders adds the orders that stretch a layout: a UV order
// rejected with a long reason and a conversation with long Message-IDs,
// and a DV order with a long property value and a long customer name.
func seedLongOrders(t *testing.T, st *storage.Store, flow *mailflow.Flow) (uv, dv *mailflow.Order, review int64) {
	t.Helper()
	ctx := context.Background()
	long := "Landkreis " + strings.Repeat("Oberallgäu-Unterallgäu-Ostallgäu ", 4) + "Zweckverband"
	uv = createOrder(t, flow, "order-uv.json", "layout-uv", long)
	reason := "Die Kapazität ist erschöpft.\nBegründung im Einzelnen: " +
		strings.Repeat("Rechenzentrumskapazitätsplanungsüberschreitung", 6) + "\n" + strings.Repeat("Wir bitten um Verständnis. ", 30)
	for _, d := range []mailflow.Decision{
		{Party: mailflow.PartyIntermediary, Intent: mailflow.IntentAccept, Source: mailflow.SourceEmail, Actor: "auftrag@govdigital.example"},
		{Party: mailflow.PartyProvider, Intent: mailflow.IntentReject, Reason: reason, Source: mailflow.SourceEmail,
			Actor: strings.Repeat("sehr.langer.absendername.", 6) + "@it.nrw.example"},
	} {
		var err error
		if uv, err = flow.Decide(ctx, uv.Number, d); err != nil {
			t.Fatal(err)
		}
	}
	conversationFixture(t, st, uv, time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	longID := "<" + strings.Repeat("0123456789abcdef", 12) + "@" + strings.Repeat("sub", 20) + ".mail.example>"
	raw := "From: " + strings.Repeat("x", 60) + "@" + strings.Repeat("verwaltung", 8) + ".example\r\nTo: bestellungen@example.org\r\n" +
		"Subject: " + strings.Repeat("AW:", 30) + strings.Repeat("Bestellung", 12) + "\r\nMessage-ID: " + longID + "\r\n\r\n" +
		"ABGELEHNT\r\n" + strings.Repeat("https://www.example.org/"+strings.Repeat("pfad/", 40), 2) + "\r\n"
	m := &mailflow.InboundMessage{MessageID: longID, SHA256: "long", ReceivedAt: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC),
		From: strings.Repeat("x", 60) + "@example.org", Subject: strings.Repeat("AW:", 30), Size: int64(len(raw)), Raw: []byte(raw)}
	if err := st.InboxTx(ctx, func(tx mailflow.InboxTx) error {
		if _, err := tx.ClaimInbound(m); err != nil {
			return err
		}
		m.Verdict, m.OrderID, m.NeedsReview = mailflow.VerdictConflict, uv.ID, true
		m.Reason = "matched by reply token; " + strings.Repeat("explanation-without-spaces-", 20)
		return tx.FinishInbound(m)
	}); err != nil {
		t.Fatal(err)
	}
	review = m.ID

	b, err := os.ReadFile("../examples/order-dv.json")
	if err != nil {
		t.Fatal(err)
	}
	var req mailflow.OrderRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	req.ExternalID = "layout-dv-" + strings.Repeat("x", 50)
	req.Properties["domain"] = json.RawMessage(`"` + strings.Repeat("sehr-lange-subdomain.", 9) + `musterstadt.example"`)
	req.Customer.Name = long
	o, _, err := flow.CreateOrder(ctx, &req)
	if err != nil {
		t.Fatal(err)
	}
	return uv, o, review
}

// TestBrowserLayout loads the pages at a desktop (1280 px) and a phone
// (390 px) width in headless Chromium, keeps screenshots, and checks
// that no page scrolls sideways and no status card is cut.
func TestBrowserLayout(t *testing.T) {
	chromiumPath(t) // skips without Chromium, before anything is set up
	st := storagetest.Open(t, "sqlite")
	flow := &mailflow.Flow{Store: st}
	importCatalogFile(t, st)
	seedAllStatuses(t, flow)
	uv, dv, longReview := seedLongOrders(t, st, flow)
	// With a public URL and a mailer the login page offers sign-in links
	// too; the links are not followed here (TestBrowserSignin does).
	tokens, err := mailflow.NewTokens([]string{"ein-geheimnis-fuer-das-layout"})
	if err != nil {
		t.Fatal(err)
	}
	composer, err := compose.New(compose.Config{From: "DVC Bestellservice <bestellungen@example.org>",
		Coordinator: "koordinierung@example.org", Tokens: tokens, Templates: templates.Must(templates.New())})
	if err != nil {
		t.Fatal(err)
	}
	pages, err := web.NewPages(web.Pages{Flow: flow, Store: st, Username: pageUser, Password: pagePassword,
		PublicURL: "https://bestellungen.example.org", Mailer: composer, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(pages.Handler())
	defer srv.Close()

	shots := t.TempDir()
	ctx, do := newBrowser(t, 1280, 900)

	check := func(name string, width int64, path, ready string, wantBadges bool) {
		t.Helper()
		do("open "+path, chromedp.EmulateViewport(width, 900), chromedp.Navigate(srv.URL+path), chromedp.WaitVisible(chromedp.CSS(ready)))
		rep := run(t, ctx, "measure "+path, chromedp.Evaluate[layoutReport](layoutJS))
		if rep.InnerWidth != int(width) {
			t.Fatalf("%s at %d px: window is %d px wide", name, width, rep.InnerWidth)
		}
		if rep.ScrollWidth > rep.InnerWidth {
			t.Errorf("%s at %d px scrolls sideways: document %d px wide", name, width, rep.ScrollWidth)
		}
		if wantBadges && rep.Badges == 0 {
			t.Errorf("%s at %d px: no status cards found", name, width)
		}
		for _, b := range rep.CutBadges {
			t.Errorf("%s at %d px: status card cut: %s", name, width, b)
		}
		for _, c := range rep.Clipped {
			t.Errorf("%s at %d px: content hidden in a scroll box: %s", name, width, c)
		}
		saveScreenshot(t, shots, fmt.Sprintf("%s-%d.png", name, width), run(t, ctx, "screenshot "+path, chromedp.FullScreenshot(100)))
	}

	for _, width := range []int64{1280, 390} {
		check("anmelden", width, "/anmelden", "form#link-form", false)
		check("anmeldelink-ungueltig", width, "/anmelden/link/"+strings.Repeat("x", 43), "#link-problem", false)
	}
	do("request a link",
		chromedp.Navigate(srv.URL+"/anmelden"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "niemand@unbekannt.example"),
		chromedp.Submit(chromedp.ID("email")),
		chromedp.WaitVisible(chromedp.ID("link-gesendet")))
	for _, width := range []int64{1280, 390} {
		do("width", chromedp.EmulateViewport(width, 900))
		rep := run(t, ctx, "measure link sent", chromedp.Evaluate[layoutReport](layoutJS))
		if rep.ScrollWidth > rep.InnerWidth || len(rep.Clipped) > 0 {
			t.Errorf("link sent at %d px: document %d px wide, clipped %v", width, rep.ScrollWidth, rep.Clipped)
		}
		saveScreenshot(t, shots, fmt.Sprintf("anmeldelink-gesendet-%d.png", width), run(t, ctx, "screenshot", chromedp.FullScreenshot(100)))
	}
	do("login",
		chromedp.Navigate(srv.URL+"/anmelden"),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), pageUser),
		chromedp.SendKeys(chromedp.ID("password"), pagePassword),
		chromedp.Click(chromedp.CSS("#passwort-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("table.orders")))
	for _, lang := range []string{"de", "en"} {
		do("language "+lang, chromedp.Navigate(srv.URL+"/sprache/"+lang+"?weiter=/bestellungen"), chromedp.WaitVisible(chromedp.CSS(`html[lang="`+lang+`"] table.orders`)))
		for _, width := range []int64{1280, 390} {
			check("bestellungen-"+lang, width, "/bestellungen", "table.orders", true)
			check("bestellung-uv-"+lang, width, "/bestellungen/"+uv.Number, "ol.conversation", true)
			check("bestellung-dv-"+lang, width, "/bestellungen/"+dv.Number, "table.properties", true)
			check("fehler-"+lang, width, "/gibt-es-nicht", "main h1", false)
			check("pruefung-"+lang, width, "/pruefung", "table.review-queue", false)
			check("pruefung-nachricht-"+lang, width, fmt.Sprintf("/pruefung/%d", longReview), "#kopf", false)
		}
	}
}
