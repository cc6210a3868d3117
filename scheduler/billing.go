package scheduler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"mailflow/mailflow"
)

// recipient is a reminded party as the mail's recipient.
func recipient(p *mailflow.BillingParty) mailflow.Party {
	return mailflow.Party{ID: p.ID, Name: p.Name, Email: p.Email, Language: p.Language}
}

// RoleCustomer is the invoice recipient role of the ordering body.
const RoleCustomer = "customer"

// MaxBillingLines is how many lines one billing reminder lists at most; a
// party with more gets several mails, numbered "Teil k von n".
const MaxBillingLines = 500

// BillingLine is one period of one order that a party is to invoice.
type BillingLine struct {
	OrderID    int64             `json:"-"`
	Number     string            `json:"order"`
	Model      string            `json:"contract_model"` // DV or UV
	Service    string            `json:"service"`
	PriceName  string            `json:"price"`
	Interval   string            `json:"interval"`
	Currency   string            `json:"currency"`
	VATPercent float64           `json:"vat_percent"`
	Period     mailflow.Period   `json:"period"`
	InvoiceTo  mailflow.Invoicee `json:"invoice_to"`
}

// BillingMail is one billing reminder: lines one party is to invoice.
type BillingMail struct {
	Role  string // mailflow.PartyProvider or mailflow.PartyIntermediary
	To    mailflow.Party
	Lines []BillingLine
	// Part and Parts number the mails of a party in one run when it has
	// more than MaxBillingLines lines: "Teil 2 von 3".
	Part, Parts int
	At          time.Time // the run's time
	// Invoices are the XRechnung attachments, one per invoice recipient;
	// InvoiceMissing names what the catalog lacks for those not made.
	Invoices       []BillingInvoice
	InvoiceMissing []string
}

// BillingReportLine is one reminder line of a run.
type BillingReportLine struct {
	BillingLine
	Role      string `json:"role"`      // the reminded party's role
	Recipient string `json:"recipient"` // the reminded party's name
	Sent      bool   `json:"sent"`      // false in a dry run
}

// BillingError is an order a run could not bill.
type BillingError struct {
	Order string `json:"order"`
	Err   string `json:"error"`
}

// BillingReport is what a billing run sent or, in a dry run, would send.
type BillingReport struct {
	At      time.Time `json:"at"`
	DryRun  bool      `json:"dry_run"`
	Orders  int       `json:"orders"`  // orders looked at
	Periods int       `json:"periods"` // periods billed (recorded) by this run
	Mails   int       `json:"mails"`   // reminder mails enqueued
	// Lines lists the reminder lines mailed (or, in a dry run, to be
	// mailed), by order, period and role: those of the periods billed now
	// and any left queued by an earlier run that stopped before mailing.
	Lines []BillingReportLine `json:"lines"`
	// Invoices are the e-invoices the reminders carry (or would carry).
	Invoices []BillingInvoice `json:"invoices,omitempty"`
	Errors   []BillingError   `json:"errors,omitempty"`
}

// RunBilling bills every period that has ended by `at` and reminds the
// parties to invoice it: in DV the provider to invoice the customer, in
// UV the provider to invoice the intermediary and the intermediary to
// invoice the customer.
//
// The work follows database state, not cron ticks, in two phases. The
// first looks only at the orders due (billing_orders.due_at <= at), in
// batches of BatchSize orders, one transaction each that locks them:
// record each ended period under its unique key (order, period) and move
// due_at to the End of the next one. A daemon that was down for months
// bills each missed period once; a rerun finds nothing due.
//
// The second mails every recorded period not yet reminded: per reminded
// party one mail listing its lines (several of at most MaxBillingLines),
// enqueued in one transaction that marks the periods reminded. A run that
// stops in between leaves them unreminded; the next run (or Start) mails
// them.
//
// A dry run reads and reports, writing nothing. A real run for a time after
// the clock's now is refused: it would bill periods that have not ended.
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
	recorded, err := s.billDue(ctx, at, &rep)
	billed := time.Now()
	if err == nil {
		err = s.mailReminders(ctx, at, &rep, recorded)
	}
	slices.SortFunc(rep.Lines, func(a, b BillingReportLine) int {
		return cmp.Or(cmp.Compare(a.Number, b.Number), a.Period.Start.Compare(b.Period.Start), cmp.Compare(b.Role, a.Role))
	})
	return rep, s.billingDone(rep, start, billed, err)
}

// resumeBilling is the second phase alone: it mails what a run that
// stopped early (a crash, a shutdown) left unreminded.
func (s *Scheduler) resumeBilling(ctx context.Context, at time.Time) error {
	release, err := s.lead(ctx, JobBilling)
	if err != nil {
		return err
	}
	defer release()
	start := time.Now()
	rep := BillingReport{At: at}
	err = s.mailReminders(ctx, at, &rep, nil)
	if err != nil || rep.Mails > 0 {
		return s.billingDone(rep, start, start, err)
	}
	return nil
}

