package mailflow_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"html"
	"mailflow/mailflow/compose"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"mailflow/internal/exampletest"
	"mailflow/mailflow"
	"mailflow/scheduler"
	"mailflow/storage/storagetest"
	"mailflow/templates"
)

// TestNotification sends DV and UV order notifications through the real
// flow, composer, outbox and sender to an SMTP server on loopback and
// checks what arrives: the six items of docs/design.md §2 in the party's language,
// the attached AGB and conditions with their SHA-256, the headers of
// docs/design.md §4 and the two mailto links.
func TestNotification(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			e.start(t)
			dv := e.createOrder(t, "dv")
			uv := e.createOrder(t, "uv")
			msgs := e.waitMessages(t, 3)
			rows := e.waitOutbox(t)
			if len(msgs) != 3 || len(rows) != 3 {
				t.Fatalf("got %d messages, %d outbox rows; want 3 notifications", len(msgs), len(rows))
			}
			want := []struct {
				order *mailflow.Order
				party string
				to    string
				lang  string
				text  []string // in the text part and, unescaped, the HTML part
			}{
				{dv, mailflow.PartyProvider, "bestellungen@dataport.example", "de", []string{
					// order number, time and model
					dv.Number, "20.11.2026, 10:00 Uhr", "Direktvertrag (DV)",
					// 1. customer master data
					"Stadt Musterstadt", "Markt 1, 12345 Musterstadt, DE", "Erika Mustermann", "it@musterstadt.example",
					"+49 30 1234567", "K-1001", "04011000-12345-03",
					// 2. product
					"Verwaltungs-Mail", "Dataport AöR", "E-Mail- und Kalenderdienst für Behörden", "10 Tage", "Open-Xchange AG",
					// 3. price
					"1.200,00 EUR", "monatlich", "19 % USt.",
					// 4. properties
					"nutzer", "250", "region", "nord",
					// 5. AGB, 6. conditions
					"Fassung 2026-1", "gültig ab 01.07.2026", "Fassung 1", "gültig ab 01.01.2025",
					"AGB-2026-1.txt", "Bedingungen-dvc-mail-1.txt",
					// reply instructions
					"BESTÄTIGT", "IN BEARBEITUNG", "IN PRÜFUNG", "ABGELEHNT: Grund", "Ein Grund ist erforderlich",
				}},
				{uv, mailflow.PartyIntermediary, "auftrag@govdigital.example", "de", []string{
					uv.Number, "21.11.2026, 14:30 Uhr", "Umklappvertrag (UV)", "govdigital eG",
					"Landkreis Beispielkreis", "Schlossplatz 3, 90403 Nürnberg, DE", "Max Beispiel",
					"beschaffung@beispielkreis.example", "+49 911 555000", "K-2002", "09564000-NUE0001-49",
					"Kollaboration", "IT.NRW", "5 Tage", "450,00 EUR", "vierteljährlich", "19 % USt.", "nutzer", "40",
					"Fassung 2026-1", "Fassung 2", "gültig ab 01.06.2025", "BESTÄTIGT", "ABGELEHNT: Grund",
				}},
				{uv, mailflow.PartyProvider, "orders@it.nrw.example", "en", []string{
					uv.Number, "21 November 2026, 14:30 CET", "three-party contract", "govdigital eG",
					"Landkreis Beispielkreis", "Schlossplatz 3, 90403 Nürnberg, DE", "Max Beispiel",
					"beschaffung@beispielkreis.example", "+49 911 555000", "K-2002", "09564000-NUE0001-49",
					"Kollaboration", "IT.NRW", "5 days", "EUR 450.00", "per quarter", "19% VAT", "nutzer", "40",
					"version 2026-1", "valid from 1 July 2026", "version 2", "valid from 1 June 2025",
					"CONFIRMED", "IN PROGRESS", "IN REVIEW", "REJECTED: reason", "A reason is required",
				}},
			}
			for _, w := range want {
				t.Run(w.order.ContractModel+"-"+w.party, func(t *testing.T) {
					var got *parsed
					for _, m := range msgs {
						if slices.Equal(m.To, []string{w.to}) {
							got = parseMessage(t, m.Data)
							if m.From != "bestellungen@example.org" {
								t.Errorf("envelope sender = %q", m.From)
							}
						}
					}
					if got == nil {
						t.Fatalf("no message to %s", w.to)
					}
					checkNotification(t, e, got, w.order, w.party, w.to, w.lang, w.text)
				})
			}
			// No duplicates in the normal path: every Message-ID once.
			seen := map[string]bool{}
			for _, m := range msgs {
				id := parseMessage(t, m.Data).messageID(t)
				if seen[id] {
					t.Errorf("Message-ID %s delivered twice", id)
				}
				seen[id] = true
			}
		})
	}
}

