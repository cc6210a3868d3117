package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset"
	"golang.org/x/crypto/bcrypt"

	"mailflow/internal/exampletest"
	"mailflow/mailflow"
	"mailflow/mailflow/compose"
	"mailflow/storage"
	"mailflow/storage/storagetest"
	"mailflow/templates"
	"mailflow/web"
)

// The addresses of the example catalog that may sign in: each party's
// own notification address (its domain entries do not count without
// signin_domains).
const (
	dataportAddr   = "bestellungen@dataport.example"
	itnrwAddr      = "orders@it.nrw.example"
	govdigitalAddr = "auftrag@govdigital.example"
	publicURL      = "https://bestellungen.example.org"
)

// signinEnv is a status page with sign-in by email on a real store, with
// the real composer as the flow's notifier, served in-process: a request
// returns only when its handler has returned, so a sign-in mail is in the
// outbox when the answer to its request is.
type signinEnv struct {
	t        testing.TB
	st       *storage.Store
	flow     *mailflow.Flow
	composer *compose.Composer
	tokens   *mailflow.Tokens
	clock    *clock
	handler  http.Handler
}

func newSigninEnv(t *testing.T, driver string) *signinEnv {
	t.Helper()
	st := storagetest.Open(t, driver)
	return newSigninEnvOn(t, st, &clock{t: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}, true)
}

