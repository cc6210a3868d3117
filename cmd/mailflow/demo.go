package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/mail"
	"net/smtp"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"mailflow/examples"
	"mailflow/internal/mailtest"
	"mailflow/mailflow"
	mailreply "mailflow/mailflow/reply"
	"mailflow/templates"
	"mailflow/web"
)

// The demo's world: one daemon, one SMTP server that every message goes
// through, one IMAP server with two users. Messages to the daemon's reply
// address land in the daemon's INBOX, all others in the INBOX of the
// person at the mail client.
const (
	// demoPerson is the IMAP login of the person's mailbox.
	demoPerson = "demo"
	// demoPersonAddress is the From a person answers with from a mail
	// client; the demo registers it as a reply sender of every provider
	// and intermediary, so such an answer counts as theirs.
	demoPersonAddress = "demo@demo.example"
	// demoWait bounds each step of the scripted lifecycle.
	demoWait = 20 * time.Second
)

// demoExpected are the final statuses the scripted replies lead to.
var demoExpected = map[string]mailflow.Status{"DV": mailflow.StatusOrdered, "UV": mailflow.StatusRejectedProviderUV}

type demoOptions struct {
	db      string
	once    bool
	listen  string
	verbose bool
}

// demo runs the whole flow on embedded parts: the daemon of `serve` with
// SQLite, an in-process SMTP and IMAP server on loopback, the example
// catalog and orders, and scripted replies; then (without -once) the status
// page until ctx ends.
func (a *app) demo(ctx context.Context, args []string) error {
	var o demoOptions
	if _, err := a.verbFlags("demo", args, func(fs *flag.FlagSet) {
		fs.StringVar(&o.db, "db", "", "SQLite `file` to keep (default: a new one in a temporary directory)")
		fs.BoolVar(&o.once, "once", false, "run the lifecycle, print each order's final status and exit")
		fs.StringVar(&o.listen, "listen", "", "HTTP `address` (default 127.0.0.1:8080, a free port if that is taken)")
		fs.BoolVar(&o.verbose, "v", false, "log the daemon's work to stderr")
	}, 0, "[-db FILE] [-once] [-listen ADDR] [-v]"); err != nil {
		return err
	}
	dbPath, keep := o.db, o.db != ""
	if !keep {
		dir, err := os.MkdirTemp("", "mailflow-demo-")
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer os.RemoveAll(dir)
		dbPath = filepath.Join(dir, "mailflow.db")
	}
	secret := func() string { return strings.ToLower(rand.Text()) }
	w, err := startDemoWorld("bestellungen@example.org", secret()[:16], secret()[:16])
	if err != nil {
		return err
	}
	defer w.close()

	cfg := demoConfig(dbPath, w, secret)
	if o.listen != "" {
		cfg.HTTP.Listen = o.listen
	}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))

	d, err := startDemoDaemon(ctx, cfg, w, log, o.listen != "")
	if err != nil {
		return err
	}

	// The daemon stops when the demo says so, after the follower below has
	// stopped reading its store; the script stops when the daemon does.
	daemonCtx, stopDaemon := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDaemon()
	sctx, cancelScript := context.WithCancel(ctx)
	defer cancelScript()
	done := make(chan error, 1)
	go func() {
		err := d.run(daemonCtx)
		cancelScript()
		done <- err
	}()
	stop := sync.OnceValue(func() error { stopDaemon(); return <-done })
	defer stop()

	r := &demoRun{out: a.stdout, d: d, w: w, base: "http://" + d.listener.Addr().String(),
		portal: cfg.HTTP.Tokens[0].Token, coord: cfg.HTTP.Tokens[1].Token, roles: map[string]string{}}
	r.roles[strings.ToLower(cfg.Coordinator.Email)] = "Koordinierungsstelle"
	r.roles[demoPersonAddress] = "Sie (Mail-Client)"
	r.banner(dbPath, keep)

	orders, err := r.lifecycle(sctx)
	if err != nil {
		if ctx.Err() != nil {
			err = errors.New("demo: interrupted")
		} else if derr := stop(); derr != nil {
			err = errors.Join(err, fmt.Errorf("daemon: %w", derr))
		}
		return err
	}
	failed := r.summary(orders)
	if o.once {
		if err := stop(); err != nil {
			return fmt.Errorf("demo: daemon: %w", err)
		}
		return failed
	}
	// Follow what happens next (answers by hand, orders through the API)
	// until Ctrl-C; then stop the daemon. The instructions are printed
	// once the follower has taken stock, so nothing done after reading
	// them goes unreported.
	r.follow(sctx, func() { r.instructions(cfg, keep, dbPath) })
	if err := stop(); err != nil {
		return fmt.Errorf("demo: daemon: %w", err)
	}
	fmt.Fprintln(a.stdout, "Demo beendet.")
	return failed
}

