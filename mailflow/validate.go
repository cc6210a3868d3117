package mailflow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"
)

// leitwegPattern is the XRechnung Leitweg-ID: Grobadressierung (2–12
// digits), optional Feinadressierung (up to 30 letters or digits) and two
// check digits, separated by hyphens.
var leitwegPattern = regexp.MustCompile(`^([0-9]{2,12})(?:-([0-9A-Za-z]{1,30}))?-([0-9]{2})$`)

// ValidLeitwegID checks the format and the ISO 7064 MOD 97-10 check digits
// of a Leitweg-ID (Formatspezifikation Leitweg-ID 2.0.2, §3): letters count
// as 10–35, the number formed by the identifier and the check digits must
// leave remainder 1 modulo 97.
func ValidLeitwegID(id string) error {
	m := leitwegPattern.FindStringSubmatch(id)
	if m == nil {
		return fmt.Errorf("must look like 04011000-12345-03 (2–12 digits, optional part of up to 30 letters or digits, 2 check digits)")
	}
	var digits strings.Builder
	for _, r := range strings.ToUpper(m[1] + m[2]) {
		if r >= 'A' && r <= 'Z' {
			fmt.Fprintf(&digits, "%d", r-'A'+10)
		} else {
			digits.WriteRune(r)
		}
	}
	digits.WriteString(m[3])
	n, _ := new(big.Int).SetString(digits.String(), 10)
	if new(big.Int).Mod(n, big.NewInt(97)).Int64() != 1 {
		return fmt.Errorf("check digits %s do not match", m[3])
	}
	return nil
}

// ValidEmail accepts a bare addr-spec such as it@musterstadt.example.
func ValidEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == "" && strings.Contains(s[strings.LastIndexByte(s, '@'):], ".")
}

// BuildSnapshot validates an order request against the catalog and freezes
// what the order binds: the customer, the product, the price, the
// properties, and the AGB and service conditions valid at ordered_at. All
// invalid fields are reported at once, each by its JSON path.
func BuildSnapshot(req *OrderRequest, cat *Catalog) (Snapshot, error) {
	var verr ValidationError
	var snap Snapshot
	if strings.TrimSpace(req.ExternalID) == "" {
		verr.add("external_id", "is required")
	} else if len(req.ExternalID) > 200 {
		verr.add("external_id", "must be at most 200 characters")
	} else if strings.ContainsAny(req.ExternalID, "\x00\r\n") {
		verr.add("external_id", "must be a single line without control characters")
	}
	if req.OrderedAt == nil {
		verr.add("ordered_at", "is required (RFC 3339 time)")
	}
	switch req.ContractModel {
	case ModelDV:
		if req.Intermediary != nil {
			verr.add("intermediary", "must be absent for contract_model DV")
		}
	case ModelUV:
		if req.Intermediary == nil || *req.Intermediary == "" {
			verr.add("intermediary", "is required for contract_model UV")
		} else if i := slices.IndexFunc(cat.Intermediaries, func(p Party) bool { return p.ID == *req.Intermediary }); i < 0 {
			verr.add("intermediary", "unknown intermediary %q", *req.Intermediary)
		} else {
			p := cat.Intermediaries[i]
			snap.Intermediary = &p
		}
	case "":
		verr.add("contract_model", "is required (DV or UV)")
	default:
		verr.add("contract_model", "must be DV or UV")
	}
	validateCustomer(&req.Customer, &verr)
	validateCustomerLanguage(req, &verr)
	snap.Customer = req.Customer

	svcIdx := slices.IndexFunc(cat.Services, func(s Service) bool { return s.ID == req.Service })
	switch {
	case req.Service == "":
		verr.add("service", "is required")
	case svcIdx < 0:
		verr.add("service", "unknown service %q", req.Service)
	}
	if svcIdx >= 0 {
		svc := cat.Services[svcIdx]
		snap.Service = ServiceInfo{ID: svc.ID, Name: svc.Name, Description: svc.Description,
			ProvisioningDays: svc.ProvisioningDays, Supplier: svc.Supplier, MaturityLevel: svc.MaturityLevel}
		if i := slices.IndexFunc(cat.Providers, func(p Party) bool { return p.ID == svc.Provider }); i >= 0 {
			snap.Provider = cat.Providers[i]
		} else {
			verr.add("service", "service %q names unknown provider %q", svc.ID, svc.Provider)
		}
		if i := slices.IndexFunc(svc.Prices, func(p Price) bool { return p.ID == req.Price }); req.Price == "" {
			verr.add("price", "is required")
		} else if i < 0 {
			verr.add("price", "unknown price %q for service %q", req.Price, svc.ID)
		} else {
			snap.Price = svc.Prices[i]
		}
		snap.Properties = validateProperties(svc.Properties, req.Properties, &verr)
		if req.OrderedAt != nil {
			if t, ok := validTerms(cat.Terms, *req.OrderedAt); ok {
				snap.Terms = t
			} else {
				verr.add("ordered_at", "no general terms (AGB) are valid at %s", req.OrderedAt.Format(time.DateOnly))
			}
			if t, ok := validTerms(svc.Conditions, *req.OrderedAt); ok {
				snap.Conditions = t
			} else {
				verr.add("ordered_at", "no conditions of service %q are valid at %s", svc.ID, req.OrderedAt.Format(time.DateOnly))
			}
		}
	}
	if err := verr.orNil(); err != nil {
		return Snapshot{}, err
	}
	return snap, nil
}