// newSigninEnvOn builds the page on a store; catalog imports the example
// catalog first.
func newSigninEnvOn(t testing.TB, st *storage.Store, clk *clock, catalog bool) *signinEnv {
	t.Helper()
	tokens, err := mailflow.NewTokens([]string{"ein-geheimnis-fuer-die-tests"})
	if err != nil {
		t.Fatal(err)
	}
	composer, err := compose.New(compose.Config{From: "DVC Bestellservice <bestellungen@example.org>",
		Coordinator: "koordinierung@example.org", Tokens: tokens, Templates: templates.Must(templates.New()), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	env := &signinEnv{t: t, st: st, composer: composer, tokens: tokens, clock: clk,
		flow: &mailflow.Flow{Store: st, Notifier: composer, Now: clk.Now}}
	pages, err := web.NewPages(web.Pages{Flow: env.flow, Store: st, Username: pageUser, Password: pagePassword,
		PublicURL: publicURL, Mailer: composer, Now: clk.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	env.handler = pages.Handler()
	if catalog {
		importCatalogFile(t, st)
	}
	return env
}

// inProcess is a RoundTripper that serves a request with the handler in
// the calling goroutine, from a given client address.
type inProcess struct {
	h      http.Handler
	remote string
}

func (p inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.RemoteAddr = p.remote
	r.RequestURI = r.URL.RequestURI()
	if r.Body == nil {
		r.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	p.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// client returns a browser stand-in at a client address.
func (e *signinEnv) client(ip string) *pageClient {
	return &pageClient{t: e.t.(*testing.T), base: "http://mailflow.test", c: e.httpClient(ip)}
}

// httpClient is an http.Client with a cookie jar that reaches the page
// in-process from a client address and follows no redirect.
func (e *signinEnv) httpClient(ip string) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: inProcess{h: e.handler, remote: ip + ":50000"},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// askLink requests a sign-in link for addr and returns the answer.
func (c *pageClient) askLink(addr string) (*http.Response, string) {
	c.t.Helper()
	return c.do("POST", "/anmelden/link", url.Values{"email": {addr}}, nil)
}

var linkURL = regexp.MustCompile(regexp.QuoteMeta(publicURL) + `(/anmelden/link/[A-Za-z0-9_-]+)`)

// links returns the paths of the sign-in links mailed to addr, oldest
// mail first, read from the decoded text part of each mail in the outbox.
func (e *signinEnv) links(addr string) []string {
	e.t.Helper()
	ctx := context.Background()
	msgs, err := e.st.OutboxList(ctx, mailflow.OutboxPending, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	slices.Reverse(msgs)
	var out []string
	for _, m := range msgs {
		if m.Kind != mailflow.KindSignin || !slices.Contains(m.Recipients, addr) {
			continue
		}
		raw, err := e.st.OutboxRaw(ctx, m.ID)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, l := range linkURL.FindAllStringSubmatch(textPart(e.t, raw), -1) {
			out = append(out, l[1])
		}
	}
	return out
}

// signinMails counts the sign-in mails in the outbox.
func (e *signinEnv) signinMails() int {
	e.t.Helper()
	msgs, err := e.st.OutboxList(context.Background(), mailflow.OutboxPending, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		if m.Kind == mailflow.KindSignin {
			n++
		}
	}
	return n
}

// textPart returns the decoded text/plain part of a mail.
func textPart(t testing.TB, raw []byte) string {
	t.Helper()
	e, err := gomessage.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var text string
	err = e.Walk(func(_ []int, p *gomessage.Entity, err error) error {
		if err != nil {
			return err
		}
		if ct, _, _ := p.Header.ContentType(); ct == "text/plain" && text == "" {
			b, _ := io.ReadAll(p.Body)
			text = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// signIn asks for a link for addr, follows the one for role (the only
// one when role is "") through its confirmation page, and checks that it
// lands on the order list.
func (e *signinEnv) signIn(c *pageClient, addr, role string) {
	e.t.Helper()
	before := len(e.links(addr))
	if resp, body := c.askLink(addr); resp.StatusCode != 200 {
		e.t.Fatalf("ask link for %s: %d %s", addr, resp.StatusCode, body)
	}
	links := e.links(addr)[before:]
	if len(links) == 0 {
		e.t.Fatalf("no sign-in link mailed to %s", addr)
	}
	link := links[0]
	if role != "" {
		link = ""
		for _, l := range links {
			_, body := c.get(l)
			if strings.Contains(body, "("+templates.Label("de", templates.LabelParty, role)+")") {
				link = l
			}
		}
	}
	resp, body := c.get(link)
	if resp.StatusCode != 200 || !strings.Contains(body, `action="`+link+`"`) {
		e.t.Fatalf("confirm page of %s: %d", link, resp.StatusCode)
	}
	resp, body = c.do("POST", link, url.Values{}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/bestellungen" {
		e.t.Fatalf("use link: %d %s", resp.StatusCode, body)
	}
	resp, body = c.get("/bestellungen")
	if resp.StatusCode != 200 {
		e.t.Fatalf("after sign-in: %d", resp.StatusCode)
	}
	if m := csrfField.FindStringSubmatch(body); m != nil {
		c.csrf = m[1]
	}
}

// TestSigninSameAnswer: a link request for a registered address and for
// an unknown one get byte-identical answers; only the registered one is
// mailed, and an address at a party's domain only when the catalog sets
// signin_domains.
func TestSigninSameAnswer(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newSigninEnv(t, driver)
			c := env.client("192.0.2.1")
			known, knownBody := c.askLink(dataportAddr)
			unknown, unknownBody := c.askLink("niemand@nirgendwo.example")
			domain, domainBody := c.askLink("erika@dataport.example")
			if known.StatusCode != 200 || unknown.StatusCode != 200 || domain.StatusCode != 200 {
				t.Fatalf("status: %d %d %d", known.StatusCode, unknown.StatusCode, domain.StatusCode)
			}
			if knownBody != unknownBody || knownBody != domainBody || len(known.Cookies())+len(unknown.Cookies()) != 0 {
				t.Errorf("answers differ:\n%s\n---\n%s", knownBody, unknownBody)
			}
			for _, resp := range []*http.Response{known, unknown, domain} {
				if resp.Header.Get("Connection") != "close" || resp.Header.Get("Content-Length") == "" {
					t.Errorf("answer headers %v: want a whole answer on a connection that closes", resp.Header)
				}
			}
			if !strings.Contains(knownBody, "Wenn diese Adresse im Katalog") {
				t.Errorf("answer does not say what happens: %s", knownBody)
			}
			if n := env.signinMails(); n != 1 || len(env.links(dataportAddr)) != 1 {
				t.Errorf("%d sign-in mails, want 1 (to %s)", n, dataportAddr)
			}
			// The catalog opens dataport's domain for sign-in.
			cat := exampletest.Catalog(t)
			cat.Providers[0].SigninDomains = true
			if err := env.st.ImportCatalog(context.Background(), cat); err != nil {
				t.Fatal(err)
			}
			c.askLink("erika@dataport.example")
			if len(env.links("erika@dataport.example")) != 1 {
				t.Error("signin_domains: no link for an address at the domain")
			}
			c.askLink("erika@it.nrw.example") // itnrw keeps its domain closed
			if n := env.signinMails(); n != 2 {
				t.Errorf("%d sign-in mails, want 2", n)
			}
			// Not an address at all: told so, nothing counted or sent.
			if resp, body := c.askLink("kein-at-zeichen"); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "E-Mail-Adresse") {
				t.Errorf("invalid address: %d", resp.StatusCode)
			}
		})
	}
}

// TestSigninLinkOnce: the link's GET changes nothing (mail scanners fetch
// it), its POST signs in once; the same link again fails, in the same
// browser and in another; a link of 15 minutes and 1 second fails.
func TestSigninLinkOnce(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newSigninEnv(t, driver)
			createOrder(t, env.flow, "order-dv.json", "dv-1", "Stadt Dataportstadt")
			c := env.client("192.0.2.1")
			c.askLink(dataportAddr)
			link := env.links(dataportAddr)[0]
			for range 3 { // a scanner, a preview, the person
				resp, body := c.get(link)
				if resp.StatusCode != 200 || !strings.Contains(body, "Jetzt anmelden") || !strings.Contains(body, "Dataport AöR") || len(resp.Cookies()) != 0 {
					t.Fatalf("GET link: %d", resp.StatusCode)
				}
			}
			if resp, _ := c.get("/bestellungen"); resp.StatusCode != http.StatusSeeOther {
				t.Fatal("a GET of the link signed in")
			}
			resp, _ := c.do("POST", link, url.Values{}, nil)
			wantRedirect(t, resp, "/bestellungen")
			resp, body := c.get("/bestellungen")
			if resp.StatusCode != 200 || !strings.Contains(body, "Stadt Dataportstadt") || !strings.Contains(body, dataportAddr+" (Dataport AöR, Anbieter)") {
				t.Fatalf("after sign-in: %d", resp.StatusCode)
			}
			// Used: refused in another browser, and the GET says so.
			other := env.client("192.0.2.2")
			resp, body = other.do("POST", link, url.Values{}, nil)
			if resp.StatusCode != http.StatusGone || !strings.Contains(body, "bereits benutzt") || len(resp.Cookies()) != 0 {
				t.Errorf("reuse: %d, want 410 without a cookie", resp.StatusCode)
			}
			if resp, body := other.get(link); resp.StatusCode != http.StatusGone || strings.Contains(body, "Jetzt anmelden") {
				t.Errorf("GET of a used link: %d", resp.StatusCode)
			}
			// Expired: 15 minutes after it was mailed.
			other.askLink(dataportAddr)
			link2 := env.links(dataportAddr)[1]
			env.clock.Add(15*time.Minute + time.Second)
			if resp, body := other.get(link2); resp.StatusCode != http.StatusGone || !strings.Contains(body, "abgelaufen") {
				t.Errorf("GET expired: %d", resp.StatusCode)
			}
			resp, body = other.do("POST", link2, url.Values{}, nil)
			if resp.StatusCode != http.StatusGone || !strings.Contains(body, "abgelaufen") || len(resp.Cookies()) != 0 {
				t.Errorf("POST expired: %d", resp.StatusCode)
			}
			// Unknown token, and a link posted from another site.
			if resp, _ := other.do("POST", "/anmelden/link/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", url.Values{}, nil); resp.StatusCode != http.StatusNotFound {
				t.Errorf("unknown link: %d", resp.StatusCode)
			}
			other.askLink(dataportAddr)
			link3 := env.links(dataportAddr)[2]
			if resp, _ := other.do("POST", link3, url.Values{}, map[string]string{"Origin": "https://evil.example"}); resp.StatusCode != http.StatusForbidden {
				t.Errorf("cross-site use: %d, want 403", resp.StatusCode)
			}
			resp, _ = other.do("POST", link3, url.Values{}, nil)
			wantRedirect(t, resp, "/bestellungen") // the refused cross-site POST did not use it up
		})
	}
}

// TestSigninRateLimits: at most 5 links an hour per address and 20
// requests an hour per client, known address or not, each with the same
// answer; the database keeps the count, so a restarted page keeps it.
func TestSigninRateLimits(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newSigninEnv(t, driver)
			for _, addr := range []string{dataportAddr, "niemand@nirgendwo.example"} {
				for i := range 5 {
					c := env.client(fmt.Sprintf("192.0.2.%d", 10+i)) // each from another client
					if resp, _ := c.askLink(addr); resp.StatusCode != 200 {
						t.Fatalf("%s request %d: %d", addr, i+1, resp.StatusCode)
					}
				}
				resp, body := env.client("192.0.2.99").askLink(addr)
				if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "zu viele Anmeldelinks") {
					t.Errorf("%s: 6th request: %d, want 429", addr, resp.StatusCode)
				}
			}
			if n := len(env.links(dataportAddr)); n != 5 {
				t.Errorf("%d links mailed, want 5", n)
			}
			// One client, many addresses: 20, then 429, also after a restart.
			c := env.client("198.51.100.7")
			for i := range 20 {
				if resp, _ := c.askLink(fmt.Sprintf("person%d@nirgendwo.example", i)); resp.StatusCode != 200 {
					t.Fatalf("client request %d: %d", i+1, resp.StatusCode)
				}
			}
			restarted := newSigninEnvOn(t, env.st, env.clock, false)
			if resp, _ := restarted.client("198.51.100.7").askLink(dataportAddr); resp.StatusCode != http.StatusTooManyRequests {
				t.Errorf("21st request of a client after restart: %d, want 429", resp.StatusCode)
			}
			if resp, _ := restarted.client("198.51.100.8").askLink("person-x@nirgendwo.example"); resp.StatusCode != 200 {
				t.Errorf("another client: %d", resp.StatusCode)
			}
			env.clock.Add(time.Hour)
			if resp, _ := restarted.client("198.51.100.7").askLink(dataportAddr); resp.StatusCode != 200 {
				t.Errorf("after an hour: %d, want 200", resp.StatusCode)
			}
		})
	}
}