func checkNotification(t *testing.T, e *env, p *parsed, o *mailflow.Order, party, to, lang string, items []string) {
	t.Helper()
	ctx := context.Background()
	msgID := p.messageID(t)
	row, err := e.store.OutboxByMessageID(ctx, msgID)
	if err != nil {
		t.Fatalf("outbox row of %s: %v", msgID, err)
	}
	if row.Kind != mailflow.KindNotification || row.Party != party || row.OrderID != o.ID || row.Status != mailflow.OutboxSent {
		t.Errorf("outbox row = %+v", row)
	}
	// Byte-identical: what arrived is what was stored.
	raw, err := e.store.OutboxRaw(ctx, row.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, p.raw) {
		t.Errorf("delivered bytes differ from the stored raw message")
	}

	// Reply-To carries a token that verifies to this order, party and row.
	replyTo, err := p.header.AddressList("Reply-To")
	if err != nil || len(replyTo) != 1 {
		t.Fatalf("Reply-To = %v, %v", replyTo, err)
	}
	local, domain, _ := strings.Cut(replyTo[0].Address, "@")
	base, token, ok := strings.Cut(local, "+")
	if !ok || base != "bestellungen" || domain != "example.org" || len(local) > 64 {
		t.Errorf("Reply-To = %q, want bestellungen+TOKEN@example.org within 64 characters of local part", replyTo[0].Address)
	}
	tok, err := e.tokens.Verify(token)
	if err != nil {
		t.Fatalf("Reply-To token: %v", err)
	}
	if tok != (mailflow.Token{OrderID: o.ID, Party: party, NotificationID: row.Ref}) {
		t.Errorf("token = %+v, want order %d, %s, ref %d", tok, o.ID, party, row.Ref)
	}
	// The token is also in the Message-ID, for replies without plus-addressing.
	if msgID != o.Number+"."+token+"@example.org" {
		t.Errorf("Message-ID = %q, want %s.TOKEN@example.org", msgID, o.Number)
	}
	if tok2, ok := e.tokens.FindToken(msgID); !ok || tok2 != tok {
		t.Errorf("FindToken(Message-ID) = %+v, %v", tok2, ok)
	}
	if subj := p.subject(t); !strings.HasPrefix(subj, "[Bestellung "+o.Number+"] ") {
		t.Errorf("Subject = %q, want the tag [Bestellung %s]", subj, o.Number)
	}
	if got := p.get("Auto-Submitted"); got != "auto-generated" {
		t.Errorf("Auto-Submitted = %q", got)
	}
	if got := p.get("X-Auto-Response-Suppress"); got != "All" {
		t.Errorf("X-Auto-Response-Suppress = %q", got)
	}
	if _, err := p.header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	from, _ := p.header.AddressList("From")
	rcpt, _ := p.header.AddressList("To")
	if len(from) != 1 || from[0].Address != "bestellungen@example.org" || len(rcpt) != 1 || rcpt[0].Address != to {
		t.Errorf("From %v, To %v", from, rcpt)
	}

	// multipart/mixed { multipart/alternative { text, html }, AGB, conditions }
	wantStructure := []string{"multipart/mixed", "multipart/alternative", "text/plain", "text/html", "text/plain", "text/plain"}
	if !slices.Equal(p.structure, wantStructure) {
		t.Errorf("MIME structure = %v, want %v", p.structure, wantStructure)
	}
	s := o.Snapshot
	cat := e.cat
	files := map[string]string{
		"AGB-" + s.Terms.Version + ".txt":                                   s.Terms.SHA256,
		"Bedingungen-" + s.Service.ID + "-" + s.Conditions.Version + ".txt": s.Conditions.SHA256,
	}
	for name, sum := range files {
		data, ok := p.attachments[name]
		if !ok {
			t.Errorf("attachment %s missing; have %v", name, keys(p.attachments))
			continue
		}
		got := sha256.Sum256(data)
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("attachment %s has SHA-256 %x, the snapshot says %s", name, got, sum)
		}
		if ct := p.attTypes[name]; !strings.EqualFold(ct, "text/plain; charset=utf-8") {
			t.Errorf("attachment %s: Content-Type %s", name, ct)
		}
		// The body states the hash.
		mustContain(t, "text part", p.text, sum)
		mustContain(t, "HTML part", p.html, sum)
	}
	// The snapshot's hashes are those of the catalog's texts.
	var catTerms string
	for _, tm := range cat.Terms {
		if tm.Version == s.Terms.Version {
			catTerms = tm.Text
		}
	}
	if mailflow.TextSHA256(catTerms) != s.Terms.SHA256 {
		t.Errorf("snapshot AGB hash %s is not the catalog text's", s.Terms.SHA256)
	}

	text, htm := p.text, html.UnescapeString(p.html)
	mustContain(t, "text part", text, items...)
	mustContain(t, "HTML part", htm, items...)

	// The two mailto links, prefilled with the keyword.
	accept, reject := "BEST%C3%84TIGT", "ABGELEHNT%3A%20"
	confirmLabel, rejectLabel := "Bestellung bestätigen", "Bestellung ablehnen"
	if lang == "en" {
		accept, reject = "CONFIRMED", "REJECTED%3A%20"
		confirmLabel, rejectLabel = "Confirm the order", "Reject the order"
	}
	link := "mailto:bestellungen+" + token + "@example.org?subject=Re%3A%20%5BBestellung%20" + o.Number + "%5D&body="
	mustContain(t, "text part", text, link+accept, link+reject, confirmLabel, rejectLabel)
	mustContain(t, "HTML part", htm, `href="`+link+accept+`"`, `href="`+link+reject+`"`, confirmLabel+"</a>", rejectLabel+"</a>")
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestOutcomeRouting checks who hears of each outcome (docs/design.md §3).
func TestOutcomeRouting(t *testing.T) {
	type step struct {
		party, intent, source string
	}
	const (
		prov    = "bestellungen@dataport.example"
		provUV  = "orders@it.nrw.example"
		interm  = "auftrag@govdigital.example"
		custDV  = "it@musterstadt.example"
		custUV  = "beschaffung@beispielkreis.example"
		coord   = testCoordinator
		byEmail = mailflow.SourceEmail
		byHand  = mailflow.SourceManual
	)
	tests := []struct {
		name  string
		model string
		steps []step
		// want lists kind:recipient of the messages the last step enqueues.
		want []string
	}{
		{"dv accept by email", "dv", []step{{"provider", "accept", byEmail}},
			[]string{"confirmation:" + prov, "confirmation:" + custDV, "confirmation:" + coord}},
		{"dv accept by hand", "dv", []step{{"provider", "accept", byHand}},
			[]string{"confirmation:" + prov, "confirmation:" + custDV, "confirmation:" + coord}},
		{"dv working by email acks", "dv", []step{{"provider", "working", byEmail}}, []string{"ack:" + prov}},
		{"dv review by hand sends nothing", "dv", []step{{"provider", "review", byHand}}, nil},
		{"dv superseded by email acks", "dv", []step{{"provider", "review", byEmail}, {"provider", "working", byEmail}}, []string{"ack:" + prov}},
		{"dv provider rejects", "dv", []step{{"provider", "reject", byEmail}},
			[]string{"rejection:" + custDV, "rejection:" + coord}}, // no acknowledgement to the rejecting party
		{"dv provider rejects again", "dv", []step{{"provider", "reject", byEmail}, {"provider", "reject", byEmail}}, nil},
		{"dv provider rejects by hand", "dv", []step{{"provider", "reject", byHand}},
			[]string{"rejection:" + custDV, "rejection:" + coord}},
		{"uv intermediary accepts first", "uv", []step{{"intermediary", "accept", byEmail}}, []string{"ack:" + interm}},
		{"uv provider accepts first", "uv", []step{{"provider", "accept", byEmail}}, []string{"ack:" + provUV}},
		{"uv binding", "uv", []step{{"provider", "accept", byEmail}, {"intermediary", "accept", byEmail}},
			[]string{"confirmation:" + provUV, "confirmation:" + interm, "confirmation:" + custUV, "confirmation:" + coord}},
		{"uv intermediary rejects", "uv", []step{{"intermediary", "reject", byEmail}},
			[]string{"rejection:" + provUV, "rejection:" + custUV, "rejection:" + coord}},
		{"uv provider rejects", "uv", []step{{"intermediary", "accept", byHand}, {"provider", "reject", byEmail}},
			[]string{"rejection:" + interm, "rejection:" + custUV, "rejection:" + coord}},
		{"uv provider rejects after the intermediary did", "uv", []step{{"intermediary", "reject", byEmail}, {"provider", "reject", byEmail}},
			[]string{"alert:" + coord, "ack:" + provUV}}, // a conflict: the order was already final
		{"dv conflict after binding", "dv", []step{{"provider", "accept", byEmail}, {"provider", "reject", byEmail}},
			[]string{"alert:" + coord, "ack:" + prov}},
		{"dv conflict by hand alerts only", "dv", []step{{"provider", "accept", byEmail}, {"provider", "reject", byHand}},
			[]string{"alert:" + coord}},
		{"dv repeat after binding acks", "dv", []step{{"provider", "accept", byEmail}, {"provider", "accept", byEmail}},
			[]string{"ack:" + prov}},
	}
	driver := storagetest.Drivers()[0]
	e := newEnv(t, driver)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := e.createOrder(t, tt.model)
			var d mailflow.Decision
			for i, s := range tt.steps {
				d = mailflow.Decision{Party: s.party, Intent: mailflow.Intent(s.intent), Source: s.source,
					Reason: map[bool]string{true: "Leistung in dieser Region nicht verfügbar"}[s.intent == "reject"]}
				if s.source == byEmail {
					d.MessageID = "reply-" + o.Number + "-" + string(rune('a'+i)) + "@mail.example"
				}
				before, _ := e.store.OrderMessages(ctx, o.ID)
				if _, err := e.flow.Decide(ctx, o.Number, d); err != nil {
					t.Fatal(err)
				}
				if i < len(tt.steps)-1 {
					continue
				}
				after, err := e.store.OrderMessages(ctx, o.ID)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, m := range after[len(before):] {
					got = append(got, m.Kind+":"+strings.Join(m.Recipients, ","))
					raw, _ := e.store.OutboxRaw(ctx, m.ID)
					p := parseMessage(t, raw)
					if m.Kind == mailflow.KindAck {
						// RFC 3834 §5: an answer is auto-replied and refers to the reply.
						if p.get("Auto-Submitted") != "auto-replied" || p.get("In-Reply-To") != "<"+d.MessageID+">" || p.get("References") != "<"+d.MessageID+">" {
							t.Errorf("ack headers: Auto-Submitted %q, In-Reply-To %q, References %q", p.get("Auto-Submitted"), p.get("In-Reply-To"), p.get("References"))
						}
					}
					if m.Kind == mailflow.KindConfirmation {
						if !strings.Contains(p.text, "Status: Bestellt") && !strings.Contains(p.text, "status: ordered (binding)") {
							t.Errorf("confirmation to %s does not say the order is binding", m.Party)
						}
					}
					if m.Kind == mailflow.KindRejection {
						mustContain(t, "rejection to "+m.Party, p.text, d.Reason)
					}
					if m.Party == mailflow.PartyProvider || m.Party == mailflow.PartyIntermediary {
						// Mails to a deciding party carry its reply token, so an
						// answer to them matches too.
						if tok, ok := e.tokens.FindToken(m.MessageID); !ok || tok.Party != m.Party || tok.OrderID != o.ID {
							t.Errorf("%s to %s: Message-ID %s has no token of the party", m.Kind, m.Party, m.MessageID)
						}
					} else if p.get("Auto-Submitted") != "auto-generated" {
						t.Errorf("%s to %s: Auto-Submitted %q", m.Kind, m.Party, p.get("Auto-Submitted"))
					}
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("enqueued\n  %v\nwant\n  %v", got, tt.want)
				}
			}
		})
	}
}

