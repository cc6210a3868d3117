package templates

import (
	"strings"
	"testing"
)

// TestBillingRowsEscape: every value of a row is escaped in the HTML part
// and written as it is in the text part; a row without customer number has
// no such line, a prorated row says so.
func TestBillingRowsEscape(t *testing.T) {
	rows := []BillingRow{
		{Number: "2026-000001", Key: "2026-10", Service: `Mail <b>"Pro"</b> & Co`, Interval: "monthly", From: "13.10.2026", To: "31.10.2026",
			Prorated: true, Days: 19, FullDays: 31, Name: "Stadt <script>alert(1)</script>", Address: "Markt 1, 12345 Musterstadt",
			Customer: "K-1'1", LeitwegID: "04011000-12345-03", Rate: "19 %", Net: "735,48 EUR", VAT: "139,74 EUR", Gross: "875,22 EUR"},
		{Number: "2026-000002", Once: true, Key: "once", Service: "Setup", Interval: "once", From: "01.10.2026", To: "01.10.2026",
			Name: "Kreis", Address: "Weg 2, 54321 Dorf", LeitwegID: "991-01234-44", Rate: "7 %", Net: "1,00 EUR", VAT: "0,07 EUR", Gross: "1,07 EUR"},
	}
	text, html := BillingRows("de", rows)
	for _, bad := range []string{"<script>", `<b>`, `"Pro"`, "K-1'1"} {
		if strings.Contains(string(html), bad) {
			t.Errorf("HTML carries %q unescaped:\n%s", bad, html)
		}
	}
	for _, want := range []string{"&lt;script&gt;", "&#34;Pro&#34;", "&amp; Co", "K-1&#39;1", "anteilig 19/31 Tage", "einmalig: 01.10.2026 bis 01.10.2026"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("HTML lacks %q:\n%s", want, html)
		}
	}
	if n := strings.Count(string(html), "<tr "); n != 2 {
		t.Errorf("HTML has %d rows, want 2", n)
	}
	for _, want := range []string{
		"\nBestellung 2026-000001, Abrechnungszeitraum 2026-10: " + rows[0].Service + " (monatlich)\n",
		"  Zeitraum:     13.10.2026 bis 31.10.2026, anteilig 19 von 31 Tagen\n",
		"  Rechnung an:  Stadt <script>alert(1)</script>, Markt 1, 12345 Musterstadt\n  Kundennummer: K-1'1\n  Leitweg-ID:   04011000-12345-03\n",
		"Bestellung 2026-000002, Abrechnungszeitraum einmalig: Setup (einmalig)\n",
		"  Rechnung an:  Kreis, Weg 2, 54321 Dorf\n  Leitweg-ID:   991-01234-44\n  Netto 1,00 EUR, USt 7 % 0,07 EUR, Brutto 1,07 EUR\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	en, _ := BillingRows("en", rows[1:])
	if !strings.Contains(en, "Order 2026-000002, billing period one-off: Setup (one-off)\n") || !strings.Contains(en, "(e-invoicing routing ID)") {
		t.Errorf("English rows:\n%s", en)
	}
}