// TestSessionsSurviveRestart: a session made by one Pages instance works
// on a new one over the same database (a restart, or a second daemon),
// for a coordinator and for a provider, until "log out everywhere" ends
// every session of that person and no one else's.
func TestSessionsSurviveRestart(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newSigninEnv(t, driver)
			coord1, coord2, prov1, prov2 := env.client("192.0.2.1"), env.client("192.0.2.2"), env.client("192.0.2.3"), env.client("192.0.2.4")
			coord1.login()
			coord2.login()
			env.signIn(prov1, dataportAddr, "")
			env.signIn(prov2, dataportAddr, "")

			restarted := newSigninEnvOn(t, env.st, env.clock, false)
			for name, c := range map[string]*pageClient{"coordinator": coord1, "provider": prov1} {
				c2 := restarted.client("192.0.2.50")
				c2.setCookie(c.cookie())
				if resp, _ := c2.get("/bestellungen"); resp.StatusCode != 200 {
					t.Errorf("%s after restart: %d, want 200", name, resp.StatusCode)
				}
			}
			// Log out everywhere, from the provider's first browser.
			resp, _ := prov1.do("POST", "/abmelden/ueberall", url.Values{"csrf": {prov1.csrf}}, nil)
			wantRedirect(t, resp, "/anmelden")
			for name, c := range map[string]*pageClient{"provider 1": prov1, "provider 2": prov2} {
				if resp, _ := c.get("/bestellungen"); resp.StatusCode != http.StatusSeeOther {
					t.Errorf("%s after logout everywhere: %d, want 303", name, resp.StatusCode)
				}
			}
			for name, c := range map[string]*pageClient{"coordinator 1": coord1, "coordinator 2": coord2} {
				if resp, _ := c.get("/bestellungen"); resp.StatusCode != 200 {
					t.Errorf("%s after the provider logged out everywhere: %d", name, resp.StatusCode)
				}
			}
			resp, _ = coord2.do("POST", "/abmelden/ueberall", url.Values{"csrf": {coord2.csrf}}, nil)
			wantRedirect(t, resp, "/anmelden")
			if resp, _ := coord1.get("/bestellungen"); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("coordinator 1 after coordinator 2 logged out everywhere: %d, want 303", resp.StatusCode)
			}

			// A restart whose configuration no longer has the coordinator
			// ends its sessions.
			coord1.login()
			gone, err := web.NewPages(web.Pages{Flow: env.flow, Store: env.st, Coordinators: []web.Coordinator{{Username: "erika", Password: "ein-anderes-passwort"}},
				Now: env.clock.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			after := (&signinEnv{t: t, handler: gone.Handler()}).client("192.0.2.60")
			after.setCookie(coord1.cookie())
			if resp, _ := after.get("/bestellungen"); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("coordinator no longer configured: %d, want 303", resp.StatusCode)
			}
			if resp, _ := coord1.get("/bestellungen"); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("its session is gone on the old page too: %d, want 303", resp.StatusCode)
			}
		})
	}
}

