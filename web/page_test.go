package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the page shows Europe/Berlin times

	"mailflow/internal/exampletest"
	"mailflow/mailflow"
	"mailflow/storage"
	"mailflow/storage/storagetest"
	"mailflow/web"
)

const (
	pageUser     = "koordination"
	pagePassword = "geheim-und-lang-genug"
)

// clock is a settable time source for session expiry and the login limiter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type pageEnv struct {
	t     *testing.T
	st    *storage.Store
	flow  *mailflow.Flow
	clock *clock
	srv   *httptest.Server
}

func newPageEnv(t *testing.T, driver string, secure bool) *pageEnv {
	t.Helper()
	st := storagetest.Open(t, driver)
	env := &pageEnv{t: t, st: st, flow: &mailflow.Flow{Store: st}, clock: &clock{t: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}}
	pages, err := web.NewPages(web.Pages{Flow: env.flow, Store: st, Username: pageUser, Password: pagePassword,
		Now: env.clock.Now, SecureCookies: secure, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	env.srv = httptest.NewServer(pages.Handler())
	t.Cleanup(env.srv.Close)
	importCatalogFile(t, st)
	return env
}

func importCatalogFile(t testing.TB, st *storage.Store) {
	t.Helper()
	if err := st.ImportCatalog(context.Background(), exampletest.Catalog(t)); err != nil {
		t.Fatal(err)
	}
}

// createOrder creates an order from an example file with a distinct
// external id and customer name.
func createOrder(t testing.TB, flow *mailflow.Flow, file, externalID, customer string) *mailflow.Order {
	t.Helper()
	b, err := os.ReadFile("../examples/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var req mailflow.OrderRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	req.ExternalID = externalID
	if customer != "" {
		req.Customer.Name = customer
	}
	o, created, err := flow.CreateOrder(context.Background(), &req)
	if err != nil || !created {
		t.Fatalf("create order %s: created=%v err=%v", externalID, created, err)
	}
	return o
}

type decisionStep struct {
	party  string
	intent mailflow.Intent
}

// statusRecipes reaches each of the eleven statuses of docs/design.md §3.
var statusRecipes = map[mailflow.Status]struct {
	file  string
	steps []decisionStep
}{
	mailflow.StatusOpen:                 {"order-dv.json", nil},
	mailflow.StatusWorkingProviderDV:    {"order-dv.json", []decisionStep{{"provider", "working"}}},
	mailflow.StatusReviewProviderDV:     {"order-dv.json", []decisionStep{{"provider", "review"}}},
	mailflow.StatusWorkingIntermediary:  {"order-uv.json", []decisionStep{{"intermediary", "working"}}},
	mailflow.StatusReviewIntermediaryUV: {"order-uv.json", []decisionStep{{"intermediary", "review"}}},
	mailflow.StatusWorkingProviderUV:    {"order-uv.json", []decisionStep{{"intermediary", "accept"}, {"provider", "working"}}},
	mailflow.StatusReviewProviderUV:     {"order-uv.json", []decisionStep{{"intermediary", "accept"}, {"provider", "review"}}},
	mailflow.StatusOrdered:              {"order-dv.json", []decisionStep{{"provider", "working"}, {"provider", "accept"}}},
	mailflow.StatusRejectedProviderDV:   {"order-dv.json", []decisionStep{{"provider", "reject"}}},
	mailflow.StatusRejectedIntermediary: {"order-uv.json", []decisionStep{{"intermediary", "reject"}}},
	mailflow.StatusRejectedProviderUV:   {"order-uv.json", []decisionStep{{"intermediary", "accept"}, {"provider", "reject"}}},
}

// towns give each seeded order a customer of its own, so a search by
// customer finds exactly one.
var towns = []string{"Aachen", "Bamberg", "Celle", "Dresden", "Erfurt", "Flensburg", "Görlitz", "Hameln", "Ingolstadt", "Jena", "Kiel"}

type seeded struct {
	Number   string
	Customer string
	Model    string
}

// seedAllStatuses creates one order in each status, driven there by
// decisions as they would arrive by email.
func seedAllStatuses(t testing.TB, flow *mailflow.Flow) map[mailflow.Status]seeded {
	t.Helper()
	out := map[mailflow.Status]seeded{}
	for i, s := range mailflow.Statuses {
		r := statusRecipes[s]
		customer := "Stadt " + towns[i]
		o := createOrder(t, flow, r.file, "seed-"+string(s), customer)
		for _, st := range r.steps {
			d := mailflow.Decision{Party: st.party, Intent: st.intent, Source: mailflow.SourceEmail, Actor: st.party + "@absender.example"}
			if st.intent == mailflow.IntentReject {
				d.Reason = "Kapazität in " + towns[i] + " erschöpft"
			}
			var err error
			if o, err = flow.Decide(context.Background(), o.Number, d); err != nil {
				t.Fatalf("%s: decide %v: %v", s, st, err)
			}
		}
		if o.Status != s {
			t.Fatalf("seed %s: got status %s", s, o.Status)
		}
		out[s] = seeded{Number: o.Number, Customer: customer, Model: o.ContractModel}
	}
	return out
}

// pageClient is a browser stand-in: a cookie jar, no redirect following.
type pageClient struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func (e *pageEnv) client() *pageClient {
	jar, _ := cookiejar.New(nil)
	return &pageClient{t: e.t, base: e.srv.URL, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *pageClient) do(method, path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c *pageClient) get(path string) (*http.Response, string) { return c.do("GET", path, nil, nil) }

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login signs in through the form and picks up the CSRF token.
func (c *pageClient) login() {
	c.t.Helper()
	resp, body := c.do("POST", "/anmelden", url.Values{"username": {pageUser}, "password": {pagePassword}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	resp, body = c.get("/bestellungen")
	if resp.StatusCode != 200 {
		c.t.Fatalf("after login: %d", resp.StatusCode)
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatal("no CSRF token on the page")
	}
	c.csrf = m[1]
}

func wantRedirect(t *testing.T, resp *http.Response, prefix string) {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), prefix) {
		t.Errorf("%s %s: got %d Location %q, want 303 to %s…", resp.Request.Method, resp.Request.URL.Path,
			resp.StatusCode, resp.Header.Get("Location"), prefix)
	}
}

func TestPagesLoginRequired(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newPageEnv(t, driver, false)
			o := createOrder(t, env.flow, "order-dv.json", "x-1", "Stadt Geheimhausen")
			c := env.client()
			for _, path := range []string{"/", "/bestellungen", "/bestellungen?status=open", "/bestellungen/" + o.Number,
				"/nachrichten/ausgang/1.eml", "/nachrichten/eingang/1.eml", "/gibt-es-nicht"} {
				resp, body := c.get(path)
				wantRedirect(t, resp, "/anmelden")
				if strings.Contains(body, "Geheimhausen") {
					t.Errorf("GET %s without login leaks order data", path)
				}
			}
			resp, _ := c.get("/bestellungen/" + o.Number)
			if got := resp.Header.Get("Location"); got != "/anmelden?weiter=%2Fbestellungen%2F"+o.Number {
				t.Errorf("redirect keeps the target: got %q", got)
			}
			for _, path := range []string{"/bestellungen/" + o.Number + "/entscheidungen", "/abmelden"} {
				resp, _ := c.do("POST", path, url.Values{"party": {"provider"}, "intent": {"accept"}}, nil)
				wantRedirect(t, resp, "/anmelden")
			}
			if got, _ := env.st.Order(context.Background(), o.Number); len(got.History) != 0 {
				t.Errorf("a decision was recorded without login: %+v", got.History)
			}
			// The login form and its stylesheet are public.
			if resp, body := c.get("/anmelden"); resp.StatusCode != 200 || !strings.Contains(body, `<label for="password">Passwort</label>`) {
				t.Errorf("login form: %d", resp.StatusCode)
			}
			if resp, _ := c.get("/static/style.css"); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
				t.Errorf("stylesheet: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestPagesLogin(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newPageEnv(t, driver, false)
			o := createOrder(t, env.flow, "order-dv.json", "x-1", "")
			c := env.client()
			for _, cred := range [][2]string{{pageUser, "falsch"}, {"jemand", pagePassword}, {pageUser, ""}, {"", ""}} {
				resp, body := c.do("POST", "/anmelden", url.Values{"username": {cred[0]}, "password": {cred[1]}}, nil)
				if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Benutzername oder Passwort ist falsch") {
					t.Errorf("login %q/%q: %d, want 401 with a message", cred[0], cred[1], resp.StatusCode)
				}
				if len(resp.Cookies()) != 0 {
					t.Errorf("login %q/%q set a cookie", cred[0], cred[1])
				}
			}
			resp, _ := c.get("/bestellungen")
			wantRedirect(t, resp, "/anmelden")

			// Login returns to the page first asked for.
			resp, _ = c.do("POST", "/anmelden", url.Values{"username": {pageUser}, "password": {pagePassword},
				"weiter": {"/bestellungen/" + o.Number}}, nil)
			wantRedirect(t, resp, "/bestellungen/"+o.Number)
			var sc *http.Cookie
			for _, ck := range resp.Cookies() {
				if ck.Name == "mailflow_session" {
					sc = ck
				}
			}
			if sc == nil {
				t.Fatal("no session cookie")
			}
			if !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/" || sc.Secure {
				t.Errorf("cookie: HttpOnly=%v SameSite=%v Path=%q Secure=%v", sc.HttpOnly, sc.SameSite, sc.Path, sc.Secure)
			}
			if raw, err := base64URLLen(sc.Value); err != nil || raw != 32 {
				t.Errorf("session id is %d random bytes (%v), want 32", raw, err)
			}
			resp, body := c.get("/bestellungen/" + o.Number)
			if resp.StatusCode != 200 || !strings.Contains(body, "Angemeldet als <strong>"+pageUser) {
				t.Fatalf("with session: %d", resp.StatusCode)
			}
			for k, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "same-origin", "Cache-Control": "no-store"} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("CSP %q", csp)
			}

			// An off-site target is not followed.
			for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example"} {
				resp, _ := c.do("POST", "/anmelden", url.Values{"username": {pageUser}, "password": {pagePassword}, "weiter": {next}}, nil)
				wantRedirect(t, resp, "/bestellungen")
				if loc := resp.Header.Get("Location"); loc != "/bestellungen" {
					t.Errorf("weiter=%q: redirected to %q", next, loc)
				}
			}

			// A login posted from another site is refused; behind a proxy
			// that rewrites Host the forwarded host counts.
			resp, _ = c.do("POST", "/anmelden", url.Values{"username": {pageUser}, "password": {pagePassword}},
				map[string]string{"Origin": "https://evil.example"})
			if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
				t.Errorf("cross-site login: %d, want 403 without a cookie", resp.StatusCode)
			}
			resp, _ = c.do("POST", "/anmelden", url.Values{"username": {pageUser}, "password": {pagePassword}},
				map[string]string{"Origin": "https://mailflow.example", "X-Forwarded-Host": "mailflow.example"})
			wantRedirect(t, resp, "/bestellungen")

			// Logout ends the session on the server, not just the cookie.
			c.login()
			old := c.cookie()
			resp, _ = c.do("POST", "/abmelden", url.Values{"csrf": {c.csrf}}, nil)
			wantRedirect(t, resp, "/anmelden")
			c2 := env.client()
			c2.setCookie(old)
			resp, _ = c2.get("/bestellungen")
			wantRedirect(t, resp, "/anmelden")

			// Sessions end after 2 hours without a request, and after
			// 12 hours however busy.
			c.login()
			for i := 1; i <= 7; i++ {
				env.clock.Add(100 * time.Minute)
				if resp, _ := c.get("/bestellungen"); resp.StatusCode != 200 {
					t.Fatalf("after %d×100 min with requests: %d, want 200", i, resp.StatusCode)
				}
			}
			env.clock.Add(20*time.Minute + time.Second) // 12 h since login
			resp, _ = c.get("/bestellungen")
			wantRedirect(t, resp, "/anmelden")
			c.login()
			env.clock.Add(2*time.Hour - time.Second)
			if resp, _ := c.get("/bestellungen"); resp.StatusCode != 200 {
				t.Errorf("idle 2h less 1s: %d, want 200", resp.StatusCode)
			}
			env.clock.Add(2 * time.Hour)
			resp, _ = c.get("/bestellungen")
			wantRedirect(t, resp, "/anmelden")
		})
	}
}

