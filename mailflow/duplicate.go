package mailflow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// DuplicateError is the answer to an order request whose external_id an
// order has that the request contradicts: the portal reused an id, or two
// clients collide. It is ErrConflict; Errors name the differing fields.
type DuplicateError struct {
	Errors []FieldError
}

func (e *DuplicateError) Error() string {
	names := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		names[i] = fe.Field
	}
	return fmt.Sprintf("an order with this external_id exists and differs in %s", strings.Join(names, ", "))
}

// Is makes a DuplicateError match ErrConflict.
func (e *DuplicateError) Is(target error) bool { return target == ErrConflict }

// differs is the message of a field that differs; it does not repeat the
// stored value, which the caller may not be entitled to read.
const differs = "differs from the order with this external_id"

// DuplicateConflicts compares an order request with the stored order of
// the same external_id, field by field as the request names them, after
// the defaults validation applies (customer.country DE, customer.language
// de). creator is the API token submitting req: an order created by
// another token conflicts whatever the body ("" on either side: not
// compared). None returned: the request is a repetition of the one that
// created o.
func DuplicateConflicts(o *Order, req *OrderRequest, creator string) []FieldError {
	var out []FieldError
	add := func(field string, same bool) {
		if !same {
			out = append(out, FieldError{Field: field, Message: differs})
		}
	}
	if o.CreatedBy != "" && creator != "" && o.CreatedBy != creator {
		out = append(out, FieldError{Field: "external_id", Message: "is the id of an order another client created"})
	}
	add("ordered_at", req.OrderedAt != nil && req.OrderedAt.Equal(o.OrderedAt))
	add("contract_model", req.ContractModel == o.ContractModel)
	interm, reqInterm := "", ""
	if o.Snapshot.Intermediary != nil {
		interm = o.Snapshot.Intermediary.ID
	}
	if req.Intermediary != nil {
		reqInterm = *req.Intermediary
	}
	add("intermediary", interm == reqInterm)
	add("service", req.Service == o.Snapshot.Service.ID)
	add("price", req.Price == o.Snapshot.Price.ID)

	stored := map[string][]byte{}
	for _, p := range o.Snapshot.Properties {
		b, _ := json.Marshal(p.Value)
		stored[p.Name] = b
	}
	given := map[string][]byte{}
	for name, raw := range req.Properties {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			given[name] = raw // invalid: differs from any stored value
			continue
		}
		if v != nil {
			given[name], _ = json.Marshal(v)
		}
	}
	var names []string
	for name := range stored {
		names = append(names, name)
	}
	for name := range given {
		if _, ok := stored[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		add("properties."+name, bytes.Equal(stored[name], given[name]))
	}

	c, rc := o.Snapshot.Customer, req.Customer
	for _, f := range []struct {
		field          string
		stored, wanted string
	}{
		{"customer.name", c.Name, rc.Name},
		{"customer.street", c.Street, rc.Street},
		{"customer.postal_code", c.PostalCode, rc.PostalCode},
		{"customer.city", c.City, rc.City},
		{"customer.country", orDefault(c.Country, "DE"), orDefault(rc.Country, "DE")},
		{"customer.contact_name", c.ContactName, rc.ContactName},
		{"customer.email", c.Email, rc.Email},
		{"customer.phone", c.Phone, rc.Phone},
		{"customer.customer_number", c.CustomerNumber, rc.CustomerNumber},
		{"customer.leitweg_id", c.LeitwegID, rc.LeitwegID},
		{"customer.language", orDefault(strings.ToLower(c.Language), "de"), requestLanguage(req)},
	} {
		add(f.field, f.stored == f.wanted)
	}
	return out
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// requestLanguage is the customer language req asks for, as
// validateCustomerLanguage settles it.
func requestLanguage(req *OrderRequest) string {
	lang := req.Customer.Language
	if strings.TrimSpace(lang) == "" {
		lang = req.Language
	}
	return orDefault(strings.ToLower(strings.TrimSpace(lang)), "de")
}
