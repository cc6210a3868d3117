package scheduler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"

	"mailflow/internal/exampletest"
	"mailflow/internal/mailtest"
	"mailflow/internal/xrechnungtest"
	"mailflow/mailflow/outbound"
)

// attachment is a file attached to a delivered mail.
type attachment struct {
	name, contentType string
	data              []byte
}

// attachments returns the attached files of a raw message.
func attachments(t testing.TB, raw []byte) []attachment {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse mail: %v", err)
	}
	var out []attachment
	err = e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil {
			return err
		}
		disp, params, _ := part.Header.ContentDisposition()
		if disp != "attachment" {
			return nil
		}
		ct, _, _ := part.Header.ContentType()
		b, err := io.ReadAll(part.Body)
		out = append(out, attachment{params["filename"], ct, b})
		return err
	})
	if err != nil {
		t.Fatalf("walk mail: %v", err)
	}
	return out
}

// deliver sends the whole outbox through a real sender to an in-process
// SMTP server and returns the billing reminders it received, by
// recipient.
func (e *env) deliver(t *testing.T) map[string][]byte {
	t.Helper()
	srv := mailtest.NewSMTPServer(t)
	s, err := outbound.New(e.store, outbound.Config{
		SMTP: outbound.SMTPConfig{Host: srv.Host, Port: srv.Port, TLS: "none"}, PollInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	all, err := e.store.OutboxList(e.ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := srv.Wait(ctx, len(all))
	if err != nil {
		t.Fatalf("SMTP server got %d of %d messages: %v", srv.Count(), len(all), err)
	}
	cancel()
	<-done
	dec := new(mime.WordDecoder)
	out := map[string][]byte{}
	for _, m := range msgs {
		h, err := message.Read(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		subject, _ := dec.DecodeHeader(h.Header.Get("Subject"))
		if strings.Contains(subject, "Abrechnung:") || strings.Contains(subject, "Billing:") {
			out[m.To[0]] = m.Data
		}
	}
	return out
}

// A real billing run delivers, over SMTP, reminders that carry one
// XRechnung per invoice recipient: DV the provider's to the customer; UV
// the provider's to the intermediary and the intermediary's to the
// customer, each with the recipient's Leitweg-ID as buyer reference.
// Every attached invoice passes the official rules.
func TestBillingRunDeliversValidXRechnung(t *testing.T) {
	xrechnungtest.Validator(t)
	e := newEnv(t, "sqlite")
	dv := e.bound("order-dv.json", "basis-monat", at(e.loc, 2026, 1, 15, 9, 0))
	uv := e.bound("order-uv.json", "", at(e.loc, 2026, 1, 15, 9, 0))
	rep := e.billing(at(e.loc, 2026, 4, 1, 6, 0), false)
	if len(rep.Invoices) != 3 {
		t.Fatalf("report lists %d invoices, want 3: %+v", len(rep.Invoices), rep.Invoices)
	}
	mails := e.deliver(t)
	tests := []struct {
		to, buyerRef, seller string
		orders               []string
		lines                int
	}{
		{"bestellungen@dataport.example", "04011000-12345-03", "Dataport AöR", []string{dv.Number}, 3}, // Jan (prorated), Feb, Mar
		{"orders@it.nrw.example", "992-90009-96", "Landesbetrieb Information und Technik", []string{uv.Number}, 1},
		{"auftrag@govdigital.example", "09564000-NUE0001-49", "govdigital eG", []string{uv.Number}, 1},
	}
	dir := t.TempDir()
	var files []string
	for _, tt := range tests {
		raw, ok := mails[tt.to]
		if !ok {
			t.Errorf("no billing reminder delivered to %s", tt.to)
			continue
		}
		atts := attachments(t, raw)
		if len(atts) != 1 {
			t.Errorf("%s: %d attachments, want 1", tt.to, len(atts))
			continue
		}
		a := atts[0]
		if !strings.HasPrefix(a.name, "XRechnung-ENTWURF-20260401-") || !strings.HasSuffix(a.name, ".xml") || a.contentType != "application/xml" {
			t.Errorf("%s: attachment %q of type %s", tt.to, a.name, a.contentType)
		}
		x := string(a.data)
		mustContain(t, tt.to+" invoice", x, "<cbc:BuyerReference>"+tt.buyerRef+"</cbc:BuyerReference>",
			"<cbc:IssueDate>2026-04-01</cbc:IssueDate>", "<cbc:RegistrationName>"+tt.seller)
		for _, o := range tt.orders {
			mustContain(t, tt.to+" invoice", x, "<cbc:LineID>"+o+"</cbc:LineID>")
		}
		if n := strings.Count(x, "<cac:InvoiceLine>"); n != tt.lines {
			t.Errorf("%s: %d invoice lines, want %d", tt.to, n, tt.lines)
		}
		p := parseMail(t, raw)
		mustContain(t, tt.to+" text", p.text, a.name, "ENTWURF-")
		path := filepath.Join(dir, strings.ReplaceAll(tt.to, "@", "_")+"-"+a.name)
		if err := os.WriteFile(path, a.data, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	// The DV invoice's amounts are the reminder's: 658,06 + 1200 + 1200 net.
	mustContain(t, "DV invoice", string(attachments(t, mails[tests[0].to])[0].data),
		`<cbc:LineExtensionAmount currencyID="EUR">3058.06</cbc:LineExtensionAmount>`,
		`<cbc:StartDate>2026-01-15</cbc:StartDate>`, `<cbc:EndDate>2026-01-31</cbc:EndDate>`)
	if len(files) == len(tests) {
		xrechnungtest.Validate(t, files...)
	}
}

// A party whose catalog entry lacks seller data gets its reminder without
// an invoice, naming what is missing; the catalog keeps working.
func TestBillingReminderNamesMissingSellerData(t *testing.T) {
	e := newEnv(t, "sqlite")
	cat := exampletest.Catalog(t)
	cat.Providers[0].Seller.IBAN = ""
	cat.Providers[0].Seller.ContactPhone = ""
	if err := e.store.ImportCatalog(e.ctx, cat); err != nil {
		t.Fatal(err)
	}
	e.bound("order-dv.json", "basis-monat", at(e.loc, 2026, 1, 15, 9, 0))
	rep := e.billing(at(e.loc, 2026, 2, 1, 6, 0), false)
	if len(rep.Invoices) != 0 {
		t.Errorf("report lists invoices %+v, want none", rep.Invoices)
	}
	m, p := e.billingMail(t, "bestellungen@dataport.example")
	raw, err := e.store.OutboxRaw(e.ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a := attachments(t, raw); len(a) != 0 {
		t.Errorf("%d attachments, want none", len(a))
	}
	mustContain(t, "text part", p.text, "Eine E-Rechnung liegt nicht bei", "seller.contact_phone", "seller.iban")
	mustContain(t, "HTML part", p.html, "Eine E-Rechnung liegt nicht bei", "seller.iban")
	b, _ := json.Marshal(rep)
	if strings.Contains(string(b), `"invoices"`) {
		t.Errorf("report JSON lists invoices: %s", b)
	}
}
