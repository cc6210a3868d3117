// Package xrechnung writes the e-invoices attached to billing reminders:
// UBL 2.1 invoices conforming to XRechnung 3.0 (EN 16931 with the German
// CIUS), one per seller, buyer and billing run. The input is a small,
// self-contained Invoice, so the package knows nothing of orders or
// catalogs; docs/design.md §5 says how the billing run fills it in.
//
// Money is in cents throughout and written as decimal strings; no float
// touches an amount. VAT follows EN 16931: the tax of each VAT category is
// its taxable amount (the sum of its lines' net amounts) times the rate,
// rounded half away from zero to the cent (BR-CO-17).
package xrechnung

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// The identifiers of the specification and process the invoices claim
// (BT-24, BT-23).
const (
	CustomizationID = "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0"
	ProfileID       = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
)

// SchemeLeitwegID is the electronic address scheme of a Leitweg-ID
// (EAS code 0204), the buyer's endpoint of German public bodies.
const SchemeLeitwegID = "0204"

// ContentType is the media type of an attached invoice.
const ContentType = "application/xml"

// Party is a seller or buyer as the invoice names it.
type Party struct {
	Name       string // legal name: BT-27 (seller), BT-44 (buyer)
	Street     string
	PostalCode string
	City       string
	Country    string // ISO 3166-1 alpha-2; "" is DE
	// VATID (BT-31) or TaxNumber (BT-32) identify the seller for VAT; a
	// buyer's are left empty.
	VATID     string
	TaxNumber string
	// RegistrationID (BT-30) is the seller's entry in a trade or
	// cooperative register; with only a tax number EN 16931 needs it to
	// identify the seller (BR-CO-26).
	RegistrationID string
	// The seller's contact (BG-6), which XRechnung requires (BR-DE-2).
	ContactName  string
	ContactPhone string
	ContactEmail string
	// EndpointID and EndpointScheme are the electronic address (BT-34,
	// BT-49) and its EAS scheme: "EM" for an email address, "0204" for a
	// Leitweg-ID.
	EndpointID     string
	EndpointScheme string
}

// Payment is how the buyer pays: a SEPA credit transfer (UNTDID 4461
// code 58) to the seller's account.
type Payment struct {
	IBAN        string
	BIC         string // optional
	AccountName string // optional; the seller's name when empty
}

// Line is one invoice line: one billed period of one order.
type Line struct {
	OrderNumber string // the order it bills, as the line's order reference
	Name        string // item name (BT-153): service and price
	Description string // optional item description (BT-154)
	// Start and LastDay are the first and last day billed (BG-26); only
	// their dates count.
	Start, LastDay time.Time
	// Unit is the UN/ECE Rec. 20 code of the quantity 1: "MON", "QAN",
	// "ANN" for a whole period, "C62" (one) otherwise.
	Unit       string
	NetCents   int64
	VATPercent float64 // 19, 7, 0 or with decimals such as 7.7
}

// Invoice is one e-invoice.
type Invoice struct {
	Number    string // BT-1
	IssueDate time.Time
	DueDate   time.Time
	Currency  string // ISO 4217; "" is EUR
	// BuyerReference (BT-10) is the buyer's Leitweg-ID for public bodies.
	BuyerReference string
	// OrderReference (BT-13), set when every line bills the same order.
	OrderReference string
	Note           string // optional invoice note (BT-22)
	Seller, Buyer  Party
	Payment        Payment
	PaymentTerms   string // BT-20, e.g. "Zahlbar innerhalb von 30 Tagen ohne Abzug."
	// ExemptionReason (BT-120) is stated for lines at 0 % VAT, which are
	// of category E (exempt): EN 16931 requires a reason (BR-E-10).
	ExemptionReason string
	Lines           []Line
}

// Totals are an invoice's sums in cents.
type Totals struct {
	Net, VAT, Gross int64
}

// category is one VAT breakdown (BG-23).
type category struct {
	code    string // S or E
	percent float64
	taxable int64
	tax     int64
}

// breakdown groups the lines by VAT category and rate, in order of first
// appearance, and computes each category's tax.
func (inv *Invoice) breakdown() []category {
	var cats []category
	for i := range inv.Lines {
		l := &inv.Lines[i]
		code := categoryCode(l.VATPercent)
		j := 0
		for j < len(cats) && (cats[j].code != code || cats[j].percent != l.VATPercent) {
			j++
		}
		if j == len(cats) {
			cats = append(cats, category{code: code, percent: l.VATPercent})
		}
		cats[j].taxable += l.NetCents
	}
	for i := range cats {
		cats[i].tax = percentOf(cats[i].taxable, cats[i].percent)
	}
	return cats
}

