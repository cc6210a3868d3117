package scheduler

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"mailflow/mailflow"
)

// RoleCustomer is the invoice recipient role of the ordering body.
const RoleCustomer = "customer"

// BillingCandidate is an order a billing run looks at, with what the run
// sorts by so that one party's lines share as few mails as possible.
type BillingCandidate struct {
	ID             int64
	ProviderID     string
	IntermediaryID string // "" in DV
}

// BillingOrder is a binding order with its billing progress.
type BillingOrder struct {
	ID            int64
	Number        string
	ContractModel string
	BindingAt     time.Time
	// BilledUntil is the End of the last billed period; nil before the
	// first.
	BilledUntil *time.Time
	// DueAt is when the next unbilled period ends; nil when the order has
	// not been seen by a billing run yet, or when Done.
	DueAt *time.Time
	// Done: everything is billed (a "once" price).
	Done bool
	// Snapshot holds Customer, Provider, Intermediary, Service and Price;
	// the terms texts are not loaded.
	Snapshot mailflow.Snapshot
}

// due reports whether a run at `at` has to look at the order.
func (o *BillingOrder) due(at time.Time) bool {
	if o.DueAt == nil {
		return !o.Done
	}
	return !o.DueAt.After(at)
}

// BillingRecord is one billed period: a row of billing_reminders.
type BillingRecord struct {
	OrderID int64
	Period  Period
}

// BillingProgress is where an order's billing continues.
type BillingProgress struct {
	OrderID     int64
	BilledUntil *time.Time
	DueAt       *time.Time // nil: nothing more to bill
	Done        bool
}

// Invoicee is whom a reminded party is to invoice: the customer, or in UV
// for the provider the intermediary.
type Invoicee struct {
	Role           string // RoleCustomer or mailflow.PartyIntermediary
	Name           string
	Street         string
	PostalCode     string
	City           string
	Country        string
	CustomerNumber string // the customer's number at the provider; "" for the intermediary
	LeitwegID      string // routing id of the e-invoice (XRechnung)
}

// BillingLine is one period of one order that a party is to invoice.
type BillingLine struct {
	OrderID    int64
	Number     string
	Model      string // DV or UV
	Service    string
	PriceName  string
	Interval   string
	Currency   string
	VATPercent float64
	Period     Period
	InvoiceTo  Invoicee
}

// BillingMail is one billing reminder: the lines one party is to invoice
// from one batch of a run.
type BillingMail struct {
	Role  string // mailflow.PartyProvider or mailflow.PartyIntermediary
	To    mailflow.Party
	Lines []BillingLine
	At    time.Time // the run's time
}

// BillingReportLine is one reminder line of a run.
type BillingReportLine struct {
	BillingLine
	Role      string // the reminded party's role
	Recipient string // the reminded party's name
	Sent      bool   // false in a dry run
}

// BillingError is an order a run could not bill.
type BillingError struct {
	Order string
	Err   string
}

// BillingReport is what a billing run sent or, in a dry run, would send.
type BillingReport struct {
	At      time.Time
	DryRun  bool
	Orders  int // orders looked at
	Periods int // periods billed
	Mails   int // reminder mails enqueued
	Lines   []BillingReportLine
	Errors  []BillingError
}