// billingDone logs the run's summary and returns err.
func (s *Scheduler) billingDone(rep BillingReport, start, billed time.Time, err error) error {
	attrs := []any{"at", rep.At.Format(time.RFC3339), "dry_run", rep.DryRun, "orders", rep.Orders, "periods", rep.Periods,
		"lines", len(rep.Lines), "mails", rep.Mails, "errors", len(rep.Errors),
		"billing", billed.Sub(start).Round(time.Millisecond), "mailing", time.Since(billed).Round(time.Millisecond)}
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

// billDue is the first phase. Batches are ranges of the due orders' ids,
// so that the rows a batch writes lie together. It returns the periods it
// recorded.
func (s *Scheduler) billDue(ctx context.Context, at time.Time, rep *BillingReport) (recorded []mailflow.BilledPeriod, err error) {
	ids, err := s.store.DueBilling(ctx, at)
	if err != nil {
		return nil, err
	}
	n := s.cfg.batchSize()
	for i := 0; i < len(ids); i += n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		lo, hi := ids[i], ids[min(i+n, len(ids))-1]
		if rep.DryRun {
			orders, err := s.store.DueBillingOrders(ctx, lo, hi, at)
			if err != nil {
				return nil, err
			}
			recorded = append(recorded, s.planDry(orders, at, rep)...)
			continue
		}
		var orders int
		var batch []mailflow.BilledPeriod
		var errs []BillingError
		err := s.store.JobTx(ctx, func(tx mailflow.JobTx) error {
			due, err := tx.LockDueBillingOrders(lo, hi, at)
			if err != nil {
				return err
			}
			orders, batch, errs = len(due), nil, nil
			bills := make([]mailflow.Bill, 0, len(due))
			for i := range due {
				b, err := s.plan(&due[i], at)
				if err != nil {
					errs = append(errs, BillingError{Order: due[i].Number, Err: err.Error()})
					continue
				}
				bills = append(bills, b)
				for _, p := range b.Periods {
					batch = append(batch, mailflow.BilledPeriod{BillingOrder: &due[i], Period: p})
				}
			}
			return tx.RecordBilling(bills, s.now())
		})
		if err != nil {
			return nil, err
		}
		rep.Orders += orders
		rep.Periods += len(batch)
		rep.Errors = append(rep.Errors, errs...)
		recorded = append(recorded, batch...)
	}
	return recorded, nil
}

// planDry is the first phase of a dry run: it returns the periods a real
// run would record, for the second phase to report as it would mail them.
func (s *Scheduler) planDry(orders []mailflow.BillingOrder, at time.Time, rep *BillingReport) []mailflow.BilledPeriod {
	var planned []mailflow.BilledPeriod
	for i := range orders {
		o := &orders[i]
		rep.Orders++
		b, err := s.plan(o, at)
		var doc mailflow.BillingDoc
		if err == nil && len(b.Periods) > 0 {
			// Checked here so that one broken order is reported and
			// skipped, as a real run does, instead of failing the mails.
			err = json.Unmarshal([]byte(o.Doc), &doc)
		}
		if err != nil {
			rep.Errors = append(rep.Errors, BillingError{Order: o.Number, Err: err.Error()})
			continue
		}
		rep.Periods += len(b.Periods)
		for _, p := range b.Periods {
			planned = append(planned, mailflow.BilledPeriod{BillingOrder: o, Period: p})
		}
	}
	return planned
}