// validTerms picks the version valid at t; where versions overlap the one
// that became valid last wins.
func validTerms(all []Terms, t time.Time) (Terms, bool) {
	var best Terms
	found := false
	for _, v := range all {
		if v.ValidAt(t) && (!found || best.ValidFrom.Before(v.ValidFrom)) {
			best, found = v, true
		}
	}
	if found && best.SHA256 == "" {
		best.SHA256 = TextSHA256(best.Text)
	}
	return best, found
}

// validateCustomerLanguage sets customer.language to "de" or "en": as
// given (any case, or the request's top-level language), "de" when absent.
func validateCustomerLanguage(req *OrderRequest, verr *ValidationError) {
	field, lang := "customer.language", req.Customer.Language
	if strings.TrimSpace(lang) == "" {
		field, lang = "language", req.Language
	}
	lang = strings.ToLower(strings.TrimSpace(lang))
	switch lang {
	case "":
		lang = "de"
	case "de", "en":
	default:
		verr.add(field, "must be de or en")
	}
	req.Customer.Language = lang
}

func validateCustomer(c *Customer, verr *ValidationError) {
	required := []struct{ field, value string }{
		{"customer.name", c.Name}, {"customer.street", c.Street},
		{"customer.postal_code", c.PostalCode}, {"customer.city", c.City},
		{"customer.contact_name", c.ContactName}, {"customer.email", c.Email},
		{"customer.leitweg_id", c.LeitwegID},
	}
	for _, r := range required {
		if strings.TrimSpace(r.value) == "" {
			verr.add(r.field, "is required")
		}
	}
	if c.Country == "" {
		c.Country = "DE"
	}
	if c.Email != "" && !ValidEmail(c.Email) {
		verr.add("customer.email", "is not a valid email address")
	}
	if c.LeitwegID != "" {
		if err := ValidLeitwegID(c.LeitwegID); err != nil {
			verr.add("customer.leitweg_id", "%v", err)
		}
	}
	for _, f := range []struct{ field, value string }{
		{"customer.name", c.Name}, {"customer.street", c.Street}, {"customer.city", c.City},
		{"customer.contact_name", c.ContactName}, {"customer.phone", c.Phone},
		{"customer.customer_number", c.CustomerNumber}, {"customer.postal_code", c.PostalCode},
		{"customer.email", c.Email}, {"customer.leitweg_id", c.LeitwegID},
	} {
		// A NUL byte is refused here because PostgreSQL refuses it in text.
		if strings.ContainsAny(f.value, "\r\n\x00") {
			verr.add(f.field, "must be a single line without control characters")
		} else if len(f.value) > 500 {
			verr.add(f.field, "must be at most 500 characters")
		}
	}
}

// validateProperties checks the configured values against the service's
// property schema and returns them in schema order.
func validateProperties(schema []Property, given map[string]json.RawMessage, verr *ValidationError) []PropertyValue {
	var out []PropertyValue
	for name := range given {
		if !slices.ContainsFunc(schema, func(p Property) bool { return p.Name == name }) {
			verr.add("properties."+name, "unknown property")
		}
	}
	for _, p := range schema {
		field := "properties." + p.Name
		raw, ok := given[p.Name]
		if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			if p.Required {
				verr.add(field, "is required")
			}
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			verr.add(field, "is not valid JSON")
			continue
		}
		switch p.Type {
		case "string":
			s, ok := v.(string)
			if !ok {
				verr.add(field, "must be a string")
				continue
			}
			if strings.IndexByte(s, 0) >= 0 {
				verr.add(field, "must not contain a NUL character")
				continue
			}
			out = append(out, PropertyValue{p.Name, s})
		case "boolean":
			b, ok := v.(bool)
			if !ok {
				verr.add(field, "must be true or false")
				continue
			}
			out = append(out, PropertyValue{p.Name, b})
		case "integer":
			n, ok := v.(json.Number)
			i, err := n.Int64()
			if !ok || err != nil {
				verr.add(field, "must be an integer")
				continue
			}
			if p.Min != nil && i < *p.Min {
				verr.add(field, "must be at least %d", *p.Min)
				continue
			}
			if p.Max != nil && i > *p.Max {
				verr.add(field, "must be at most %d", *p.Max)
				continue
			}
			out = append(out, PropertyValue{p.Name, i})
		case "enum":
			s, ok := v.(string)
			if !ok || !slices.Contains(p.Values, s) {
				verr.add(field, "must be one of %s", strings.Join(p.Values, ", "))
				continue
			}
			out = append(out, PropertyValue{p.Name, s})
		default:
			verr.add(field, "has unknown type %q in the catalog", p.Type)
		}
	}
	return out
}