// RunBilling bills every period that has ended by `at` and has no reminder
// yet (DESIGN §5): for each, the provider is reminded to invoice the
// customer (DV) or the intermediary (UV), and in UV the intermediary to
// invoice the customer.
//
// The work follows database state, not cron ticks: candidates are the
// orders whose next period has ended (orders.billing_due_at <= at) plus
// newly binding ones, so a run costs in proportion to the periods due, and
// a daemon that was down for months sends each missed period once. Orders
// are handled in batches, one transaction each: insert the periods under
// their unique key, enqueue the mails for the periods that were new, move
// billing_due_at on. A run interrupted between batches loses nothing.
//
// Each party gets one mail per batch listing all its lines; candidates are
// sorted by intermediary and provider so that a party's lines fill as few
// mails as possible.
//
// A dry run reads and reports, writing nothing. A real run for a time
// after the clock's now is refused: it would bill periods that have not
// ended.
func (s *Scheduler) RunBilling(ctx context.Context, at time.Time, dryRun bool) (BillingReport, error) {
	start := time.Now()
	rep := BillingReport{At: at, DryRun: dryRun}
	if !dryRun {
		if at.After(s.now()) {
			return rep, fmt.Errorf("scheduler: billing run at %s is in the future; only a dry run may look ahead", at.Format(time.RFC3339))
		}
		release, err := s.lead(ctx, JobBilling)
		if err != nil {
			return rep, err
		}
		defer release()
	}
	cands, err := s.store.BillingCandidates(ctx, at)
	if err != nil {
		return rep, fmt.Errorf("scheduler: billing: %w", err)
	}
	slices.SortFunc(cands, func(a, b BillingCandidate) int {
		return cmp.Or(cmp.Compare(a.IntermediaryID, b.IntermediaryID), cmp.Compare(a.ProviderID, b.ProviderID), cmp.Compare(a.ID, b.ID))
	})
	n := s.cfg.batchSize()
	ids := make([]int64, 0, n)
	for i := 0; i < len(cands); i += n {
		if err := ctx.Err(); err != nil {
			return rep, s.billingDone(rep, start, err)
		}
		ids = ids[:0]
		for _, c := range cands[i:min(i+n, len(cands))] {
			ids = append(ids, c.ID)
		}
		if dryRun {
			err = s.billDry(ctx, ids, at, &rep)
		} else {
			err = s.billBatch(ctx, ids, at, &rep)
		}
		if err != nil {
			return rep, s.billingDone(rep, start, err)
		}
	}
	return rep, s.billingDone(rep, start, nil)
}

// billingDone logs the run's summary and returns err.
func (s *Scheduler) billingDone(rep BillingReport, start time.Time, err error) error {
	attrs := []any{"at", rep.At.Format(time.RFC3339), "dry_run", rep.DryRun, "orders", rep.Orders, "periods", rep.Periods,
		"mails", rep.Mails, "errors", len(rep.Errors), "took", time.Since(start).Round(time.Millisecond)}
	if err != nil {
		s.log.Error("scheduler: billing run stopped", append(attrs, "err", err)...)
		return fmt.Errorf("scheduler: billing: %w", err)
	}
	s.log.Info("scheduler: billing run", attrs...)
	for _, e := range rep.Errors {
		s.log.Warn("scheduler: order not billed", "order", e.Order, "err", e.Err)
	}
	return nil
}

func (s *Scheduler) billDry(ctx context.Context, ids []int64, at time.Time, rep *BillingReport) error {
	orders, err := s.store.BillingOrders(ctx, ids)
	if err != nil {
		return err
	}
	for i := range orders {
		o := &orders[i]
		if !o.due(at) {
			continue
		}
		rep.Orders++
		ps, _, err := s.plan(o, at)
		if err != nil {
			rep.Errors = append(rep.Errors, BillingError{Order: o.Number, Err: err.Error()})
			continue
		}
		for _, p := range ps {
			rep.Periods++
			for _, r := range reminded(o, p) {
				rep.Lines = append(rep.Lines, BillingReportLine{BillingLine: r.line, Role: r.role, Recipient: r.to.Name})
			}
		}
	}
	return nil
}

