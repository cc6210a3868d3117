package mailflow

import (
	"fmt"
	"strings"

	"mailflow/mailflow/xrechnung"
)

// Seller is what a provider or intermediary issues e-invoices with: the
// catalog's "seller" object of a party. A billing reminder carries an
// XRechnung per invoice recipient only when the reminded party's Seller
// is complete (SellerMissing); otherwise the reminder goes out without
// one and names the missing fields, so that catalogs from before
// e-invoicing keep working (docs/design.md §5).
type Seller struct {
	// LegalName is the name the party is registered under; the party's
	// Name when empty.
	LegalName string `json:"legal_name,omitempty"`
	// The postal address; the party's street, postal code and city when
	// empty. Country is ISO 3166-1 alpha-2, DE when empty.
	Street     string `json:"street,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	City       string `json:"city,omitempty"`
	Country    string `json:"country,omitempty"`
	// VATID, or TaxNumber together with RegistrationID (a trade or
	// cooperative register entry), identify the seller for VAT.
	VATID          string `json:"vat_id,omitempty"`
	TaxNumber      string `json:"tax_number,omitempty"`
	RegistrationID string `json:"registration_id,omitempty"`
	// The contact for questions about an invoice.
	ContactName  string `json:"contact_name,omitempty"`
	ContactPhone string `json:"contact_phone,omitempty"`
	ContactEmail string `json:"contact_email,omitempty"`
	// IBAN and BIC of the account invoices are paid to (SEPA credit
	// transfer).
	IBAN string `json:"iban,omitempty"`
	BIC  string `json:"bic,omitempty"`
	// ElectronicAddress is where buyers send answers to an e-invoice,
	// with its EAS scheme ("EM" for an email address).
	ElectronicAddress       string `json:"electronic_address,omitempty"`
	ElectronicAddressScheme string `json:"electronic_address_scheme,omitempty"`
	// PaymentTermsDays is the time to pay; 30 when 0.
	PaymentTermsDays int `json:"payment_terms_days,omitempty"`
	// InvoiceNumberPattern makes final invoice numbers: "{date}" is the
	// run's date (YYYYMMDD), "{n}" the invoice's number within the party's
	// run. Without it invoices carry a draft number the party replaces.
	InvoiceNumberPattern string `json:"invoice_number_pattern,omitempty"`
	// VATExemptionReason is stated on lines at 0 % VAT, which the invoice
	// declares exempt (category E).
	VATExemptionReason string `json:"vat_exemption_reason,omitempty"`
}

// DefaultPaymentTermsDays is the time to pay when the catalog gives none.
const DefaultPaymentTermsDays = 30

// InvoiceSeller returns the party as an invoice's seller and its payment
// account; fields the seller object leaves empty come from the party.
func (p *Party) InvoiceSeller() (xrechnung.Party, xrechnung.Payment) {
	s := p.Seller
	if s == nil {
		s = &Seller{}
	}
	or := func(a, b string) string {
		if strings.TrimSpace(a) != "" {
			return a
		}
		return b
	}
	return xrechnung.Party{
			Name: or(s.LegalName, p.Name), Street: or(s.Street, p.Street), PostalCode: or(s.PostalCode, p.PostalCode),
			City: or(s.City, p.City), Country: or(s.Country, "DE"), VATID: s.VATID, TaxNumber: s.TaxNumber,
			RegistrationID: s.RegistrationID, ContactName: s.ContactName, ContactPhone: s.ContactPhone, ContactEmail: s.ContactEmail,
			EndpointID: s.ElectronicAddress, EndpointScheme: s.ElectronicAddressScheme,
		}, xrechnung.Payment{
			IBAN: s.IBAN, BIC: s.BIC,
		}
}

// SellerMissing lists, by JSON name below the party, what its catalog
// entry lacks to issue an XRechnung as seller: nil when nothing.
func (p *Party) SellerMissing() []string {
	if p.Seller == nil {
		return []string{"seller"}
	}
	x, pay := p.InvoiceSeller()
	var missing []string
	need := func(field, v string) {
		if strings.TrimSpace(v) == "" {
			missing = append(missing, field)
		}
	}
	need("seller.legal_name", x.Name)
	need("seller.street", x.Street)
	need("seller.postal_code", x.PostalCode)
	need("seller.city", x.City)
	if x.VATID == "" {
		need("seller.vat_id or seller.tax_number", x.TaxNumber)
		need("seller.vat_id or seller.registration_id", x.RegistrationID)
	}
	need("seller.contact_name", x.ContactName)
	need("seller.contact_phone", x.ContactPhone)
	need("seller.contact_email", x.ContactEmail)
	need("seller.iban", pay.IBAN)
	need("seller.electronic_address", x.EndpointID)
	need("seller.electronic_address_scheme", x.EndpointScheme)
	return missing
}

// CatalogWarnings lists what keeps the catalog's parties from issuing
// e-invoices with their billing reminders. The catalog is valid without
// it; the reminders then go out without an XRechnung.
func CatalogWarnings(cat *Catalog) []string {
	var out []string
	for _, g := range []struct {
		field   string
		parties []Party
	}{{"providers", cat.Providers}, {"intermediaries", cat.Intermediaries}} {
		for i := range g.parties {
			p := &g.parties[i]
			if m := p.SellerMissing(); len(m) > 0 {
				out = append(out, fmt.Sprintf("%s[%d] (%s): billing reminders carry no XRechnung, missing %s",
					g.field, i, p.ID, strings.Join(m, ", ")))
			}
			if g.field == "intermediaries" && (p.LeitwegID == "" || p.Street == "" || p.PostalCode == "" || p.City == "") {
				out = append(out, fmt.Sprintf("%s[%d] (%s): providers' UV invoices to it need street, postal_code, city and leitweg_id",
					g.field, i, p.ID))
			}
		}
	}
	return out
}

// validateSeller checks the formats of a party's seller object; what is
// missing is a warning (CatalogWarnings), not an error.
func validateSeller(field string, s *Seller, verr *ValidationError) {
	if s == nil {
		return
	}
	if s.PaymentTermsDays < 0 {
		verr.add(field+".seller.payment_terms_days", "must not be negative")
	}
	if s.ContactEmail != "" && !ValidEmail(s.ContactEmail) {
		verr.add(field+".seller.contact_email", "is not a valid email address")
	}
	if s.ElectronicAddress != "" && s.ElectronicAddressScheme == "" {
		verr.add(field+".seller.electronic_address_scheme", "is required with electronic_address (EM for an email address)")
	}
	if s.Country != "" && len(s.Country) != 2 {
		verr.add(field+".seller.country", "must be an ISO 3166-1 alpha-2 code such as DE")
	}
	if p := s.InvoiceNumberPattern; p != "" && !strings.Contains(p, "{n}") {
		verr.add(field+".seller.invoice_number_pattern", "must contain {n}, the invoice's number within the run")
	}
}