// TestSessionIdleAndAbsolute: a provider's session ends after 2 hours
// without a request and after 12 hours however busy; a session also ends
// when the catalog no longer lets its address sign in.
func TestSessionIdleAndAbsolute(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newSigninEnv(t, driver)
			c := env.client("192.0.2.1")
			env.signIn(c, dataportAddr, "")
			env.clock.Add(2*time.Hour - time.Second)
			if resp, _ := c.get("/bestellungen"); resp.StatusCode != 200 {
				t.Fatalf("idle 2h less 1s: %d", resp.StatusCode)
			}
			env.clock.Add(2 * time.Hour)
			if resp, _ := c.get("/bestellungen"); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("idle 2h: %d, want 303", resp.StatusCode)
			}

			env.signIn(c, dataportAddr, "")
			for i := range 7 {
				env.clock.Add(100 * time.Minute)
				if resp, _ := c.get("/bestellungen"); resp.StatusCode != 200 {
					t.Fatalf("busy, after %d×100 min: %d", i+1, resp.StatusCode)
				}
			}
			env.clock.Add(20 * time.Minute)
			if resp, _ := c.get("/bestellungen"); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("after 12 h: %d, want 303", resp.StatusCode)
			}

			env.signIn(c, dataportAddr, "")
			cat := exampletest.Catalog(t)
			cat.Providers[0].Email = "neu@dataport.example"
			cat.Providers[0].ReplySenders = []string{"neu@dataport.example"}
			if err := env.st.ImportCatalog(context.Background(), cat); err != nil {
				t.Fatal(err)
			}
			if resp, _ := c.get("/bestellungen"); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("address no longer in the catalog: %d, want 303", resp.StatusCode)
			}
		})
	}
}

// scopeFixture: two DV orders with Dataport, one UV order with IT.NRW
// through govdigital, each with its notifications in the outbox.
type scopeFixture struct {
	dv1, dv2, uv *mailflow.Order
	// notes maps order number and party to the id of its notification.
	notes map[string]int64
}

func (e *signinEnv) scopeFixture() scopeFixture {
	e.t.Helper()
	f := scopeFixture{
		dv1: createOrder(e.t, e.flow, "order-dv.json", "dv-1", "Stadt Dvheim"),
		dv2: createOrder(e.t, e.flow, "order-dv.json", "dv-2", "Stadt Dvdorf"),
		uv:  createOrder(e.t, e.flow, "order-uv.json", "uv-1", "Kreis Uvland"),
	}
	f.notes = map[string]int64{}
	for _, o := range []*mailflow.Order{f.dv1, f.dv2, f.uv} {
		msgs, err := e.st.OrderMessages(context.Background(), o.ID)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Kind == mailflow.KindNotification {
				f.notes[o.Number+"/"+m.Party] = m.ID
			}
		}
	}
	return f
}

