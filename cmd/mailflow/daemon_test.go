package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mailflow/examples"
	"mailflow/internal/mailtest"
	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// imapBox is what the end-to-end test needs of an IMAP server: the
// in-process one and a real Dovecot both have it.
type imapBox interface {
	Host() string
	Port() int
	Append(mailbox string, raw []byte) error
	UIDs(mailbox string) ([]uint32, error)
	Messages(mailbox string) ([]mailtest.IMAPMessage, error)
}

type e2e struct {
	t      *testing.T
	smtp   *mailtest.SMTPServer
	imap   imapBox
	base   string
	cancel context.CancelFunc
	done   chan error
	d      *daemon
}

const (
	e2ePortal = "portal-token-0123456789"
	e2eCoord  = "coordinator-token-0123456789"
)

// startDaemon runs the real daemon against the given IMAP server, an
// in-process SMTP server and a database of the driver.
func startDaemon(t *testing.T, box imapBox, user, pass, driver string) *e2e {
	t.Helper()
	smtpSrv := mailtest.NewSMTPServer(t)
	drv, dsn := storagetest.DSN(t, driver)
	c := daemonConfig{driver: drv, dsn: dsn, smtpPort: smtpSrv.Port, imapPort: box.Port(), imapUser: user, imapPass: pass,
		coordPassword: "demo-password-123"}
	cfg, err := loadConfig(c.write(t))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e := runDaemon(t, cfg, log)
	e.smtp, e.imap = smtpSrv, box
	return e
}

// runDaemon runs the daemon of cfg in this process until the test ends,
// with the example catalog imported.
func runDaemon(t *testing.T, cfg *Config, log *slog.Logger) *e2e {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := newDaemon(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := d.listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	e := &e2e{t: t, base: "http://" + d.listener.Addr().String(), cancel: cancel, done: make(chan error, 1), d: d}
	go func() { e.done <- d.run(ctx) }()
	t.Cleanup(e.stop)
	e.api("PUT", "/api/v1/catalog", e2eCoord, examples.Catalog(), 200)
	return e
}

// daemonConfig is the configuration of a test's daemon.
type daemonConfig struct {
	driver, dsn        string
	listen             string // default 127.0.0.1:0
	smtpPort           int
	imapPort           int
	imapUser, imapPass string
	retryBase          string // default 200ms
	retryMax           string // default 2s
	lease              string // default 10s
	pollInterval       string // default 1h: new mail must arrive through IDLE
	coordPassword      string // the status page's login; none by default
}

func (c daemonConfig) write(t *testing.T) string {
	t.Helper()
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	text := fmt.Sprintf(`
[database]
driver = %q
dsn = %q
[http]
listen = %q
[[http.tokens]]
role = "portal"
token = %q
[[http.tokens]]
name = "erika"
role = "coordinator"
token = %q
[smtp]
host = "127.0.0.1"
port = %d
tls = "none"
from = "DVC Bestellservice <bestellungen@example.org>"
retry_base = %q
retry_max = %q
lease = %q
[imap]
host = "127.0.0.1"
port = %d
tls = "none"
username = %q
password = %q
idle = true
poll_interval = %q
[replies]
address = "bestellungen@example.org"
secret = "test-reply-secret-0123456789"
[log]
level = "debug"
[coordinator]
email = "koordinierung@example.org"
`, c.driver, c.dsn, def(c.listen, "127.0.0.1:0"), e2ePortal, e2eCoord, c.smtpPort,
		def(c.retryBase, "200ms"), def(c.retryMax, "2s"), def(c.lease, "10s"),
		c.imapPort, c.imapUser, c.imapPass, def(c.pollInterval, "1h"))
	if c.coordPassword != "" {
		text += fmt.Sprintf("password = %q\n", c.coordPassword)
	}
	dir := t.TempDir()
	text += fmt.Sprintf("[evidence]\nkey_path = %q\n", filepath.Join(dir, "evidence.key"))
	path := filepath.Join(dir, "mailflow.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (e *e2e) stop() {
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("daemon: %v", err)
		}
	case <-time.After(30 * time.Second):
		e.t.Error("daemon did not shut down within 30 s")
	}
	e.done <- nil // later stops return at once
}

func (e *e2e) api(method, path, token string, body []byte, want int) map[string]any {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.base+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	out := map[string]any{}
	json.Unmarshal(raw, &out)
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func (e *e2e) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// delivered returns the messages the SMTP server got for rcpt.
func (e *e2e) delivered(rcpt string) []*mail.Message {
	var out []*mail.Message
	for _, m := range e.smtp.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, rcpt) {
				msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
				if err == nil {
					out = append(out, msg)
				}
			}
		}
	}
	return out
}