func base64URLLen(s string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return len(b), err
}

func (c *pageClient) cookie() *http.Cookie {
	u, _ := url.Parse(c.base)
	for _, ck := range c.c.Jar.Cookies(u) {
		if ck.Name == "mailflow_session" {
			return ck
		}
	}
	c.t.Fatal("no session cookie in the jar")
	return nil
}

func (c *pageClient) setCookie(ck *http.Cookie) {
	u, _ := url.Parse(c.base)
	c.c.Jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/"}})
}

func TestPagesSecureCookie(t *testing.T) {
	env := newPageEnv(t, "sqlite", true)
	resp, _ := env.client().do("POST", "/anmelden", url.Values{"username": {pageUser}, "password": {pagePassword}}, nil)
	if len(resp.Cookies()) != 1 || !resp.Cookies()[0].Secure {
		t.Errorf("behind TLS the session cookie must be Secure: %v", resp.Header["Set-Cookie"])
	}
}

func TestPagesLoginRateLimit(t *testing.T) {
	env := newPageEnv(t, "sqlite", false)
	c := env.client()
	for i := 0; i < 10; i++ {
		resp, _ := c.do("POST", "/anmelden", url.Values{"username": {pageUser}, "password": {fmt.Sprint("rate-", i)}}, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	resp, body := c.do("POST", "/anmelden", url.Values{"username": {pageUser}, "password": {pagePassword}}, nil)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Zu viele fehlgeschlagene Anmeldeversuche") || len(resp.Cookies()) != 0 {
		t.Fatalf("after 10 failures even the right password waits: got %d", resp.StatusCode)
	}
	env.clock.Add(16 * time.Minute)
	resp, _ = c.do("POST", "/anmelden", url.Values{"username": {pageUser}, "password": {pagePassword}}, nil)
	wantRedirect(t, resp, "/bestellungen")
}

func TestPagesCSRF(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newPageEnv(t, driver, false)
			o := createOrder(t, env.flow, "order-dv.json", "x-1", "")
			c := env.client()
			c.login()
			path := "/bestellungen/" + o.Number + "/entscheidungen"
			form := func(token string) url.Values {
				v := url.Values{"party": {"provider"}, "intent": {"accept"}}
				if token != "" {
					v.Set("csrf", token)
				}
				return v
			}
			other := env.client()
			other.login()
			for name, tc := range map[string]struct {
				form url.Values
				hdr  map[string]string
			}{
				"missing token":         {form(""), nil},
				"wrong token":           {form("AAAA" + c.csrf[4:]), nil},
				"other session's token": {form(other.csrf), nil},
				"foreign origin":        {form(c.csrf), map[string]string{"Origin": "https://evil.example"}},
				"null origin":           {form(c.csrf), map[string]string{"Origin": "null"}},
				"foreign referer":       {form(c.csrf), map[string]string{"Referer": "https://evil.example/x"}},
			} {
				resp, body := c.do("POST", path, tc.form, tc.hdr)
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "CSRF") {
					t.Errorf("%s: %d, want 403", name, resp.StatusCode)
				}
			}
			resp, _ := c.do("POST", "/abmelden", url.Values{}, nil)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("logout without token: %d, want 403", resp.StatusCode)
			}
			if got, _ := env.st.Order(context.Background(), o.Number); len(got.History) != 0 || got.Status != mailflow.StatusOpen {
				t.Fatalf("a refused POST recorded something: %+v", got.History)
			}
			resp, _ = c.do("POST", path, form(c.csrf), map[string]string{"Origin": c.base, "Referer": c.base + "/bestellungen/" + o.Number})
			wantRedirect(t, resp, "/bestellungen/"+o.Number)
		})
	}
}