// TestScoping: each party sees its own orders, in the list, its counts
// and on the detail page; every other order, its decision POST and its
// .eml downloads answer 404, as does another party's mail of a visible
// order; only the coordinator sees the review count.
func TestScoping(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newSigninEnv(t, driver)
			f := env.scopeFixture()
			all := []*mailflow.Order{f.dv1, f.dv2, f.uv}
			type who struct {
				name, addr, role string
				sees             []*mailflow.Order
				mails            []string // notification keys it may download
			}
			for _, w := range []who{
				{"dataport", dataportAddr, "", []*mailflow.Order{f.dv1, f.dv2}, []string{f.dv1.Number + "/provider", f.dv2.Number + "/provider"}},
				{"itnrw", itnrwAddr, "", []*mailflow.Order{f.uv}, []string{f.uv.Number + "/provider"}},
				{"govdigital", govdigitalAddr, "", []*mailflow.Order{f.uv}, []string{f.uv.Number + "/intermediary"}},
				{"coordinator", "", "", all, []string{f.dv1.Number + "/provider", f.dv2.Number + "/provider", f.uv.Number + "/provider", f.uv.Number + "/intermediary"}},
			} {
				t.Run(w.name, func(t *testing.T) {
					c := env.client("192.0.2.1")
					if w.addr == "" {
						c.login()
					} else {
						env.signIn(c, w.addr, w.role)
					}
					_, list := c.get("/bestellungen")
					if got := len(rows(list)); got != len(w.sees) {
						t.Errorf("list has %d rows, want %d", got, len(w.sees))
					}
					if !strings.Contains(list, fmt.Sprintf(`<p id="treffer" role="status">%d Bestellung`, len(w.sees))) ||
						!strings.Contains(list, fmt.Sprintf("%d Bestellungen insgesamt", len(w.sees))) {
						t.Errorf("counts are not scoped")
					}
					if got := strings.Contains(list, "Nachrichten zur Prüfung"); got != (w.name == "coordinator") {
						t.Errorf("review count shown: %v", got)
					}
					for _, o := range all {
						visible := slices.Contains(w.sees, o)
						resp, body := c.get("/bestellungen/" + o.Number)
						if visible != (resp.StatusCode == 200) || (!visible && resp.StatusCode != 404) {
							t.Errorf("detail %s: %d, visible %v", o.Number, resp.StatusCode, visible)
						}
						if !visible && strings.Contains(body, o.Snapshot.Customer.Name) {
							t.Errorf("404 of %s leaks its customer", o.Number)
						}
						// The evidence bundle (here without a signing key:
						// 503) only for an order the viewer may see.
						if resp, _ := c.get("/bestellungen/" + o.Number + "/nachweis.zip"); (resp.StatusCode == 404) == visible {
							t.Errorf("evidence of %s: %d, visible %v", o.Number, resp.StatusCode, visible)
						}
						if !visible {
							resp, _ := c.do("POST", "/bestellungen/"+o.Number+"/entscheidungen",
								url.Values{"csrf": {c.csrf}, "party": {"provider"}, "intent": {"accept"}}, nil)
							if resp.StatusCode != 404 {
								t.Errorf("decision POST on %s: %d, want 404", o.Number, resp.StatusCode)
							}
						}
						want := 0
						if visible {
							want = 1
						}
						_, body = c.get("/bestellungen?q=" + url.QueryEscape(o.Number))
						if got := len(rows(body)); got != want {
							t.Errorf("search for %s finds %d, want %d", o.Number, got, want)
						}
					}
					for key, id := range f.notes {
						resp, _ := c.get(fmt.Sprintf("/nachrichten/ausgang/%d.eml", id))
						want := 404
						if slices.Contains(w.mails, key) {
							want = 200
						}
						if resp.StatusCode != want {
							t.Errorf(".eml of %s: %d, want %d", key, resp.StatusCode, want)
						}
					}
					// Sign-in mails are credentials: nobody downloads them.
					msgs, _ := env.st.OutboxList(context.Background(), mailflow.OutboxPending, 1000)
					for _, m := range msgs {
						if m.Kind == mailflow.KindSignin {
							if resp, _ := c.get(fmt.Sprintf("/nachrichten/ausgang/%d.eml", m.ID)); resp.StatusCode != 404 {
								t.Errorf("sign-in mail %d: %d, want 404", m.ID, resp.StatusCode)
							}
						}
					}
				})
			}
			if got, _ := env.st.Order(context.Background(), f.dv1.Number); len(got.History) != 0 {
				t.Errorf("a refused POST recorded a decision: %+v", got.History)
			}
		})
	}
}

