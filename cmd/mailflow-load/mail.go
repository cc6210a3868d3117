package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"mime"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailflow/internal/mailtest"
)

// order is one order the tool created.
type order struct {
	number string
	uv     bool
	// notes are the notifications, by party ("provider", "intermediary").
	notes map[string]notification
	want  string // status after its reply; "" if it gets none
}

// notification is what a reply needs of an order notification.
type notification struct {
	replyTo, messageID, subject string
}

// orderRequest is the JSON of order i: two in three are DV orders of
// Dataport's mail service, one in three UV orders of IT.NRW's
// collaboration service through govdigital (the examples/ catalog).
func orderRequest(run string, i int) (body []byte, uv bool) {
	uv = i%3 == 2
	req := map[string]any{
		"external_id": fmt.Sprintf("load-%s-%d", run, i),
		"ordered_at":  "2026-11-20T10:00:00+01:00",
		"customer":    customer(i, uv),
		"properties":  map[string]any{"nutzer": 10 + i%500},
		"service":     "dvc-mail",
		"price":       "basis-monat",
	}
	if uv {
		req["contract_model"] = "UV"
		req["intermediary"] = "govdigital"
		req["service"] = "dvc-kollab"
		req["price"] = "team-quartal"
	} else {
		req["contract_model"] = "DV"
		req["properties"] = map[string]any{"nutzer": 10 + i%500, "region": []string{"nord", "süd"}[i%2]}
	}
	b, _ := json.Marshal(req)
	return b, uv
}

func customer(i int, uv bool) map[string]any {
	if uv {
		return map[string]any{"name": fmt.Sprintf("Landkreis Beispielkreis %d", i), "street": "Schlossplatz 3",
			"postal_code": "90403", "city": "Nürnberg", "country": "DE", "contact_name": "Max Beispiel",
			"email": fmt.Sprintf("beschaffung%d@beispielkreis.example", i%1000), "phone": "+49 911 555000",
			"customer_number": fmt.Sprintf("K-%06d", i), "leitweg_id": "09564000-NUE0001-49"}
	}
	return map[string]any{"name": fmt.Sprintf("Stadt Musterstadt %d", i), "street": "Markt 1",
		"postal_code": "12345", "city": "Musterstadt", "country": "DE", "contact_name": "Erika Mustermann",
		"email": fmt.Sprintf("it%d@musterstadt.example", i%1000), "phone": "+49 30 1234567",
		"customer_number": fmt.Sprintf("K-%06d", i), "leitweg_id": "04011000-12345-03"}
}

// Recipients of the notifications in examples/catalog.json.
var partyOf = map[string]string{
	"bestellungen@dataport.example": "provider",
	"orders@it.nrw.example":         "provider",
	"auftrag@govdigital.example":    "intermediary",
}

var numberRE = regexp.MustCompile(`\b\d{4}-\d{6}\b`)

// collectNotifications files the sink's messages under their orders. It
// returns how many (Message-ID, recipient) pairs arrived more than once.
func collectNotifications(msgs []mailtest.Message, orders map[string]*order) (dups int, err error) {
	seen := map[string]bool{}
	dec := new(mime.WordDecoder)
	for _, m := range msgs {
		h, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			return dups, fmt.Errorf("notification header: %w", err)
		}
		id := h.Header.Get("Message-Id")
		for _, rcpt := range m.To {
			key := id + " " + strings.ToLower(rcpt)
			if seen[key] {
				dups++
			}
			seen[key] = true
		}
		subject, err := dec.DecodeHeader(h.Header.Get("Subject"))
		if err != nil {
			subject = h.Header.Get("Subject")
		}
		o := orders[numberRE.FindString(subject)]
		if o == nil || len(m.To) != 1 {
			continue // not an order notification
		}
		party, ok := partyOf[strings.ToLower(m.To[0])]
		if !ok {
			continue
		}
		o.notes[party] = notification{replyTo: h.Header.Get("Reply-To"), messageID: id, subject: subject}
	}
	return dups, nil
}