// TestConfirmationDeadline checks that the binding confirmation states the
// provisioning deadline: binding time plus the service's provisioning days.
func TestConfirmationDeadline(t *testing.T) {
	e := newEnv(t, storagetest.Drivers()[0])
	ctx := context.Background()
	o := e.createOrder(t, "dv")
	at := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	o, err := e.flow.Decide(ctx, o.Number, mailflow.Decision{Party: "provider", Intent: "accept", Source: "manual", At: at})
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := e.store.OrderMessages(ctx, o.ID)
	var n int
	for _, m := range msgs {
		if m.Kind != mailflow.KindConfirmation {
			continue
		}
		n++
		raw, _ := e.store.OutboxRaw(ctx, m.ID)
		p := parseMessage(t, raw)
		// 23.11.2026 + 10 days = 03.12.2026
		mustContain(t, "confirmation to "+m.Party, p.text, "03.12.2026", "23.11.2026, 10:30 Uhr", o.Number, "Verwaltungs-Mail")
		mustContain(t, "confirmation to "+m.Party, html.UnescapeString(p.html), "03.12.2026")
		if !strings.HasPrefix(m.Subject, "[Bestellung "+o.Number+"] ") {
			t.Errorf("subject %q", m.Subject)
		}
	}
	if n != 3 {
		t.Errorf("%d confirmations, want 3", n)
	}
}