func (e *e2e) status(number string) string {
	o := e.api("GET", "/api/v1/orders/"+number, e2eCoord, nil, 200)
	s, _ := o["status"].(string)
	return s
}

// reply answers a notification the way a mail client does: to its
// Reply-To, with In-Reply-To and the quoted original.
func reply(n *mail.Message, from, text string) []byte {
	orig, _ := io.ReadAll(n.Body)
	var quoted strings.Builder
	for _, l := range strings.Split(string(orig), "\n") {
		quoted.WriteString("> " + strings.TrimRight(l, "\r") + "\r\n")
	}
	return []byte(fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: AW: %s\r\nDate: %s\r\nMessage-ID: <%d.reply@client.example>\r\n"+
		"In-Reply-To: %s\r\nReferences: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n\r\nAm 20.11.2026 um 10:00 schrieb DVC Bestellservice:\r\n%s",
		from, n.Header.Get("Reply-To"), n.Header.Get("Subject"), time.Now().Format(time.RFC1123Z), time.Now().UnixNano(),
		n.Header.Get("Message-ID"), n.Header.Get("Message-ID"), strings.ReplaceAll(text, "\n", "\r\n"), quoted.String()))
}

// lifecycle drives a DV order to Bestellt and a UV order to a rejection
// by the intermediary, all by email, and checks the mails of docs/design.md §3.
func (e *e2e) lifecycle() {
	t := e.t
	dvReq, uvReq := examples.OrderDV(), examples.OrderUV()
	dv := e.api("POST", "/api/v1/orders", e2ePortal, dvReq, 201)["number"].(string)
	uv := e.api("POST", "/api/v1/orders", e2ePortal, uvReq, 201)["number"].(string)

	e.waitFor("DV notification to the provider", func() bool { return len(e.delivered("bestellungen@dataport.example")) == 1 })
	e.waitFor("UV notifications", func() bool {
		return len(e.delivered("orders@it.nrw.example")) == 1 && len(e.delivered("auftrag@govdigital.example")) == 1
	})
	n := e.delivered("bestellungen@dataport.example")[0]
	if !strings.Contains(subject(n), "[Bestellung "+dv+"]") || !strings.Contains(n.Header.Get("Reply-To"), "bestellungen+") {
		t.Fatalf("notification headers: %v", n.Header)
	}
	// The provider is working on it, then confirms; the quoted original
	// contains both keywords and must not count.
	e.imap.Append("INBOX", reply(n, "Anna Admin <anna@dataport.example>", "IN BEARBEITUNG\nWir prüfen die Kapazitäten."))
	e.waitFor("DV working", func() bool { return e.status(dv) == "working_provider_dv" })
	e.imap.Append("INBOX", reply(n, "bestellungen@dataport.example", "Bestätigt.\n\nMit freundlichen Grüßen"))
	e.waitFor("DV ordered", func() bool { return e.status(dv) == "ordered" })
	e.waitFor("binding confirmations", func() bool {
		return len(e.delivered("it@musterstadt.example")) == 1 && len(e.delivered("koordinierung@example.org")) >= 1
	})
	conf := e.delivered("it@musterstadt.example")[0]
	if !strings.Contains(subject(conf), dv) {
		t.Errorf("customer confirmation subject %q", subject(conf))
	}
	// The acknowledgement of Anna's reply went to the provider's own
	// address: she is registered only through the domain @dataport.example.
	// Notification, acknowledgement, confirmation.
	e.waitFor("acks", func() bool { return len(e.delivered("bestellungen@dataport.example")) == 3 })
	if n := len(e.delivered("anna@dataport.example")); n != 0 {
		t.Errorf("%d messages to the sender registered only by domain, want 0", n)
	}

	// UV: the intermediary rejects with a reason on the next line; the
	// reason reaches the provider and the customer.
	ni := e.delivered("auftrag@govdigital.example")[0]
	e.imap.Append("INBOX", reply(ni, "auftrag@govdigital.example", "ABGELEHNT\nDer Kunde ist nicht Mitglied der Genossenschaft."))
	e.waitFor("UV rejected", func() bool { return e.status(uv) == "rejected_intermediary" })
	e.waitFor("rejection notices", func() bool {
		return len(e.delivered("orders@it.nrw.example")) == 2 && len(e.delivered("beschaffung@beispielkreis.example")) == 1
	})
	body, _ := io.ReadAll(e.delivered("beschaffung@beispielkreis.example")[0].Body)
	if !bytes.Contains(body, []byte("nicht Mitglied der Genossenschaft")) {
		t.Errorf("customer's rejection notice lacks the reason")
	}
	// A forged confirmation changes nothing and goes to review.
	forged := reply(ni, "mallory@evil.example", "BESTÄTIGT")
	e.imap.Append("INBOX", forged)
	e.waitFor("forged message in review", func() bool { uids, _ := e.imap.UIDs("Review"); return len(uids) == 1 })
	if len(e.delivered("mallory@evil.example")) != 0 {
		t.Error("an answer went to a forged sender")
	}
	e.waitFor("inbox emptied", func() bool { uids, _ := e.imap.UIDs("INBOX"); return len(uids) == 0 })
	if uids, _ := e.imap.UIDs("Processed"); len(uids) != 3 {
		t.Errorf("%d messages in Processed, want 3", len(uids))
	}
	// /metrics shows what happened.
	resp, err := http.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`mailflow_orders{status="ordered"} 1`, `mailflow_orders{status="rejected_intermediary"} 1`,
		`mailflow_inbound_messages{verdict="unauthenticated"} 1`, "mailflow_outbox_sent_total", "mailflow_imap_last_sync_timestamp_seconds",
		"mailflow_job_billing_runs_total", "mailflow_panics_recovered_total 0"} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// No Message-ID reached the sink twice.
	seen := map[string]bool{}
	for _, m := range e.smtp.Messages() {
		msg, _ := mail.ReadMessage(bytes.NewReader(m.Data))
		id := msg.Header.Get("Message-ID") + strings.Join(m.To, ",")
		if seen[id] {
			t.Errorf("duplicate delivery %s", id)
		}
		seen[id] = true
	}
	e.bounces(conf)
	e.evidenceMatchesWire(dv, uv)
}