func TestPagesDecisionForm(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newPageEnv(t, driver, false)
			dv := createOrder(t, env.flow, "order-dv.json", "x-dv", "")
			uv := createOrder(t, env.flow, "order-uv.json", "x-uv", "")
			c := env.client()
			c.login()

			// The party select offers the intermediary only for UV.
			_, body := c.get("/bestellungen/" + dv.Number)
			if strings.Contains(body, `<option value="intermediary"`) || !strings.Contains(body, `<option value="provider">Anbieter</option>`) {
				t.Error("DV form: party options wrong")
			}
			_, body = c.get("/bestellungen/" + uv.Number)
			if !strings.Contains(body, `<option value="intermediary">Intermediär</option>`) {
				t.Error("UV form: no intermediary option")
			}

			for _, tc := range []struct {
				name   string
				number string
				form   url.Values
				field  string
				want   string
			}{
				{"reject without reason", dv.Number, url.Values{"party": {"provider"}, "intent": {"reject"}, "reason": {"  "}},
					"reason", "Grund: Für eine Ablehnung ist ein Grund erforderlich."},
				{"intermediary on DV", dv.Number, url.Values{"party": {"intermediary"}, "intent": {"accept"}},
					"party", "Partei: Eine Bestellung im Direktvertrag (DV) hat keinen Intermediär."},
				{"no party", uv.Number, url.Values{"intent": {"accept"}}, "party", "Partei: Bitte wählen Sie die Partei"},
				{"no intent", uv.Number, url.Values{"party": {"intermediary"}}, "intent", "Erklärung: Bitte wählen Sie eine Erklärung"},
				{"reason too long", uv.Number, url.Values{"party": {"intermediary"}, "intent": {"reject"}, "reason": {strings.Repeat("x", 4001)}},
					"reason", "Grund: Der Grund darf höchstens 4000 Zeichen lang sein."},
				{"4000 characters in 7999 bytes are not too long, a NUL is refused", uv.Number, url.Values{"party": {"intermediary"}, "intent": {"reject"}, "reason": {strings.Repeat("ü", 3999) + "\x00"}},
					"reason", "Grund: Der Grund enthält Zeichen, die kein Text sind."},
			} {
				tc.form.Set("csrf", c.csrf)
				resp, body := c.do("POST", "/bestellungen/"+tc.number+"/entscheidungen", tc.form, nil)
				if resp.StatusCode != http.StatusUnprocessableEntity {
					t.Errorf("%s: %d, want 422", tc.name, resp.StatusCode)
					continue
				}
				if !strings.Contains(body, tc.want) {
					t.Errorf("%s: the page does not say %q", tc.name, tc.want)
				}
				if !strings.Contains(body, `id="`+tc.field+`" name="`+tc.field+`" `) ||
					!regexp.MustCompile(`id="`+tc.field+`" name="`+tc.field+`"[^>]*aria-describedby="`+tc.field+`-error"`).MatchString(body) ||
					!strings.Contains(body, `<span class="field-error" id="`+tc.field+`-error">`) {
					t.Errorf("%s: control %s is not described by its error", tc.name, tc.field)
				}
				if !strings.Contains(body, `<a href="#`+tc.field+`">`) {
					t.Errorf("%s: error summary does not link to #%s", tc.name, tc.field)
				}
			}
			// What was entered survives the round trip.
			resp, body := c.do("POST", "/bestellungen/"+uv.Number+"/entscheidungen",
				url.Values{"csrf": {c.csrf}, "party": {"provider"}, "intent": {"reject"}}, nil)
			if resp.StatusCode != 422 || !strings.Contains(body, `<option value="provider" selected>`) || !strings.Contains(body, `<option value="reject" selected>`) {
				t.Errorf("entered values lost on re-render: %d", resp.StatusCode)
			}
			for _, n := range []string{dv.Number, uv.Number} {
				if got, _ := env.st.Order(context.Background(), n); len(got.History) != 0 {
					t.Fatalf("an invalid decision was recorded on %s", n)
				}
			}

			// Valid decisions go through Flow.Decide as manual ones by the
			// logged-in coordinator.
			post := func(number string, v url.Values) {
				t.Helper()
				v.Set("csrf", c.csrf)
				resp, body := c.do("POST", "/bestellungen/"+number+"/entscheidungen", v, nil)
				if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/bestellungen/"+number+"?erfasst=1#verlauf" {
					t.Fatalf("decide: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
				}
			}
			post(uv.Number, url.Values{"party": {"intermediary"}, "intent": {"accept"}})
			post(uv.Number, url.Values{"party": {"provider"}, "intent": {"reject"}, "reason": {"Kein Rechenzentrum frei <b>bis 2027</b>"}})
			got, err := env.st.Order(context.Background(), uv.Number)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != mailflow.StatusRejectedProviderUV || len(got.History) != 2 {
				t.Fatalf("status %s, %d decisions", got.Status, len(got.History))
			}
			for _, d := range got.History {
				if d.Source != mailflow.SourceManual || d.Actor != pageUser {
					t.Errorf("decision %+v: want source manual by %s", d, pageUser)
				}
			}
			_, body = c.get("/bestellungen/" + uv.Number + "?erfasst=1")
			for _, want := range []string{"Die Entscheidung wurde erfasst.", `<span class="status-label">Abgelehnt durch Anbieter (UV)</span>`,
				`data-label="Partei">Intermediär</td>`, `data-label="Erklärung">Angenommen</td>`, `data-label="Erklärung">Abgelehnt</td>`, `data-label="Quelle">manuell</td>`, `data-label="Absender/Akteur" class="wrap">` + pageUser,
				`Grund der Ablehnung:</strong></p><p class="reason">Kein Rechenzentrum frei &lt;b&gt;bis 2027&lt;/b&gt;</p>`,
				"Kein Rechenzentrum frei &lt;b&gt;bis 2027&lt;/b&gt;", "Die Bestellung ist abgeschlossen."} {
				if !strings.Contains(body, want) {
					t.Errorf("detail after decisions lacks %q", want)
				}
			}
			if resp, _ := c.do("POST", "/bestellungen/2026-999999/entscheidungen", url.Values{"csrf": {c.csrf}, "party": {"provider"}, "intent": {"accept"}}, nil); resp.StatusCode != 404 {
				t.Errorf("decision on an unknown order: %d, want 404", resp.StatusCode)
			}
		})
	}
}

