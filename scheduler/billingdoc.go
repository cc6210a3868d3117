package scheduler

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// A BillingDoc is stored as text in one of two forms. The compact form,
// written since schema version 4, is docPrefix and the fields in a fixed
// order separated by docSep (ASCII unit separator): a billing run decodes
// one per reminder line, and splitting a string costs a fraction of a JSON
// decode. A doc with docSep in a value, and every doc written before, is
// JSON; DecodeBillingDoc reads both.
const (
	docPrefix = "bd1"
	docSep    = "\x1f"
	docFields = 1 + 7 + 8 + 1 + 8 + 3
)

// Encode returns the doc's stored form.
func (d *BillingDoc) Encode() string {
	im := BillingParty{}
	hasIM := ""
	if d.Intermediary != nil {
		im, hasIM = *d.Intermediary, "1"
	}
	c, p := &d.Customer, &d.Provider
	fields := [docFields]string{docPrefix,
		c.Name, c.Street, c.PostalCode, c.City, c.Country, c.CustomerNumber, c.LeitwegID,
		p.ID, p.Name, p.Email, p.Language, p.Street, p.PostalCode, p.City, p.LeitwegID,
		hasIM,
		im.ID, im.Name, im.Email, im.Language, im.Street, im.PostalCode, im.City, im.LeitwegID,
		d.Service, d.PriceName, d.Currency,
	}
	for _, f := range fields {
		if strings.Contains(f, docSep) {
			b, err := json.Marshal(d)
			if err != nil { // strings only: cannot happen
				panic(err)
			}
			return string(b)
		}
	}
	return strings.Join(fields[:], docSep)
}

var errBadDoc = errors.New("malformed billing doc")

// DecodeBillingDoc reads a stored doc, compact or JSON. The compact form's
// strings share the memory of s.
func DecodeBillingDoc(s string, d *BillingDoc) error {
	*d = BillingDoc{}
	if strings.HasPrefix(s, "{") {
		return json.Unmarshal([]byte(s), d)
	}
	var f [docFields]string
	rest := s
	for i := range f {
		if i == docFields-1 {
			f[i] = rest
			if strings.Contains(rest, docSep) {
				return fmt.Errorf("%w: more than %d fields", errBadDoc, docFields)
			}
			break
		}
		var ok bool
		f[i], rest, ok = strings.Cut(rest, docSep)
		if !ok {
			return fmt.Errorf("%w: %d fields, want %d", errBadDoc, i+1, docFields)
		}
	}
	if f[0] != docPrefix {
		return fmt.Errorf("%w: unknown form %q", errBadDoc, f[0])
	}
	d.Customer = Invoicee{Name: f[1], Street: f[2], PostalCode: f[3], City: f[4], Country: f[5], CustomerNumber: f[6], LeitwegID: f[7]}
	d.Provider = BillingParty{ID: f[8], Name: f[9], Email: f[10], Language: f[11], Street: f[12], PostalCode: f[13], City: f[14], LeitwegID: f[15]}
	if f[16] == "1" {
		d.Intermediary = &BillingParty{ID: f[17], Name: f[18], Email: f[19], Language: f[20], Street: f[21], PostalCode: f[22], City: f[23], LeitwegID: f[24]}
	}
	d.Service, d.PriceName, d.Currency = f[25], f[26], f[27]
	return nil
}