// Kinds of replies, with the verdict and intent each must produce.
type replyKind struct {
	name    string // accept, review, working, reject, auto-reply
	verdict string
	weight  int // in 100
}

var replyKinds = []replyKind{
	{"accept", "applied", 50},
	{"working", "applied", 15},
	{"review", "applied", 15},
	{"reject", "applied", 18},
	{"auto-reply", "auto-reply", 2},
}

// kindOf picks reply i's kind from the weights, deterministically and
// spread over the sequence.
func kindOf(i int, latency bool) replyKind {
	if latency { // every latency reply must change the order's status
		return replyKinds[i%4]
	}
	x := (i * 37) % 100
	for _, k := range replyKinds {
		if x < k.weight {
			return k
		}
		x -= k.weight
	}
	return replyKinds[0]
}

// expectedStatus is the order's status after its one reply (DV replies
// come from the provider, UV replies from the intermediary).
func expectedStatus(uv bool, kind string) string {
	if uv {
		return map[string]string{"accept": "working_intermediary", "working": "working_intermediary",
			"review": "review_intermediary_uv", "reject": "rejected_intermediary", "auto-reply": "open"}[kind]
	}
	return map[string]string{"accept": "ordered", "working": "working_provider_dv",
		"review": "review_provider_dv", "reject": "rejected_provider_dv", "auto-reply": "open"}[kind]
}

var (
	openers = map[string][]string{
		"accept":  {"Bestätigt.", "BESTÄTIGT – wir stellen den Dienst fristgerecht bereit.", "Confirmed.", "Angenommen, vielen Dank für die Bestellung."},
		"working": {"IN BEARBEITUNG\nWir prüfen die Kapazitäten und melden uns.", "In Bearbeitung.", "Acknowledged, we are working on it."},
		"review":  {"IN PRÜFUNG\nDie Vertragsprüfung dauert etwa drei Werktage.", "In Prüfung.", "In review – our legal team checks the conditions."},
		"reject": {"ABGELEHNT: Die gewünschte Region ist derzeit ausgelastet.",
			"ABGELEHNT\nDer Kunde ist nicht Mitglied der Genossenschaft.", "Rejected: the requested number of users exceeds the plan."},
	}
	signature = "\n\nMit freundlichen Grüßen\n%s\nBestellannahme\n\n-- \n%s · Service-Desk · Telefon +49 40 42846-0\n"
)

// quoteOf is the body of an order notification as a mail client quotes it,
// keywords included: they must not count.
func quoteOf(number string) string {
	return `Sehr geehrte Damen und Herren,

über das Cloud-Service-Portal ist die Bestellung ` + number + ` eingegangen.

Kunde: Stadt Musterstadt, Markt 1, 12345 Musterstadt
Leitweg-ID: 04011000-12345-03
Dienst: Verwaltungs-Mail (Dataport AöR), Bereitstellung in 10 Tagen
Preis: Basis, 1.200,00 EUR monatlich zzgl. 19 % USt.
Eigenschaften: nutzer = 250, region = nord
AGB: Fassung 2026-1, gültig ab 01.07.2026, SHA-256 3f1c…
Leistungsbeschreibung: Version 1, gültig ab 01.01.2025

Bitte antworten Sie auf diese Nachricht mit einem der Wörter
BESTÄTIGT, IN BEARBEITUNG, IN PRÜFUNG oder ABGELEHNT: Grund.

Bestellung bestätigen: mailto:bestellungen@example.org?subject=BEST%C3%84TIGT
Bestellung ablehnen: mailto:bestellungen@example.org?subject=ABGELEHNT

DVC Bestellservice
`
}

// bigAttachment is the base64 body of a K-sized attachment, in 76-column
// lines, of random (incompressible) bytes.
func bigAttachment(size int64) []byte {
	raw := make([]byte, size)
	rnd := rand.NewChaCha8([32]byte{1, 2, 3})
	rnd.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var b bytes.Buffer
	b.Grow(len(enc) + len(enc)/76*2 + 2)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return b.Bytes()
}