func TestPagesMessages(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newPageEnv(t, driver, false)
			o := createOrder(t, env.flow, "order-dv.json", "x-1", "")
			ctx := context.Background()
			outRaw := []byte("From: mailflow@example.org\r\nTo: bestellungen@dataport.example\r\nSubject: [Bestellung " + o.Number + "] Neue Bestellung\r\nMessage-ID: <out-1@example.org>\r\n\r\nBitte best\xc3\xa4tigen.\r\n")
			out := &mailflow.OutboxMessage{OrderID: o.ID, Ref: 4711, Kind: mailflow.KindNotification, Party: "provider",
				Sender: "mailflow@example.org", Recipients: []string{"bestellungen@dataport.example"},
				MessageID: "<out-1@example.org>", Subject: "[Bestellung " + o.Number + "] Neue Bestellung", Raw: outRaw}
			if err := env.st.InTx(ctx, func(tx mailflow.Tx) error { return tx.Enqueue(out) }); err != nil {
				t.Fatal(err)
			}
			inRaw := []byte("From: bestellungen@dataport.example\r\nSubject: Re: [Bestellung " + o.Number + "]\r\nMessage-ID: <in-1@dataport.example>\r\n\r\nBEST\xc3\x84TIGT\r\n\r\n> zitiert\r\n")
			in := &mailflow.InboundMessage{MessageID: "<in-1@dataport.example>", SHA256: "x", ReceivedAt: env.clock.Now(),
				From: "bestellungen@dataport.example", Subject: "Re: [Bestellung " + o.Number + "]", Size: int64(len(inRaw)), Raw: inRaw}
			err := env.st.InboxTx(ctx, func(tx mailflow.InboxTx) error {
				if _, err := tx.ClaimInbound(in); err != nil {
					return err
				}
				in.Verdict, in.OrderID, in.Party, in.Intent = mailflow.VerdictApplied, o.ID, "provider", mailflow.IntentAccept
				return tx.FinishInbound(in)
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := env.flow.Decide(ctx, o.Number, mailflow.Decision{Party: "provider", Intent: "accept", Source: mailflow.SourceEmail,
				Actor: "bestellungen@dataport.example", MessageID: in.MessageID}); err != nil {
				t.Fatal(err)
			}
			c := env.client()
			c.login()
			_, body := c.get("/bestellungen/" + o.Number)
			outLink := fmt.Sprintf(`/nachrichten/ausgang/%d.eml`, out.ID)
			inLink := fmt.Sprintf(`/nachrichten/eingang/%d.eml`, in.ID)
			for _, want := range []string{`href="` + outLink + `"`, `href="` + inLink + `"`, "Bestellmitteilung", "verarbeitet",
				`data-label="Quelle">E-Mail</td>`, fmt.Sprintf(`bestellungen@dataport.example (<a href="#nachricht-eingang-%d">Nachricht</a>)`, in.ID)} {
				if !strings.Contains(body, want) {
					t.Errorf("detail lacks %q", want)
				}
			}
			for link, raw := range map[string][]byte{outLink: outRaw, inLink: inRaw} {
				resp, body := c.get(link)
				if resp.StatusCode != 200 || body != string(raw) {
					t.Errorf("%s: %d, body differs from the stored bytes", link, resp.StatusCode)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "message/rfc822" {
					t.Errorf("%s: Content-Type %q", link, ct)
				}
				if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment; filename=") || !strings.HasSuffix(cd, `.eml"`) {
					t.Errorf("%s: Content-Disposition %q", link, cd)
				}
			}
			for _, link := range []string{"/nachrichten/ausgang/999.eml", "/nachrichten/eingang/999.eml", "/nachrichten/eingang/abc.eml", "/nachrichten/eingang/1.txt"} {
				if resp, _ := c.get(link); resp.StatusCode != 404 {
					t.Errorf("%s: %d, want 404", link, resp.StatusCode)
				}
			}
		})
	}
}

func TestPagesEscaping(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newPageEnv(t, driver, false)
			evil := `<script>alert("x")</script> Amt & "Söhne"`
			o := createOrder(t, env.flow, "order-dv.json", "x-1", evil)
			c := env.client()
			c.login()
			for _, path := range []string{"/bestellungen", "/bestellungen/" + o.Number, "/bestellungen?q=" + url.QueryEscape(evil)} {
				resp, body := c.get(path)
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %d", path, resp.StatusCode)
				}
				if strings.Contains(body, "<script") {
					t.Errorf("%s: customer name is not escaped", path)
				}
				if !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Amt &amp; &#34;Söhne&#34;") {
					t.Errorf("%s: escaped customer name not shown", path)
				}
			}
		})
	}
}

// cardPattern matches the status card of s with its label, its
// explanation as the title and its family's icon.
func cardPattern(s mailflow.Status, label string) string {
	return `<span class="status family-` + s.Family() + `" data-family="` + s.Family() + `" data-status="` + string(s) +
		`" title="[^"]+"><svg class="status-icon shape-[a-z]+"[^>]*>.*?</svg><span class="status-label">` + regexp.QuoteMeta(label) + `</span></span>`
}

func hasCard(body string, s mailflow.Status, label string) bool {
	return regexp.MustCompile(cardPattern(s, label)).MatchString(body)
}

var orderRow = regexp.MustCompile(`(?s)<tr data-number="([^"]+)">(.*?)</tr>`)

// rows returns the order rows of a list page by number.
func rows(body string) map[string]string {
	out := map[string]string{}
	for _, m := range orderRow.FindAllStringSubmatch(body, -1) {
		out[m[1]] = m[2]
	}
	return out
}

func TestPagesList(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newPageEnv(t, driver, false)
			seeds := seedAllStatuses(t, env.flow)
			if err := env.st.InboxTx(context.Background(), func(tx mailflow.InboxTx) error {
				m := &mailflow.InboundMessage{MessageID: "<unmatched@x.example>", SHA256: "y", ReceivedAt: env.clock.Now()}
				if _, err := tx.ClaimInbound(m); err != nil {
					return err
				}
				m.Verdict, m.NeedsReview = mailflow.VerdictUnmatched, true
				return tx.FinishInbound(m)
			}); err != nil {
				t.Fatal(err)
			}
			c := env.client()
			c.login()
			resp, body := c.get("/bestellungen")
			if resp.StatusCode != 200 {
				t.Fatal(resp.StatusCode)
			}
			all := rows(body)
			if len(all) != 11 {
				t.Fatalf("list shows %d rows, want 11", len(all))
			}
			for s, sd := range seeds {
				row := all[sd.Number]
				if !hasCard(row, s, s.Label()) {
					t.Errorf("row of %s lacks its card %s", sd.Number, s.Label())
				}
				if !strings.Contains(row, `<a href="/bestellungen/`+sd.Number+`">`) || !strings.Contains(row, sd.Customer) || !strings.Contains(row, ">"+sd.Model+"</abbr>") {
					t.Errorf("row of %s lacks link, customer or model: %s", sd.Number, row)
				}
				if !regexp.MustCompile(`href="/bestellungen\?status=` + string(s) + `">` + cardPattern(s, s.Label()) + ` <span class="count">1</span>`).MatchString(body) {
					t.Errorf("summary lacks the count of %s", s)
				}
			}
			// 2026-11-20T10:00:00+01:00 shown in Berlin time.
			if !strings.Contains(body, `<time datetime="2026-11-20T09:00:00Z">20.11.2026 10:00</time>`) {
				t.Error("order date is not shown as dd.mm.yyyy HH:MM in Europe/Berlin")
			}
			if !strings.Contains(body, `Nachrichten zur Prüfung: <span id="review-count">1</span>`) {
				t.Error("review count missing")
			}

			for _, tc := range []struct {
				query string
				want  []string
			}{
				{"status=ordered", []string{seeds[mailflow.StatusOrdered].Number}},
				{"status=review_provider_uv", []string{seeds[mailflow.StatusReviewProviderUV].Number}},
				{"q=" + seeds[mailflow.StatusRejectedIntermediary].Number, []string{seeds[mailflow.StatusRejectedIntermediary].Number}},
				{"q=" + url.QueryEscape("GÖRLITZ"), []string{seeds[mailflow.Statuses[6]].Number}},
				{"q=dataport", numbersOfModel(seeds, "DV")},
				{"q=it.nrw&status=rejected_provider_uv", []string{seeds[mailflow.StatusRejectedProviderUV].Number}},
				{"q=dataport&status=rejected_provider_uv", nil},
				{"q=100%25", nil},
			} {
				resp, body := c.get("/bestellungen?" + tc.query)
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %d", tc.query, resp.StatusCode)
				}
				got := rows(body)
				if len(got) != len(tc.want) {
					t.Errorf("%s: %d rows, want %d", tc.query, len(got), len(tc.want))
				}
				for _, n := range tc.want {
					if _, ok := got[n]; !ok {
						t.Errorf("%s: %s missing", tc.query, n)
					}
				}
				if len(tc.want) == 0 && !strings.Contains(body, "Keine Bestellungen gefunden.") {
					t.Errorf("%s: no empty-list message", tc.query)
				}
			}
			_, body = c.get("/bestellungen?status=ordered")
			if !strings.Contains(body, `<option value="ordered" selected>Bestellt (1)</option>`) {
				t.Error("the filter select does not keep the chosen status")
			}
			for _, s := range mailflow.Statuses {
				if !strings.Contains(body, `<option value="`+string(s)+`"`) {
					t.Errorf("filter select lacks %s", s)
				}
			}
		})
	}
}

