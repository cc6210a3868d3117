package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"mailflow/internal/mailtest"
	"mailflow/mailflow"
	"mailflow/mailflow/compose"
	"mailflow/mailflow/outbound"
	"mailflow/storage/storagetest"
	"mailflow/templates"
	"mailflow/web"
)

// TestBrowserSignin drives the page in headless Chromium as three
// people: a provider that signs in through the link mailed to it (read
// from the in-process SMTP server the outbox delivers to) and declares
// its review on the page, the intermediary the same way, and a
// coordinator with a password. For each it checks which orders the
// list shows and that the other orders' pages, decision POSTs and .eml
// downloads answer 404, and that what each sees fits a window of 1280
// and of 390 px (screenshots under the test's temporary directory, or
// MAILFLOW_TEST_SCREENSHOTS).
func TestBrowserSignin(t *testing.T) {
	chromiumPath(t) // skips without Chromium, before anything is set up
	st := storagetest.Open(t, "sqlite")
	importCatalogFile(t, st)
	tokens, err := mailflow.NewTokens([]string{"ein-geheimnis-fuer-den-browser"})
	if err != nil {
		t.Fatal(err)
	}
	composer, err := compose.New(compose.Config{From: "DVC Bestellservice <bestellungen@example.org>",
		Coordinator: "koordinierung@example.org", Tokens: tokens, Templates: templates.Must(templates.New())})
	if err != nil {
		t.Fatal(err)
	}
	smtpd := mailtest.NewSMTPServer(t)
	sender, err := outbound.New(st, outbound.Config{SMTP: outbound.SMTPConfig{Host: smtpd.Host, Port: smtpd.Port, TLS: "none"},
		Concurrency: 1, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Alerts: composer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	flow := &mailflow.Flow{Store: st, Notifier: composer, OnEnqueue: sender.Wake}
	mailtest.Run(t, "sender", sender.Run)
	dv := createOrder(t, flow, "order-dv.json", "browser-dv", "Stadt Dvheim")
	uv := createOrder(t, flow, "order-uv.json", "browser-uv", "Kreis Uvland")
	notes := map[string]int64{} // "number/party" → outbox id of the notification
	for _, o := range []*mailflow.Order{dv, uv} {
		msgs, err := st.OrderMessages(context.Background(), o.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			notes[o.Number+"/"+m.Party] = m.ID
		}
	}

	// The links point at the page's own address, which is known once the
	// listener is bound.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	pages, err := web.NewPages(web.Pages{Flow: flow, Store: st, Username: pageUser, Password: pagePassword,
		PublicURL: base, Mailer: composer, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(pages.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	link := regexp.MustCompile(regexp.QuoteMeta(base) + `/anmelden/link/[A-Za-z0-9_-]+`)

	ctx, do := newBrowser(t, 1280, 1000)
	listed := func() []string {
		return run(t, ctx, "list", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('table.orders tbody tr')).map(tr => tr.dataset.number)`))
	}
	// status fetches a URL in the signed-in page (its cookie) and returns
	// the HTTP status, for GET or for a POST with the page's CSRF token.
	status := func(method, path string) int {
		t.Helper()
		js := fmt.Sprintf(`fetch(%q, {method: %q, redirect: 'manual', body: %s}).then(r => r.status)`, path, method,
			map[string]string{"GET": "undefined", "POST": `new URLSearchParams({csrf: document.querySelector('input[name=csrf]').value, party: 'provider', intent: 'accept'})`}[method])
		return run(t, ctx, method+" "+path, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
	}
	// fits checks, as who sees them, the list and each visible order's
	// page at a desktop and a phone width: a screenshot of each, no page
	// wider than the window, no status card cut.
	shots := t.TempDir()
	fits := func(who string, sees []*mailflow.Order) {
		t.Helper()
		pages := map[string]string{"list": "/bestellungen"}
		for _, o := range sees {
			pages[o.Number] = "/bestellungen/" + o.Number
		}
		for _, width := range []int64{1280, 390} {
			for name, path := range pages {
				do(fmt.Sprintf("%s: %s at %d px", who, name, width), chromedp.EmulateViewport(width, 900),
					chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS(".status")))
				rep := run(t, ctx, "measure "+path, chromedp.Evaluate[layoutReport](layoutJS))
				if rep.InnerWidth != int(width) || rep.ScrollWidth > rep.InnerWidth {
					t.Errorf("%s: %s at %d px: document %d px wide in a %d px window", who, name, width, rep.ScrollWidth, rep.InnerWidth)
				}
				for _, b := range rep.CutBadges {
					t.Errorf("%s: %s at %d px: status card cut: %s", who, name, width, b)
				}
				saveScreenshot(t, shots, fmt.Sprintf("%s-%s-%d.png", who, name, width), run(t, ctx, "screenshot "+path, chromedp.FullScreenshot(100)))
			}
		}
		do(who+": back to the window's width", chromedp.EmulateViewport(1280, 1000))
	}
	checkScope := func(who string, sees []*mailflow.Order, mails []string) {
		t.Helper()
		fits(who, sees)
		do(who+": list", chromedp.Navigate(base+"/bestellungen"), chromedp.WaitVisible(chromedp.ID("treffer")))
		var want []string
		for _, o := range sees {
			want = append(want, o.Number)
		}
		slices.Sort(want)
		got := listed()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s sees %v, want %v", who, got, want)
		}
		hasReview := run(t, ctx, "review count", chromedp.Evaluate[bool](`document.getElementById('review-count') !== null`))
		if hasReview != (who == "coordinator") {
			t.Errorf("%s: review count shown: %v", who, hasReview)
		}
		for _, o := range []*mailflow.Order{dv, uv} {
			visible := slices.Contains(sees, o)
			want := map[bool]int{true: 200, false: 404}[visible]
			if got := status("GET", "/bestellungen/"+o.Number); got != want {
				t.Errorf("%s: detail %s: %d, want %d", who, o.Number, got, want)
			}
			if !visible {
				if got := status("POST", "/bestellungen/"+o.Number+"/entscheidungen"); got != 404 {
					t.Errorf("%s: decision POST on %s: %d, want 404", who, o.Number, got)
				}
			}
		}
		for key, id := range notes {
			want := map[bool]int{true: 200, false: 404}[slices.Contains(mails, key)]
			if got := status("GET", fmt.Sprintf("/nachrichten/ausgang/%d.eml", id)); got != want {
				t.Errorf("%s: .eml of the notification %s: %d, want %d", who, key, got, want)
			}
		}
	}
	signIn := func(who, addr string) {
		t.Helper()
		seen := smtpd.Count()
		do(who+": ask for a link",
			chromedp.Navigate(base+"/anmelden"),
			chromedp.WaitVisible(chromedp.ID("email")),
			chromedp.SendKeys(chromedp.ID("email"), addr),
			chromedp.Click(chromedp.CSS("#link-form button[type=submit]")),
			chromedp.WaitVisible(chromedp.ID("link-gesendet")))
		var url string
		wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer wcancel()
		for url == "" {
			msgs, err := smtpd.Wait(wctx, seen+1)
			if err != nil {
				t.Fatalf("%s: no sign-in mail: %v", who, err)
			}
			for _, m := range msgs[seen:] {
				if slices.Contains(m.To, addr) {
					url = link.FindString(textPart(t, m.Data))
				}
			}
			seen = len(msgs)
		}
		do(who+": follow the link",
			chromedp.Navigate(url),
			chromedp.WaitVisible(chromedp.ID("link-anmelden")),
			chromedp.Click(chromedp.ID("link-anmelden")),
			chromedp.WaitVisible(chromedp.CSS("table.orders")))
		if u := run(t, ctx, "location", chromedp.Location()); !strings.HasSuffix(u, "/bestellungen") {
			t.Errorf("%s: signed in at %s, want /bestellungen", who, u)
		}
	}
	logout := func(who string) {
		t.Helper()
		do(who+": log out", chromedp.Click(chromedp.CSS("form.logout button[type=submit]")), chromedp.WaitVisible(chromedp.ID("email")))
	}

	// The provider: its DV order only; it declares its review on the page.
	signIn("provider", dataportAddr)
	checkScope("provider", []*mailflow.Order{dv}, []string{dv.Number + "/provider"})
	do("provider: declare review",
		chromedp.Navigate(base+"/bestellungen/"+dv.Number),
		chromedp.WaitVisible(chromedp.CSS("form.decision")),
		chromedp.SetValue(chromedp.ID("intent"), string(mailflow.IntentReview)),
		chromedp.Click(chromedp.CSS("form.decision button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	if card := run(t, ctx, "status", chromedp.Text(chromedp.CSS(".status-line .status"))); card != mailflow.StatusReviewProviderDV.Label() {
		t.Errorf("after the provider's review: status %q", card)
	}
	if tl := run(t, ctx, "timeline", chromedp.Evaluate[[]timelineEntry](timelineJS)); len(tl) != 1 ||
		tl[0] != (timelineEntry{"Anbieter", "In Prüfung", "Statusseite", dataportAddr, ""}) {
		t.Errorf("timeline after the page decision: %+v", tl)
	}
	logout("provider")

	// The intermediary: the UV order only.
	signIn("intermediary", govdigitalAddr)
	checkScope("intermediary", []*mailflow.Order{uv}, []string{uv.Number + "/intermediary"})
	logout("intermediary")

	// The coordinator: everything.
	do("coordinator: log in",
		chromedp.Navigate(base+"/anmelden"),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), pageUser),
		chromedp.SendKeys(chromedp.ID("password"), pagePassword),
		chromedp.Click(chromedp.CSS("#passwort-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("table.orders")))
	checkScope("coordinator", []*mailflow.Order{dv, uv}, []string{dv.Number + "/provider", uv.Number + "/provider", uv.Number + "/intermediary"})
}
