package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"mailflow/mailflow"
	"mailflow/mailflow/xrechnung"
)

// BillingInvoice is an XRechnung a billing reminder carries: what the
// reminded party invoices one recipient for the reminder's lines
// (docs/design.md §5).
type BillingInvoice struct {
	File           string           `json:"file"` // XRechnung-<number>.xml
	Number         string           `json:"number"`
	Draft          bool             `json:"draft"` // the number is a draft the seller replaces
	Role           string           `json:"role"`  // the seller's: provider or intermediary
	Party          string           `json:"party"` // the seller's catalog id
	Seller         string           `json:"seller"`
	Buyer          string           `json:"buyer"`
	BuyerReference string           `json:"buyer_reference"` // the buyer's Leitweg-ID (BT-10)
	Orders         []string         `json:"orders"`
	Periods        []string         `json:"periods"` // "order/period" of each line
	Currency       string           `json:"currency"`
	Totals         xrechnung.Totals `json:"totals"`
	XML            []byte           `json:"-"`
}

// draftPrefix starts an invoice number mailflow made up: the seller
// replaces it with one of its own numbering.
const draftPrefix = "ENTWURF-"

// invoiceUnits are the UN/ECE Rec. 20 units of a whole period.
var invoiceUnits = map[string]string{intervalMonthly: "MON", intervalQuarterly: "QAN", intervalYearly: "ANN"}

// buildInvoices makes the e-invoices of a billing reminder: one per
// invoice recipient and currency among its lines, in order of first
// appearance, numbered from first. missing names what the catalog lacks
// for them (seller data, or a recipient's address or Leitweg-ID); an
// invoice that lacks something is left out, the others are made.
func buildInvoices(m *BillingMail, seller *mailflow.Party, loc *time.Location, first int) (invs []BillingInvoice, missing []string) {
	if seller == nil {
		return nil, []string{"the party (not in the catalog)"}
	}
	if miss := seller.SellerMissing(); len(miss) > 0 {
		return nil, miss
	}
	sp, pay := seller.InvoiceSeller()
	s := seller.Seller
	y, mo, d := m.At.In(loc).Date()
	issue := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	days := s.PaymentTermsDays
	if days == 0 {
		days = mailflow.DefaultPaymentTermsDays
	}
	type group struct {
		to       mailflow.Invoicee
		currency string
	}
	var groups []group
	byGroup := map[group][]int{}
	for i := range m.Lines {
		l := &m.Lines[i]
		g := group{l.InvoiceTo, l.Currency}
		if _, ok := byGroup[g]; !ok {
			groups = append(groups, g)
		}
		byGroup[g] = append(byGroup[g], i)
	}
	for k, g := range groups {
		n := first + k
		inv := xrechnung.Invoice{
			Number: invoiceNumber(s.InvoiceNumberPattern, issue, n), IssueDate: issue, DueDate: issue.AddDate(0, 0, days),
			Currency: g.currency, BuyerReference: g.to.LeitwegID, Seller: sp, Payment: pay,
			Buyer: xrechnung.Party{Name: g.to.Name, Street: g.to.Street, PostalCode: g.to.PostalCode, City: g.to.City,
				Country: g.to.Country, EndpointID: g.to.LeitwegID, EndpointScheme: xrechnung.SchemeLeitwegID},
			PaymentTerms:    "Zahlbar innerhalb von " + strconv.Itoa(days) + " Tagen ohne Abzug.",
			ExemptionReason: s.VATExemptionReason,
		}
		bi := BillingInvoice{Number: inv.Number, Draft: s.InvoiceNumberPattern == "", Role: m.Role, Party: seller.ID, Seller: sp.Name,
			Buyer: g.to.Name, BuyerReference: g.to.LeitwegID, Currency: g.currency}
		for _, i := range byGroup[g] {
			l := &m.Lines[i]
			p := &l.Period
			unit := invoiceUnits[l.Interval]
			desc := ""
			if p.Prorated() {
				unit, desc = "", fmt.Sprintf("anteilig %d von %d Tagen", p.Days, p.FullDays)
			}
			inv.Lines = append(inv.Lines, xrechnung.Line{OrderNumber: l.Number, Name: l.Service + ", " + l.PriceName,
				Description: desc, Start: p.Start, LastDay: p.LastDay(), Unit: unit, NetCents: p.NetCents, VATPercent: l.VATPercent})
			if len(bi.Orders) == 0 || bi.Orders[len(bi.Orders)-1] != l.Number {
				bi.Orders = append(bi.Orders, l.Number)
			}
			bi.Periods = append(bi.Periods, l.Number+"/"+p.Key)
		}
		if len(bi.Orders) == 1 {
			inv.OrderReference = bi.Orders[0]
		}
		x, err := inv.XML()
		if err != nil {
			// The seller is complete, so what is missing is the
			// recipient's: in UV the intermediary's catalog entry.
			missing = append(missing, fmt.Sprintf("for the invoice to %s: %s", g.to.Name,
				strings.TrimPrefix(err.Error(), xrechnung.ErrInvalid.Error()+": ")))
			continue
		}
		bi.XML, bi.Totals, bi.File = x, inv.Totals(), "XRechnung-"+inv.Number+".xml"
		invs = append(invs, bi)
	}
	return invs, missing
}

