package mailflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"

	"mailflow/examples"
)

func TestValidLeitwegID(t *testing.T) {
	valid := []string{"04011000-12345-03", "991-33333TEST-33", "992-90009-96", "09564000-NUE0001-49", "04011000-900X999-08"}
	for _, id := range valid {
		if err := ValidLeitwegID(id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
		// Any single changed check digit must be caught.
		for pos := len(id) - 2; pos < len(id); pos++ {
			for d := byte('0'); d <= '9'; d++ {
				if d == id[pos] {
					continue
				}
				bad := id[:pos] + string(d) + id[pos+1:]
				if ValidLeitwegID(bad) == nil {
					t.Errorf("%s accepted (from %s)", bad, id)
				}
			}
		}
	}
	for _, id := range []string{"", "1-2-3", "04011000", "04011000-12345-3", "0401100012345-03", "04011000-123_45-03", "04011000-12345-03 ", fmt.Sprintf("0401-%040d-00", 1)} {
		if ValidLeitwegID(id) == nil {
			t.Errorf("%q accepted", id)
		}
	}
}

// exampleCatalog is the example catalog, validated, for this package's
// own tests (the others use internal/exampletest, which imports mailflow).
func exampleCatalog(t testing.TB) *Catalog {
	t.Helper()
	var cat Catalog
	if err := json.Unmarshal(examples.Catalog(), &cat); err != nil {
		t.Fatal(err)
	}
	if err := ValidateCatalog(&cat); err != nil {
		t.Fatal(err)
	}
	return &cat
}

// The customer's language: "de" or "en" in any case, from customer.language
// or the request's top-level language, "de" when neither is given; anything
// else is an error naming the field it came from.
func TestCustomerLanguage(t *testing.T) {
	cat := exampleCatalog(t)
	tests := []struct {
		customer, top string
		want          string // the snapshot's language, or the field in error
		invalid       bool
	}{
		{"", "", "de", false},
		{"de", "", "de", false},
		{"en", "", "en", false},
		{" EN ", "", "en", false},
		{"", "en", "en", false},
		{"de", "en", "de", false},
		{"fr", "", "customer.language", true},
		{"", "english", "language", true},
	}
	for _, tt := range tests {
		req := exampleDVRequest(t)
		req.Customer.Language, req.Language = tt.customer, tt.top
		snap, err := BuildSnapshot(&req, cat)
		if tt.invalid {
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Errors) != 1 || verr.Errors[0].Field != tt.want {
				t.Errorf("customer %q, language %q: %v, want one error for %s", tt.customer, tt.top, err, tt.want)
			}
			continue
		}
		if err != nil || snap.Customer.Language != tt.want {
			t.Errorf("customer %q, language %q: language %q, %v; want %q", tt.customer, tt.top, snap.Customer.Language, err, tt.want)
		}
	}
}

// A NUL byte or a line break in a text field is refused with the field
// named: PostgreSQL cannot store a NUL in text, and a header built from a
// multi-line value could be split.
func TestControlCharactersRefused(t *testing.T) {
	cat := exampleCatalog(t)
	tests := []struct {
		field string
		set   func(*OrderRequest)
	}{
		{"external_id", func(r *OrderRequest) { r.ExternalID = "csp\x004711" }},
		{"customer.name", func(r *OrderRequest) { r.Customer.Name = "Stadt\x00Musterstadt" }},
		{"customer.city", func(r *OrderRequest) { r.Customer.City = "Muster\nstadt" }},
		{"customer.phone", func(r *OrderRequest) { r.Customer.Phone = "+49\x0030" }},
	}
	for _, tt := range tests {
		req := exampleDVRequest(t)
		tt.set(&req)
		_, err := BuildSnapshot(&req, cat)
		var verr *ValidationError
		if !errors.As(err, &verr) || len(verr.Errors) != 1 || verr.Errors[0].Field != tt.field {
			t.Errorf("%s: %v, want one error naming %s", tt.field, err, tt.field)
		}
	}
}

// exampleDVRequest is examples/order-dv.json, read anew for each use.
func exampleDVRequest(t *testing.T) OrderRequest {
	t.Helper()
	b, err := os.ReadFile("../examples/order-dv.json")
	if err != nil {
		t.Fatal(err)
	}
	var req OrderRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	return req
}
