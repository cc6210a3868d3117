package mailflow

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"mailflow/examples"
)

// TestDuplicateConflicts compares requests with the order the example
// request created, as the stored order reads back (snapshot through
// JSON): the request itself, spelled differently, is no conflict; each
// change names its field.
func TestDuplicateConflicts(t *testing.T) {
	cat := exampleCatalog(t)
	request := func(f func(m map[string]any)) *OrderRequest {
		var m map[string]any
		if err := json.Unmarshal(examples.OrderUV(), &m); err != nil {
			t.Fatal(err)
		}
		if f != nil {
			f(m)
		}
		b, _ := json.Marshal(m)
		var req OrderRequest
		if err := json.Unmarshal(b, &req); err != nil {
			t.Fatal(err)
		}
		return &req
	}
	first := request(nil)
	snap, err := BuildSnapshot(first, cat)
	if err != nil {
		t.Fatal(err)
	}
	o := &Order{ExternalID: first.ExternalID, OrderedAt: first.OrderedAt.UTC(), ContractModel: first.ContractModel,
		Snapshot: snap, CreatedBy: "portal"}
	// As read back from the database: property values through JSON.
	b, _ := json.Marshal(o.Snapshot)
	o.Snapshot = Snapshot{}
	if err := json.Unmarshal(b, &o.Snapshot); err != nil {
		t.Fatal(err)
	}
	cust := func(m map[string]any) map[string]any { return m["customer"].(map[string]any) }
	tests := []struct {
		name    string
		req     *OrderRequest
		creator string
		want    []string
	}{
		{"same", request(nil), "portal", nil},
		{"no creator to compare", request(nil), "", nil},
		{"language spelled out", request(func(m map[string]any) { cust(m)["language"] = " DE " }), "portal", nil},
		{"other language", request(func(m map[string]any) { m["language"] = "en" }), "portal", []string{"customer.language"}},
		{"country spelled out", request(func(m map[string]any) { cust(m)["country"] = "DE" }), "portal", nil},
		{"other creator", request(nil), "portal-b", []string{"external_id"}},
		{"no ordered_at", request(func(m map[string]any) { delete(m, "ordered_at") }), "portal", []string{"ordered_at"}},
		{"DV now", request(func(m map[string]any) { m["contract_model"] = "DV"; delete(m, "intermediary") }), "portal",
			[]string{"contract_model", "intermediary"}},
		{"other service", request(func(m map[string]any) { m["service"] = "dvc-mail" }), "portal", []string{"service"}},
		{"new property", request(func(m map[string]any) { m["properties"].(map[string]any)["farbe"] = "rot" }), "portal", []string{"properties.farbe"}},
		{"null property is absent", request(func(m map[string]any) { m["properties"].(map[string]any)["farbe"] = nil }), "portal", nil},
		{"leitweg and phone", request(func(m map[string]any) { cust(m)["leitweg_id"] = "04011000-12345-03"; cust(m)["phone"] = "" }), "portal",
			[]string{"customer.leitweg_id", "customer.phone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, fe := range DuplicateConflicts(o, tt.req, tt.creator) {
				got = append(got, fe.Field)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("conflicts %v, want %v", got, tt.want)
			}
		})
	}
	err = &DuplicateError{Errors: []FieldError{{Field: "price", Message: differs}}}
	if !errors.Is(err, ErrConflict) {
		t.Error("a DuplicateError is not ErrConflict")
	}
}