// invoiceNumber fills in the seller's pattern, or makes a draft number:
// ENTWURF-<run date>-<n>.
func invoiceNumber(pattern string, issue time.Time, n int) string {
	date := issue.Format("20060102")
	if pattern == "" {
		return draftPrefix + date + "-" + strconv.Itoa(n)
	}
	return strings.NewReplacer("{date}", date, "{n}", strconv.Itoa(n)).Replace(pattern)
}

// OrderInvoices makes the e-invoice of each billed period of an order and
// each reminded party, by period: each invoice bills that period alone
// and is issued on the day after the period (when the billing run is
// due), so it is the same document on every call. The reminder's
// attachment is a different document: it bills all the periods of its
// recipient in that run, under the run's date. Seller data is the current
// catalog's.
func (s *Scheduler) OrderInvoices(ctx context.Context, number string) ([]mailflow.OrderInvoice, error) {
	periods, err := s.store.OrderBilledPeriods(ctx, number)
	if err != nil || len(periods) == 0 {
		return nil, err
	}
	sellers, err := s.sellers(ctx)
	if err != nil {
		return nil, err
	}
	var doc mailflow.BillingDoc
	if err := json.Unmarshal([]byte(periods[0].Doc), &doc); err != nil {
		return nil, fmt.Errorf("scheduler: order %s: billing doc: %w", number, err)
	}
	var out []mailflow.OrderInvoice
	var missing []string
	for i := range periods {
		b := &periods[i]
		b.Period.Start, b.Period.End = b.Period.Start.In(s.cfg.Location), b.Period.End.In(s.cfg.Location)
		for _, role := range remindedRoles(b.Model) {
			_, line := reminderLine(role, b, &doc)
			party := b.ProviderID
			if role == mailflow.PartyIntermediary {
				party = b.IntermediaryID
			}
			m := BillingMail{Role: role, Lines: []BillingLine{line}, At: b.Period.End}
			invs, miss := buildInvoices(&m, sellers[role+"/"+party], s.cfg.Location, 1)
			missing = append(missing, miss...)
			for _, inv := range invs {
				out = append(out, mailflow.OrderInvoice{Period: b.Period.Key, Role: role, Seller: inv.Seller, Buyer: inv.Buyer,
					BuyerReference: inv.BuyerReference, XML: inv.XML})
			}
		}
	}
	if len(out) == 0 && len(missing) > 0 {
		return nil, fmt.Errorf("scheduler: order %s: %w: the catalog lacks %s", number, mailflow.ErrNoInvoice, strings.Join(missing, ", "))
	}
	return out, nil
}