// TestHeaderInjection makes sure that CR/LF in any value that reaches a
// header cannot add a header field, and that HTML escapes customer data.
func TestHeaderInjection(t *testing.T) {
	c := newComposer(t, nil)
	cat := exampletest.Catalog(t)
	req := orderRequest(t, "uv")
	snap, err := mailflow.BuildSnapshot(req, cat)
	if err != nil {
		t.Fatal(err)
	}
	// Validation refuses CR/LF in customer fields, so build the order by
	// hand, as if a value had slipped through.
	snap.Customer.Name = "Evil\r\nBcc: evil@attacker.example\r\nX-Injected: 1 <script>alert(1)</script> & Co"
	snap.Provider.Name = "Provider\r\nCc: evil@attacker.example"
	snap.Service.Name = "Dienst\nX-Injected: 2"
	o := &mailflow.Order{ID: 42, Number: "2026-000042", OrderedAt: *req.OrderedAt, ContractModel: mailflow.ModelUV,
		Status: mailflow.StatusOpen, Snapshot: snap}
	msgs, err := c.OrderCreated(o)
	if err != nil {
		t.Fatal(err)
	}
	d := mailflow.Decision{Party: "provider", Intent: "reject", Reason: "nein\r\nBcc: evil@attacker.example", Source: "email",
		MessageID: "<x@y>\r\nBcc: evil@attacker.example", Effect: mailflow.EffectApplied, At: time.Now()}
	o.Status = mailflow.StatusRejectedProviderUV
	more, err := c.DecisionRecorded(o, d, mailflow.StatusOpen)
	if err != nil {
		t.Fatal(err)
	}
	alert, err := c.Alert("Betreff\r\nBcc: evil@attacker.example", "Text", 0, "2026-000042\r\nBcc: x@y")
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{"Auto-Submitted", "Date", "MIME-Version", "Message-ID", "Subject", "X-Auto-Response-Suppress",
		"From", "To", "Reply-To", "Content-Type", "In-Reply-To", "References"}
	for _, m := range append(append(msgs, more...), alert) {
		for _, k := range headerKeys(m.Raw) {
			if !slices.Contains(allowed, k) {
				t.Errorf("%s to %v: unexpected header %q", m.Kind, m.Recipients, k)
			}
		}
		parsed, err := mail.ReadMessage(bytes.NewReader(m.Raw))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"Bcc", "Cc", "X-Injected"} {
			if v := parsed.Header.Get(k); v != "" {
				t.Errorf("%s: injected header %s: %q", m.Kind, k, v)
			}
		}
		if strings.ContainsAny(m.Subject, "\r\n") {
			t.Errorf("subject %q spans lines", m.Subject)
		}
		if m.Kind == mailflow.KindAck && parsed.Header.Get("In-Reply-To") != "" {
			t.Errorf("a malformed Message-ID went into In-Reply-To: %q", parsed.Header.Get("In-Reply-To"))
		}
		p := parseMessage(t, m.Raw)
		if strings.Contains(p.html, "<script>") {
			t.Errorf("%s: HTML part contains unescaped customer data", m.Kind)
		}
	}
	p := parseMessage(t, msgs[0].Raw)
	mustContain(t, "HTML part", p.html, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co")
	if s := decodeWord(p.get("Subject")); !strings.Contains(s, "Evil Bcc: evil@attacker.example X-Injected: 1") {
		t.Errorf("subject = %q, want the name on one line", s)
	}
}