// Totals returns the invoice's net, VAT and gross amounts.
func (inv *Invoice) Totals() Totals {
	var t Totals
	for _, c := range inv.breakdown() {
		t.Net += c.taxable
		t.VAT += c.tax
	}
	t.Gross = t.Net + t.VAT
	return t
}

func categoryCode(percent float64) string {
	if percent == 0 {
		return "E"
	}
	return "S"
}

// percentOf returns cents × percent / 100 rounded half away from zero to
// the cent, the rule mailflow uses for every amount; the rate counts to
// two decimals, as in the billing run.
func percentOf(cents int64, percent float64) int64 {
	bp := big.NewInt(int64(math.Round(percent * 100)))
	n := new(big.Int).Mul(big.NewInt(cents), bp)
	neg := n.Sign() < 0
	n.Abs(n)
	q, r := new(big.Int).QuoRem(n, big.NewInt(10000), new(big.Int))
	if r.Int64()*2 >= 10000 {
		q.Add(q, big.NewInt(1))
	}
	if neg {
		q.Neg(q)
	}
	return q.Int64()
}

// ErrInvalid is wrapped by Check's and XML's errors for an invoice that
// lacks what the rules require.
var ErrInvalid = errors.New("xrechnung: invoice incomplete")

// Check reports what the invoice lacks that XRechnung requires, each
// field by its name here ("seller.contact_phone"), all at once.
func (inv *Invoice) Check() error {
	var missing []string
	need := func(field, v string) {
		if strings.TrimSpace(v) == "" {
			missing = append(missing, field)
		}
	}
	need("number", inv.Number)
	need("buyer_reference", inv.BuyerReference)
	for _, p := range []struct {
		role  string
		party *Party
	}{{"seller", &inv.Seller}, {"buyer", &inv.Buyer}} {
		need(p.role+".name", p.party.Name)
		need(p.role+".street", p.party.Street)
		need(p.role+".postal_code", p.party.PostalCode)
		need(p.role+".city", p.party.City)
		need(p.role+".electronic_address", p.party.EndpointID)
		need(p.role+".electronic_address_scheme", p.party.EndpointScheme)
	}
	s := &inv.Seller
	if strings.TrimSpace(s.VATID) == "" {
		if strings.TrimSpace(s.TaxNumber) == "" {
			missing = append(missing, "seller.vat_id or seller.tax_number")
		}
		if strings.TrimSpace(s.RegistrationID) == "" {
			missing = append(missing, "seller.vat_id or seller.registration_id")
		}
	}
	need("seller.contact_name", s.ContactName)
	need("seller.contact_phone", s.ContactPhone)
	need("seller.contact_email", s.ContactEmail)
	need("seller.iban", inv.Payment.IBAN)
	if len(inv.Lines) == 0 {
		missing = append(missing, "lines")
	}
	for _, l := range inv.Lines {
		if l.VATPercent == 0 {
			need("exemption_reason", inv.ExemptionReason)
			break
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s", ErrInvalid, strings.Join(missing, ", "))
	}
	return nil
}

// XML writes the invoice as a UBL 2.1 Invoice document. The elements
// follow the order the UBL schema prescribes, which is why the document
// is written in sequence rather than marshalled from structs: encoding/xml
// would need a struct per UBL aggregate for the same result.
func (inv *Invoice) XML() ([]byte, error) {
	if err := inv.Check(); err != nil {
		return nil, err
	}
	cur := inv.Currency
	if cur == "" {
		cur = "EUR"
	}
	w := &writer{cur: cur}
	w.Grow(3000 + 900*len(inv.Lines))
	w.raw(`<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
`)
	w.elem("cbc:CustomizationID", CustomizationID)
	w.elem("cbc:ProfileID", ProfileID)
	w.elem("cbc:ID", inv.Number)
	w.elem("cbc:IssueDate", date(inv.IssueDate))
	w.elem("cbc:DueDate", date(inv.DueDate))
	w.elem("cbc:InvoiceTypeCode", "380") // commercial invoice
	if inv.Note != "" {
		w.elem("cbc:Note", inv.Note)
	}
	w.elem("cbc:DocumentCurrencyCode", cur)
	w.elem("cbc:BuyerReference", inv.BuyerReference)
	if inv.OrderReference != "" {
		w.open("cac:OrderReference")
		w.elem("cbc:ID", inv.OrderReference)
		w.close("cac:OrderReference")
	}
	w.open("cac:AccountingSupplierParty")
	w.party(&inv.Seller, true)
	w.close("cac:AccountingSupplierParty")
	w.open("cac:AccountingCustomerParty")
	w.party(&inv.Buyer, false)
	w.close("cac:AccountingCustomerParty")

	w.open("cac:PaymentMeans")
	w.elem("cbc:PaymentMeansCode", "58") // SEPA credit transfer
	w.elem("cbc:PaymentID", inv.Number)
	w.open("cac:PayeeFinancialAccount")
	w.elem("cbc:ID", strings.ReplaceAll(inv.Payment.IBAN, " ", ""))
	name := inv.Payment.AccountName
	if name == "" {
		name = inv.Seller.Name
	}
	w.elem("cbc:Name", name)
	if inv.Payment.BIC != "" {
		w.open("cac:FinancialInstitutionBranch")
		w.elem("cbc:ID", inv.Payment.BIC)
		w.close("cac:FinancialInstitutionBranch")
	}
	w.close("cac:PayeeFinancialAccount")
	w.close("cac:PaymentMeans")
	if inv.PaymentTerms != "" {
		w.open("cac:PaymentTerms")
		w.elem("cbc:Note", inv.PaymentTerms)
		w.close("cac:PaymentTerms")
	}

	cats := inv.breakdown()
	var t Totals
	for _, c := range cats {
		t.Net += c.taxable
		t.VAT += c.tax
	}
	t.Gross = t.Net + t.VAT
	w.open("cac:TaxTotal")
	w.amount("cbc:TaxAmount", t.VAT)
	for _, c := range cats {
		w.open("cac:TaxSubtotal")
		w.amount("cbc:TaxableAmount", c.taxable)
		w.amount("cbc:TaxAmount", c.tax)
		w.open("cac:TaxCategory")
		w.elem("cbc:ID", c.code)
		w.elem("cbc:Percent", percent(c.percent))
		if c.code == "E" {
			w.elem("cbc:TaxExemptionReason", inv.ExemptionReason)
		}
		w.vatScheme()
		w.close("cac:TaxCategory")
		w.close("cac:TaxSubtotal")
	}
	w.close("cac:TaxTotal")
	w.open("cac:LegalMonetaryTotal")
	w.amount("cbc:LineExtensionAmount", t.Net)
	w.amount("cbc:TaxExclusiveAmount", t.Net)
	w.amount("cbc:TaxInclusiveAmount", t.Gross)
	w.amount("cbc:PayableAmount", t.Gross)
	w.close("cac:LegalMonetaryTotal")

	for i := range inv.Lines {
		w.line(i+1, &inv.Lines[i])
	}
	w.raw("</Invoice>\n")
	return w.Bytes(), nil
}

// writer writes UBL elements, one per line and without indentation:
// a billing run attaches megabytes of them, and every byte is stored.
type writer struct {
	bytes.Buffer
	cur string
}

func (w *writer) raw(s string) { w.WriteString(s) }

func (w *writer) open(name string) {
	w.WriteByte('<')
	w.WriteString(name)
	w.WriteString(">\n")
}

func (w *writer) close(name string) {
	w.WriteString("</")
	w.WriteString(name)
	w.WriteString(">\n")
}

// elem writes <name>text</name>, the text escaped.
func (w *writer) elem(name, text string) {
	w.WriteByte('<')
	w.WriteString(name)
	w.WriteByte('>')
	w.text(text)
	w.WriteString("</")
	w.WriteString(name)
	w.WriteString(">\n")
}

// elemAttr writes <name attr="value">text</name>.
func (w *writer) elemAttr(name, attr, value, text string) {
	w.WriteByte('<')
	w.WriteString(name)
	w.WriteByte(' ')
	w.WriteString(attr)
	w.WriteString(`="`)
	w.text(value)
	w.WriteString(`">`)
	w.text(text)
	w.WriteString("</")
	w.WriteString(name)
	w.WriteString(">\n")
}

// text writes s escaped for XML text and attribute values. Most values
// (amounts, dates, codes) need no escaping, and are written as they are
// without the copy xml.EscapeText would need.
func (w *writer) text(s string) {
	if !strings.ContainsAny(s, "<>&'\"\r\n\t") {
		w.WriteString(s)
		return
	}
	xml.EscapeText(w, []byte(s)) //nolint:errcheck // a bytes.Buffer does not fail
}

func (w *writer) amount(name string, cents int64) {
	w.elemAttr(name, "currencyID", w.cur, Amount(cents))
}

func (w *writer) vatScheme() {
	w.open("cac:TaxScheme")
	w.elem("cbc:ID", "VAT")
	w.close("cac:TaxScheme")
}

// party writes a cac:Party: for the seller with its tax registration and
// contact.
func (w *writer) party(p *Party, seller bool) {
	w.open("cac:Party")
	w.elemAttr("cbc:EndpointID", "schemeID", p.EndpointScheme, p.EndpointID)
	w.open("cac:PostalAddress")
	w.elem("cbc:StreetName", p.Street)
	w.elem("cbc:CityName", p.City)
	w.elem("cbc:PostalZone", p.PostalCode)
	w.open("cac:Country")
	country := p.Country
	if country == "" {
		country = "DE"
	}
	w.elem("cbc:IdentificationCode", country)
	w.close("cac:Country")
	w.close("cac:PostalAddress")
	if seller {
		if p.VATID != "" {
			w.open("cac:PartyTaxScheme")
			w.elem("cbc:CompanyID", p.VATID)
			w.vatScheme()
			w.close("cac:PartyTaxScheme")
		}
		if p.TaxNumber != "" {
			// BT-32: the tax number, under the scheme "FC" (fiscal code).
			w.open("cac:PartyTaxScheme")
			w.elem("cbc:CompanyID", p.TaxNumber)
			w.open("cac:TaxScheme")
			w.elem("cbc:ID", "FC")
			w.close("cac:TaxScheme")
			w.close("cac:PartyTaxScheme")
		}
	}
	w.open("cac:PartyLegalEntity")
	w.elem("cbc:RegistrationName", p.Name)
	if seller && p.RegistrationID != "" {
		w.elem("cbc:CompanyID", p.RegistrationID)
	}
	w.close("cac:PartyLegalEntity")
	if seller {
		w.open("cac:Contact")
		w.elem("cbc:Name", p.ContactName)
		w.elem("cbc:Telephone", p.ContactPhone)
		w.elem("cbc:ElectronicMail", p.ContactEmail)
		w.close("cac:Contact")
	}
	w.close("cac:Party")
}

// line writes one cac:InvoiceLine. The order number is the line's order
// line reference (BT-132): an invoice may bill several orders, and the
// document's order reference (BT-13) can name only one.
func (w *writer) line(n int, l *Line) {
	w.open("cac:InvoiceLine")
	w.elem("cbc:ID", strconv.Itoa(n))
	unit := l.Unit
	if unit == "" {
		unit = "C62"
	}
	w.elemAttr("cbc:InvoicedQuantity", "unitCode", unit, "1")
	w.amount("cbc:LineExtensionAmount", l.NetCents)
	w.open("cac:InvoicePeriod")
	w.elem("cbc:StartDate", date(l.Start))
	w.elem("cbc:EndDate", date(l.LastDay))
	w.close("cac:InvoicePeriod")
	if l.OrderNumber != "" {
		w.open("cac:OrderLineReference")
		w.elem("cbc:LineID", l.OrderNumber)
		w.close("cac:OrderLineReference")
	}
	w.open("cac:Item")
	if l.Description != "" {
		w.elem("cbc:Description", l.Description)
	}
	w.elem("cbc:Name", l.Name)
	w.open("cac:ClassifiedTaxCategory")
	w.elem("cbc:ID", categoryCode(l.VATPercent))
	w.elem("cbc:Percent", percent(l.VATPercent))
	w.vatScheme()
	w.close("cac:ClassifiedTaxCategory")
	w.close("cac:Item")
	w.open("cac:Price")
	w.amount("cbc:PriceAmount", l.NetCents)
	w.close("cac:Price")
	w.close("cac:InvoiceLine")
}

// Amount writes cents as a decimal with two places: 123456 → "1234.56".
func Amount(cents int64) string {
	sign := ""
	u := uint64(cents)
	if cents < 0 {
		sign, u = "-", uint64(-cents)
	}
	frac := u % 100
	return sign + strconv.FormatUint(u/100, 10) + "." + string(rune('0'+frac/10)) + string(rune('0'+frac%10))
}

func percent(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) }

func date(t time.Time) string { return t.Format(time.DateOnly) }
