package xrechnung_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"mailflow/internal/xrechnungtest"
	"mailflow/mailflow/xrechnung"
)

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func dataport() xrechnung.Party {
	return xrechnung.Party{Name: "Dataport AöR", Street: "Altenholzer Straße 10-14", PostalCode: "24161", City: "Altenholz",
		VATID: "DE811994019", ContactName: "Abrechnung Cloud & Mail", ContactPhone: "+49 431 3295-0",
		ContactEmail: "rechnung@dataport.example", EndpointID: "rechnung@dataport.example", EndpointScheme: "EM"}
}

func govdigital() xrechnung.Party {
	return xrechnung.Party{Name: "govdigital eG", Street: "Alt-Moabit 91", PostalCode: "10559", City: "Berlin",
		TaxNumber: "27/640/12345", RegistrationID: "GnR 1234 B, Amtsgericht Charlottenburg",
		ContactName: "Rechnungsstelle", ContactPhone: "+49 30 1234-0",
		ContactEmail: "rechnung@govdigital.example", EndpointID: "rechnung@govdigital.example", EndpointScheme: "EM"}
}

// buyer is a public body addressed by its Leitweg-ID.
func buyer(name, leitweg string) xrechnung.Party {
	return xrechnung.Party{Name: name, Street: "Markt 1", PostalCode: "12345", City: "Musterstadt",
		EndpointID: leitweg, EndpointScheme: xrechnung.SchemeLeitwegID}
}

func invoice(number string, seller, buyer xrechnung.Party, lines ...xrechnung.Line) xrechnung.Invoice {
	return xrechnung.Invoice{Number: number, IssueDate: day(2026, 12, 1), DueDate: day(2026, 12, 31),
		BuyerReference: buyer.EndpointID, Seller: seller, Buyer: buyer,
		Payment:      xrechnung.Payment{IBAN: "DE02 1203 0000 0000 2020 51", BIC: "BYLADEM1001"},
		PaymentTerms: "Zahlbar innerhalb von 30 Tagen ohne Abzug.", ExemptionReason: "Steuerfrei nach § 4 Nr. 29 UStG",
		Lines: lines}
}

func monthly(order string, netCents int64, vat float64) xrechnung.Line {
	return xrechnung.Line{OrderNumber: order, Name: "Verwaltungs-Mail, Basis", Start: day(2026, 11, 1),
		LastDay: day(2026, 11, 30), Unit: "MON", NetCents: netCents, VATPercent: vat}
}

// The invoices of every kind a billing run attaches pass the official
// XSD, EN 16931 and XRechnung rules, all in one validator run.
func TestInvoicesPassValidator(t *testing.T) {
	xrechnungtest.Validator(t)
	stadt := buyer("Stadt Musterstadt", "04011000-12345-03")
	many := make([]xrechnung.Line, 500)
	for i := range many {
		many[i] = monthly(fmt.Sprintf("DVC-2026-%06d", i+1), 123456+int64(i), 19)
	}
	umlaut := buyer(`Gemeinde Süderbrarup & Ämter "Nord" <Schlei>`, "04011000-12345-03")
	umlaut.Street = "Große Straße 5 & 7"
	tests := []struct {
		name string
		inv  xrechnung.Invoice
	}{
		{"dv-prorated-first-month", invoice("ENTWURF-20261201-1", dataport(), stadt,
			xrechnung.Line{OrderNumber: "DVC-2026-000001", Name: "Verwaltungs-Mail, Basis", Description: "anteilig 12 von 30 Tagen",
				Start: day(2026, 11, 19), LastDay: day(2026, 11, 30), Unit: "C62", NetCents: 48000, VATPercent: 19})},
		{"uv-provider-to-intermediary", invoice("ENTWURF-20261201-2", dataport(), buyer("govdigital eG", "992-90009-96"),
			monthly("DVC-2026-000002", 120000, 19))},
		{"uv-intermediary-to-customer", invoice("ENTWURF-20261201-3", govdigital(), stadt, monthly("DVC-2026-000002", 120000, 19))},
		{"quarterly", invoice("ENTWURF-20261001-1", dataport(), stadt,
			xrechnung.Line{OrderNumber: "DVC-2026-000003", Name: "Kollaboration, Team", Start: day(2026, 7, 1),
				LastDay: day(2026, 9, 30), Unit: "QAN", NetCents: 45000, VATPercent: 19})},
		{"yearly", invoice("ENTWURF-20270101-1", dataport(), stadt,
			xrechnung.Line{OrderNumber: "DVC-2026-000004", Name: "Verwaltungs-Mail, Basis (jährlich)", Start: day(2026, 1, 1),
				LastDay: day(2026, 12, 31), Unit: "ANN", NetCents: 1320000, VATPercent: 19})},
		{"once", invoice("ENTWURF-20261201-4", dataport(), stadt,
			xrechnung.Line{OrderNumber: "DVC-2026-000005", Name: "Verwaltungs-Mail, Einrichtung", Start: day(2026, 11, 20),
				LastDay: day(2026, 11, 20), NetCents: 50000, VATPercent: 19})},
		{"several-orders", invoice("ENTWURF-20261201-5", dataport(), stadt,
			monthly("DVC-2026-000006", 120000, 19), monthly("DVC-2026-000007", 33333, 19), monthly("DVC-2026-000008", 1, 19))},
		{"vat-7-and-0", invoice("ENTWURF-20261201-6", dataport(), stadt,
			monthly("DVC-2026-000009", 99999, 7), monthly("DVC-2026-000010", 50000, 0), monthly("DVC-2026-000011", 12345, 19))},
		{"umlauts-ampersand", invoice("ENTWURF-20261201-7", govdigital(), umlaut,
			xrechnung.Line{OrderNumber: "DVC-2026-000012", Name: "Größenänderung & Übernahme <Daten>", Start: day(2026, 11, 1),
				LastDay: day(2026, 11, 30), Unit: "MON", NetCents: 120000, VATPercent: 19})},
		{"500-lines", invoice("ENTWURF-20261201-8", dataport(), stadt, many...)},
	}
	files := map[string][]byte{}
	for _, tt := range tests {
		b, err := tt.inv.XML()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		files[tt.name+".xml"] = b
	}
	xrechnungtest.Validate(t, xrechnungtest.WriteFiles(t, t.TempDir(), files)...)
}