// buildReply writes reply seq to notification n as a mail client does:
// to its Reply-To, with In-Reply-To/References and the quoted original.
// Every fourth is an Outlook-style multipart/alternative with an HTML part
// and a "-----Ursprüngliche Nachricht-----" block. attachment, when not
// nil, is added as a PDF (base64 body lines).
func buildReply(run string, seq int, o *order, party string, kind replyKind, attachment []byte) (raw []byte, msgID string) {
	n := o.notes[party]
	domain, org := "dataport.example", "Dataport AöR"
	if party == "intermediary" {
		domain, org = "govdigital.example", "govdigital eG"
	} else if o.uv {
		domain, org = "it.nrw.example", "IT.NRW"
	}
	person := []string{"Anna Admin", "Bernd Betrieb", "Clara Cloud", "Deniz Dienst", "Emil Einkauf"}[seq%5]
	from := fmt.Sprintf("%s <bearbeitung%03d@%s>", mime.QEncoding.Encode("utf-8", person), seq%1000, domain)
	msgID = fmt.Sprintf("<load-%s-%d@client.%s>", run, seq, domain)
	date := time.Now().Format(time.RFC1123Z)

	var h strings.Builder
	fmt.Fprintf(&h, "Return-Path: <bearbeitung%03d@%s>\r\n", seq%1000, domain)
	fmt.Fprintf(&h, "From: %s\r\nTo: %s\r\nDate: %s\r\nMessage-ID: %s\r\n", from, n.replyTo, date, msgID)
	var text string
	if kind.name == "auto-reply" {
		fmt.Fprintf(&h, "Subject: %s\r\nAuto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n",
			mime.QEncoding.Encode("utf-8", "Abwesenheitsnotiz: "+n.subject))
		text = fmt.Sprintf("Ich bin bis zum 30.11.2026 nicht im Büro und lese meine E-Mails nicht.\nIn dringenden Fällen wenden Sie sich an service@%s.\n", domain)
	} else {
		fmt.Fprintf(&h, "Subject: %s\r\nIn-Reply-To: %s\r\nReferences: %s\r\n",
			mime.QEncoding.Encode("utf-8", "AW: "+n.subject), n.messageID, n.messageID)
		ops := openers[kind.name]
		text = ops[seq%len(ops)] + fmt.Sprintf(signature, person, org)
	}
	h.WriteString("MIME-Version: 1.0\r\n")

	quote := quoteOf(o.number)
	var plain, html string
	outlook := seq%4 == 3 && kind.name != "auto-reply"
	switch {
	case kind.name == "auto-reply":
		plain = text
	case outlook:
		plain = text + "\n-----Ursprüngliche Nachricht-----\nVon: DVC Bestellservice <bestellungen@example.org>\n" +
			"Gesendet: Freitag, 20. November 2026 10:00\nAn: " + n.replyTo + "\nBetreff: " + n.subject + "\n\n" + quote
		html = "<html><body><p>" + strings.ReplaceAll(htmlEscape(text), "\n", "<br>") + "</p>" +
			"<div style=\"border-top:solid #E1E1E1 1pt\"><p><b>Von:</b> DVC Bestellservice<br><b>Gesendet:</b> Freitag, 20. November 2026 10:00<br><b>Betreff:</b> " +
			htmlEscape(n.subject) + "</p></div><p>" + strings.ReplaceAll(htmlEscape(quote), "\n", "<br>") + "</p></body></html>"
	case seq%4 == 1:
		plain = text + "\nOn Fri, 20 Nov 2026 at 10:00, DVC Bestellservice <bestellungen@example.org> wrote:\n" + quoteLines(quote)
	default:
		plain = text + "\nAm 20.11.2026 um 10:00 schrieb DVC Bestellservice:\n" + quoteLines(quote)
	}
	plain = strings.ReplaceAll(plain, "\n", "\r\n")
	html = strings.ReplaceAll(html, "\n", "\r\n")
	textPart := "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + plain + "\r\n"
	if html != "" {
		textPart = "Content-Type: multipart/alternative; boundary=\"alt-" + run + "\"\r\n\r\n" +
			"--alt-" + run + "\r\n" + textPart +
			"--alt-" + run + "\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + html + "\r\n" +
			"--alt-" + run + "--\r\n"
	}
	var b bytes.Buffer
	b.Grow(h.Len() + len(textPart) + len(attachment) + 512)
	b.WriteString(h.String())
	if attachment == nil {
		b.WriteString(textPart)
		return b.Bytes(), msgID
	}
	bnd := "mix-" + run
	b.WriteString("Content-Type: multipart/mixed; boundary=\"" + bnd + "\"\r\n\r\n")
	b.WriteString("--" + bnd + "\r\n" + textPart)
	b.WriteString("--" + bnd + "\r\nContent-Type: application/pdf; name=\"Leistungsschein.pdf\"\r\n" +
		"Content-Disposition: attachment; filename=\"Leistungsschein.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	b.Write(attachment)
	b.WriteString("--" + bnd + "--\r\n")
	return b.Bytes(), msgID
}

func quoteLines(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("> " + l + "\n")
	}
	return b.String()
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// appender is one IMAP connection that APPENDs to a mailbox.
type appender struct {
	c       *imapclient.Client
	mailbox string
}

func newAppender(addr, user, pass, mailbox string) (*appender, error) {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return nil, fmt.Errorf("imap dial %s: %w", addr, err)
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap login: %w", err)
	}
	return &appender{c: c, mailbox: mailbox}, nil
}

