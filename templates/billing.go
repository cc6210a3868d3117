package templates

import (
	"html"
	htmltemplate "html/template"
	"strconv"
	"strings"
)

// BillingRow is one line of a billing reminder with its numbers and dates
// already formatted in the mail's language.
type BillingRow struct {
	Number    string
	Once      bool   // a "once" price
	Key       string // the period: "2026-01", "2026-Q1", "2026"
	Service   string // service and price name
	Interval  string // the catalog interval
	From, To  string // first and last billed day
	Prorated  bool
	Days      int // billed days of FullDays, when Prorated
	FullDays  int
	Name      string // the invoice recipient
	Address   string // street, postal code and city
	Customer  string // the customer number; "" when the recipient is the intermediary
	LeitwegID string
	Rate      string // VAT rate
	Net       string
	VAT       string
	Gross     string
}

// billingLabels are the words of a reminder's rows in one language.
type billingLabels struct {
	once, order, period, periodLabel, to, prorated, daysOf, days, invoiceTo, customer, leitweg, leitwegNote, net, vat, gross string
	htmlProrated, htmlDays                                                                                                   string
}

var billingWords = map[string]billingLabels{
	"de": {once: "einmalig", order: "Bestellung ", period: ", Abrechnungszeitraum ", periodLabel: "  Zeitraum:     ", to: " bis ",
		prorated: ", anteilig ", daysOf: " von ", days: " Tagen", invoiceTo: "  Rechnung an:  ", customer: "  Kundennummer: ",
		leitweg: "  Leitweg-ID:   ", net: "  Netto ", vat: ", USt ", gross: ", Brutto ",
		htmlProrated: "anteilig ", htmlDays: " Tage"},
	"en": {once: "one-off", order: "Order ", period: ", billing period ", periodLabel: "  Period:           ", to: " to ",
		prorated: ", prorated ", daysOf: " of ", days: " days", invoiceTo: "  Invoice to:       ", customer: "  Customer number:  ",
		leitweg: "  Leitweg-ID:       ", leitwegNote: " (e-invoicing routing ID)", net: "  Net ", vat: ", VAT ", gross: ", gross ",
		htmlProrated: "prorated ", htmlDays: " days"},
}

var billingHTMLWords = map[string][2]string{ // customer number, Leitweg-ID
	"de": {"Kundennummer ", "Leitweg-ID "},
	"en": {"customer number ", "Leitweg-ID "},
}

// BillingRows writes the rows of a billing reminder as the text part
// lists them and as the rows of the HTML part's table. A reminder has up
// to 500 rows: executing a template per row cost more than all the
// database work of a billing run (reflection and contextual escaping per
// value), so the rows are written here and the billing templates place
// them. Every value is escaped for HTML.
func BillingRows(lang string, rows []BillingRow) (text string, htm htmltemplate.HTML) {
	lang = Lang(lang)
	w, hw := billingWords[lang], billingHTMLWords[lang]
	var t, h strings.Builder
	t.Grow(len(rows) * 400)
	h.Grow(len(rows) * 520)
	esc := func(s string) { h.WriteString(html.EscapeString(s)) }
	for i := range rows {
		r := &rows[i]
		key := r.Key
		if r.Once {
			key = w.once
		}
		// Text: one block per row, a blank line before it.
		t.WriteString("\n")
		t.WriteString(w.order + r.Number + w.period + key + ": " + r.Service + " (" + Label(lang, LabelInterval, r.Interval) + ")\n")
		t.WriteString(w.periodLabel + r.From + w.to + r.To)
		if r.Prorated {
			t.WriteString(w.prorated + strconv.Itoa(r.Days) + w.daysOf + strconv.Itoa(r.FullDays) + w.days)
		}
		t.WriteString("\n" + w.invoiceTo + r.Name + ", " + r.Address + "\n")
		if r.Customer != "" {
			t.WriteString(w.customer + r.Customer + "\n")
		}
		t.WriteString(w.leitweg + r.LeitwegID + w.leitwegNote + "\n")
		t.WriteString(w.net + r.Net + w.vat + r.Rate + " " + r.VAT + w.gross + r.Gross + "\n")

		// HTML: one table row.
		h.WriteString(`<tr valign="top"><td>`)
		esc(r.Number)
		h.WriteString("</td><td>")
		esc(r.Service)
		h.WriteString("</td><td>")
		esc(key)
		h.WriteString(": ")
		esc(r.From)
		esc(w.to)
		esc(r.To)
		if r.Prorated {
			h.WriteString("<br>" + w.htmlProrated + strconv.Itoa(r.Days) + "/" + strconv.Itoa(r.FullDays) + w.htmlDays)
		}
		h.WriteString("</td><td>")
		esc(r.Name)
		h.WriteString("<br>")
		esc(r.Address)
		if r.Customer != "" {
			h.WriteString("<br>" + hw[0])
			esc(r.Customer)
		}
		h.WriteString("<br>" + hw[1])
		esc(r.LeitwegID)
		h.WriteString(`</td><td align="right">`)
		esc(r.Net)
		h.WriteString(`</td><td align="right">`)
		esc(r.Rate)
		h.WriteString(": ")
		esc(r.VAT)
		h.WriteString(`</td><td align="right">`)
		esc(r.Gross)
		h.WriteString("</td></tr>\n")
	}
	return t.String(), htmltemplate.HTML(h.String()) //nolint:gosec // every value above is escaped
}

// interval names a billing interval in lang.