func numbersOfModel(seeds map[mailflow.Status]seeded, model string) []string {
	var out []string
	for _, s := range seeds {
		if s.Model == model {
			out = append(out, s.Number)
		}
	}
	return out
}

func TestPagesPagination(t *testing.T) {
	env := newPageEnv(t, "sqlite", false)
	var numbers []string
	for i := 0; i < 53; i++ {
		numbers = append(numbers, createOrder(t, env.flow, "order-dv.json", fmt.Sprint("p-", i), "").Number)
	}
	c := env.client()
	c.login()
	_, body := c.get("/bestellungen")
	first := rows(body)
	if len(first) != 50 || !strings.Contains(body, "Seite 1 von 2") || !strings.Contains(body, `href="/bestellungen?seite=2" rel="next"`) {
		t.Fatalf("page 1: %d rows", len(first))
	}
	if _, ok := first[numbers[52]]; !ok {
		t.Error("newest order not on page 1")
	}
	_, body = c.get("/bestellungen?seite=2")
	second := rows(body)
	if len(second) != 3 || !strings.Contains(body, `href="/bestellungen" rel="prev"`) {
		t.Fatalf("page 2: %d rows", len(second))
	}
	for n := range second {
		if _, dup := first[n]; dup {
			t.Errorf("%s on both pages", n)
		}
	}
	_, body = c.get("/bestellungen?q=musterstadt&seite=2")
	if !strings.Contains(body, `href="/bestellungen?q=musterstadt" rel="prev"`) {
		t.Error("pagination drops the search")
	}
	for _, p := range []string{"99", "-1", "x"} {
		if resp, body := c.get("/bestellungen?seite=" + p); resp.StatusCode != 200 || len(rows(body)) == 0 {
			t.Errorf("seite=%s: %d", p, resp.StatusCode)
		}
	}
}

