package web

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strings"

	"mailflow/templates"
)

// maxCSVRows caps one export; the list's filter narrows a larger one.
const maxCSVRows = 100000

// listCSV exports the orders the list's filter selects (the same status
// and q), all of them rather than one page, for a spreadsheet: RFC 4180
// quoting and CRLF line ends, but ";" between fields and a UTF-8 byte
// order mark first, which is what Excel set to German expects to open a
// file by double-click with umlauts intact. Headers and labels follow
// the page's language. docs/operations.md "CSV export" explains the
// choices.
func (p *Pages) listCSV(w http.ResponseWriter, r *http.Request) {
	f, ok := p.listFilter(w, r)
	if !ok {
		return
	}
	lang := langFrom(r)
	f.Limit = maxCSVRows
	orders, err := p.Store.Orders(r.Context(), f)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	var b strings.Builder
	b.WriteString("\uFEFF")
	cw := csv.NewWriter(&b)
	cw.Comma, cw.UseCRLF = ';', true
	head := []string{"Bestellnummer", "Bestelldatum", "Status", "Status-Code", "Kunde", "Anbieter", "Intermediär",
		"Leistung", "Vertragsmodell", "Externe Kennung (Portal)", "Verbindlich seit", "Widerspruch"}
	for i, h := range head {
		head[i] = msg(lang, h)
	}
	cw.Write(head)
	for _, o := range orders {
		sn := o.Snapshot
		var intermediary, binding, conflict string
		if sn.Intermediary != nil {
			intermediary = sn.Intermediary.Name
		}
		if o.BindingAt != nil {
			binding = formatTime(lang, o.BindingAt, true)
		}
		if o.Conflict {
			conflict = msg(lang, "ja")
		}
		row := []string{o.Number, formatTime(lang, o.OrderedAt, true), label(lang, templates.LabelStatus, string(o.Status)),
			string(o.Status), sn.Customer.Name, sn.Provider.Name, intermediary, sn.Service.Name, o.ContractModel,
			o.ExternalID, binding, conflict}
		for i := range row {
			row[i] = csvCell(row[i])
		}
		cw.Write(row)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		p.fail(w, r, err)
		return
	}
	name := "bestellungen"
	if lang == langEN {
		name = "orders"
	}
	if f.Status != "" {
		name += "-" + string(f.Status)
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8; header=present")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.csv"`, name))
	w.Header().Set("Content-Language", lang)
	w.Write([]byte(b.String()))
}

// csvCell defuses CSV formula injection: a spreadsheet runs a cell that
// starts with = + - or @ (and, in some, a tab or carriage return) as a
// formula, and a customer's name comes from outside. A leading
// apostrophe makes it text; it shows, which is the price of safety.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