// bounces checks VERP: every message went out with its own bounce address
// under the replies address, and only a bounce to that address marks the
// message failed; one naming its Message-ID at the plain address goes to a
// person.
func (e *e2e) bounces(conf *mail.Message) {
	t := e.t
	var verp string
	for _, m := range e.smtp.Messages() {
		if !strings.HasPrefix(m.From, "bestellungen+b") || !strings.HasSuffix(m.From, "@example.org") || len(m.From) != len("bestellungen+b@example.org")+mailflow.BounceTokenLen {
			t.Errorf("envelope sender %q is no bounce address", m.From)
		}
		if slices.Contains(m.To, "it@musterstadt.example") {
			verp = m.From
		}
	}
	msgID := strings.Trim(conf.Header.Get("Message-ID"), "<>")
	status := func() string {
		rows, err := e.d.store.OutboxList(context.Background(), "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.MessageID == msgID {
				return r.Status
			}
		}
		return "missing"
	}
	dsn := func(to string) []byte {
		return []byte(fmt.Sprintf("Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.musterstadt.example\r\nTo: %s\r\n"+
			"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <%d@mx.musterstadt.example>\r\nMIME-Version: 1.0\r\n"+
			"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nundeliverable\r\n"+
			"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.musterstadt.example\r\n\r\n"+
			"Final-Recipient: rfc822; it@musterstadt.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"+
			"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <%s>\r\n\r\n--b--\r\n", to, time.Now().UnixNano(), msgID))
	}
	e.imap.Append("INBOX", dsn("bestellungen@example.org"))
	e.waitFor("bounce without VERP token in review", func() bool { uids, _ := e.imap.UIDs("Review"); return len(uids) == 2 })
	if st := status(); st != mailflow.OutboxSent {
		t.Errorf("a bounce without VERP token left the confirmation %s", st)
	}
	e.imap.Append("INBOX", dsn(verp))
	e.waitFor("bounce at the VERP address processed", func() bool { uids, _ := e.imap.UIDs("Processed"); return len(uids) == 4 })
	if st := status(); st != mailflow.OutboxFailed {
		t.Errorf("a bounce at the VERP address left the confirmation %s", st)
	}
}

func subject(m *mail.Message) string {
	s, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	return s
}

func TestDaemonEndToEnd(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			srv, err := mailtest.NewIMAPServer("bestellungen@example.org", "imap-pass")
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			startDaemon(t, srv, "bestellungen@example.org", "imap-pass", driver).lifecycle()
		})
	}
}

func TestDaemonEndToEndDovecot(t *testing.T) {
	dc := mailtest.DovecotFor(t)
	startDaemon(t, dc, dc.User, dc.Password, "sqlite").lifecycle()
}