func (s *Scheduler) billBatch(ctx context.Context, ids []int64, at time.Time, rep *BillingReport) error {
	var (
		orders   int
		periods  int
		errs     []BillingError
		lines    []BillingReportLine
		mails    []*mailflow.OutboxMessage
		recs     []BillingRecord
		progress []BillingProgress
	)
	err := s.store.JobTx(ctx, func(tx Tx) error {
		locked, err := tx.LockBillingOrders(ids)
		if err != nil {
			return err
		}
		var planned []*BillingOrder // the order of each rec
		for i := range locked {
			o := &locked[i]
			if !o.due(at) { // billed by a concurrent run since the candidates were read
				continue
			}
			orders++
			ps, pr, err := s.plan(o, at)
			if err != nil {
				errs = append(errs, BillingError{Order: o.Number, Err: err.Error()})
				continue
			}
			progress = append(progress, pr)
			for _, p := range ps {
				recs = append(recs, BillingRecord{OrderID: o.ID, Period: p})
				planned = append(planned, o)
			}
		}
		inserted, err := tx.InsertBillingRecords(recs, s.now())
		if err != nil {
			return err
		}
		// One mail per reminded party, in the order the parties first
		// appear in the batch.
		var groups []*BillingMail
		index := map[string]int{}
		for i, rec := range recs {
			if !inserted[i] {
				continue // a concurrent run recorded and sent it
			}
			periods++
			for _, r := range reminded(planned[i], rec.Period) {
				key := r.role + "\x00" + r.to.ID
				g, ok := index[key]
				if !ok {
					g = len(groups)
					index[key] = g
					groups = append(groups, &BillingMail{Role: r.role, To: r.to, At: at})
				}
				groups[g].Lines = append(groups[g].Lines, r.line)
				lines = append(lines, BillingReportLine{BillingLine: r.line, Role: r.role, Recipient: r.to.Name, Sent: true})
			}
		}
		for _, g := range groups {
			m, err := s.mail.BillingReminder(*g)
			if err != nil {
				return fmt.Errorf("compose billing reminder: %w", err)
			}
			mails = append(mails, m)
		}
		if err := tx.Enqueue(mails...); err != nil {
			return err
		}
		return tx.AdvanceBilling(progress)
	})
	if err != nil {
		return err
	}
	rep.Orders += orders
	rep.Periods += periods
	rep.Mails += len(mails)
	rep.Errors = append(rep.Errors, errs...)
	rep.Lines = append(rep.Lines, lines...)
	return nil
}

// plan returns the periods of o due at `at` after what is billed, and
// where its billing continues afterwards.
func (s *Scheduler) plan(o *BillingOrder, at time.Time) ([]Period, BillingProgress, error) {
	pr := BillingProgress{OrderID: o.ID, BilledUntil: o.BilledUntil}
	if o.ContractModel == mailflow.ModelUV && o.Snapshot.Intermediary == nil {
		return nil, pr, fmt.Errorf("UV order without intermediary")
	}
	price := o.Snapshot.Price
	var from time.Time
	if o.BilledUntil != nil {
		from = *o.BilledUntil
	}
	ps, err := DuePeriods(o.BindingAt, price.Interval, price.AmountCents, price.VATPercent, s.cfg.Location, from, at)
	if err != nil {
		return nil, pr, err
	}
	if len(ps) > 0 {
		end := ps[len(ps)-1].End
		pr.BilledUntil = &end
		from = end
	}
	next, ok, err := nextPeriodEnd(o.BindingAt, price.Interval, s.cfg.Location, from)
	if err != nil {
		return nil, pr, err
	}
	if ok {
		pr.DueAt = &next
	} else {
		pr.Done = true
	}
	return ps, pr, nil
}

// stepMonths is the length of a period in months.
var stepMonths = map[string]int{intervalOnce: 0, intervalMonthly: 1, intervalQuarterly: 3, intervalYearly: 12}

