package scheduler

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestBillingDocRoundTrip(t *testing.T) {
	dv := BillingDoc{
		Customer: Invoicee{Name: "Stadt Musterstadt", Street: "Markt 1", PostalCode: "12345", City: "Musterstadt", Country: "DE",
			CustomerNumber: "K-1001", LeitwegID: "04011000-12345-03"},
		Provider: BillingParty{ID: "dataport", Name: "Dataport AöR", Email: "b@dataport.example", Language: "de"},
		Service:  "Verwaltungs-Mail", PriceName: "Basis", Currency: "EUR",
	}
	uv := dv
	uv.Intermediary = &BillingParty{ID: "govdigital", Name: "GovDigital eG", Email: "o@gd.example", Street: "Alt-Moabit 91",
		PostalCode: "10559", City: "Berlin", LeitwegID: "992-90009-96"}
	sep := dv
	sep.Customer.Name = "Stadt\x1fMusterstadt"
	empty := BillingDoc{}
	for name, d := range map[string]BillingDoc{"dv": dv, "uv": uv, "separator in a value": sep, "empty": empty} {
		s := d.Encode()
		if wantJSON := name == "separator in a value"; strings.HasPrefix(s, "{") != wantJSON {
			t.Errorf("%s: stored as %q", name, s)
		}
		var got BillingDoc
		if err := DecodeBillingDoc(s, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, d) {
			t.Errorf("%s: decoded %+v, want %+v", name, got, d)
		}
	}
	// A doc of an earlier version, JSON, decodes too.
	old, _ := json.Marshal(uv)
	var got BillingDoc
	if err := DecodeBillingDoc(string(old), &got); err != nil || !reflect.DeepEqual(got, uv) {
		t.Errorf("JSON doc: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "bd1", "bd2" + strings.Repeat(docSep, docFields-1), dv.Encode() + docSep + "x", "{"} {
		if err := DecodeBillingDoc(bad, &got); err == nil {
			t.Errorf("DecodeBillingDoc(%q) = nil error", bad)
		}
	}
}

func BenchmarkDecodeBillingDoc(b *testing.B) {
	d := BillingDoc{Customer: Invoicee{Name: "Stadt Musterstadt", Street: "Markt 1", PostalCode: "12345", City: "Musterstadt",
		CustomerNumber: "K-1001", LeitwegID: "04011000-12345-03"}, Provider: BillingParty{ID: "dataport", Name: "Dataport AöR",
		Email: "b@dataport.example"}, Service: "Verwaltungs-Mail", PriceName: "Basis", Currency: "EUR"}
	js, _ := json.Marshal(d)
	for _, form := range []struct{ name, s string }{{"compact", d.Encode()}, {"json", string(js)}} {
		b.Run(form.name, func(b *testing.B) {
			var got BillingDoc
			for b.Loop() {
				if err := DecodeBillingDoc(form.s, &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
