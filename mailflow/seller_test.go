package mailflow

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// The example catalog lets every party issue e-invoices; a party without
// seller data, or with part of it, is named with the missing fields, and
// the catalog stays valid.
func TestCatalogWarnings(t *testing.T) {
	cat := exampleCatalog(t)
	if w := CatalogWarnings(cat); len(w) != 0 {
		t.Fatalf("example catalog: warnings %q", w)
	}
	tests := []struct {
		name    string
		change  func(p *Party)
		missing []string
	}{
		{"no seller", func(p *Party) { p.Seller = nil }, []string{"seller"}},
		{"no IBAN and contact phone", func(p *Party) { p.Seller.IBAN, p.Seller.ContactPhone = "", "" },
			[]string{"seller.contact_phone", "seller.iban"}},
		{"tax number without register entry", func(p *Party) { p.Seller.VATID, p.Seller.TaxNumber = "", "12/345/67890" },
			[]string{"seller.vat_id or seller.registration_id"}},
		{"address falls back to the party's", func(p *Party) { p.Seller.Street = ""; p.Street = "" },
			[]string{"seller.street"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cat := exampleCatalog(t)
			p := &cat.Providers[0]
			tt.change(p)
			if err := ValidateCatalog(cat); err != nil {
				t.Fatalf("ValidateCatalog: %v", err)
			}
			if got := p.SellerMissing(); !slices.Equal(got, tt.missing) {
				t.Errorf("SellerMissing() = %q, want %q", got, tt.missing)
			}
			w := CatalogWarnings(cat)
			if len(w) != 1 || !strings.Contains(w[0], "providers[0] (dataport)") || !strings.Contains(w[0], tt.missing[0]) {
				t.Errorf("CatalogWarnings() = %q", w)
			}
		})
	}
}

// Malformed seller data is refused with the field named.
func TestValidateSeller(t *testing.T) {
	cat := exampleCatalog(t)
	s := cat.Intermediaries[0].Seller
	s.PaymentTermsDays, s.ContactEmail, s.ElectronicAddressScheme, s.InvoiceNumberPattern = -1, "nope", "", "GD-{date}"
	var verr *ValidationError
	if err := ValidateCatalog(cat); !errors.As(err, &verr) {
		t.Fatalf("ValidateCatalog() = %v, want a ValidationError", err)
	}
	var fields []string
	for _, fe := range verr.Errors {
		fields = append(fields, fe.Field)
	}
	for _, f := range []string{"payment_terms_days", "contact_email", "electronic_address_scheme", "invoice_number_pattern"} {
		if !slices.Contains(fields, "intermediaries[0].seller."+f) {
			t.Errorf("ValidateCatalog() fields %q, want %s named", fields, f)
		}
	}
}