// ValidateCatalog checks a catalog before import and fills in the SHA-256
// of every terms text.
func ValidateCatalog(cat *Catalog) error {
	var verr ValidationError
	providers := map[string]bool{}
	for i := range cat.Providers {
		validateParty(fmt.Sprintf("providers[%d]", i), &cat.Providers[i], &verr)
		providers[cat.Providers[i].ID] = true
	}
	for i := range cat.Intermediaries {
		f := fmt.Sprintf("intermediaries[%d]", i)
		validateParty(f, &cat.Intermediaries[i], &verr)
		if l := cat.Intermediaries[i].LeitwegID; l != "" {
			if err := ValidLeitwegID(l); err != nil {
				verr.add(f+".leitweg_id", "%v", err)
			}
		}
	}
	validateTerms("terms", cat.Terms, &verr)
	for i := range cat.Services {
		validateService(fmt.Sprintf("services[%d]", i), &cat.Services[i], providers, &verr)
	}
	return verr.orNil()
}

// validateParty checks a provider or intermediary and sets its default
// language.
func validateParty(field string, p *Party, verr *ValidationError) {
	if p.ID == "" {
		verr.add(field+".id", "is required")
	}
	if !ValidEmail(p.Email) {
		verr.add(field+".email", "is not a valid email address")
	}
	if p.Language == "" {
		p.Language = "de"
	} else if p.Language != "de" && p.Language != "en" {
		verr.add(field+".language", "must be de or en")
	}
	validateSeller(field, p.Seller, verr)
	for j, s := range p.ReplySenders {
		domain, isDomain := strings.CutPrefix(s, "@")
		if isDomain && !strings.Contains(domain, ".") || !isDomain && !ValidEmail(s) {
			verr.add(fmt.Sprintf("%s.reply_senders[%d]", field, j), "must be an address or @domain")
		}
	}
}

// validateTerms checks versioned terms and fills in each text's SHA-256.
func validateTerms(field string, ts []Terms, verr *ValidationError) {
	for j := range ts {
		t := &ts[j]
		f := fmt.Sprintf("%s[%d]", field, j)
		if t.Version == "" {
			verr.add(f+".version", "is required")
		}
		if t.ValidFrom.IsZero() {
			verr.add(f+".valid_from", "is required")
		}
		if t.ValidUntil != nil && t.ValidUntil.Before(t.ValidFrom) {
			verr.add(f+".valid_until", "is before valid_from")
		}
		if strings.TrimSpace(t.Text) == "" {
			verr.add(f+".text", "is required")
		}
		sum := TextSHA256(t.Text)
		if t.SHA256 != "" && !strings.EqualFold(t.SHA256, sum) {
			verr.add(f+".sha256", "does not match the text (computed %s)", sum)
		}
		t.SHA256 = sum
	}
}

// validateService checks a service with its conditions, prices and
// property schema; a price without currency is in EUR.
func validateService(f string, s *Service, providers map[string]bool, verr *ValidationError) {
	if s.ID == "" {
		verr.add(f+".id", "is required")
	}
	if !providers[s.Provider] {
		verr.add(f+".provider", "unknown provider %q", s.Provider)
	}
	if s.ProvisioningDays < 0 {
		verr.add(f+".provisioning_days", "must not be negative")
	}
	validateTerms(f+".conditions", s.Conditions, verr)
	for j, p := range s.Prices {
		pf := fmt.Sprintf("%s.prices[%d]", f, j)
		if p.ID == "" {
			verr.add(pf+".id", "is required")
		}
		if !slices.Contains([]string{IntervalOnce, IntervalMonthly, IntervalQuarterly, IntervalYearly}, p.Interval) {
			verr.add(pf+".interval", "must be once, monthly, quarterly or yearly")
		}
		if p.AmountCents < 0 {
			verr.add(pf+".amount_cents", "must not be negative")
		}
		if p.Currency == "" {
			s.Prices[j].Currency = "EUR"
		}
		if p.VATPercent < 0 || p.VATPercent > 100 {
			verr.add(pf+".vat_percent", "must be between 0 and 100")
		}
	}
	for j, p := range s.Properties {
		pf := fmt.Sprintf("%s.properties[%d]", f, j)
		if p.Name == "" {
			verr.add(pf+".name", "is required")
		}
		if !slices.Contains([]string{"string", "integer", "boolean", "enum"}, p.Type) {
			verr.add(pf+".type", "must be string, integer, boolean or enum")
		}
		if p.Type == "enum" && len(p.Values) == 0 {
			verr.add(pf+".values", "is required for enum")
		}
	}
}