// append stores one message and returns when the server confirmed it
// (the tagged OK).
func (a *appender) append(raw []byte) error {
	cmd := a.c.Append(a.mailbox, int64(len(raw)), &imap.AppendOptions{})
	if _, err := cmd.Write(raw); err != nil {
		cmd.Close()
		return fmt.Errorf("imap append: %w", err)
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("imap append: %w", err)
	}
	if _, err := cmd.Wait(); err != nil {
		return fmt.Errorf("imap append: %w", err)
	}
	return nil
}

func (a *appender) close() {
	a.c.Logout().Wait()
	a.c.Close()
}

// observer IDLEs on the INBOX and notes when the server reports new
// messages.
type observer struct {
	c    *imapclient.Client
	idle *imapclient.IdleCommand
	mu   sync.Mutex
	seen []time.Time
}

func newObserver(addr, user, pass string) (*observer, error) {
	o := &observer{}
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil { // EXISTS
					now := time.Now()
					o.mu.Lock()
					o.seen = append(o.seen, now)
					o.mu.Unlock()
				}
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("imap dial %s: %w", addr, err)
	}
	o.c = c
	if err := c.Login(user, pass).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap login: %w", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap select: %w", err)
	}
	if o.idle, err = c.Idle(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap idle: %w", err)
	}
	return o, nil
}

// times returns the EXISTS arrivals in order.
func (o *observer) times() []time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.seen)
}

func (o *observer) close() {
	o.idle.Close()
	o.idle.Wait()
	o.c.Logout().Wait()
	o.c.Close()
}

// mailboxCounts asks the server how many messages each mailbox holds
// (STATUS, one command each however large the mailbox).
func mailboxCounts(addr, user, pass string, mailboxes ...string) ([]int, error) {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return nil, fmt.Errorf("imap dial %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		return nil, fmt.Errorf("imap login: %w", err)
	}
	out := make([]int, len(mailboxes))
	for i, mb := range mailboxes {
		st, err := c.Status(mb, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			return nil, fmt.Errorf("imap status %s: %w", mb, err)
		}
		if st.NumMessages != nil {
			out[i] = int(*st.NumMessages)
		}
	}
	c.Logout().Wait()
	return out, nil
}