// plan returns the periods of a due order that have ended by `at`, and
// when it is due next.
func (s *Scheduler) plan(o *mailflow.BillingOrder, at time.Time) (mailflow.Bill, error) {
	b := mailflow.Bill{OrderID: o.OrderID}
	step, known := stepMonths[o.Interval]
	if !known {
		return b, fmt.Errorf("%w: %q", ErrUnknownInterval, o.Interval)
	}
	// The first unbilled period ends at DueAt, so it starts at most one
	// period length before: from there DuePeriods finds it and those
	// after it. For an order no run has seen, DueAt is its binding time,
	// and this is before its first period.
	from := o.DueAt.In(s.cfg.Location).AddDate(0, -step, 0)
	if step == 0 {
		from = o.DueAt.In(s.cfg.Location).AddDate(0, 0, -1)
	}
	ps, err := DuePeriods(o.BindingAt, o.Interval, o.AmountCents, o.VATPercent, s.cfg.Location, from, at)
	if err != nil {
		return b, err
	}
	if len(ps) > 0 {
		from = ps[len(ps)-1].End
	}
	next, ok, err := nextPeriodEnd(o.BindingAt, o.Interval, s.cfg.Location, from)
	if err != nil {
		return b, err
	}
	if ok {
		b.DueAt = &next
	}
	b.Periods = ps
	return b, nil
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

// remindedRoles are the parties reminded of each period: DV the provider,
// UV the provider and the intermediary.
func remindedRoles(model string) []string {
	if model == mailflow.ModelUV {
		return []string{mailflow.PartyProvider, mailflow.PartyIntermediary}
	}
	return []string{mailflow.PartyProvider}
}

// reminderLine returns the reminded party of a period and what it is to
// invoice: DV, the provider the customer; UV, the provider the
// intermediary and the intermediary the customer.
func reminderLine(role string, b *mailflow.BilledPeriod, doc *mailflow.BillingDoc) (mailflow.Party, BillingLine) {
	line := BillingLine{OrderID: b.OrderID, Number: b.Number, Model: b.Model, Service: doc.Service, PriceName: doc.PriceName,
		Interval: b.Interval, Currency: doc.Currency, VATPercent: b.VATPercent, Period: b.Period, InvoiceTo: doc.Customer}
	line.InvoiceTo.Role = RoleCustomer
	im := doc.Intermediary
	if im == nil {
		im = &mailflow.BillingParty{}
	}
	if role == mailflow.PartyIntermediary {
		return recipient(im), line
	}
	if b.Model == mailflow.ModelUV {
		line.InvoiceTo = mailflow.Invoicee{Role: mailflow.PartyIntermediary, Name: im.Name, Street: im.Street, PostalCode: im.PostalCode,
			City: im.City, LeitwegID: im.LeitwegID}
	}
	return recipient(&doc.Provider), line
}

// errStaleReminders: a concurrent run mailed some of the periods.
var errStaleReminders = errors.New("billing reminders changed")

// mailReminders is the second phase: it mails the unreminded periods, or
// in a dry run reports them. If a concurrent run mailed some of them
// meanwhile, nothing is written and the periods are read again.
//
// recorded are the periods the first phase recorded. When they are all
// the unreminded ones, the rule, the mails are made from them, without
// reading them back.
func (s *Scheduler) mailReminders(ctx context.Context, at time.Time, rep *BillingReport, recorded []mailflow.BilledPeriod) error {
	if rep.DryRun {
		// What a real run would mail: what earlier runs left unreminded
		// and what this one would record.
		queued, err := s.store.UnremindedPeriods(ctx)
		if err != nil {
			return err
		}
		if all := append(queued, recorded...); len(all) > 0 {
			_, err = s.mailPass(ctx, at, rep, all)
		}
		return err
	}
	if len(recorded) > 0 {
		if n, err := s.store.CountUnreminded(ctx); err != nil || n != len(recorded) {
			recorded = nil
		}
	}
	for range 3 {
		stale, err := s.mailPass(ctx, at, rep, recorded)
		if err != nil || !stale {
			return err
		}
		recorded = nil
	}
	return nil
}

// billingChunk is one reminder mail: lines of one party.
type billingChunk struct {
	role, party string
	part, parts int
	lines       []*mailflow.BilledPeriod
	msg         *mailflow.OutboxMessage
	report      []BillingReportLine
	invoices    []BillingInvoice
	err         error
}

// sellers are the catalog's parties by role and id ("provider/dataport"),
// what the reminded parties issue e-invoices with.
func (s *Scheduler) sellers(ctx context.Context) (map[string]*mailflow.Party, error) {
	cat, err := s.store.Catalog(ctx)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	m := make(map[string]*mailflow.Party, len(cat.Providers)+len(cat.Intermediaries))
	for i := range cat.Providers {
		m[mailflow.PartyProvider+"/"+cat.Providers[i].ID] = &cat.Providers[i]
	}
	for i := range cat.Intermediaries {
		m[mailflow.PartyIntermediary+"/"+cat.Intermediaries[i].ID] = &cat.Intermediaries[i]
	}
	return m, nil
}

func (s *Scheduler) mailPass(ctx context.Context, at time.Time, rep *BillingReport, periods []mailflow.BilledPeriod) (stale bool, err error) {
	if periods == nil {
		if periods, err = s.store.UnremindedPeriods(ctx); err != nil || len(periods) == 0 {
			return false, err
		}
	}
	for i := range periods {
		p := &periods[i].Period // the store's times are UTC; dates are Berlin's
		p.Start, p.End = p.Start.In(s.cfg.Location), p.End.In(s.cfg.Location)
	}
	chunks := chunkReminders(periods)
	sellers, err := s.sellers(ctx)
	if err != nil {
		return false, err
	}
	s.composeAll(chunks, sellers, at, rep.DryRun)
	var msgs []*mailflow.OutboxMessage
	for i := range chunks {
		if chunks[i].err != nil {
			return false, chunks[i].err
		}
		msgs = append(msgs, chunks[i].msg)
	}
	if !rep.DryRun {
		refs := make([]mailflow.PeriodRef, len(periods))
		for i, p := range periods {
			refs[i] = mailflow.PeriodRef{OrderID: p.OrderID, Key: p.Period.Key}
		}
		err := s.store.JobTx(ctx, func(tx mailflow.JobTx) error {
			n, err := tx.MarkReminded(refs, s.now())
			if err != nil {
				return err
			}
			if n != len(refs) {
				return errStaleReminders
			}
			return tx.Enqueue(msgs...)
		})
		if errors.Is(err, errStaleReminders) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		rep.Mails += len(msgs)
	}
	rep.Lines = slices.Grow(rep.Lines, len(periods)*2)
	for i := range chunks {
		for _, l := range chunks[i].report {
			l.Sent = !rep.DryRun
			rep.Lines = append(rep.Lines, l)
		}
		rep.Invoices = append(rep.Invoices, chunks[i].invoices...)
	}
	return false, nil
}

// chunkReminders groups the reminder lines of periods by reminded party,
// each party's by order and period, in chunks of at most MaxBillingLines.
func chunkReminders(periods []mailflow.BilledPeriod) []billingChunk {
	type line struct {
		role, party string
		p           *mailflow.BilledPeriod
	}
	var lines []line
	for i := range periods {
		p := &periods[i]
		lines = append(lines, line{mailflow.PartyProvider, p.ProviderID, p})
		if p.Model == mailflow.ModelUV {
			lines = append(lines, line{mailflow.PartyIntermediary, p.IntermediaryID, p})
		}
	}
	// Stable: the periods come by order and period.
	slices.SortStableFunc(lines, func(a, b line) int { return cmp.Or(cmp.Compare(a.role, b.role), cmp.Compare(a.party, b.party)) })
	var chunks []billingChunk
	for lo := 0; lo < len(lines); {
		hi := lo
		for hi < len(lines) && lines[hi].role == lines[lo].role && lines[hi].party == lines[lo].party {
			hi++
		}
		parts := (hi - lo + MaxBillingLines - 1) / MaxBillingLines
		for part := 1; part <= parts; part++ {
			c := billingChunk{role: lines[lo].role, party: lines[lo].party, part: part, parts: parts}
			for _, l := range lines[lo+(part-1)*MaxBillingLines : min(hi, lo+part*MaxBillingLines)] {
				c.lines = append(c.lines, l.p)
			}
			chunks = append(chunks, c)
		}
		lo = hi
	}
	return chunks
}

// composeAll composes the chunks' mails (unless dry) and report lines, on
// every core.
func (s *Scheduler) composeAll(chunks []billingChunk, sellers map[string]*mailflow.Party, at time.Time, dry bool) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(chunks); i = int(next.Add(1) - 1) {
				s.composeChunk(&chunks[i], sellers[chunks[i].role+"/"+chunks[i].party], at, dry)
			}
		})
	}
	wg.Wait()
}

