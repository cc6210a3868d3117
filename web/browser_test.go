package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
	"mailflow/templates"
	"mailflow/web"
)

// EnvChromium names the Chromium binary for the browser test; CI sets it
// to Debian's /usr/bin/chromium.
const EnvChromium = "MAILFLOW_TEST_CHROMIUM"

// EnvScreenshots, when set, names a directory that keeps a copy of the
// browser test's screenshots after the test's temp dir is gone.
const EnvScreenshots = "MAILFLOW_TEST_SCREENSHOTS"

func chromiumPath(t *testing.T) string {
	if p := os.Getenv(EnvChromium); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", EnvChromium, p, err)
		}
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	t.Skip("no Chromium: install Debian's chromium package or set " + EnvChromium + " to the binary")
	return ""
}

// familyRGB is each status family's card background and text colour as
// getComputedStyle reports them.
var familyRGB = map[string][2]string{
	mailflow.FamilyOpen:     {"rgb(241, 243, 244)", "rgb(31, 35, 40)"},
	mailflow.FamilyWorking:  {"rgb(26, 86, 219)", "rgb(255, 255, 255)"},
	mailflow.FamilyReview:   {"rgb(251, 191, 36)", "rgb(0, 0, 0)"},
	mailflow.FamilyOrdered:  {"rgb(76, 175, 80)", "rgb(0, 0, 0)"},
	mailflow.FamilyRejected: {"rgb(127, 29, 29)", "rgb(255, 255, 255)"},
}

type cardInfo struct {
	Number string `json:"number"`
	Status string `json:"status"`
	Label  string `json:"label"`
	Family string `json:"family"`
	Shape  string `json:"shape"`
	Title  string `json:"title"`
	BG     string `json:"bg"`
	FG     string `json:"fg"`
}

const cardsJS = `Array.from(document.querySelectorAll('table.orders tbody tr')).map(tr => {
	const c = tr.querySelector('.status');
	const cs = getComputedStyle(c);
	const icon = c.querySelector('svg.status-icon');
	return {number: tr.dataset.number, status: c.dataset.status, label: c.textContent.trim(),
		family: c.dataset.family, shape: icon ? icon.getAttribute('class') : '', title: c.title,
		bg: cs.backgroundColor, fg: cs.color};
})`

type timelineEntry struct {
	Party  string `json:"party"`
	Intent string `json:"intent"`
	Source string `json:"source"`
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
}

const timelineJS = `Array.from(document.querySelectorAll('table.timeline tbody tr')).map(tr => {
	const td = tr.querySelectorAll('td');
	return {party: td[0].textContent.trim(), intent: td[1].textContent.trim(), source: td[2].textContent.trim(),
		actor: td[3].textContent.trim(), reason: td[5].textContent.trim()};
})`

