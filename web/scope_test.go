package web_test

import (
	"encoding/csv"
	"fmt"
	"slices"
	"strings"
	"testing"

	"mailflow/storage/storagetest"
)

// TestScopedExportAndConversation: a provider's or intermediary's CSV
// export holds its own orders only, and an order's conversation shows it
// the mails to and from itself, never the other party's.
func TestScopedExportAndConversation(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newSigninEnv(t, driver)
			f := env.scopeFixture()
			provider := fmt.Sprint("ausgang-", f.notes[f.uv.Number+"/provider"])
			intermediary := fmt.Sprint("ausgang-", f.notes[f.uv.Number+"/intermediary"])
			for _, w := range []struct {
				name, addr  string
				orders      []string
				mail, other string // the UV order's notification it sees, and the one it does not
			}{
				{"dataport", dataportAddr, []string{f.dv1.Number, f.dv2.Number}, "", ""},
				{"itnrw", itnrwAddr, []string{f.uv.Number}, provider, intermediary},
				{"govdigital", govdigitalAddr, []string{f.uv.Number}, intermediary, provider},
			} {
				t.Run(w.name, func(t *testing.T) {
					c := env.client("192.0.2.1")
					env.signIn(c, w.addr, "")
					resp, body := c.get("/bestellungen.csv")
					if resp.StatusCode != 200 {
						t.Fatalf("CSV: %d", resp.StatusCode)
					}
					r := csv.NewReader(strings.NewReader(strings.TrimPrefix(body, "\uFEFF")))
					r.Comma = ';'
					recs, err := r.ReadAll()
					if err != nil {
						t.Fatal(err)
					}
					var got []string
					for _, rec := range recs[1:] {
						got = append(got, rec[0])
					}
					slices.Sort(got)
					if !slices.Equal(got, w.orders) {
						t.Errorf("CSV lists %v, want %v", got, w.orders)
					}
					if w.mail == "" {
						return
					}
					_, page := c.get("/bestellungen/" + f.uv.Number)
					if !strings.Contains(page, `id="nachricht-`+w.mail+`"`) || strings.Contains(page, `id="nachricht-`+w.other+`"`) {
						t.Errorf("conversation of %s: want %s and not %s", f.uv.Number, w.mail, w.other)
					}
				})
			}
		})
	}
}