// TestPartyDecisions: a provider decides on its own order on the page;
// the form offers only its own party; a forged POST for the other party
// is refused and changes nothing; the intermediary decides as
// intermediary only.
func TestPartyDecisions(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newSigninEnv(t, driver)
			f := env.scopeFixture()
			prov, interm := env.client("192.0.2.1"), env.client("192.0.2.2")
			env.signIn(prov, itnrwAddr, "")
			env.signIn(interm, govdigitalAddr, "")
			path := "/bestellungen/" + f.uv.Number + "/entscheidungen"

			_, body := prov.get("/bestellungen/" + f.uv.Number)
			if strings.Contains(body, `<option value="intermediary"`) || !strings.Contains(body, `<option value="provider" selected>`) || !strings.Contains(body, "Ihre Erklärung abgeben") {
				t.Error("provider's form offers other parties or does not preselect its own")
			}
			for _, c := range []struct {
				client *pageClient
				party  string
			}{{prov, "intermediary"}, {interm, "provider"}, {prov, "customer"}} {
				resp, _ := c.client.do("POST", path, url.Values{"csrf": {c.client.csrf}, "party": {c.party}, "intent": {"accept"}}, nil)
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("forged decision for %s: %d, want 403", c.party, resp.StatusCode)
				}
			}
			if o, _ := env.st.Order(context.Background(), f.uv.Number); len(o.History) != 0 {
				t.Fatalf("forged POSTs recorded: %+v", o.History)
			}
			resp, _ := interm.do("POST", path, url.Values{"csrf": {interm.csrf}, "party": {"intermediary"}, "intent": {"accept"}}, nil)
			wantRedirect(t, resp, "/bestellungen/"+f.uv.Number)
			resp, _ = prov.do("POST", path, url.Values{"csrf": {prov.csrf}, "party": {"provider"}, "intent": {"reject"}}, nil)
			if resp.StatusCode != http.StatusUnprocessableEntity {
				t.Errorf("reject without reason: %d, want 422", resp.StatusCode)
			}
			resp, _ = prov.do("POST", path, url.Values{"csrf": {prov.csrf}, "party": {"provider"}, "intent": {"reject"}, "reason": {"Kapazität erschöpft"}}, nil)
			wantRedirect(t, resp, "/bestellungen/"+f.uv.Number)
			o, _ := env.st.Order(context.Background(), f.uv.Number)
			if o.Status != mailflow.StatusRejectedProviderUV || len(o.History) != 2 {
				t.Fatalf("status %s, history %+v", o.Status, o.History)
			}
			for i, want := range []mailflow.Decision{
				{Party: "intermediary", Intent: "accept", Source: "page", Actor: govdigitalAddr},
				{Party: "provider", Intent: "reject", Source: "page", Actor: itnrwAddr, Reason: "Kapazität erschöpft"},
			} {
				got := o.History[i]
				if got.Party != want.Party || got.Intent != want.Intent || got.Source != want.Source || got.Actor != want.Actor || got.Reason != want.Reason {
					t.Errorf("decision %d: %+v, want %+v", i, got, want)
				}
			}
			_, body = prov.get("/bestellungen/" + f.uv.Number)
			if !strings.Contains(body, "Statusseite") || !strings.Contains(body, itnrwAddr) {
				t.Error("the timeline does not show the page as source and the address as actor")
			}
		})
	}
}

// outcome is what a decision caused, comparable between the page and
// the mail: the decision's own fields and each mail it enqueued.
type outcome struct {
	Status mailflow.Status
	Party  string
	Intent mailflow.Intent
	Actor  string
	Effect string
	Mails  []string // kind, party and recipients of each
}

func (e *signinEnv) outcome(number string, outboxBefore int64) outcome {
	e.t.Helper()
	ctx := context.Background()
	o, err := e.st.Order(ctx, number)
	if err != nil {
		e.t.Fatal(err)
	}
	d := o.History[len(o.History)-1]
	out := outcome{Status: o.Status, Party: d.Party, Intent: d.Intent, Actor: d.Actor, Effect: d.Effect}
	msgs, err := e.st.OrderMessages(ctx, o.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range msgs {
		if m.ID > outboxBefore {
			out.Mails = append(out.Mails, fmt.Sprintf("%s %s %v", m.Kind, m.Party, m.Recipients))
		}
	}
	return out
}

func (e *signinEnv) lastOutboxID() int64 {
	msgs, err := e.st.OutboxList(context.Background(), mailflow.OutboxPending, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var last int64
	for _, m := range msgs {
		last = max(last, m.ID)
	}
	return last
}

// TestPageDecisionLikeMail: the provider's declarations on the page have
// exactly the effects of the same answers by email from the same
// address: the same status, effect and actor, and the same mails to the
// same recipients (the acknowledgement to the signed-in address, then
// the binding confirmation to everyone).
func TestPageDecisionLikeMail(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newSigninEnv(t, driver)
			byPage := createOrder(t, env.flow, "order-dv.json", "by-page", "Stadt Seitenheim")
			byMail := createOrder(t, env.flow, "order-dv.json", "by-mail", "Stadt Mailheim")
			inbox := &mailflow.Inbox{Flow: env.flow, Store: env.st, Tokens: env.tokens, Alerter: env.composer}
			c := env.client("192.0.2.1")
			env.signIn(c, dataportAddr, "")
			note := env.notification(byMail)
			for i, step := range []struct {
				intent mailflow.Intent
				word   string
			}{{mailflow.IntentWorking, "IN BEARBEITUNG"}, {mailflow.IntentAccept, "BESTÄTIGT"}} {
				before := env.lastOutboxID()
				resp, _ := c.do("POST", "/bestellungen/"+byPage.Number+"/entscheidungen",
					url.Values{"csrf": {c.csrf}, "party": {"provider"}, "intent": {string(step.intent)}}, nil)
				wantRedirect(t, resp, "/bestellungen/"+byPage.Number)
				page := env.outcome(byPage.Number, before)

				before = env.lastOutboxID()
				raw := replyTo(t, note, dataportAddr, fmt.Sprintf("reply-%d@dataport.example", i), step.word)
				if _, err := inbox.Process(context.Background(), mailflow.FetchedMessage{Raw: raw, Size: int64(len(raw))}); err != nil {
					t.Fatal(err)
				}
				mail := env.outcome(byMail.Number, before)
				pj, _ := json.Marshal(page)
				mj, _ := json.Marshal(mail)
				if string(pj) != string(mj) {
					t.Errorf("%s: page and mail differ:\npage %s\nmail %s", step.intent, pj, mj)
				}
				if len(page.Mails) == 0 || page.Intent != step.intent {
					t.Errorf("%s: nothing happened: %s", step.intent, pj)
				}
			}
		})
	}
}

