package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/smtp"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailflow/examples"
	"mailflow/mailflow"
	"mailflow/storage"
)

// finalLine is one line of the demo's final table: number, code, label.
var finalLine = regexp.MustCompile(`(?m)^  (\d{4}-\d{6})  (\S+) +(.+?) +(ok|ERWARTET \S+)$`)

// finalStatuses reads the table after "Endstand".
func finalStatuses(t *testing.T, out string) map[string]string {
	t.Helper()
	_, table, ok := strings.Cut(out, "\nEndstand\n")
	if !ok {
		t.Fatalf("no final table in the output:\n%s", out)
	}
	got := map[string]string{}
	for _, m := range finalLine.FindAllStringSubmatch(table, -1) {
		got[m[1]] = m[2]
		if label := mailflow.Status(m[2]).Label(); label != m[3] {
			t.Errorf("%s: label %q, want %q", m[1], m[3], label)
		}
	}
	return got
}

func runDemo(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	err := run(ctx, append([]string{"demo", "-once", "-listen", "127.0.0.1:0"}, args...), &out, &errb)
	if err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the demo took %v, want under 10 s", d)
	}
	t.Logf("demo output:\n%s", out.String())
	return out.String()
}

func TestDemoOnce(t *testing.T) {
	out := runDemo(t)
	want := map[string]string{"2026-000001": "ordered", "2026-000002": "rejected_provider_uv"}
	if got := finalStatuses(t, out); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("final statuses %v, want %v", got, want)
	}
	// The lifecycle as it happened, in this order: the out-of-office is
	// read and ignored, then each reply moves its order on, and the mails
	// of docs/design.md §3 go out.
	steps := []string{
		"2026-000001  neue Bestellung",
		"2026-000002  neue Bestellung",
		"Bestellbenachrichtigung → Anbieter Dataport AöR <bestellungen@dataport.example>",
		"Abwesenheitsnotiz",
		"Eingang gelesen per IMAP: automatische Antwort",
		"2026-000001  Status bleibt Offen",
		"Anmeldelink → Anbieter Dataport AöR <bestellungen@dataport.example>",
		"Anmeldelink: http://",
		"angemeldet als bestellungen@dataport.example; die Liste zeigt 1 Bestellung",
		"erklärt auf der Statusseite: In Prüfung",
		"2026-000001  Offen → In Prüfung durch Anbieter (DV)",
		"Eingangsbestätigung → Anbieter Dataport AöR",
		"2026-000001  In Prüfung durch Anbieter (DV) → Bestellt",
		"verbindliche Bestätigung → Kunde Stadt Musterstadt <it@musterstadt.example>",
		"2026-000002  Offen → Bestätigt durch Intermediär",
		"ABGELEHNT: Kapazität im Rechenzentrum erschöpft",
		"2026-000002  Bestätigt durch Intermediär → Abgelehnt durch Anbieter (UV)",
		"Ablehnung → Kunde Landkreis Beispielkreis <beschaffung@beispielkreis.example>",
		"\nEndstand\n",
	}
	rest := out
	for _, s := range steps {
		i := strings.Index(rest, s)
		if i < 0 {
			t.Fatalf("output lacks %q after the steps before it", s)
		}
		rest = rest[i+len(s):]
	}
	// -once prints no logins: nothing to serve.
	if strings.Contains(out, "Passwort") || strings.Contains(out, "Portal-Token") {
		t.Error("-once printed credentials")
	}
}

func TestDemoOnceKeepsDatabase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "demo.db")
	runDemo(t, "-db", db)
	// A second run on the same file: new orders, and the new IMAP server's
	// messages are not mistaken for the first run's.
	out := runDemo(t, "-db", db)
	want := map[string]string{"2026-000003": "ordered", "2026-000004": "rejected_provider_uv"}
	if got := finalStatuses(t, out); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("second run: final statuses %v, want %v", got, want)
	}

	s, err := storage.Open(context.Background(), "sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	orders, err := s.Orders(context.Background(), mailflow.OrderFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range orders {
		got[o.Number] = o.ExternalID + " " + string(o.Status)
	}
	wantDB := map[string]string{
		"2026-000001": "csp-4711 ordered", "2026-000002": "csp-4712 rejected_provider_uv",
		"2026-000003": "csp-4711-2 ordered", "2026-000004": "csp-4712-2 rejected_provider_uv",
	}
	if fmt.Sprint(got) != fmt.Sprint(wantDB) {
		t.Errorf("orders in %s: %v, want %v", db, got, wantDB)
	}
}