// TestEveryTemplateRenders renders every mail of the template set in every
// language with a full sample, so a template error shows up here and not
// at the first order. A new mail needs a sample below.
func TestEveryTemplateRenders(t *testing.T) {
	set, err := templates.New()
	if err != nil {
		t.Fatal(err)
	}
	cat := exampletest.Catalog(t)
	req := orderRequest(t, "uv")
	snap, err := mailflow.BuildSnapshot(req, cat)
	if err != nil {
		t.Fatal(err)
	}
	snap.Customer.Name = `Landkreis <Beispiel> & "Söhne"`
	bind := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	o := &mailflow.Order{ID: 1, Number: "2026-000001", OrderedAt: *req.OrderedAt, ContractModel: mailflow.ModelUV,
		Status: mailflow.StatusOrdered, BindingAt: &bind, Snapshot: snap}
	d := &mailflow.Decision{Party: "provider", Intent: "reject", Reason: "Kapazität <erschöpft>", Source: "email",
		Effect: mailflow.EffectApplied, At: bind}
	deadline := o.ProvisioningDeadline()
	samples := map[string]compose.MailView{
		"notification": {Role: "provider", TermsFile: "AGB-2026-1.txt", ConditionsFile: "Bedingungen-dvc-kollab-2.txt",
			Reply: &compose.ReplyView{Address: "b+t@example.org", ConfirmURL: "mailto:b+t@example.org?body=X", RejectURL: "mailto:b+t@example.org?body=Y"}},
		"confirmation": {Role: "customer", Deadline: deadline, Decision: d},
		"rejection":    {Role: "customer", Decision: d, DecidedBy: "IT.NRW"},
		"ack":          {Role: "provider", Decision: d},
		"conflict":     {Role: "provider", Decision: d},
		"alert":        {Role: "coordinator", Alert: &compose.AlertView{Subject: "Zustellung <fehlgeschlagen>", Body: "550 <x@y>"}},
		"signin": {Data: &compose.SigninView{Minutes: 15, Expires: bind, Links: []compose.SigninLink{
			{Org: "IT.NRW <Rechenzentrum>", Role: "provider", URL: "https://bestellungen.example.org/anmelden/link/abc"}}}},
	}
	// The scheduler's mails (scheduler/mail.go).
	Berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := scheduler.DuePeriods(bind, "quarterly", 45000, 19, Berlin, time.Time{}, time.Date(2027, 4, 1, 0, 0, 0, 0, Berlin))
	if err != nil || len(ps) != 2 {
		t.Fatal(ps, err)
	}
	c := snap.Customer
	var lines []scheduler.BillingLine
	for _, p := range ps {
		lines = append(lines, scheduler.BillingLine{OrderID: 1, Number: o.Number, Model: "UV", Service: snap.Service.Name,
			PriceName: snap.Price.Name, Interval: "quarterly", Currency: "EUR", VATPercent: 19, Period: p,
			InvoiceTo: mailflow.Invoicee{Role: "customer", Name: c.Name, Street: c.Street, PostalCode: c.PostalCode, City: c.City,
				CustomerNumber: c.CustomerNumber, LeitwegID: c.LeitwegID}})
	}
	samples["billing"] = compose.MailView{Role: "intermediary", Data: scheduler.NewBillingView(
		&scheduler.BillingMail{Role: "intermediary", To: *snap.Intermediary, Lines: lines, Part: 2, Parts: 3, At: bind}, "de")}
	samples["reminder"] = compose.MailView{Role: "provider", Data: &scheduler.ReminderView{Since: bind, Days: 2},
		Reply: &compose.ReplyView{Address: "b+t@example.org", ConfirmURL: "mailto:b+t@example.org?body=X", RejectURL: "mailto:b+t@example.org?body=Y"}}
	samples["escalation"] = compose.MailView{Role: "coordinator", Data: &scheduler.EscalationView{Party: "provider", PartyName: "IT.NRW",
		Email: "orders@it.nrw.example", Since: bind, Days: 5}}
	o.History = []mailflow.Decision{*d}
	samples["digest"] = compose.MailView{Role: "coordinator", Data: &scheduler.DigestData{At: bind, Orders: 3,
		Statuses:     []scheduler.StatusCount{{Status: mailflow.StatusOpen, Count: 1}, {Status: mailflow.StatusOrdered, Count: 2}},
		Overdue:      []scheduler.Overdue{{Number: o.Number, Status: mailflow.StatusOpen, Party: "provider", PartyName: `IT.NRW <Ref>`, Since: bind, For: 150 * time.Hour}},
		OverdueTotal: 60, EscalateAfter: 120 * time.Hour, Review: 2,
		Failed:      []*mailflow.OutboxMessage{{ID: 7, OrderNumber: o.Number, Kind: "notification", Recipients: []string{"x@y.example"}, LastError: "550 <fehlgeschlagen>"}},
		FailedTotal: 1, Pending: 3, OldestPending: 5 * time.Hour}}
	for _, name := range set.Names() {
		v, ok := samples[name]
		if !ok {
			t.Errorf("template %q has no sample in TestEveryTemplateRenders", name)
			continue
		}
		for _, lang := range templates.Languages {
			v := v
			v.Lang, v.Coordinator, v.Order = lang, testCoordinator, o
			r, err := set.Render(name, lang, &v)
			if err != nil {
				t.Errorf("%s/%s: %v", name, lang, err)
				continue
			}
			if r.Subject == "" || strings.TrimSpace(r.Text) == "" || !strings.Contains(r.HTML, "</html>") {
				t.Errorf("%s/%s: empty part: %+v", name, lang, r)
			}
			if strings.Contains(r.HTML, "<Beispiel>") || strings.Contains(r.HTML, "<erschöpft>") || strings.Contains(r.HTML, "<fehlgeschlagen>") || strings.Contains(r.HTML, "<Rechenzentrum>") {
				t.Errorf("%s/%s: HTML not escaped", name, lang)
			}
			if strings.Contains(r.Text, "<no value>") || strings.Contains(r.HTML, "<no value>") {
				t.Errorf("%s/%s: a field is missing", name, lang)
			}
			if !strings.Contains(r.Text, "\n-- \n") {
				t.Errorf("%s/%s: text part lacks the signature separator", name, lang)
			}
			if name != "alert" && name != "digest" && name != "signin" && !strings.HasPrefix(r.Subject, "[Bestellung 2026-000001] ") {
				t.Errorf("%s/%s: subject %q lacks the tag", name, lang, r.Subject)
			}
			if testing.Verbose() {
				t.Logf("%s/%s: %s\n%s", name, lang, r.Subject, r.Text)
			}
		}
	}
}