// TestBrowser drives the status page in headless Chromium: login, the
// coloured cards of all eleven statuses, filter, search, the detail
// timeline, a decision through the form, and logout.
func TestBrowser(t *testing.T) {
	chromiumPath(t) // skips without Chromium, before anything is set up
	st := storagetest.Open(t, "sqlite")
	flow := &mailflow.Flow{Store: st}
	importCatalogFile(t, st)
	seeds := seedAllStatuses(t, flow)
	// A second binding order, UV this time, so the filter has two to show.
	uv := createOrder(t, flow, "order-uv.json", "browser-uv-ordered", "Landkreis Zwölfhausen")
	for _, party := range []string{mailflow.PartyIntermediary, mailflow.PartyProvider} {
		if _, err := flow.Decide(context.Background(), uv.Number, mailflow.Decision{Party: party, Intent: mailflow.IntentAccept, Source: mailflow.SourceEmail, Actor: party + "@absender.example"}); err != nil {
			t.Fatal(err)
		}
	}
	pages, err := web.NewPages(web.Pages{Flow: flow, Store: st, Username: pageUser, Password: pagePassword,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(pages.Handler())
	defer srv.Close()

	shots := t.TempDir()
	ctx, do := newBrowser(t, 1400, 1000)
	// markOld tags the current document, so that a wait for fresh(sel)
	// only ends on the document that a form submission loads.
	markOld := chromedp.Evaluate[chromedp.Void](`document.documentElement.setAttribute('data-old', '')`)
	fresh := func(sel string) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(chromedp.CSS("html:not([data-old]) " + sel))
	}
	location := func() string { return run(t, ctx, "location", chromedp.Location()) }
	text := func(sel string) string { return run(t, ctx, "text of "+sel, chromedp.Text(chromedp.CSS(sel))) }
	cards := func() []cardInfo { return run(t, ctx, "status cards", chromedp.Evaluate[[]cardInfo](cardsJS)) }
	timeline := func() []timelineEntry {
		return run(t, ctx, "timeline", chromedp.Evaluate[[]timelineEntry](timelineJS))
	}

	// Login is required: the list sends the browser to the login form.
	do("open list", chromedp.Navigate(srv.URL+"/bestellungen"), chromedp.WaitVisible(chromedp.ID("username")))
	if loc := location(); !strings.Contains(loc, "/anmelden") {
		t.Fatalf("without login the list is at %s, want the login form", loc)
	}
	do("wrong password",
		chromedp.SendKeys(chromedp.ID("username"), pageUser),
		chromedp.SendKeys(chromedp.ID("password"), "falsch"),
		chromedp.Click(chromedp.CSS("form.login button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("login-error")))
	if msg := text("#login-error"); !strings.Contains(msg, "Benutzername oder Passwort ist falsch") {
		t.Errorf("wrong password: %q", msg)
	}
	do("login",
		chromedp.SendKeys(chromedp.ID("password"), pagePassword),
		chromedp.Click(chromedp.CSS("form.login button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("table.orders")))
	if loc := location(); !strings.HasSuffix(loc, "/bestellungen") {
		t.Errorf("after login at %s, want /bestellungen", loc)
	}

	// Every status with its label and colour.
	list := cards()
	seen := map[string]bool{}
	for _, c := range list {
		s := mailflow.Status(c.Status)
		if !s.Valid() || c.Label != s.Label() || c.Family != s.Family() || !strings.Contains(c.Shape, "shape-") || c.Title != templates.Label("de", templates.LabelStatusExplanation, string(s)) {
			t.Errorf("order %s: card %+v does not match its status", c.Number, c)
		}
		if want := familyRGB[s.Family()]; c.BG != want[0] || c.FG != want[1] {
			t.Errorf("order %s (%s): colours %s on %s, want %s on %s for %s", c.Number, c.Label, c.FG, c.BG, want[1], want[0], s.Family())
		}
		seen[c.Status] = true
	}
	for _, s := range mailflow.Statuses {
		if !seen[string(s)] {
			t.Errorf("no card for %s (%s)", s, s.Label())
		}
	}
	if len(list) != 12 {
		t.Errorf("list shows %d orders, want 12", len(list))
	}
	saveScreenshot(t, shots, "bestellungen.png", run(t, ctx, "screenshot list", chromedp.FullScreenshot(100)))

	// Filter by status through the select.
	do("filter",
		chromedp.SetValue(chromedp.ID("status"), string(mailflow.StatusOrdered)),
		markOld,
		chromedp.Click(chromedp.CSS("form.filter button[type=submit]")),
		fresh("#treffer"))
	if loc := location(); !strings.Contains(loc, "status=ordered") {
		t.Errorf("filter URL %s", loc)
	}
	list = cards()
	if len(list) != 2 {
		t.Errorf("filter Bestellt: %d rows, want 2", len(list))
	}
	for _, c := range list {
		if c.Status != string(mailflow.StatusOrdered) || c.Label != "Bestellt" || c.BG != familyRGB[mailflow.FamilyOrdered][0] {
			t.Errorf("filter Bestellt shows %+v", c)
		}
	}

	// Search by order number and by customer.
	for _, tc := range []struct{ query, want string }{
		{seeds[mailflow.StatusReviewIntermediaryUV].Number, seeds[mailflow.StatusReviewIntermediaryUV].Number},
		{"stadt görlitz", seeds[mailflow.Statuses[6]].Number},
		{"Zwölfhausen", uv.Number},
	} {
		do("search "+tc.query,
			chromedp.Navigate(srv.URL+"/bestellungen"),
			chromedp.WaitVisible(chromedp.ID("q")),
			chromedp.SendKeys(chromedp.ID("q"), tc.query),
			markOld,
			chromedp.Submit(chromedp.ID("q")),
			fresh("#treffer"))
		if got := cards(); len(got) != 1 || got[0].Number != tc.want {
			t.Errorf("search %q: %+v, want only %s", tc.query, got, tc.want)
		}
	}

	// The detail page's timeline shows each decision.
	rej := seeds[mailflow.StatusRejectedProviderUV]
	link := chromedp.CSS(`a[href="/bestellungen/` + rej.Number + `"]`)
	do("detail",
		chromedp.Navigate(srv.URL+"/bestellungen?q="+rej.Number),
		chromedp.WaitVisible(link),
		chromedp.Click(link),
		chromedp.WaitVisible(chromedp.CSS("table.timeline")))
	if card := text(".status-line .status"); card != "Abgelehnt durch Anbieter (UV)" {
		t.Errorf("detail status card %q", card)
	}
	wantTL := []timelineEntry{
		{"Intermediär", "Angenommen", "E-Mail", "intermediary@absender.example", ""},
		{"Anbieter", "Abgelehnt", "E-Mail", "provider@absender.example", "Kapazität in Kiel erschöpft"},
	}
	if tl := timeline(); !slices.Equal(tl, wantTL) {
		t.Errorf("timeline %+v, want %+v", tl, wantTL)
	}

	// A coordinator records a decision through the form, with the CSRF
	// token and the Origin header as a real browser sends them.
	dv := seeds[mailflow.StatusReviewProviderDV]
	do("decide without reason",
		chromedp.Navigate(srv.URL+"/bestellungen/"+dv.Number),
		chromedp.WaitVisible(chromedp.CSS("form.decision")),
		chromedp.SetValue(chromedp.ID("party"), mailflow.PartyProvider),
		chromedp.SetValue(chromedp.ID("intent"), string(mailflow.IntentReject)),
		chromedp.Click(chromedp.CSS("form.decision button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("reason-error")))
	if msg := text("#reason-error"); !strings.Contains(msg, "Für eine Ablehnung ist ein Grund erforderlich") {
		t.Errorf("validation message %q", msg)
	}
	saveScreenshot(t, shots, "entscheidung-fehler.png", run(t, ctx, "screenshot form error", chromedp.Screenshot(chromedp.CSS("form.decision"))))
	do("decide",
		chromedp.SetValue(chromedp.ID("intent"), string(mailflow.IntentAccept)),
		chromedp.Click(chromedp.CSS("form.decision button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	if card := text(".status-line .status"); card != "Bestellt" {
		t.Errorf("after accepting: status %q, want Bestellt", card)
	}
	if tl := timeline(); len(tl) != 2 || tl[1] != (timelineEntry{"Anbieter", "Angenommen", "manuell", pageUser, ""}) {
		t.Errorf("timeline after the manual decision: %+v", tl)
	}
	saveScreenshot(t, shots, "bestellung.png", run(t, ctx, "screenshot detail", chromedp.FullScreenshot(100)))

	// Logout ends the session.
	do("logout",
		chromedp.Click(chromedp.CSS("form.logout button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.Navigate(srv.URL+"/bestellungen/"+dv.Number),
		chromedp.WaitVisible(chromedp.ID("username")))
	if loc := location(); !strings.Contains(loc, "/anmelden") {
		t.Errorf("after logout the detail page is at %s", loc)
	}
}

// run runs one browser action that returns a value.
// newBrowser starts a headless Chromium of the test's own (a fresh
// profile, German as the browser's language, scrollbars hidden so that a
// page's width is the window's) at width × height, and returns its
// context and do, which runs steps or fails the test. Chromium exits
// when the test ends, before its profile directory is removed.
func newBrowser(t *testing.T, width, height int) (context.Context, func(what string, steps ...chromedp.Action[chromedp.Void])) {
	t.Helper()
	exe := chromiumPath(t)
	profile := t.TempDir()
	root, cancelRoot := context.WithTimeout(context.Background(), 3*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(root,
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		// The page's language follows the browser; the tests read German.
		chromedp.Flag("accept-lang", "de-DE,de"),
		chromedp.Flag("lang", "de-DE"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(width, height),
	)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc(); cancelRoot() })
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	return ctx, do
}

func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func saveScreenshot(t *testing.T, dir, name string, png []byte) {
	t.Helper()
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s is not a PNG (%d bytes)", name, len(png))
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if keep := os.Getenv(EnvScreenshots); keep != "" {
		if err := os.MkdirAll(keep, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(keep, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
