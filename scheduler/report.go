package scheduler

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"mailflow/templates"
)

// WriteTable prints the report as the CLI shows it: one line per reminded
// party and period, then a summary.
func (r BillingReport) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tPERIOD\tROLE\tRECIPIENT\tINVOICE TO\tNET\tVAT\tGROSS\tSTATUS")
	for _, l := range r.Lines {
		status := "would send"
		if l.Sent {
			status = "sent"
		}
		p := l.Period
		span := p.Start.Format("02.01.") + "–" + p.LastDay().Format("02.01.2006")
		if p.Prorated() {
			span += fmt.Sprintf(", %d/%d days", p.Days, p.FullDays)
		}
		fmt.Fprintf(tw, "%s\t%s (%s)\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Number, p.Key, span, l.Role, tableCell(l.Recipient),
			tableCell(l.InvoiceTo.Name), templates.Money("de", p.NetCents, l.Currency), templates.Money("de", p.VATCents, l.Currency), templates.Money("de", p.GrossCents, l.Currency), status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verb := "billed"
	if r.DryRun {
		verb = "dry run: would bill"
	}
	_, err := fmt.Fprintf(w, "\n%s %d periods of %d orders at %s; %d mails enqueued\n", verb, r.Periods, r.Orders,
		r.At.Format("2006-01-02 15:04 MST"), r.Mails)
	for _, e := range r.Errors {
		if err == nil {
			_, err = fmt.Fprintf(w, "not billed: %s: %s\n", e.Order, e.Err)
		}
	}
	return err
}

// tableCell keeps a name to one table cell.
func tableCell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 40 {
		s = string(r[:39]) + "…"
	}
	return s
}