// startDemoDaemon builds the daemon and binds its HTTP listener: on
// 127.0.0.1:8080, or any free port when that is taken and no address was
// asked for (explicit).
func startDemoDaemon(ctx context.Context, cfg *Config, w *demoWorld, log *slog.Logger, explicit bool) (*daemon, error) {
	d, err := newDaemon(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if err := d.listen(); err != nil {
		if explicit {
			d.store.Close()
			return nil, err
		}
		d.cfg.HTTP.Listen = "127.0.0.1:0"
		if err := d.listen(); err != nil {
			d.store.Close()
			return nil, err
		}
	}
	// Sign-in links point at the address the listener got, which is
	// known only now: build the HTTP side again with it.
	d.cfg.HTTP.PublicURL = "http://" + d.listener.Addr().String()
	if err := d.buildHTTP(); err != nil {
		d.listener.Close()
		d.store.Close()
		return nil, err
	}
	if err := w.freshUIDValidity(ctx, d); err != nil {
		d.listener.Close()
		d.store.Close()
		return nil, err
	}
	return d, nil
}

// demoConfig is defaultConfig with the demo's database, the mail servers
// of the world and new random secrets.
func demoConfig(dbPath string, w *demoWorld, secret func() string) *Config {
	cfg := defaultConfig()
	cfg.Database.Driver, cfg.Database.DSN = "sqlite", dbPath
	cfg.HTTP.Listen = "127.0.0.1:8080"
	// The tokens' element type is an unnamed struct: grow the slice
	// rather than spell the type out.
	cfg.HTTP.Tokens = slices.Grow(cfg.HTTP.Tokens[:0], 2)[:2]
	cfg.HTTP.Tokens[0].Name, cfg.HTTP.Tokens[0].Role, cfg.HTTP.Tokens[0].Token = "portal", "portal", "portal-"+secret()
	cfg.HTTP.Tokens[1].Name, cfg.HTTP.Tokens[1].Role, cfg.HTTP.Tokens[1].Token = "koordinierung", "coordinator", "coord-"+secret()
	cfg.SMTP.Host, cfg.SMTP.Port, cfg.SMTP.TLS = w.smtp.Host, w.smtp.Port, "none"
	cfg.IMAP.Host, cfg.IMAP.Port, cfg.IMAP.TLS = w.imap.Host(), w.imap.Port(), "none"
	cfg.IMAP.Username, cfg.IMAP.Password = w.daemonUser, w.daemonPass
	cfg.IMAP.Idle, cfg.IMAP.PollInterval = true, "10s"
	cfg.Replies.Address = w.daemonUser
	cfg.Replies.Secret = secret()
	cfg.Coordinator.Username, cfg.Coordinator.Password = "koordinierung", secret()[:16]
	return cfg
}

// demoWorld is the mail side of the demo: an SMTP server that delivers
// every message into the IMAP server, like an MTA with local mailboxes.
type demoWorld struct {
	smtp       *mailtest.SMTPServer
	imap       *mailtest.IMAPServer
	person     *mailtest.IMAPUser
	daemonUser string // also the reply address
	daemonPass string
	personPass string
}

func startDemoWorld(daemonUser, daemonPass, personPass string) (*demoWorld, error) {
	w := &demoWorld{daemonUser: daemonUser, daemonPass: daemonPass, personPass: personPass}
	var err error
	if w.imap, err = mailtest.NewIMAPServer(daemonUser, daemonPass); err != nil {
		return nil, fmt.Errorf("demo: imap: %w", err)
	}
	if w.person, err = w.imap.AddUser(demoPerson, personPass); err != nil {
		w.imap.Close()
		return nil, fmt.Errorf("demo: imap: %w", err)
	}
	if w.smtp, err = mailtest.Start(mailtest.Options{OnMessage: w.deliver}); err != nil {
		w.imap.Close()
		return nil, fmt.Errorf("demo: smtp: %w", err)
	}
	return w, nil
}

func (w *demoWorld) close() {
	w.smtp.Close()
	w.imap.Close()
}

// forDaemon reports whether rcpt is the reply address, with or without a
// +token: bestellungen@example.org, bestellungen+TOKEN@example.org.
func (w *demoWorld) forDaemon(rcpt string) bool {
	local, domain, ok := strings.Cut(strings.ToLower(rcpt), "@")
	wantLocal, wantDomain, _ := strings.Cut(strings.ToLower(w.daemonUser), "@")
	local, _, _ = strings.Cut(local, "+")
	return ok && local == wantLocal && domain == wantDomain
}

// deliver puts one copy of a message into each mailbox it is for, with
// the Return-Path (RFC 5321 §4.4) and Delivered-To lines a delivering MTA
// adds. An error makes the SMTP server answer 451, so the sender retries.
func (w *demoWorld) deliver(m mailtest.Message) error {
	var daemon, person []string
	for _, rcpt := range m.To {
		if w.forDaemon(rcpt) {
			daemon = append(daemon, rcpt)
		} else {
			person = append(person, rcpt)
		}
	}
	stamp := func(rcpts []string) []byte {
		var b bytes.Buffer
		fmt.Fprintf(&b, "Return-Path: <%s>\r\n", m.From)
		for _, r := range rcpts {
			fmt.Fprintf(&b, "Delivered-To: %s\r\n", r)
		}
		b.Write(m.Data)
		return b.Bytes()
	}
	if len(daemon) > 0 {
		if err := w.imap.Append("INBOX", stamp(daemon)); err != nil {
			return err
		}
	}
	if len(person) > 0 {
		return w.person.Append("INBOX", stamp(person))
	}
	return nil
}

// freshUIDValidity makes the daemon's INBOX differ in UIDVALIDITY from what
// a database of an earlier demo remembers. A new in-memory server counts
// UIDs from 1 again; with the old UIDVALIDITY the watcher would take the
// new messages for ones it has seen (RFC 3501 §2.3.1.1).
func (w *demoWorld) freshUIDValidity(ctx context.Context, d *daemon) error {
	old, _, err := d.store.IMAPState(ctx, d.cfg.IMAP.Mailbox)
	if errors.Is(err, mailflow.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	for {
		uv, err := w.imap.UIDValidity(d.cfg.IMAP.Mailbox)
		if err != nil {
			return err
		}
		if uv != old {
			return nil
		}
		if err := w.imap.ResetMailbox(d.cfg.IMAP.Mailbox); err != nil {
			return err
		}
	}
}

// demoRun prints the lifecycle as it happens.
type demoRun struct {
	out           io.Writer
	d             *daemon
	w             *demoWorld
	base          string
	portal, coord string
	roles         map[string]string // lowercase address → who that is
	reported      int               // SMTP messages shown so far
	seq           int               // scripted replies sent so far
}

// demoOrder is an order the script created, with the status it must end in.
type demoOrder struct {
	number string
	model  string
	want   mailflow.Status
	status mailflow.Status
}

func (r *demoRun) say(format string, args ...any) {
	fmt.Fprintf(r.out, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func (r *demoRun) banner(dbPath string, keep bool) {
	db := dbPath + " (temporär, wird am Ende gelöscht)"
	if keep {
		db = dbPath + " (bleibt erhalten)"
	}
	fmt.Fprintf(r.out, `mailflow demo — Bestellungen per E-Mail, alles auf dieser Maschine
  Datenbank  SQLite %s
  SMTP       %s  (in-process; stellt jede Nachricht per IMAP zu)
  IMAP       %s  (in-process; Postfach des Daemons: %s, alle anderen Empfänger: %s)
  HTTP       %s/  (API und Statusseite, derselbe Daemon wie "serve")

`, db, r.w.smtp.Addr, r.w.imap.Addr(), r.w.daemonUser, demoPerson, r.base)
}

// lifecycle imports the catalog, creates a DV and a UV order through the
// API and answers their notifications by email as the parties would.
func (r *demoRun) lifecycle(ctx context.Context) ([]*demoOrder, error) {
	cat, err := demoCatalog()
	if err != nil {
		return nil, err
	}
	var counts map[string]int
	if _, err := r.api(ctx, "PUT", "/api/v1/catalog", r.coord, cat, &counts); err != nil {
		return nil, fmt.Errorf("demo: import catalog: %w", err)
	}
	r.say("Katalog importiert (PUT /api/v1/catalog): %d Anbieter, %d Intermediär, %d Dienste; %s darf für jede Partei antworten",
		counts["providers"], counts["intermediaries"], counts["services"], demoPersonAddress)

	dv, err := r.createOrder(ctx, examples.OrderDV())
	if err != nil {
		return nil, err
	}
	uv, err := r.createOrder(ctx, examples.OrderUV())
	if err != nil {
		return nil, err
	}
	if err := r.settle(ctx); err != nil {
		return nil, err
	}

	// DV: the provider's autoresponder first, then the provider itself.
	steps := []demoStep{
		{order: dv, party: mailflow.PartyProvider, from: "Dataport Bestellannahme <bestellungen@dataport.example>", outOfOffice: true,
			text: "Vielen Dank für Ihre Nachricht. Ich bin bis einschließlich 27.11. nicht im Büro.\nIn dringenden Fällen wenden Sie sich bitte an service@dataport.example.",
			want: mailflow.StatusOpen},
		// The provider declares its review on the status page, signed
		// in by the link mailed to its address.
		{order: dv, party: mailflow.PartyProvider, from: "Dataport Bestellannahme <bestellungen@dataport.example>", page: mailflow.IntentReview,
			text: "Wir prüfen die Kapazitäten und melden uns bis Freitag.", want: mailflow.StatusReviewProviderDV},
		{order: dv, party: mailflow.PartyProvider, from: "Dataport Bestellannahme <bestellungen@dataport.example>",
			text: "BESTÄTIGT\n\nMit freundlichen Grüßen\nIhre Bestellannahme", want: mailflow.StatusOrdered},
		// UV: the intermediary confirms, the provider rejects with a reason.
		{order: uv, party: mailflow.PartyIntermediary, from: "govdigital Auftragsannahme <auftrag@govdigital.example>",
			text: "BESTÄTIGT\nDer Kunde ist Mitglied der Genossenschaft.", want: mailflow.StatusWorkingIntermediary},
		{order: uv, party: mailflow.PartyProvider, from: "IT.NRW Orders <orders@it.nrw.example>",
			text: "ABGELEHNT: Kapazität im Rechenzentrum erschöpft\nEine Bereitstellung ist frühestens im zweiten Quartal möglich.",
			want: mailflow.StatusRejectedProviderUV},
	}
	for _, s := range steps {
		if err := r.step(ctx, s); err != nil {
			return nil, err
		}
	}
	return []*demoOrder{dv, uv}, nil
}

// demoCatalog is the example catalog with demoPersonAddress added to the
// reply senders of every provider and intermediary.
func demoCatalog() ([]byte, error) {
	var cat map[string]any
	if err := json.Unmarshal(examples.Catalog(), &cat); err != nil {
		return nil, fmt.Errorf("demo: example catalog: %w", err)
	}
	for _, key := range []string{"providers", "intermediaries"} {
		parties, _ := cat[key].([]any)
		for _, p := range parties {
			m, ok := p.(map[string]any)
			if !ok {
				continue
			}
			senders, _ := m["reply_senders"].([]any)
			if len(senders) == 0 {
				senders = []any{m["email"]} // what an empty list means
			}
			m["reply_senders"] = append(senders, demoPersonAddress)
		}
	}
	return json.Marshal(cat)
}

// createOrder posts an order as the portal does. A database kept from an
// earlier demo already has the example's external_id: then the order is
// posted again with a suffix, so every run starts from Offen.
func (r *demoRun) createOrder(ctx context.Context, body []byte) (*demoOrder, error) {
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("demo: example order: %w", err)
	}
	ext, _ := req["external_id"].(string)
	for n := 1; n <= 1000; n++ {
		if n > 1 {
			req["external_id"] = fmt.Sprintf("%s-%d", ext, n)
			body, _ = json.Marshal(req)
		}
		var o web.OrderResponse
		code, err := r.api(ctx, "POST", "/api/v1/orders", r.portal, body, &o)
		if code == http.StatusOK || code == http.StatusConflict {
			continue // exists (with other content: 409)
		}
		if err != nil {
			return nil, fmt.Errorf("demo: create order: %w", err)
		}
		// The portal sees its order without the snapshot; the
		// coordinator sees everything.
		if _, err := r.api(ctx, "GET", "/api/v1/orders/"+o.Number, r.coord, nil, &o); err != nil {
			return nil, fmt.Errorf("demo: read order: %w", err)
		}
		snap := o.Snapshot
		if snap == nil {
			return nil, fmt.Errorf("demo: order %s without snapshot", o.Number)
		}
		r.roles[strings.ToLower(snap.Provider.Email)] = "Anbieter " + snap.Provider.Name
		r.roles[strings.ToLower(snap.Customer.Email)] = "Kunde " + snap.Customer.Name
		via := ""
		if snap.Intermediary != nil {
			r.roles[strings.ToLower(snap.Intermediary.Email)] = "Intermediär " + snap.Intermediary.Name
			via = " über " + snap.Intermediary.Name
		}
		r.say("%s  neue Bestellung (POST /api/v1/orders, %s): %s bei %s%s für %s — %s",
			o.Number, o.ContractModel, snap.Service.Name, snap.Provider.Name, via, snap.Customer.Name, o.StatusLabel)
		return &demoOrder{number: o.Number, model: o.ContractModel, want: demoExpected[o.ContractModel], status: o.Status}, nil
	}
	return nil, fmt.Errorf("demo: the database already holds 1000 orders with external_id %s-N", ext)
}

// demoStep is one scripted email from a party.
type demoStep struct {
	order       *demoOrder
	party       string // whose notification is answered
	from        string
	text        string
	outOfOffice bool // an autoresponder's message (RFC 3834)
	// page: the party declares this intent on the status page instead
	// of by mail, with text as its note.
	page mailflow.Intent
	want mailflow.Status
}

// step sends a party's email through the demo's SMTP server to the reply
// address of its notification, waits until the daemon has read it from
// IMAP and decided, and prints the verdict, the status change and the
// mails that went out.
func (r *demoRun) step(ctx context.Context, s demoStep) error {
	o := s.order
	if s.page != "" {
		return r.pageStep(ctx, s)
	}
	note, err := r.notification(ctx, o.number, s.party)
	if err != nil {
		return err
	}
	r.seq++
	raw, msgID, to, err := demoReply(note, s.from, s.text, s.outOfOffice, r.seq)
	if err != nil {
		return err
	}
	from, _ := mail.ParseAddress(s.from)
	what := "„" + firstLine(s.text) + "“"
	if s.outOfOffice {
		what = "Abwesenheitsnotiz (Auto-Submitted: auto-replied)"
	}
	r.say("%s  ← %s <%s> antwortet: %s", o.number, partyLabel(s.party), from.Address, what)
	if err := smtp.SendMail(r.w.smtp.Addr, nil, from.Address, []string{to}, raw); err != nil {
		return fmt.Errorf("demo: send reply: %w", err)
	}
	in, err := r.inbound(ctx, msgID)
	if err != nil {
		return err
	}
	// The inbox's reason is a technical English text: on its own line, so
	// that no line mixes the two languages (as on the status page).
	r.say("%s     Eingang gelesen per IMAP: %s", o.number, templates.Label("de", templates.LabelVerdict, in.Verdict))
	r.say("%s       [%s]", o.number, in.Reason)
	return r.reportStatus(ctx, s)
}

// reportStatus prints an order's status change after a step, the mails
// it sent, and checks the status the step must lead to.
func (r *demoRun) reportStatus(ctx context.Context, s demoStep) error {
	o := s.order
	var cur web.OrderResponse
	if _, err := r.api(ctx, "GET", "/api/v1/orders/"+o.number, r.coord, nil, &cur); err != nil {
		return err
	}
	if cur.Status == o.status {
		r.say("%s  Status bleibt %s", o.number, cur.StatusLabel)
	} else {
		r.say("%s  %s → %s", o.number, o.status.Label(), cur.StatusLabel)
	}
	o.status = cur.Status
	if err := r.settle(ctx); err != nil {
		return err
	}
	if cur.Status != s.want {
		return fmt.Errorf("demo: %s is %s (%s) after the reply, want %s", o.number, cur.Status, cur.StatusLabel, s.want)
	}
	return nil
}

// pageStep signs in as the party's address the way a person does: asks
// for a link on /anmelden, takes it from the mail the demo's SMTP server
// got, confirms it, and records the declaration with the form of the
// order page.
func (r *demoRun) pageStep(ctx context.Context, s demoStep) error {
	o := s.order
	from, err := mail.ParseAddress(s.from)
	if err != nil {
		return err
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: demoWait}
	post := func(path string, form url.Values) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", r.base+path, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", r.base)
		resp, err := browser.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp, body, err
	}
	seen := len(r.w.smtp.Messages())
	if resp, _, err := post("/anmelden/link", url.Values{"email": {from.Address}}); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("demo: ask for a sign-in link: %v %v", resp, err)
	}
	r.say("%s  %s <%s> fordert auf %s/anmelden einen Anmeldelink an", o.number, partyLabel(s.party), from.Address, r.base)
	var link string
	err = r.poll(ctx, "the sign-in link to "+from.Address, func() (bool, error) {
		for _, m := range r.w.smtp.Messages()[seen:] {
			if slices.Contains(m.To, from.Address) {
				if links := signinLinks(m.Data); len(links) > 0 {
					link = links[0].url
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	r.reportMails(ctx)
	// GET shows the confirmation (a mail scanner's GET uses nothing
	// up); the button POSTs.
	resp, err := browser.Get(link)
	if err != nil {
		return fmt.Errorf("demo: open sign-in link: %w", err)
	}
	resp.Body.Close()
	u, _ := url.Parse(link)
	resp, body, err := post(u.Path, url.Values{})
	if err != nil || resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/bestellungen" {
		return fmt.Errorf("demo: sign in with the link: %v %v", resp, err)
	}
	r.say("%s     angemeldet als %s; die Liste zeigt %s", o.number, from.Address, demoRowCount(body))
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if csrf == nil {
		return errors.New("demo: the order page has no CSRF token")
	}
	resp, _, err = post("/bestellungen/"+o.number+"/entscheidungen", url.Values{"csrf": {string(csrf[1])},
		"party": {s.party}, "intent": {string(s.page)}, "reason": {s.text}})
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("demo: decide on the page: %v %v", resp, err)
	}
	r.say("%s  ← %s <%s> erklärt auf der Statusseite: %s (POST /bestellungen/%s/entscheidungen)",
		o.number, partyLabel(s.party), from.Address, templates.Label("de", templates.LabelIntent, string(s.page)), o.number)
	return r.reportStatus(ctx, s)
}

// signinLink is one link of a sign-in mail and whom it signs in as.
type signinLink struct{ who, url string }

// signinLinks returns the sign-in links in a mail's text, each under
// its line "Organization (role):".
func signinLinks(raw []byte) []signinLink {
	m, err := mailreply.Parse(raw)
	if err != nil {
		return nil
	}
	var out []signinLink
	for _, l := range signinLinkRE.FindAllStringSubmatch(strings.ReplaceAll(m.Text, "\r\n", "\n"), -1) {
		out = append(out, signinLink{who: l[1], url: l[2]})
	}
	return out
}

var signinLinkRE = regexp.MustCompile(`(?m)^(.+):\n(https?://\S+/anmelden/link/[A-Za-z0-9_-]+)$`)

// demoRowCount says how many orders a list page shows.
func demoRowCount(page []byte) string {
	n := bytes.Count(page, []byte("<tr data-number="))
	if n == 1 {
		return "1 Bestellung"
	}
	return fmt.Sprintf("%d Bestellungen", n)
}

func partyLabel(party string) string { return templates.Label("de", templates.LabelParty, party) }

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// notification returns the delivered notification of an order to a party,
// as the party's mailbox got it.
func (r *demoRun) notification(ctx context.Context, number, party string) ([]byte, error) {
	var o web.OrderResponse
	if _, err := r.api(ctx, "GET", "/api/v1/orders/"+number, r.coord, nil, &o); err != nil {
		return nil, err
	}
	for _, m := range o.Messages {
		if m.Kind != mailflow.KindNotification || m.Party != party {
			continue
		}
		for _, got := range r.w.smtp.Messages() {
			if h, err := mail.ReadMessage(bytes.NewReader(got.Data)); err == nil && strings.Trim(h.Header.Get("Message-ID"), "<>") == m.MessageID {
				return got.Data, nil
			}
		}
	}
	return nil, fmt.Errorf("demo: the notification of %s to the %s was not delivered", number, party)
}

// demoReply answers a notification the way a mail client (or an
// autoresponder) does: to its Reply-To, with In-Reply-To, References and,
// from a person, the quoted original. It returns the message, its
// Message-ID (without <>) and the recipient.
func demoReply(note []byte, from, text string, outOfOffice bool, seq int) (raw []byte, msgID, to string, err error) {
	h, err := mail.ReadMessage(bytes.NewReader(note))
	if err != nil {
		return nil, "", "", fmt.Errorf("demo: notification: %w", err)
	}
	parsed, err := mailreply.Parse(note)
	if err != nil {
		return nil, "", "", fmt.Errorf("demo: notification: %w", err)
	}
	rt, err := mail.ParseAddress(h.Header.Get("Reply-To"))
	if err != nil {
		return nil, "", "", fmt.Errorf("demo: notification without Reply-To: %w", err)
	}
	sender, err := mail.ParseAddress(from)
	if err != nil {
		return nil, "", "", err
	}
	domain := sender.Address[strings.LastIndexByte(sender.Address, '@')+1:]
	msgID = fmt.Sprintf("demo-%d-%d@%s", seq, time.Now().UnixNano(), domain)
	orig := h.Header.Get("Message-ID")

	subject := "AW: " + parsed.Subject
	body := text + "\n"
	if outOfOffice {
		subject = "Abwesenheitsnotiz: " + parsed.Subject
	} else {
		var q strings.Builder
		date := time.Now()
		if d, err := h.Header.Date(); err == nil {
			date = d
		}
		fmt.Fprintf(&q, "\nAm %s schrieb %s:\n", date.Format("02.01.2006 um 15:04"), h.Header.Get("From"))
		for l := range strings.SplitSeq(strings.TrimRight(parsed.Text, "\n"), "\n") {
			q.WriteString("> " + l + "\n")
		}
		body += q.String()
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s>\r\nIn-Reply-To: %s\r\nReferences: %s\r\n",
		sender.String(), rt.Address, mime.QEncoding.Encode("utf-8", subject), time.Now().Format(time.RFC1123Z), msgID, orig, orig)
	if outOfOffice {
		b.WriteString("Auto-Submitted: auto-replied\r\n") // RFC 3834 §5
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	io.WriteString(qp, strings.ReplaceAll(body, "\n", "\r\n"))
	qp.Close()
	return b.Bytes(), msgID, rt.Address, nil
}

// inbound waits until the daemon has stored its verdict on a message.
func (r *demoRun) inbound(ctx context.Context, msgID string) (*mailflow.InboundMessage, error) {
	var found *mailflow.InboundMessage
	err := r.poll(ctx, "the daemon to read <"+msgID+">", func() (bool, error) {
		list, err := r.d.store.InboundList(ctx, false, 0, 50)
		if err != nil {
			return false, err
		}
		for _, m := range list {
			if m.MessageID == msgID {
				found = m
				return true, nil
			}
		}
		return false, nil
	})
	return found, err
}

// settle waits until the outbox has nothing left to send, then prints the
// messages the SMTP server got since last time.
func (r *demoRun) settle(ctx context.Context) error {
	err := r.poll(ctx, "the outbox to be sent", func() (bool, error) {
		pending, err := r.d.store.OutboxList(ctx, mailflow.OutboxPending, 1)
		return len(pending) == 0, err
	})
	if err != nil {
		return err
	}
	r.reportMails(ctx)
	failed, err := r.d.store.OutboxList(ctx, mailflow.OutboxFailed, 100)
	if err == nil && len(failed) > 0 {
		return fmt.Errorf("demo: %d outbound messages failed, e.g. %q: %s", len(failed), failed[0].Subject, failed[0].LastError)
	}
	return err
}

// kindLabels name the kinds of outbound message for people.
var kindLabels = map[string]string{
	mailflow.KindNotification: "Bestellbenachrichtigung",
	mailflow.KindConfirmation: "verbindliche Bestätigung",
	mailflow.KindRejection:    "Ablehnung",
	mailflow.KindAck:          "Eingangsbestätigung",
	mailflow.KindAlert:        "Hinweis",
	mailflow.KindReminder:     "Erinnerung",
	mailflow.KindBilling:      "Abrechnung",
	mailflow.KindDigest:       "Übersicht",
	mailflow.KindSignin:       "Anmeldelink",
}

// reportMails prints each message the SMTP server accepted since the last
// call, except the parties' answers to the daemon (the script prints
// those): kind, recipients with their role, subject.
func (r *demoRun) reportMails(ctx context.Context) {
	msgs := r.w.smtp.Messages()
	for _, m := range msgs[min(r.reported, len(msgs)):] {
		var rcpts []string
		for _, to := range m.To {
			if r.w.forDaemon(to) {
				continue
			}
			who := r.roles[strings.ToLower(to)]
			if who == "" {
				who = "an"
			}
			rcpts = append(rcpts, fmt.Sprintf("%s <%s>", who, to))
		}
		if len(rcpts) == 0 {
			continue
		}
		h, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			continue
		}
		subject, err := new(mime.WordDecoder).DecodeHeader(h.Header.Get("Subject"))
		if err != nil {
			subject = h.Header.Get("Subject")
		}
		kind := "Nachricht"
		ob, err := r.d.store.OutboxByMessageID(ctx, strings.Trim(h.Header.Get("Message-ID"), "<>"))
		if err == nil {
			kind = kindLabels[ob.Kind]
		}
		r.say("           ✉ %s → %s: %s", kind, strings.Join(rcpts, ", "), subject)
		if err == nil && ob.Kind == mailflow.KindSignin {
			// Only the demo shows a sign-in link outside the mail: its
			// mailbox is on this machine, and the daemon logs none.
			for _, l := range signinLinks(m.Data) {
				r.say("             Anmeldelink: %s  (%s)", l.url, l.who)
			}
		}
	}
	r.reported = len(msgs)
}

// poll checks cond every 20 ms until it holds, ctx ends or demoWait passes.
func (r *demoRun) poll(ctx context.Context, what string, cond func() (bool, error)) error {
	deadline := time.NewTimer(demoWait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("demo: waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: waiting for %s: %w", what, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("demo: gave up waiting %s for %s", demoWait, what)
		case <-tick.C:
		}
	}
}

// api calls the daemon's HTTP API and decodes a 2xx answer into out.
func (r *demoRun) api(ctx context.Context, method, path, token string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// summary prints each order's final status, one line each: number, code,
// label; it returns an error if one is not the expected one.
func (r *demoRun) summary(orders []*demoOrder) error {
	fmt.Fprintf(r.out, "\nEndstand\n")
	var errs []error
	for _, o := range orders {
		mark := "ok"
		if o.status != o.want {
			mark = "ERWARTET " + string(o.want)
			errs = append(errs, fmt.Errorf("demo: %s ended as %s, want %s", o.number, o.status, o.want))
		}
		fmt.Fprintf(r.out, "  %s  %-22s %-32s %s\n", o.number, o.status, o.status.Label(), mark)
	}
	fmt.Fprintln(r.out)
	return errors.Join(errs...)
}

// instructions print how to look at the result: the status page, the API
// and the mailboxes with a mail client. Only secrets this demo made up are
// shown.
func (r *demoRun) instructions(cfg *Config, keep bool, dbPath string) {
	host, port, _ := net.SplitHostPort(r.w.imap.Addr())
	_, smtpPort, _ := net.SplitHostPort(r.w.smtp.Addr)
	fmt.Fprintf(r.out, `Statusseite  %[1]s/anmelden
             Koordinierungsstelle: Benutzer %[2]s, Passwort %[3]s (sieht alle Bestellungen)
             Anbieter und Intermediär: eine eingetragene Adresse ins Feld „E-Mail-Adresse“,
             „Anmeldelink anfordern“; der Link kommt per Mail ins Postfach %[8]s und steht
             auch hier unten („Anmeldelink: …“). Jede Partei sieht nur ihre Bestellungen:
               Dataport AöR (Anbieter, DV)       bestellungen@dataport.example
               IT.NRW (Anbieter, UV)             orders@it.nrw.example
               govdigital eG (Intermediär, UV)   auftrag@govdigital.example
             %[11]s ist für alle drei eingetragen: die Mail hat einen Link je Organisation.
API          %[1]s/api/v1/orders
             Portal-Token %[4]s
             Koordinierungs-Token %[5]s
             curl -H "Authorization: Bearer %[5]s" %[1]s/api/v1/orders

Mail-Client (z. B. Thunderbird; Verbindungssicherheit: keine, Passwort normal):
  IMAP  %[6]s Port %[7]s  Benutzer %[8]s  Passwort %[9]s
        alle Nachrichten des Daemons an Anbieter, Intermediär, Kunden und Koordinierung
  SMTP  %[6]s Port %[10]s  ohne Anmeldung
  Von-Adresse (Identität): %[11]s — in dieser Demo für jeden Anbieter und den
        Intermediär als Antwortadresse registriert. (Ebenso gilt die Adresse der
        Partei selbst, z. B. bestellungen@dataport.example.)
  Von Hand antworten: eine Bestellbenachrichtigung öffnen, „Antworten“, in die erste
        Zeile BESTÄTIGT, IN PRÜFUNG oder ABGELEHNT: Grund schreiben, senden. Die Antwort
        geht an bestellungen+TOKEN@example.org und landet im Postfach des Daemons.
        Eine neue Bestellung: curl -X POST -H "Authorization: Bearer %[4]s" --data @order.json %[1]s/api/v1/orders
  Postfach des Daemons (nur ansehen): Benutzer %[12]s  Passwort %[13]s
        (Ordner INBOX, Processed, Review)

`, r.base, cfg.Coordinator.Username, cfg.Coordinator.Password, cfg.HTTP.Tokens[0].Token, cfg.HTTP.Tokens[1].Token,
		host, port, demoPerson, r.w.personPass, smtpPort, demoPersonAddress, r.w.daemonUser, r.w.daemonPass)
	end := "die Datenbank wird gelöscht"
	if keep {
		end = "die Datenbank bleibt in " + dbPath
	}
	fmt.Fprintf(r.out, "Der Daemon läuft weiter; was jetzt geschieht, steht unten. Strg-C beendet die Demo (%s).\n\n", end)
}

// follow prints, until ctx ends, what happens after the script: new
// orders, status changes, received messages and their verdicts, and the
// mails that went out.
func (r *demoRun) follow(ctx context.Context, ready func()) {
	defer func() {
		if p := recover(); p != nil {
			r.d.log.Error("demo follower panicked", "err", p)
		}
	}()
	statuses := map[string]mailflow.Status{}
	var lastInbound int64
	first := true
	check := func() error {
		in, err := r.d.store.InboundList(ctx, false, 0, 100)
		if err != nil {
			return err
		}
		slices.Reverse(in)
		for _, m := range in {
			if m.ID <= lastInbound {
				continue
			}
			if !first {
				r.say("%s  ← %s: %s — %s (%s)", orDash(m.OrderNumber), m.From, m.Subject, m.Verdict, m.Reason)
			}
			lastInbound = m.ID
		}
		orders, err := r.d.store.Orders(ctx, mailflow.OrderFilter{Limit: 500})
		if err != nil {
			return err
		}
		slices.Reverse(orders) // oldest first
		for _, o := range orders {
			old, seen := statuses[o.Number]
			switch {
			case first:
			case !seen:
				r.say("%s  neue Bestellung (%s): %s — %s", o.Number, o.ContractModel, o.Snapshot.Service.Name, o.Status.Label())
				r.roles[strings.ToLower(o.Snapshot.Customer.Email)] = "Kunde " + o.Snapshot.Customer.Name
			case old != o.Status:
				r.say("%s  %s → %s", o.Number, old.Label(), o.Status.Label())
			}
			statuses[o.Number] = o.Status
		}
		first = false
		r.reportMails(ctx)
		return nil
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := check(); err != nil && ctx.Err() == nil {
			r.d.log.Warn("demo: follow", "err", err)
		}
		if ready != nil {
			ready()
			ready = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return strings.Repeat("-", len("2026-000000"))
	}
	return s
}
