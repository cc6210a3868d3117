package web_test

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// TestPagesCSV: the export holds what the list's filter selects, opens
// in German Excel (BOM, ";", CRLF) and defuses formulas in cells.
func TestPagesCSV(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			env := newPageEnv(t, driver, false)
			seeds := seedAllStatuses(t, env.flow)
			evil := createOrder(t, env.flow, "order-dv.json", "csv-evil", `=HYPERLINK("https://evil.example";"Klick")`)
			minus := createOrder(t, env.flow, "order-dv.json", "csv-minus", "-2+3; \"Amt\"")
			c := env.client()
			if resp, _ := c.get("/bestellungen.csv"); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("CSV without login: %d, want a redirect to the login", resp.StatusCode)
			}
			c.login()

			read := func(query string, hdr map[string]string) (*http.Response, [][]string) {
				t.Helper()
				resp, body := c.do("GET", "/bestellungen.csv"+query, nil, hdr)
				if resp.StatusCode != 200 {
					t.Fatalf("CSV %s: %d %s", query, resp.StatusCode, body)
				}
				if !strings.HasPrefix(body, "\uFEFF") {
					t.Errorf("CSV %s: no UTF-8 byte order mark", query)
				}
				if !strings.Contains(body, "\r\n") || strings.Count(body, "\n") != strings.Count(body, "\r\n") {
					t.Errorf("CSV %s: line ends are not CRLF", query)
				}
				r := csv.NewReader(strings.NewReader(strings.TrimPrefix(body, "\uFEFF")))
				r.Comma = ';'
				recs, err := r.ReadAll()
				if err != nil {
					t.Fatalf("CSV %s: %v", query, err)
				}
				return resp, recs
			}

			resp, recs := read("", nil)
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv; charset=utf-8") {
				t.Errorf("Content-Type %q", ct)
			}
			if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="bestellungen.csv"` {
				t.Errorf("Content-Disposition %q", cd)
			}
			if recs[0][0] != "Bestellnummer" || recs[0][2] != "Status" || recs[0][3] != "Status-Code" {
				t.Errorf("header %q", recs[0])
			}
			if len(recs) != 1+len(seeds)+2 {
				t.Errorf("%d rows, want %d orders", len(recs)-1, len(seeds)+2)
			}
			byNumber := map[string][]string{}
			for _, r := range recs[1:] {
				byNumber[r[0]] = r
			}
			if got := byNumber[evil.Number][4]; got != `'=HYPERLINK("https://evil.example";"Klick")` {
				t.Errorf("formula not defused: %q", got)
			}
			if got := byNumber[minus.Number][4]; got != "'-2+3; \"Amt\"" {
				t.Errorf("cell with quote and separator: %q", got)
			}
			ordered := byNumber[seeds[mailflow.StatusOrdered].Number]
			if ordered[2] != "Bestellt" || ordered[3] != "ordered" || ordered[1] != "20.11.2026 10:00:00 MEZ" || ordered[10] == "" {
				t.Errorf("ordered row %q", ordered)
			}

			// The same filter as the list; the list links to it.
			_, body := c.get("/bestellungen?status=ordered&q=" + url.QueryEscape("Hameln"))
			if !strings.Contains(body, `href="/bestellungen.csv?q=Hameln&amp;status=ordered"`) {
				t.Error("the list does not link its filter's CSV")
			}
			_, recs = read("?status=ordered&q=Hameln", nil)
			if len(recs) != 2 || recs[1][0] != seeds[mailflow.StatusOrdered].Number {
				t.Errorf("filtered CSV: %q", recs)
			}
			_, recs = read("?q=gibt-es-nicht", nil)
			if len(recs) != 1 {
				t.Errorf("empty CSV: %q", recs)
			}
			if resp, _ := c.get("/bestellungen.csv?q=" + strings.Repeat("x", 201)); resp.StatusCode != http.StatusUnprocessableEntity {
				t.Errorf("too long a search: %d", resp.StatusCode)
			}

			// In English, headers and labels are English.
			resp, recs = read("?status=rejected_provider_uv", map[string]string{"Accept-Language": "en"})
			if recs[0][0] != "Order number" || recs[1][2] != "Rejected by the provider (UV)" || !strings.Contains(resp.Header.Get("Content-Disposition"), "orders-rejected_provider_uv.csv") {
				t.Errorf("English CSV: %q %q", recs, resp.Header.Get("Content-Disposition"))
			}
		})
	}
}
