package scheduler

import (
	"fmt"
	htmltemplate "html/template"
	"mailflow/mailflow/compose"
	"net/mail"
	"strings"
	"time"

	"mailflow/mailflow"
	"mailflow/mailflow/xrechnung"
	"mailflow/templates"
)

// NewMailer returns the Mailer that composes the scheduler's mails with
// the Composer, from the templates billing, reminder, escalation and
// digest.
func NewMailer(c *compose.Composer) Mailer { return &composerMailer{c: c} }

type composerMailer struct{ c *compose.Composer }

// BillingView is MailView.Data of the billing template: the mail's lines
// as rows with their numbers and dates already formatted in the mail's
// language. A reminder lists up to MaxBillingLines lines, and a template
// function call per value would cost more than all the database work of
// the run (reflection), so the formatting happens here and the template
// only places the values.
type BillingView struct {
	Role        string
	Part, Parts int
	Rows        []BillingRow
	// RowsText and RowsHTML are the rows as the text part lists them and
	// as rows of the HTML part's table (templates.BillingRows).
	RowsText string
	RowsHTML htmltemplate.HTML
	Orders   int     // orders the rows belong to
	UV       bool    // some row is of a UV order
	Totals   []Total // per currency, in order of appearance
	// Invoices are the attached e-invoices; Draft says their numbers are
	// drafts to replace. InvoiceMissing names what the catalog lacks for
	// an e-invoice, "" when nothing.
	Invoices       []InvoiceRow
	Draft          bool
	InvoiceMissing string
}

// InvoiceRow is an attached e-invoice as the billing template lists it.
type InvoiceRow struct {
	File, Buyer     string
	Net, VAT, Gross string
}

// BillingRow is one BillingLine as the billing template shows it.
type BillingRow = templates.BillingRow

// Total sums the rows of one currency.
type Total struct {
	Currency        string
	Rows            int
	Net, VAT, Gross string
	net, vat, gross int64
}

// formatter formats the dates and amounts of a view, each distinct one
// once: the lines of a reminder share their period's days and, mostly,
// their prices.
type formatter struct {
	lang     string
	days     map[time.Time]string
	lastDays map[time.Time]string // by the end of a period
	amounts  map[amount]string
}

type amount struct {
	cents    int64
	currency string
}

func (f *formatter) day(t time.Time) string {
	s, ok := f.days[t]
	if !ok {
		s = templates.Day(f.lang, t)
		f.days[t] = s
	}
	return s
}

// lastDay formats a period's last day, the day before its end: AddDate
// in the time zone is the costlier part, so it is also done once per end.
func (f *formatter) lastDay(p *mailflow.Period) string {
	s, ok := f.lastDays[p.End]
	if !ok {
		s = templates.Day(f.lang, p.LastDay())
		f.lastDays[p.End] = s
	}
	return s
}

func (f *formatter) money(cents int64, currency string) string {
	k := amount{cents, currency}
	s, ok := f.amounts[k]
	if !ok {
		s = templates.Money(f.lang, cents, currency)
		f.amounts[k] = s
	}
	return s
}

// NewBillingView formats a billing reminder's lines for its template in
// lang ("de" or "en").
func NewBillingView(b *BillingMail, lang string) *BillingView {
	v := &BillingView{Role: b.Role, Part: b.Part, Parts: b.Parts, Rows: make([]BillingRow, len(b.Lines))}
	seen := map[int64]bool{}
	totals := map[string]int{}
	f := formatter{lang: lang, days: map[time.Time]string{}, lastDays: map[time.Time]string{}, amounts: map[amount]string{}}
	for i := range b.Lines {
		l := &b.Lines[i]
		p := &l.Period
		if !seen[l.OrderID] {
			seen[l.OrderID] = true
			v.Orders++
		}
		v.UV = v.UV || l.Model == mailflow.ModelUV
		to := &l.InvoiceTo
		v.Rows[i] = BillingRow{
			Number: l.Number, Once: p.Key == intervalOnce, Key: p.Key, Service: l.Service + ", " + l.PriceName, Interval: l.Interval,
			From: f.day(p.Start), To: f.lastDay(p), Prorated: p.Prorated(), Days: p.Days, FullDays: p.FullDays,
			Name: to.Name, Address: to.Street + ", " + to.PostalCode + " " + to.City, Customer: to.CustomerNumber, LeitwegID: to.LeitwegID,
			Rate: templates.VAT(lang, l.VATPercent), Net: f.money(p.NetCents, l.Currency),
			VAT: f.money(p.VATCents, l.Currency), Gross: f.money(p.GrossCents, l.Currency),
		}
		t, ok := totals[l.Currency]
		if !ok {
			t = len(v.Totals)
			totals[l.Currency] = t
			v.Totals = append(v.Totals, Total{Currency: l.Currency})
		}
		tt := &v.Totals[t]
		tt.Rows++
		tt.net, tt.vat, tt.gross = tt.net+p.NetCents, tt.vat+p.VATCents, tt.gross+p.GrossCents
	}
	for i := range v.Totals {
		t := &v.Totals[i]
		t.Net, t.VAT, t.Gross = templates.Money(lang, t.net, t.Currency), templates.Money(lang, t.vat, t.Currency), templates.Money(lang, t.gross, t.Currency)
	}
	v.RowsText, v.RowsHTML = templates.BillingRows(lang, v.Rows)
	for i := range b.Invoices {
		inv := &b.Invoices[i]
		v.Draft = v.Draft || inv.Draft
		v.Invoices = append(v.Invoices, InvoiceRow{File: inv.File, Buyer: inv.Buyer,
			Net: templates.Money(lang, inv.Totals.Net, inv.Currency), VAT: templates.Money(lang, inv.Totals.VAT, inv.Currency),
			Gross: templates.Money(lang, inv.Totals.Gross, inv.Currency)})
	}
	v.InvoiceMissing = strings.Join(b.InvoiceMissing, "; ")
	return v
}