// nextPeriodEnd is the End of the first period that DuePeriods would
// return for from, at whatever time: when the next run has work for the
// order. ok is false when there is none (a "once" price already billed).
func nextPeriodEnd(binding time.Time, interval string, loc *time.Location, from time.Time) (time.Time, bool, error) {
	step, known := stepMonths[interval]
	if !known {
		return time.Time{}, false, fmt.Errorf("%w: %q", ErrUnknownInterval, interval)
	}
	y, m, d := binding.In(loc).Date()
	base := time.Date(y, m, d, 0, 0, 0, 0, loc)
	if from.After(base) {
		base = from
	}
	// The first period starting at or after base ends at most step months
	// (a day for "once") after it: that bound returns it, and at most one
	// more.
	horizon := base.AddDate(0, step, 0)
	if step == 0 {
		horizon = base.AddDate(0, 0, 1)
	}
	ps, err := DuePeriods(binding, interval, 0, 0, loc, from, horizon)
	if err != nil || len(ps) == 0 {
		return time.Time{}, false, err
	}
	return ps[0].End, true, nil
}

type reminder struct {
	role string
	to   mailflow.Party
	line BillingLine
}

// reminded returns who is reminded of a period of o and whom each is to
// invoice: DV, the provider the customer; UV, the provider the
// intermediary and the intermediary the customer.
func reminded(o *BillingOrder, p Period) []reminder {
	sn := &o.Snapshot
	line := BillingLine{
		OrderID: o.ID, Number: o.Number, Model: o.ContractModel, Service: sn.Service.Name,
		PriceName: sn.Price.Name, Interval: sn.Price.Interval, Currency: sn.Price.Currency, VATPercent: sn.Price.VATPercent,
		Period: p,
	}
	c := sn.Customer
	customer := Invoicee{Role: RoleCustomer, Name: c.Name, Street: c.Street, PostalCode: c.PostalCode, City: c.City,
		Country: c.Country, CustomerNumber: c.CustomerNumber, LeitwegID: c.LeitwegID}
	if o.ContractModel != mailflow.ModelUV {
		line.InvoiceTo = customer
		return []reminder{{role: mailflow.PartyProvider, to: sn.Provider, line: line}}
	}
	im := sn.Intermediary
	toIntermediary := line
	toIntermediary.InvoiceTo = Invoicee{Role: mailflow.PartyIntermediary, Name: im.Name, Street: im.Street,
		PostalCode: im.PostalCode, City: im.City, Country: "DE", LeitwegID: im.LeitwegID}
	toCustomer := line
	toCustomer.InvoiceTo = customer
	return []reminder{
		{role: mailflow.PartyProvider, to: sn.Provider, line: toIntermediary},
		{role: mailflow.PartyIntermediary, to: *im, line: toCustomer},
	}
}

// LastDay is the last billed day of the period (End is exclusive).
func (p Period) LastDay() time.Time { return p.End.AddDate(0, 0, -1) }

// Prorated reports whether the period is billed for part of its days.
func (p Period) Prorated() bool { return p.Days != p.FullDays }

// WriteTable prints the report as the CLI shows it: one line per reminded
// party and period, then a summary.
func (r BillingReport) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER\tPERIOD\tROLE\tRECIPIENT\tINVOICE TO\tNET\tVAT\tGROSS\tSTATUS")
	status := "sent"
	if r.DryRun {
		status = "would send"
	}
	for _, l := range r.Lines {
		p := l.Period
		span := p.Start.Format("02.01.") + "–" + p.LastDay().Format("02.01.2006")
		if p.Prorated() {
			span += fmt.Sprintf(", %d/%d days", p.Days, p.FullDays)
		}
		fmt.Fprintf(tw, "%s\t%s (%s)\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Number, p.Key, span, l.Role, tableCell(l.Recipient),
			tableCell(l.InvoiceTo.Name), money(p.NetCents, l.Currency), money(p.VATCents, l.Currency), money(p.GrossCents, l.Currency), status)
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

// money formats cents the German way: 1.234,56 EUR.
func money(cents int64, currency string) string {
	neg := cents < 0
	if neg {
		cents = -cents
	}
	whole := strconv.FormatInt(cents/100, 10)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(r)
	}
	fmt.Fprintf(&b, ",%02d", cents%100)
	if currency == "" {
		currency = "EUR"
	}
	return b.String() + " " + currency
}