// notification returns the stored notification of a DV order to its provider.
func (e *signinEnv) notification(o *mailflow.Order) []byte {
	e.t.Helper()
	msgs, err := e.st.OrderMessages(context.Background(), o.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Kind == mailflow.KindNotification && m.Party == mailflow.PartyProvider {
			raw, err := e.st.OutboxRaw(context.Background(), m.ID)
			if err != nil {
				e.t.Fatal(err)
			}
			return raw
		}
	}
	e.t.Fatalf("no notification of %s", o.Number)
	return nil
}

// replyTo answers a notification as a mail client does: to its Reply-To,
// with In-Reply-To and the keyword on the first line.
func replyTo(t *testing.T, note []byte, from, msgID, text string) []byte {
	t.Helper()
	h, err := mail.ReadMessage(bytes.NewReader(note))
	if err != nil {
		t.Fatal(err)
	}
	to, err := mail.ParseAddress(h.Header.Get("Reply-To"))
	if err != nil {
		t.Fatalf("notification without Reply-To: %v", err)
	}
	mid := h.Header.Get("Message-ID")
	return []byte(fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: AW: Bestellung\r\nDate: Wed, 25 Nov 2026 10:00:00 +0100\r\n"+
		"Message-ID: <%s>\r\nIn-Reply-To: %s\r\nReferences: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		from, to.Address, msgID, mid, mid, text))
}

// TestCoordinators: several named coordinators, one with a bcrypt hash,
// each signs in with its own password and is named as the actor of its
// decisions; a wrong password or an unknown name fails.
func TestCoordinators(t *testing.T) {
	st := storagetest.Open(t, "sqlite")
	flow := &mailflow.Flow{Store: st}
	hash, err := bcrypt.GenerateFromPassword([]byte("zweites-passwort-lang"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	pages, err := web.NewPages(web.Pages{Flow: flow, Store: st, Username: pageUser, Password: pagePassword,
		Coordinators: []web.Coordinator{{Username: "erika", PasswordHash: string(hash)}, {Username: "max", Password: "drittes-passwort-lang"}},
		Log:          slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	importCatalogFile(t, st)
	o := createOrder(t, flow, "order-dv.json", "x-1", "")
	env := &signinEnv{t: t, st: st, handler: pages.Handler()}
	for i, cred := range [][3]string{{pageUser, pagePassword, "200"}, {"erika", "zweites-passwort-lang", "200"}, {"max", "drittes-passwort-lang", "200"},
		{"erika", "drittes-passwort-lang", "401"}, {"max", pagePassword, "401"}, {"moritz", "zweites-passwort-lang", "401"}} {
		c := env.client(fmt.Sprintf("192.0.2.%d", i+1))
		resp, _ := c.do("POST", "/anmelden", url.Values{"username": {cred[0]}, "password": {cred[1]}}, nil)
		ok := resp.StatusCode == http.StatusSeeOther
		if ok != (cred[2] == "200") {
			t.Errorf("%s/%s: %d", cred[0], cred[1], resp.StatusCode)
		}
		if !ok {
			continue
		}
		_, body := c.get("/bestellungen/" + o.Number)
		c.csrf = csrfField.FindStringSubmatch(body)[1]
		c.do("POST", "/bestellungen/"+o.Number+"/entscheidungen", url.Values{"csrf": {c.csrf}, "party": {"provider"}, "intent": {"working"}}, nil)
		got, _ := st.Order(context.Background(), o.Number)
		if d := got.History[len(got.History)-1]; d.Actor != cred[0] || d.Source != mailflow.SourceManual {
			t.Errorf("decision by %s recorded as %+v", cred[0], d)
		}
	}
	for _, bad := range [][]web.Coordinator{
		{{Username: "a", Password: "x", PasswordHash: string(hash)}},
		{{Username: "a"}},
		{{Username: "a", PasswordHash: "kein-hash"}},
		{{Username: "a", Password: "x"}, {Username: "a", Password: "y"}},
	} {
		if _, err := web.NewPages(web.Pages{Flow: flow, Store: st, Coordinators: bad}); err == nil {
			t.Errorf("NewPages accepted coordinators %+v", bad)
		}
	}
}

// TestSigninBehindProxy: behind a trusted reverse proxy the per-client
// limit counts the client X-Forwarded-For names, so one client's 20
// requests do not lock out another; a client that is not a trusted proxy
// cannot pick its own key with the header.
func TestSigninBehindProxy(t *testing.T) {
	st := storagetest.Open(t, "sqlite")
	clk := &clock{t: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
	env := newSigninEnvOn(t, st, clk, true)
	pages, err := web.NewPages(web.Pages{Flow: env.flow, Store: st, PublicURL: publicURL, Mailer: env.composer, Now: clk.Now,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	env.handler = pages.Handler()
	ask := func(remote, xff, addr string) int {
		c := env.client(remote)
		hdr := map[string]string{}
		if xff != "" {
			hdr["X-Forwarded-For"] = xff
		}
		resp, _ := c.do("POST", "/anmelden/link", url.Values{"email": {addr}}, hdr)
		return resp.StatusCode
	}
	for i := range 20 {
		if code := ask("10.0.0.1", "203.0.113.5", fmt.Sprintf("p%d@nirgendwo.example", i)); code != 200 {
			t.Fatalf("request %d: %d", i+1, code)
		}
	}
	if code := ask("10.0.0.1", "203.0.113.5", "x@nirgendwo.example"); code != http.StatusTooManyRequests {
		t.Errorf("21st request of one client through the proxy: %d, want 429", code)
	}
	if code := ask("10.0.0.2", "198.51.100.1, 203.0.113.9", "y@nirgendwo.example"); code != 200 {
		t.Errorf("another client through the proxy: %d, want 200", code)
	}
	// Not through the proxy: the header is the client's own and counts nothing.
	for i := range 20 {
		ask("192.0.2.77", fmt.Sprintf("198.51.100.%d", i), fmt.Sprintf("q%d@nirgendwo.example", i))
	}
	if code := ask("192.0.2.77", "198.51.100.200", "z@nirgendwo.example"); code != http.StatusTooManyRequests {
		t.Errorf("a direct client changing X-Forwarded-For escaped the limit: %d", code)
	}
}

// TestSigninTwoOrganizations: an address registered for a provider and
// for the intermediary gets one mail with a link for each; each link
// signs in as its organization and shows that organization's orders only.
func TestSigninTwoOrganizations(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newSigninEnv(t, driver)
			const shared = "vergabe@rechenzentrum.example"
			cat := exampletest.Catalog(t)
			cat.Providers[0].ReplySenders = append(cat.Providers[0].ReplySenders, shared)           // Dataport
			cat.Intermediaries[0].ReplySenders = append(cat.Intermediaries[0].ReplySenders, shared) // govdigital
			if err := env.st.ImportCatalog(context.Background(), cat); err != nil {
				t.Fatal(err)
			}
			f := env.scopeFixture()
			c := env.client("192.0.2.1")
			c.askLink(shared)
			if n, links := env.signinMails(), env.links(shared); n != 1 || len(links) != 2 {
				t.Fatalf("%d mails with %d links, want 1 mail with 2", n, len(links))
			}
			for _, tc := range []struct {
				role string
				want []string
			}{{"provider", []string{f.dv2.Number, f.dv1.Number}}, {"intermediary", []string{f.uv.Number}}} {
				b := env.client("192.0.2.2")
				env.signIn(b, shared, tc.role)
				_, body := b.get("/bestellungen")
				var got []string
				for _, m := range orderRow.FindAllStringSubmatch(body, -1) {
					got = append(got, m[1])
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("signed in as %s: %v, want %v", tc.role, got, tc.want)
				}
			}
		})
	}
}

// BenchmarkSignedInRequest is one order page for a provider signed in by
// link, on SQLite: the session lookup, the catalog check of its address
// and the scoped order load, what every request of a party costs.
//
//	go test ./web -run '^$' -bench SignedInRequest
func BenchmarkSignedInRequest(b *testing.B) {
	st := storagetest.Open(b, "sqlite")
	env := newSigninEnvOn(b, st, &clock{t: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}, true)
	o := createOrder(b, env.flow, "order-dv.json", "bench-1", "")
	c := env.httpClient("192.0.2.1")
	do := func(method, path string, form url.Values) int {
		resp, err := c.Do(&http.Request{Method: method, URL: &url.URL{Scheme: "http", Host: "mailflow.test", Path: path},
			Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: io.NopCloser(strings.NewReader(form.Encode()))})
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	do("POST", "/anmelden/link", url.Values{"email": {dataportAddr}})
	if code := do("POST", env.links(dataportAddr)[0], url.Values{}); code != http.StatusSeeOther {
		b.Fatalf("sign-in: %d", code)
	}
	for b.Loop() {
		if code := do("GET", "/bestellungen/"+o.Number, nil); code != 200 {
			b.Fatalf("order page: %d", code)
		}
	}
}
