package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"mailflow/mailflow"
)

// TestReviewBrowser works the review queue in headless Chromium: from the
// count on the order list to the queue, a message read and attached with
// the decision it carries, another filed away with a reason; at 390 px no
// review page scrolls sideways, even with a long unbroken line in a mail.
func TestReviewBrowser(t *testing.T) {
	chromiumPath(t) // skips without Chromium, before anything is set up
	env := newPageEnv(t, "sqlite", false)
	o := createOrder(t, env.flow, "order-dv.json", "browser-review", "")
	long := "https://portal.example/" + strings.Repeat("x", 300)
	attach := env.putInReview("bestellungen@dataport.example", "AW: [Bestellung "+o.Number+"] Neue Bestellung",
		"BESTÄTIGT\n\nSiehe "+long+"\n", mailflow.VerdictUnauthenticated, "matched order "+o.Number+" by subject tag only — needs a person", 0)
	junk := env.putInReview("info@werbung.example", "Sonderangebot", "Jetzt kaufen!\n", mailflow.VerdictUnmatched, "no subject tag", 0)

	ctx, do := newBrowser(t, 1280, 1000)
	text := func(sel string) string { return run(t, ctx, "text of "+sel, chromedp.Text(chromedp.CSS(sel))) }
	markOld := chromedp.Evaluate[chromedp.Void](`document.documentElement.setAttribute('data-old', '')`)
	fresh := func(sel string) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(chromedp.CSS("html:not([data-old]) " + sel))
	}
	// noSideScroll checks the page at a phone's width.
	noSideScroll := func(path string) {
		t.Helper()
		do("narrow "+path, chromedp.EmulateViewport(390, 844), chromedp.Navigate(env.srv.URL+path), chromedp.WaitVisible(chromedp.CSS("h1")))
		w := run(t, ctx, "widths", chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, window.innerWidth]`))
		if w[0] > w[1] {
			wide := run(t, ctx, "wide", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > window.innerWidth).map(e => e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right))`))
			t.Logf("too wide: %v", wide)
			t.Errorf("%s at 390 px: document %d px wide, viewport %d px", path, w[0], w[1])
		}
		do("wide", chromedp.EmulateViewport(1280, 1000))
	}

	do("login",
		chromedp.Navigate(env.srv.URL+"/bestellungen"),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), pageUser),
		chromedp.SendKeys(chromedp.ID("password"), pagePassword),
		chromedp.Click(chromedp.CSS("form.login button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("review-count")),
		chromedp.Click(chromedp.CSS(`a[href="/pruefung"]`)),
		chromedp.WaitVisible(chromedp.CSS("table.review-queue")))
	if n := run(t, ctx, "rows", chromedp.Evaluate[int](`document.querySelectorAll('table.review-queue tbody tr').length`)); n != 2 {
		t.Errorf("queue shows %d messages, want 2", n)
	}
	saveScreenshot(t, t.TempDir(), "pruefung.png", run(t, ctx, "screenshot queue", chromedp.FullScreenshot(100)))
	noSideScroll("/pruefung")
	noSideScroll(fmt.Sprintf("/pruefung/%d", attach.ID))

	do("open", chromedp.Navigate(env.srv.URL+fmt.Sprintf("/pruefung/%d", attach.ID)), chromedp.WaitVisible(chromedp.CSS("pre.mail-text")))
	saveScreenshot(t, t.TempDir(), "pruefung-nachricht.png", run(t, ctx, "screenshot message", chromedp.FullScreenshot(100)))
	// The form starts from what the message says: submitting it as it is
	// records the provider's acceptance.
	do("attach",
		chromedp.Navigate(env.srv.URL+"/pruefung"),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`a[href="/pruefung/%d"]`, attach.ID))),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="/pruefung/%d"]`, attach.ID))),
		chromedp.WaitVisible(chromedp.CSS("pre.mail-text")),
		markOld,
		chromedp.Click(chromedp.CSS(`form[action$="/zuordnen"] button[type=submit]`)),
		fresh("#erledigt-hinweis"))
	if msg := text("#erledigt-hinweis"); !strings.Contains(msg, "zugeordnet; erfasste Erklärung: Angenommen (Anbieter)") {
		t.Errorf("notice after attaching: %q", msg)
	}
	if got, _ := env.st.Order(context.Background(), o.Number); got.Status != mailflow.StatusOrdered {
		t.Errorf("order status %s after attaching, want ordered", got.Status)
	}

	// Filing away without a reason is refused, with one it works.
	path := fmt.Sprintf("/pruefung/%d", junk.ID)
	do("dismiss without reason",
		chromedp.Navigate(env.srv.URL+path),
		chromedp.WaitVisible(chromedp.ID("dismiss-reason")),
		markOld,
		chromedp.Click(chromedp.CSS(`form[action$="/ablegen"] button[type=submit]`)),
		fresh("#dismiss-reason-error"))
	if msg := text("#dismiss-reason-error"); !strings.Contains(msg, "Bitte geben Sie einen Grund an.") {
		t.Errorf("dismissal error %q", msg)
	}
	do("dismiss",
		chromedp.SendKeys(chromedp.ID("dismiss-reason"), "Werbung"),
		markOld,
		chromedp.Click(chromedp.CSS(`form[action$="/ablegen"] button[type=submit]`)),
		fresh("#erledigt-hinweis"))
	if msg := text("#erledigt-hinweis"); !strings.Contains(msg, "ohne Entscheidung abgelegt; Grund: Werbung") {
		t.Errorf("notice after filing away: %q", msg)
	}
	if msg := text("#anzahl"); !strings.HasPrefix(msg, "0 Nachrichten") {
		t.Errorf("queue count %q, want 0", msg)
	}
}