func TestPagesDetail(t *testing.T) {
	env := newPageEnv(t, "sqlite", false)
	seeds := seedAllStatuses(t, env.flow)
	c := env.client()
	c.login()
	// Every page renders: the detail page in every status.
	for _, s := range mailflow.Statuses {
		resp, body := c.get("/bestellungen/" + seeds[s].Number)
		if resp.StatusCode != 200 || !hasCard(body, s, s.Label()) {
			t.Errorf("detail of %s: %d", s, resp.StatusCode)
		}
	}
	o, _ := env.st.Order(context.Background(), seeds[mailflow.StatusOrdered].Number)
	_, body := c.get("/bestellungen/" + o.Number)
	for _, want := range []string{
		`<html lang="de">`, `<a class="skip-link" href="#inhalt">`,
		"Stadt Hameln", "Markt 1, 12345 Musterstadt", "Erika Mustermann", "K-1001", "04011000-12345-03",
		"Verwaltungs-Mail", "Open-Xchange AG", "1.200,00 EUR monatlich, zzgl. 19 % USt.",
		`<th scope="row">nutzer</th><td data-label="Wert">250</td>`, `<th scope="row">region</th><td data-label="Wert">nord</td>`,
		"AGB: Allgemeine Geschäftsbedingungen des Cloud-Service-Portals", "2026-1", "01.07.2026", "unbefristet",
		o.Snapshot.Terms.SHA256, o.Snapshot.Conditions.SHA256,
		"Verbindlich seit", "Bereitstellungsfrist", zeitBerlin(*o.ProvisioningDeadline()),
		`>In Bearbeitung</td>`, `>Angenommen</td>`, `>E-Mail</td>`, "provider@absender.example", `data-label="Wirkung">wirksam</td>`,
		`<th scope="col">Absender/Akteur</th>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("detail of a binding order lacks %q", want)
		}
	}
	if o.Snapshot.Terms.SHA256 == "" {
		t.Error("seeded order has no AGB hash")
	}
	// Every form control has a label.
	for _, page := range []string{"/bestellungen", "/bestellungen/" + o.Number} {
		_, body := c.get(page)
		assertLabelled(t, page, body)
	}
	assertLabelled(t, "/anmelden", func() string { _, b := env.client().get("/anmelden"); return b }())
	if resp, body := c.get("/bestellungen/2026-999999"); resp.StatusCode != 404 || !strings.Contains(body, "Nicht gefunden") {
		t.Errorf("unknown order: %d", resp.StatusCode)
	}
	if resp, body := c.get("/gibt-es-nicht"); resp.StatusCode != 404 || !strings.Contains(body, "Seite nicht gefunden") {
		t.Errorf("unknown page: %d", resp.StatusCode)
	}
}

func zeitBerlin(t time.Time) string {
	loc, _ := time.LoadLocation("Europe/Berlin")
	return t.In(loc).Format("02.01.2006 15:04")
}

var (
	controlRe = regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`)
	idRe      = regexp.MustCompile(`\bid="([^"]+)"`)
)