// BillingReminder is one mail to the reminded party, in its language,
// with questions going to the coordinator. A mail about a single order
// carries its subject tag and is linked to it.
func (m *composerMailer) BillingReminder(b BillingMail) (*mailflow.OutboxMessage, error) {
	v := NewBillingView(&b, templates.Lang(b.To.Language))
	msg := compose.Mail{Kind: mailflow.KindBilling, Role: b.Role, Lang: b.To.Language,
		To: []mail.Address{{Name: b.To.Name, Address: b.To.Email}}, Template: "billing",
		ReplyTo: m.c.Coordinator(), View: compose.MailView{Data: v}}
	for _, inv := range b.Invoices {
		msg.Attachments = append(msg.Attachments, compose.Attachment{Name: inv.File, ContentType: xrechnung.ContentType, Data: inv.XML})
	}
	if v.Orders == 1 && len(b.Lines) > 0 {
		msg.Order = &mailflow.Order{ID: b.Lines[0].OrderID, Number: b.Lines[0].Number}
	}
	return m.c.Compose(msg)
}

// ReminderView is MailView.Data of the reminder template.
type ReminderView struct {
	Since time.Time // the notification
	Days  int       // whole days undecided
}

// ConfirmationReminder goes to the party's notification address with the
// reply address and links of the notification, so that the party can
// answer the reminder itself.
func (m *composerMailer) ConfirmationReminder(o *mailflow.Order, party string, undecidedFor time.Duration) (*mailflow.OutboxMessage, error) {
	p, ok := o.Party(party)
	if !ok {
		return nil, fmt.Errorf("scheduler: reminder: order %s has no %s", o.Number, party)
	}
	return m.c.Compose(compose.Mail{Kind: mailflow.KindReminder, Role: party, Lang: p.Language,
		To: []mail.Address{{Name: p.Name, Address: p.Email}}, Template: "reminder", Order: o, Token: true,
		View: compose.MailView{Data: &ReminderView{Since: o.CreatedAt, Days: int(undecidedFor / (24 * time.Hour))}}})
}

// EscalationView is MailView.Data of the escalation template.
type EscalationView struct {
	Party     string // provider or intermediary
	PartyName string
	Email     string
	Since     time.Time
	Days      int
}

// Escalation alerts the coordinator.
func (m *composerMailer) Escalation(o *mailflow.Order, party string, undecidedFor time.Duration) (*mailflow.OutboxMessage, error) {
	p, _ := o.Party(party)
	return m.c.Compose(compose.Mail{Kind: mailflow.KindAlert, Role: mailflow.RoleCoordinator,
		To: []mail.Address{{Address: m.c.Coordinator()}}, Template: "escalation", Order: o,
		View: compose.MailView{Data: &EscalationView{Party: party, PartyName: p.Name, Email: p.Email, Since: o.CreatedAt,
			Days: int(undecidedFor / (24 * time.Hour))}}})
}

// Digest goes to the coordinator.
func (m *composerMailer) Digest(d DigestData) (*mailflow.OutboxMessage, error) {
	return m.c.Compose(compose.Mail{Kind: mailflow.KindDigest, Role: mailflow.RoleCoordinator,
		To: []mail.Address{{Address: m.c.Coordinator()}}, Template: "digest", View: compose.MailView{Data: &d}})
}