// composeChunk builds a chunk's report lines, its e-invoices and, unless
// dry, its mail.
func (s *Scheduler) composeChunk(c *billingChunk, seller *mailflow.Party, at time.Time, dry bool) {
	defer func() {
		if r := recover(); r != nil {
			c.err = fmt.Errorf("compose billing reminder: panic: %v", r)
		}
	}()
	m := BillingMail{Role: c.role, Part: c.part, Parts: c.parts, At: at, Lines: make([]BillingLine, 0, len(c.lines))}
	c.report = make([]BillingReportLine, 0, len(c.lines))
	docs := map[int64]*mailflow.BillingDoc{}
	for i, b := range c.lines {
		doc := docs[b.OrderID]
		if doc == nil {
			doc = new(mailflow.BillingDoc)
			if err := json.Unmarshal([]byte(b.Doc), doc); err != nil {
				c.err = fmt.Errorf("order %s: billing doc: %w", b.Number, err)
				return
			}
			docs[b.OrderID] = doc
		}
		to, line := reminderLine(c.role, b, doc)
		if i == 0 {
			m.To = to
		}
		m.Lines = append(m.Lines, line)
		c.report = append(c.report, BillingReportLine{BillingLine: line, Role: c.role, Recipient: to.Name})
	}
	// Numbered on from the party's earlier chunks, which have at most
	// MaxBillingLines lines and so as many invoices.
	m.Invoices, m.InvoiceMissing = buildInvoices(&m, seller, s.cfg.Location, (c.part-1)*MaxBillingLines+1)
	c.invoices = m.Invoices
	if dry {
		return
	}
	msg, err := s.mail.BillingReminder(m)
	if err != nil {
		c.err = fmt.Errorf("compose billing reminder to %s %s: %w", c.role, c.party, err)
	}
	c.msg = msg
}