// TestComposerConfig checks that bad configuration is refused at start-up.
func TestComposerConfig(t *testing.T) {
	set := templates.Must(templates.New())
	tok := newTokens(t)
	good := compose.Config{From: testFrom, Coordinator: testCoordinator, Tokens: tok, Templates: set}
	if _, err := compose.New(good); err != nil {
		t.Fatalf("good config: %v", err)
	}
	tests := []struct {
		name   string
		modify func(*compose.Config)
	}{
		{"bad from", func(c *compose.Config) { c.From = "nobody" }},
		{"plus in reply address", func(c *compose.Config) { c.ReplyAddress = "a+b@example.org" }},
		{"reply local part too long for a token", func(c *compose.Config) {
			c.ReplyAddress = strings.Repeat("x", 20) + "@example.org"
		}},
		{"no coordinator", func(c *compose.Config) { c.Coordinator = "" }},
		{"no tokens", func(c *compose.Config) { c.Tokens = nil }},
	}
	for _, tt := range tests {
		c := good
		tt.modify(&c)
		if _, err := compose.New(c); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

// The customer's mails are in the customer's language; a snapshot from
// before the field existed (no language) means German.
func TestCustomerMailLanguage(t *testing.T) {
	c := newComposer(t, nil)
	cat := exampletest.Catalog(t)
	tests := []struct {
		lang, outcome, subject string
	}{
		{"", "reject", "Abgelehnt durch"},
		{"de", "reject", "Abgelehnt durch"},
		{"en", "reject", "Rejected by the"},
		{"", "accept", "Verbindlich bestellt"},
		{"en", "accept", "Binding order"},
	}
	for _, tt := range tests {
		snap, err := mailflow.BuildSnapshot(orderRequest(t, "dv"), cat)
		if err != nil {
			t.Fatal(err)
		}
		snap.Customer.Language = tt.lang
		o := &mailflow.Order{ID: 7, Number: "2026-000007", ContractModel: mailflow.ModelDV, Snapshot: snap}
		d := mailflow.Decision{Party: mailflow.PartyProvider, Intent: mailflow.Intent(tt.outcome), Source: mailflow.SourceManual,
			Reason: "Nicht verfügbar", At: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
		ev := mailflow.Evaluate(o.ContractModel, []mailflow.Decision{d})
		o.Status, o.BindingAt, o.History = ev.Status, ev.BindingAt, ev.Decisions
		msgs, err := c.DecisionRecorded(o, ev.Decisions[0], mailflow.StatusOpen)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range msgs {
			want := tt.subject
			if m.Party != mailflow.RoleCustomer {
				if m.Party != mailflow.RoleCoordinator {
					continue
				}
				want = map[string]string{"reject": "Abgelehnt durch", "accept": "Verbindlich bestellt"}[tt.outcome] // the coordinator reads German
			} else {
				found = true
			}
			if !strings.HasPrefix(m.Subject, "[Bestellung 2026-000007] "+want) {
				t.Errorf("language %q, %s: subject to %s %q, want %q…", tt.lang, tt.outcome, m.Party, m.Subject, want)
			}
		}
		if !found {
			t.Errorf("language %q, %s: no mail to the customer", tt.lang, tt.outcome)
		}
	}
}

// TestBodyEncoding: text the encoder must change (a line far longer than
// a mail line may be, '=' signs, umlauts, tabs, a line that is one dot)
// arrives in both alternatives as it was rendered,
// and no line of the raw message is longer than RFC 5322 §2.1.1's 78
// characters.
func TestBodyEncoding(t *testing.T) {
	e := newEnv(t, "sqlite")
	long := strings.TrimSpace(strings.Repeat("Größe=Gewicht·Übermaß ", 12))
	body := long + "\nSpalte\tSpalte =\n.\nletzte Zeile"
	m, err := e.composer.Compose(compose.Mail{Kind: mailflow.KindDigest, Role: mailflow.RoleCoordinator,
		To: []mail.Address{{Address: testCoordinator}}, Template: "alert",
		View: compose.MailView{Alert: &compose.AlertView{Subject: "Kodierung", Body: body}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(m.Raw), "\r\n") {
		if len(line) > 78 {
			t.Errorf("raw line %d has %d characters: %q", i+1, len(line), line)
		}
	}
	p := parseMessage(t, m.Raw)
	text := strings.ReplaceAll(p.text, "\r\n", "\n")
	mustContain(t, "text", text, body)
	mustContain(t, "html", html.UnescapeString(strings.ReplaceAll(p.html, "\r\n", "\n")), body)
}