// assertLabelled checks that every visible form control has a <label for>.
func assertLabelled(t *testing.T, page, body string) {
	t.Helper()
	n := 0
	for _, m := range controlRe.FindAllString(body, -1) {
		if strings.Contains(m, `type="hidden"`) {
			continue
		}
		n++
		id := idRe.FindStringSubmatch(m)
		if id == nil || !strings.Contains(body, `<label for="`+id[1]+`">`) {
			t.Errorf("%s: control without label: %s", page, m)
		}
	}
	if n == 0 {
		t.Errorf("%s: no form controls found", page)
	}
}

func TestNewPagesNeedsCredentials(t *testing.T) {
	st := storagetest.Open(t, "sqlite")
	for _, cfg := range []web.Pages{
		{Flow: &mailflow.Flow{Store: st}, Store: st, Username: "a"},
		{Flow: &mailflow.Flow{Store: st}, Store: st, Password: "b"},
		{Store: st, Username: "a", Password: "b"},
	} {
		if _, err := web.NewPages(cfg); err == nil {
			t.Errorf("NewPages(%+v) accepted an incomplete configuration", cfg)
		}
	}
}

// TestPagesInServer mounts the page in the API server as cmd/mailflow
// does: the API keeps its bearer tokens, health stays public, the rest
// goes to the page and its login.
func TestPagesInServer(t *testing.T) {
	st := storagetest.Open(t, "sqlite")
	flow := &mailflow.Flow{Store: st}
	pages, err := web.NewPages(web.Pages{Flow: flow, Store: st, Username: pageUser, Password: pagePassword,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := &web.Server{Flow: flow, Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Tokens: []web.Token{{Name: "erika", Role: web.RoleCoordinator, Token: coordToken}},
		Extra:  map[string]http.Handler{"/": pages.Handler()}}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c := &pageClient{t: t, base: hs.URL, c: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if resp, body := c.get("/healthz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}
	if resp, _ := c.get("/readyz"); resp.StatusCode != 200 {
		t.Errorf("/readyz: %d", resp.StatusCode)
	}
	if resp, _ := c.get("/api/v1/orders"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API without token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := c.do("GET", "/api/v1/orders", nil, map[string]string{"Authorization": "Bearer " + coordToken}); resp.StatusCode != 200 {
		t.Errorf("API with token: %d", resp.StatusCode)
	}
	for _, path := range []string{"/", "/bestellungen", "/metrics-or-anything"} {
		resp, _ := c.get(path)
		wantRedirect(t, resp, "/anmelden")
	}
	if resp, _ := c.get("/anmelden"); resp.StatusCode != 200 {
		t.Errorf("/anmelden: %d", resp.StatusCode)
	}
}