func TestTotals(t *testing.T) {
	tests := []struct {
		name  string
		lines []xrechnung.Line
		want  xrechnung.Totals
	}{
		{"one line", []xrechnung.Line{monthly("1", 120000, 19)}, xrechnung.Totals{Net: 120000, VAT: 22800, Gross: 142800}},
		// VAT of a category is on its net sum: 3 × 0.05 € at 19 % is
		// 0.0285 € → 0.03 €, where per line it would be 3 × 0.01 €.
		{"rounded on the sum", []xrechnung.Line{monthly("1", 5, 19), monthly("2", 5, 19), monthly("3", 5, 19)},
			xrechnung.Totals{Net: 15, VAT: 3, Gross: 18}},
		{"half a cent up", []xrechnung.Line{monthly("1", 50, 1)}, xrechnung.Totals{Net: 50, VAT: 1, Gross: 51}},
		{"rates apart", []xrechnung.Line{monthly("1", 10000, 19), monthly("2", 10000, 7), monthly("3", 10000, 0)},
			xrechnung.Totals{Net: 30000, VAT: 2600, Gross: 32600}},
		{"decimal rate", []xrechnung.Line{monthly("1", 10000, 7.7)}, xrechnung.Totals{Net: 10000, VAT: 770, Gross: 10770}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := invoice("1", dataport(), buyer("B", "04011000-12345-03"), tt.lines...)
			if got := inv.Totals(); got != tt.want {
				t.Errorf("Totals() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAmount(t *testing.T) {
	for cents, want := range map[int64]string{0: "0.00", 5: "0.05", 120000: "1200.00", 123456: "1234.56", -7: "-0.07", -12345: "-123.45"} {
		if got := xrechnung.Amount(cents); got != want {
			t.Errorf("Amount(%d) = %q, want %q", cents, got, want)
		}
	}
}

// An invoice missing what XRechnung requires is refused with every
// missing field named.
func TestCheckNamesMissingFields(t *testing.T) {
	inv := invoice("1", xrechnung.Party{Name: "Dataport AöR", Street: "S", PostalCode: "1", City: "C"},
		buyer("B", "04011000-12345-03"), monthly("1", 100, 0))
	inv.ExemptionReason = ""
	inv.Payment.IBAN = ""
	_, err := inv.XML()
	if !errors.Is(err, xrechnung.ErrInvalid) {
		t.Fatalf("XML() error = %v, want ErrInvalid", err)
	}
	for _, f := range []string{"seller.electronic_address", "seller.vat_id or seller.tax_number", "seller.contact_name",
		"seller.contact_phone", "seller.contact_email", "seller.iban", "exemption_reason"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not name %s", err, f)
		}
	}
	if strings.Contains(err.Error(), "buyer.") {
		t.Errorf("error %q names a buyer field, the buyer is complete", err)
	}
}

// Text is escaped, and the document carries the fixed identifiers and the
// buyer reference.
func TestXMLContent(t *testing.T) {
	b := buyer("Stadt A & B <C>", "04011000-12345-03")
	inv := invoice("ENTWURF-1", dataport(), b, monthly("DVC-1", 120000, 19))
	inv.OrderReference = "DVC-1"
	x, err := inv.XML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"<cbc:CustomizationID>" + xrechnung.CustomizationID + "</cbc:CustomizationID>",
		"<cbc:BuyerReference>04011000-12345-03</cbc:BuyerReference>",
		"<cbc:RegistrationName>Stadt A &amp; B &lt;C&gt;</cbc:RegistrationName>",
		`<cbc:EndpointID schemeID="0204">04011000-12345-03</cbc:EndpointID>`,
		"<cac:OrderReference>\n<cbc:ID>DVC-1</cbc:ID>",
		`<cbc:PayableAmount currencyID="EUR">1428.00</cbc:PayableAmount>`,
		"<cbc:ID>DE02120300000000202051</cbc:ID>",
	} {
		if !strings.Contains(string(x), want) {
			t.Errorf("XML lacks %q", want)
		}
	}
}

// BenchmarkXML writes a 500-line invoice, the most a billing reminder
// lists.
func BenchmarkXML(b *testing.B) {
	lines := make([]xrechnung.Line, 500)
	for i := range lines {
		lines[i] = monthly(fmt.Sprintf("DVC-2026-%06d", i+1), 120000, 19)
	}
	inv := invoice("ENTWURF-20261201-1", dataport(), buyer("Stadt Musterstadt", "04011000-12345-03"), lines...)
	b.ReportAllocs()
	for b.Loop() {
		x, err := inv.XML()
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(x)))
	}
}