// syncBuffer is a bytes.Buffer the demo writes to while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestDemoServes uses what the interactive demo prints: the status page
// login, the portal token, the mail client's IMAP login, and an answer by
// hand through the demo's SMTP server, which the daemon reads and applies.
func TestDemoServes(t *testing.T) {
	var out, errb syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"demo", "-listen", "127.0.0.1:0"}, &out, &errb) }()
	waitOut := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), what) {
			select {
			case err := <-done:
				t.Fatalf("demo ended: %v\n%s\n%s", err, out.String(), errb.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("output lacks %q:\n%s", what, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitOut("Strg-C beendet die Demo")
	printed := func(re string) string {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("output lacks %s:\n%s", re, out.String())
		}
		return m[1]
	}
	base := printed(`Statusseite  (http://\S+)/anmelden`)
	coordPass := printed(`Benutzer koordinierung, Passwort (\S+)`)
	portal := printed(`Portal-Token (\S+)`)
	coord := printed(`Koordinierungs-Token (\S+)`)
	imapAddr := printed(`IMAP  (127\.0\.0\.1 Port \d+)`)
	demoPass := printed(`Benutzer demo  Passwort (\S+)`)
	smtpAddr := printed(`SMTP  (127\.0\.0\.1 Port \d+)`)
	hostPort := func(s string) string { h, p, _ := strings.Cut(s, " Port "); return h + ":" + p }

	// The status page login works with the printed password.
	form := url.Values{"username": {"koordinierung"}, "password": {coordPass}, "weiter": {"/bestellungen"}}
	req, _ := http.NewRequest("POST", base+"/anmelden", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) == 0 {
		t.Errorf("login with the printed password: %s", resp.Status)
	}

	// A provider signs in with a link for one of the printed addresses;
	// the demo prints the link it mailed, and the provider sees its own
	// order only.
	if !strings.Contains(out.String(), "IT.NRW (Anbieter, UV)             orders@it.nrw.example") {
		t.Errorf("the instructions do not say how to sign in as a provider:\n%s", out.String())
	}
	printedLinks := func() []string {
		return regexp.MustCompile(`Anmeldelink: (\S+)`).FindAllString(out.String(), -1)
	}
	before := len(printedLinks())
	form = url.Values{"email": {"orders@it.nrw.example"}}
	req, _ = http.NewRequest("POST", base+"/anmelden/link", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err = noRedirect.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("ask for a sign-in link: %v %v", resp, err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(20 * time.Second)
	for len(printedLinks()) == before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	links := printedLinks()
	if len(links) == before {
		t.Fatalf("no sign-in link printed:\n%s", out.String())
	}
	link := strings.TrimPrefix(links[len(links)-1], "Anmeldelink: ")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err = browser.PostForm(link, url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Request.URL.Path != "/bestellungen" || bytes.Count(page, []byte("<tr data-number=")) != 1 || !bytes.Contains(page, []byte("2026-000002")) {
		t.Errorf("signed in as IT.NRW: %s at %s, want the UV order only", resp.Status, resp.Request.URL)
	}

	// The person's mailbox holds the notifications.
	c, err := imapclient.DialInsecure(hostPort(imapAddr), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("demo", demoPass).Wait(); err != nil {
		t.Fatalf("IMAP login with the printed password: %v", err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages < 3 {
		t.Errorf("demo's INBOX: %v messages, %v", sel, err)
	}
	c.Logout().Wait()
	c.Close()

	// A new order through the API with the printed portal token, answered
	// by hand from the registered demo address through the demo's SMTP
	// server. The reply goes to the plain address and is matched by the
	// token in In-Reply-To, as from a server without plus-addressing.
	order := bytes.Replace(examples.OrderDV(), []byte(`"csp-4711"`), []byte(`"csp-by-hand"`), 1)
	req, _ = http.NewRequest("POST", base+"/api/v1/orders", bytes.NewReader(order))
	req.Header.Set("Authorization", "Bearer "+portal)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var o struct {
		Number   string
		Messages []struct {
			Kind      string
			MessageID string `json:"message_id"`
		}
	}
	if err := json.Unmarshal(body, &o); resp.StatusCode != http.StatusCreated || err != nil || o.Number == "" {
		t.Fatalf("create order: %s %s", resp.Status, body)
	}
	if len(o.Messages) != 0 || bytes.Contains(body, []byte("message_id")) {
		t.Errorf("the portal's view of its new order shows messages: %s", body)
	}
	// The coordinator's view has the notifications' Message-IDs.
	req, _ = http.NewRequest("GET", base+"/api/v1/orders/"+o.Number, nil)
	req.Header.Set("Authorization", "Bearer "+coord)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(body, &o); resp.StatusCode != http.StatusOK || err != nil || len(o.Messages) == 0 {
		t.Fatalf("read order as coordinator: %s %s", resp.Status, body)
	}
	waitOut(o.Number + "  neue Bestellung")
	msg := fmt.Sprintf("From: Demo <%s>\r\nTo: bestellungen@example.org\r\nSubject: Re: [Bestellung %s]\r\n"+
		"Message-ID: <by-hand@demo.example>\r\nIn-Reply-To: <%s>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBestätigt.\r\n",
		demoPersonAddress, o.Number, o.Messages[0].MessageID)
	if err := smtp.SendMail(hostPort(smtpAddr), nil, demoPersonAddress, []string{"bestellungen@example.org"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	waitOut(o.Number + "  ← demo@demo.example: Re: [Bestellung " + o.Number + "] — applied")
	waitOut(o.Number + "  Offen → Bestellt")
	waitOut("verbindliche Bestätigung → Kunde Stadt Musterstadt")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo after Ctrl-C: %v\n%s", err, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop within 30 s of Ctrl-C")
	}
	if !strings.Contains(out.String(), "Demo beendet.") {
		t.Errorf("no goodbye:\n%s", out.String())
	}
}
