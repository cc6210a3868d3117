package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"mailflow/mailflow"
)

// RoleCustomer is the invoice recipient role of the ordering body.
const RoleCustomer = "customer"

// MaxBillingLines is how many lines one billing reminder lists at most; a
// party with more gets several mails, numbered "Teil k von n".
const MaxBillingLines = 500

// BillingDoc is what billing needs of an order's frozen snapshot: whom to
// remind and whom they invoice. Storage keeps it (Encode) beside the
// order's billing state when the order becomes binding, so that a billing
// run never reads the snapshot with its terms texts; it is kept small
// because a run decodes one per reminder line. Its JSON keys are those of
// the first version of the doc (the snapshot's), which stored rows may
// carry.
type BillingDoc struct {
	Customer     Invoicee      `json:"customer"`
	Provider     BillingParty  `json:"provider"`
	Intermediary *BillingParty `json:"intermediary,omitempty"`
	Service      string        `json:"service"`
	PriceName    string        `json:"price_name"`
	Currency     string        `json:"currency"`
}

// BillingParty is a reminded party: where its reminders go and, for the
// intermediary, the invoice address the provider bills in UV.
type BillingParty struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Email      string `json:"email"`
	Language   string `json:"language,omitempty"`
	Street     string `json:"street,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	City       string `json:"city,omitempty"`
	LeitwegID  string `json:"leitweg_id,omitempty"`
}

func billingParty(p *mailflow.Party) BillingParty {
	return BillingParty{ID: p.ID, Name: p.Name, Email: p.Email, Language: p.Language, Street: p.Street,
		PostalCode: p.PostalCode, City: p.City, LeitwegID: p.LeitwegID}
}

// party is the mail recipient.
func (p *BillingParty) party() mailflow.Party {
	return mailflow.Party{ID: p.ID, Name: p.Name, Email: p.Email, Language: p.Language}
}

// NewBillingDoc extracts the BillingDoc of a snapshot.
func NewBillingDoc(sn *mailflow.Snapshot) BillingDoc {
	c := &sn.Customer
	d := BillingDoc{
		Customer: Invoicee{Name: c.Name, Street: c.Street, PostalCode: c.PostalCode, City: c.City, Country: c.Country,
			CustomerNumber: c.CustomerNumber, LeitwegID: c.LeitwegID},
		Provider: billingParty(&sn.Provider), Service: sn.Service.Name, PriceName: sn.Price.Name, Currency: sn.Price.Currency,
	}
	if sn.Intermediary != nil {
		im := billingParty(sn.Intermediary)
		d.Intermediary = &im
	}
	return d
}

// BillingState is a binding order's price and billing progress.
type BillingState struct {
	OrderID        int64
	Number         string
	Model          string // DV or UV
	ProviderID     string
	IntermediaryID string // "" in DV
	BindingAt      time.Time
	Interval       string
	AmountCents    int64
	VATPercent     float64
	// BilledUntil is the End of the last billed period; nil before the
	// first.
	BilledUntil *time.Time
	// DueAt is when the next unbilled period ends; nil when no billing
	// run has seen the order yet, or when Done.
	DueAt *time.Time
	// Done: everything is billed (a "once" price).
	Done bool
	// Doc is the JSON of the order's BillingDoc; only Store.BillingStates
	// (the dry run) loads it.
	Doc string
}

// due reports whether a run at `at` has to look at the order.
func (st *BillingState) due(at time.Time) bool {
	if st.DueAt == nil {
		return !st.Done
	}
	return !st.DueAt.After(at)
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
	// Was is the progress the plan started from (BilledUntil, DueAt,
	// Done); the store advances only an order that is still there.
	Was *BillingState
}

// LineKey names one reminder line: a period of an order that a party is
// reminded to invoice: a line of the billing queue.
type LineKey struct {
	Role      string // mailflow.PartyProvider or mailflow.PartyIntermediary
	PartyID   string
	OrderID   int64
	PeriodKey string
}

// QueuedParty is a party with reminder lines waiting to be mailed.
type QueuedParty struct {
	Role    string
	PartyID string
	Lines   int
}

// QueuedLine is a reminder line waiting to be mailed, with what the mail
// shows of it.
type QueuedLine struct {
	LineKey
	Number     string
	Model      string
	Interval   string
	VATPercent float64
	Doc        string // JSON of the order's BillingDoc
	Period     Period
}

// Invoicee is whom a reminded party is to invoice: the customer, or in UV
// for the provider the intermediary.
type Invoicee struct {
	Role           string `json:"role,omitempty"` // RoleCustomer or mailflow.PartyIntermediary; not stored in a BillingDoc
	Name           string `json:"name"`
	Street         string `json:"street"`
	PostalCode     string `json:"postal_code"`
	City           string `json:"city"`
	Country        string `json:"country,omitempty"`
	CustomerNumber string `json:"customer_number,omitempty"` // "" for the intermediary
	LeitwegID      string `json:"leitweg_id"`                // routing id of the e-invoice (XRechnung)
}

// BillingLine is one period of one order that a party is to invoice.
type BillingLine struct {
	OrderID    int64    `json:"-"`
	Number     string   `json:"order"`
	Model      string   `json:"contract_model"` // DV or UV
	Service    string   `json:"service"`
	PriceName  string   `json:"price"`
	Interval   string   `json:"interval"`
	Currency   string   `json:"currency"`
	VATPercent float64  `json:"vat_percent"`
	Period     Period   `json:"period"`
	InvoiceTo  Invoicee `json:"invoice_to"`
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
	Lines  []BillingReportLine `json:"lines"`
	Errors []BillingError      `json:"errors,omitempty"`
}

// RunBilling bills every period that has ended by `at` and has no reminder
// yet (DESIGN §5): for each, the provider is reminded to invoice the
// customer (DV) or the intermediary (UV), and in UV the intermediary to
// invoice the customer.
//
// The work follows database state, not cron ticks. Phase one looks only at
// the orders whose next period has ended (order_billing.due_at <= at) and
// the newly binding ones, in batches of BatchSize orders in id order, one
// transaction each: record each due period under its unique key (order,
// period), queue a reminder line per reminded party for each period that
// was new, move due_at on. A daemon that was down for months bills each
// missed period once; a rerun finds nothing due.
//
// Phase two mails the queue: per reminded party, one mail listing its
// lines (several of at most MaxBillingLines), composed in parallel; each
// mail is enqueued in the transaction that removes its lines from the
// queue, so a line is mailed exactly once, also when the run stops in
// between — the next run (or Start) mails what is left.
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
	queued, pre, err := s.billDue(ctx, at, &rep)
	billed := time.Now()
	if err == nil {
		err = s.mailQueued(ctx, at, &rep, queued, pre)
	}
	// Unique keys (order, period, role): no need for a stable sort.
	idx := sortedIndex(rep.Lines, func(a, b *BillingReportLine) int {
		return cmp.Or(cmp.Compare(a.Number, b.Number), a.Period.Start.Compare(b.Period.Start), cmp.Compare(b.Role, a.Role))
	})
	sorted := make([]BillingReportLine, len(idx))
	for k, i := range idx {
		sorted[k] = rep.Lines[i]
	}
	rep.Lines = sorted
	return rep, s.billingDone(rep, start, billed, err)
}

// resumeBilling is phase two alone: it mails what is queued.
func (s *Scheduler) resumeBilling(ctx context.Context, at time.Time) error {
	release, err := s.lead(ctx, JobBilling)
	if err != nil {
		return err
	}
	defer release()
	start := time.Now()
	rep := BillingReport{At: at}
	err = s.mailQueued(ctx, at, &rep, nil, nil)
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

// billDue is phase one. A reader goroutine loads and plans batch k+1
// while batch k is written, so that the database and the planning each
// have a core; a write advances only the orders whose progress is still
// what the plan started from, which also keeps two concurrent runs from
// billing an order twice. It returns the lines it queued, with what their
// mails show, so that phase two need not read them back.
//
// Once the reader has planned every batch (it runs ahead of the writer),
// it composes the mails of phase two while the writer is still busy: pre.
// They are valid if every planned line was queued, which is the rule; a
// batch that found its orders billed by a concurrent run drops them.
func (s *Scheduler) billDue(ctx context.Context, at time.Time, rep *BillingReport) (queued []QueuedLine, pre []composedChunk, err error) {
	ids, err := s.store.BillingCandidates(ctx, at)
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(ids) // id order: the rows a batch writes lie together
	n := s.cfg.batchSize()
	var batches [][]int64
	for i := 0; i < len(ids); i += n {
		batches = append(batches, ids[i:min(i+n, len(ids))])
	}
	if rep.DryRun {
		for _, b := range batches {
			if err := s.planDry(ctx, b, at, rep); err != nil {
				return nil, nil, err
			}
		}
		return nil, nil, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	plans := make(chan batchPlan, len(batches))
	precomposed := make(chan []composedChunk, 1)
	go func() {
		defer close(precomposed)
		var planned [][]QueuedLine
		ok := func() bool {
			defer close(plans)
			for _, b := range batches {
				p := s.planBatch(ctx, b, at)
				planned = append(planned, p.lines)
				select {
				case plans <- p:
				case <-ctx.Done():
					return false
				}
				if p.err != nil {
					return false
				}
			}
			return true
		}()
		if ok {
			precomposed <- s.precompose(ctx, at, slices.Concat(planned...))
		}
	}()
	// The writers: one for SQLite, which has one writer anyway; more
	// where the database runs transactions side by side (the batches'
	// orders are disjoint).
	writers := max(1, s.store.Writers())
	var (
		mu      sync.Mutex
		full    = true
		written [][]QueuedLine
		werr    error
		wg      sync.WaitGroup
	)
	for range writers {
		wg.Go(func() {
			for p := range plans {
				var lines []QueuedLine
				var periods int
				if p.err == nil {
					lines, periods, p.err = s.writeBatch(ctx, &p)
				}
				mu.Lock()
				if p.err != nil {
					if werr == nil {
						werr = p.err
					}
					cancel()
				} else {
					full = full && len(lines) == len(p.lines)
					written = append(written, lines)
					rep.Orders += p.orders
					rep.Periods += periods
					rep.Errors = append(rep.Errors, p.errs...)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait() // the reader has closed plans
	if werr != nil {
		return nil, nil, werr
	}
	pre = <-precomposed
	if !full {
		pre = nil
	}
	return slices.Concat(written...), pre, ctx.Err()
}

// maxPrecomposed bounds the mails billDue composes ahead (100,000 lines
// make 83 MB); a larger run composes its mails in phase two.
const maxPrecomposed = 128 << 20

// precompose composes the mails of lines, as phase two would; nil if it
// failed or the mails grew larger than maxPrecomposed (phase two then
// composes them again, reporting any error).
func (s *Scheduler) precompose(ctx context.Context, at time.Time, lines []QueuedLine) []composedChunk {
	if len(lines) == 0 {
		return nil
	}
	counts := map[[2]string]int{}
	for i := range lines {
		counts[[2]string{lines[i].Role, lines[i].PartyID}]++
	}
	parties := make([]QueuedParty, 0, len(counts))
	for k, n := range counts {
		parties = append(parties, QueuedParty{Role: k[0], PartyID: k[1], Lines: n})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results, readErr := s.composeAll(ctx, at, false, parties, memoryQueue(lines))
	var out []composedChunk
	size, failed := 0, false
	for r := range results {
		if failed {
			continue
		}
		if r.err != nil || size > maxPrecomposed {
			failed = true
			cancel()
			continue
		}
		size += len(r.msg.Raw)
		out = append(out, r)
	}
	if failed || readErr() != nil {
		return nil
	}
	return out
}

// batchPlan is what a batch bills.
type batchPlan struct {
	states   []BillingState
	orders   int // due orders
	progress []BillingProgress
	recs     []BillingRecord
	owner    []*BillingState // of each rec
	lines    []QueuedLine    // of recs, a line per reminded party
	errs     []BillingError
	err      error
}

// planBatch reads a batch's billing states and plans each due order.
func (s *Scheduler) planBatch(ctx context.Context, ids []int64, at time.Time) (p batchPlan) {
	defer func() {
		if r := recover(); r != nil {
			p.err = fmt.Errorf("plan billing batch: panic: %v", r)
		}
	}()
	p.states, p.err = s.store.BillingStates(ctx, ids, true)
	if p.err != nil {
		return p
	}
	p.progress = make([]BillingProgress, 0, len(p.states))
	for i := range p.states {
		st := &p.states[i]
		if !st.due(at) { // billed since the candidates were read
			continue
		}
		p.orders++
		ps, pr, err := s.plan(st, at)
		if err != nil {
			p.errs = append(p.errs, BillingError{Order: st.Number, Err: err.Error()})
			continue
		}
		p.progress = append(p.progress, pr)
		for _, per := range ps {
			p.recs = append(p.recs, BillingRecord{OrderID: st.OrderID, Period: per})
			p.lines = appendLines(p.lines, st, per)
			p.owner = append(p.owner, st)
		}
	}
	return p
}

// appendLines appends the reminder lines of a billed period: the
// provider's, and in UV the intermediary's.
func appendLines(lines []QueuedLine, st *BillingState, p Period) []QueuedLine {
	line := QueuedLine{LineKey: LineKey{mailflow.PartyProvider, st.ProviderID, st.OrderID, p.Key},
		Number: st.Number, Model: st.Model, Interval: st.Interval, VATPercent: st.VATPercent, Doc: st.Doc, Period: p}
	lines = append(lines, line)
	if st.Model == mailflow.ModelUV {
		line.LineKey = LineKey{mailflow.PartyIntermediary, st.IntermediaryID, st.OrderID, p.Key}
		lines = append(lines, line)
	}
	return lines
}

// writeBatch records a planned batch in one transaction: it advances the
// orders' progress, records their periods and queues a reminder line per
// new period and reminded party, and returns those lines: the plan's
// unless a concurrent run billed some of its orders.
func (s *Scheduler) writeBatch(ctx context.Context, p *batchPlan) (queued []QueuedLine, periods int, err error) {
	var lines []QueuedLine
	err = s.store.JobTx(ctx, func(tx Tx) error {
		advanced, err := tx.AdvanceBilling(p.progress)
		if err != nil {
			return err
		}
		mine := make(map[int64]bool, len(p.progress))
		for i, ok := range advanced {
			if ok {
				mine[p.progress[i].OrderID] = true
			}
		}
		recs := make([]BillingRecord, 0, len(p.recs))
		owner := make([]*BillingState, 0, len(p.recs))
		for i, r := range p.recs {
			if mine[r.OrderID] { // else billed by a concurrent run
				recs, owner = append(recs, r), append(owner, p.owner[i])
			}
		}
		inserted, err := tx.InsertBillingRecords(recs, s.now())
		if err != nil {
			return err
		}
		periods = 0
		if len(recs) == len(p.recs) && !slices.Contains(inserted, false) {
			periods, lines = len(recs), p.lines
		} else {
			lines = nil
			for i, rec := range recs {
				if !inserted[i] {
					continue // recorded, and queued, by a concurrent run
				}
				periods++
				lines = appendLines(lines, owner[i], rec.Period)
			}
		}
		keys := make([]LineKey, len(lines))
		for i := range lines {
			keys[i] = lines[i].LineKey
		}
		return tx.QueueBillingLines(keys)
	})
	if err != nil {
		return nil, 0, err
	}
	return lines, periods, nil
}

// planDry is phase one of a dry run: what billBatch would record, with the
// lines its mails would list.
func (s *Scheduler) planDry(ctx context.Context, ids []int64, at time.Time, rep *BillingReport) error {
	states, err := s.store.BillingStates(ctx, ids, true)
	if err != nil {
		return err
	}
	for i := range states {
		st := &states[i]
		if !st.due(at) {
			continue
		}
		rep.Orders++
		ps, _, err := s.plan(st, at)
		if err == nil && len(ps) > 0 {
			var doc BillingDoc
			if err = DecodeBillingDoc(st.Doc, &doc); err == nil {
				rep.Periods += len(ps)
				for _, p := range ps {
					for _, role := range remindedRoles(st.Model) {
						q := QueuedLine{LineKey: LineKey{Role: role, OrderID: st.OrderID, PeriodKey: p.Key}, Number: st.Number,
							Model: st.Model, Interval: st.Interval, VATPercent: st.VATPercent, Period: p}
						to, line := reminderLine(&q, &doc)
						rep.Lines = append(rep.Lines, BillingReportLine{BillingLine: line, Role: role, Recipient: to.Name})
					}
				}
			}
		}
		if err != nil {
			rep.Errors = append(rep.Errors, BillingError{Order: st.Number, Err: err.Error()})
		}
	}
	return nil
}

// plan returns the periods of an order due at `at` after what is billed,
// and where its billing continues afterwards.
func (s *Scheduler) plan(st *BillingState, at time.Time) ([]Period, BillingProgress, error) {
	pr := BillingProgress{OrderID: st.OrderID, BilledUntil: st.BilledUntil, Was: st}
	var from time.Time
	if st.BilledUntil != nil {
		from = *st.BilledUntil
	}
	ps, err := DuePeriods(st.BindingAt, st.Interval, st.AmountCents, st.VATPercent, s.cfg.Location, from, at)
	if err != nil {
		return nil, pr, err
	}
	if len(ps) > 0 {
		end := ps[len(ps)-1].End
		pr.BilledUntil = &end
		from = end
	}
	next, ok, err := nextPeriodEnd(st.BindingAt, st.Interval, s.cfg.Location, from)
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

// remindedRoles are the parties reminded of each period: DV the provider,
// UV the provider and the intermediary.
func remindedRoles(model string) []string {
	if model == mailflow.ModelUV {
		return []string{mailflow.PartyProvider, mailflow.PartyIntermediary}
	}
	return []string{mailflow.PartyProvider}
}

// reminderLine returns the reminded party of a line and what it is to
// invoice: DV, the provider the customer; UV, the provider the
// intermediary and the intermediary the customer.
func reminderLine(q *QueuedLine, doc *BillingDoc) (mailflow.Party, BillingLine) {
	line := BillingLine{OrderID: q.OrderID, Number: q.Number, Model: q.Model, Service: doc.Service, PriceName: doc.PriceName,
		Interval: q.Interval, Currency: doc.Currency, VATPercent: q.VATPercent, Period: q.Period, InvoiceTo: doc.Customer}
	line.InvoiceTo.Role = RoleCustomer
	im := doc.Intermediary
	if im == nil {
		im = &BillingParty{}
	}
	if q.Role == mailflow.PartyIntermediary {
		return im.party(), line
	}
	if q.Model == mailflow.ModelUV {
		line.InvoiceTo = Invoicee{Role: mailflow.PartyIntermediary, Name: im.Name, Street: im.Street, PostalCode: im.PostalCode,
			City: im.City, LeitwegID: im.LeitwegID}
	}
	return doc.Provider.party(), line
}

// errStaleQueue: lines of a mail were mailed by a concurrent run.
var errStaleQueue = errors.New("billing queue changed")

// mailQueued is phase two: it mails the billing queue, or in a dry run
// reports it. A reader goroutine reads the queue party by party in one
// query, workers compose the mails in parallel, and this goroutine writes
// each in its own transaction. A mail whose lines a concurrent run took
// meanwhile is dropped, and the queue read again.
//
// queued are the lines this run's phase one queued, pre their mails if
// phase one composed them. When the queue holds exactly those lines, they
// are mailed from memory; otherwise (lines left by an earlier run, or a
// concurrent one) the queue is read from the database.
func (s *Scheduler) mailQueued(ctx context.Context, at time.Time, rep *BillingReport, queued []QueuedLine, pre []composedChunk) error {
	for pass := 0; pass < 3; pass++ {
		stale, err := s.mailQueuePass(ctx, at, rep, queued, pre)
		if err != nil || stale == 0 || rep.DryRun {
			return err
		}
		queued, pre = nil, nil // read the queue as it is now
	}
	return nil
}

// sameQueue reports whether the lines are exactly what the queue counts
// per party (the lines are distinct: phase one queued each once).
func sameQueue(parties []QueuedParty, lines []QueuedLine) bool {
	if len(lines) == 0 {
		return false
	}
	want := make(map[[2]string]int, len(parties))
	total := 0
	for _, p := range parties {
		want[[2]string{p.Role, p.PartyID}] = p.Lines
		total += p.Lines
	}
	if total != len(lines) {
		return false
	}
	for i := range lines {
		k := [2]string{lines[i].Role, lines[i].PartyID}
		want[k]--
		if want[k] < 0 {
			return false
		}
	}
	return true
}

type billingChunk struct {
	role, party string
	part, parts int
	lines       []QueuedLine
}

type composedChunk struct {
	billingChunk
	msg    *mailflow.OutboxMessage
	report []BillingReportLine
	err    error
}

func (s *Scheduler) mailQueuePass(ctx context.Context, at time.Time, rep *BillingReport, queued []QueuedLine, pre []composedChunk) (stale int, err error) {
	parties, err := s.store.BillingQueue(ctx)
	if err != nil || len(parties) == 0 {
		return 0, err
	}
	var total int
	for _, p := range parties {
		total += p.Lines
	}
	rep.Lines = slices.Grow(rep.Lines, total)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var results <-chan composedChunk
	readErr := func() error { return nil }
	switch {
	case pre != nil && sameQueue(parties, queued):
		ch := make(chan composedChunk, len(pre))
		for _, c := range pre {
			ch <- c
		}
		close(ch)
		results = ch
	case sameQueue(parties, queued):
		results, readErr = s.composeAll(ctx, at, rep.DryRun, parties, memoryQueue(queued))
	default:
		results, readErr = s.composeAll(ctx, at, rep.DryRun, parties, s.readQueue)
	}
	want := make(map[[2]string]int, len(parties))
	for _, p := range parties {
		want[[2]string{p.Role, p.PartyID}] = p.Lines
	}
	buffered := map[[2]string][]composedChunk{}
	for r := range results {
		if err != nil {
			continue // draining after a failure
		}
		if r.err != nil {
			err = r.err
			cancel()
			continue
		}
		if rep.DryRun {
			rep.Lines = append(rep.Lines, r.report...)
			continue
		}
		// A party's mails are written together, in the transaction that
		// removes all its lines from the queue.
		k := [2]string{r.role, r.party}
		buffered[k] = append(buffered[k], r)
		lines := 0
		for _, c := range buffered[k] {
			lines += len(c.lines)
		}
		if lines < want[k] {
			continue
		}
		chunks := buffered[k]
		delete(buffered, k)
		var keys []LineKey
		var msgs []*mailflow.OutboxMessage
		for _, c := range chunks {
			for _, l := range c.lines {
				keys = append(keys, l.LineKey)
			}
			msgs = append(msgs, c.msg)
		}
		werr := s.store.JobTx(ctx, func(tx Tx) error {
			n, err := tx.DequeueBillingLines(keys)
			if err != nil {
				return err
			}
			if n != len(keys) {
				return errStaleQueue
			}
			return tx.Enqueue(msgs...)
		})
		switch {
		case errors.Is(werr, errStaleQueue):
			stale++
		case werr != nil:
			err = werr
			cancel()
		default:
			rep.Mails += len(msgs)
			for _, c := range chunks {
				for i := range c.report {
					c.report[i].Sent = true
				}
				rep.Lines = append(rep.Lines, c.report...)
			}
		}
	}
	if err == nil && !rep.DryRun {
		stale += len(buffered) // the queue changed: fewer lines than counted
	}
	if err == nil {
		err = readErr()
	}
	return stale, err
}

// readFunc sends the queue's lines party by party in chunks of at most
// MaxBillingLines.
type readFunc func(ctx context.Context, parties []QueuedParty, out chan<- billingChunk) error

// composeAll runs read in a goroutine and composes the chunks it sends in
// parallel. readErr may be called once results is drained.
func (s *Scheduler) composeAll(ctx context.Context, at time.Time, dry bool, parties []QueuedParty, read readFunc) (results <-chan composedChunk, readErr func() error) {
	workers := runtime.GOMAXPROCS(0)
	chunks := make(chan billingChunk, workers)
	out := make(chan composedChunk, workers)
	var rerr error
	go func() {
		defer close(chunks)
		defer func() {
			if r := recover(); r != nil {
				rerr = fmt.Errorf("billing queue reader: panic: %v", r)
			}
		}()
		rerr = read(ctx, parties, chunks)
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c := range chunks {
				out <- s.composeChunk(c, at, dry)
			}
		})
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out, func() error { return rerr }
}

// memoryQueue reads lines from memory, in the queue's key order, so that
// the chunks are those readQueue would make.
func memoryQueue(lines []QueuedLine) readFunc {
	return func(ctx context.Context, parties []QueuedParty, out chan<- billingChunk) error {
		return chunkLines(ctx, parties, out, func(fn func(*QueuedLine) error) error {
			idx := sortedIndex(lines, func(a, b *QueuedLine) int {
				return cmp.Or(cmp.Compare(a.Role, b.Role), cmp.Compare(a.PartyID, b.PartyID), cmp.Compare(a.OrderID, b.OrderID),
					cmp.Compare(a.PeriodKey, b.PeriodKey))
			})
			for _, i := range idx {
				if err := fn(&lines[i]); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

// sortedIndex returns the indexes of s in the order cmp gives. A run's
// lines are structs of hundreds of bytes: sorting them in place moved
// each several times, which cost more than the comparisons.
func sortedIndex[T any](s []T, cmp func(a, b *T) int) []int32 {
	idx := make([]int32, len(s))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(i, j int32) int { return cmp(&s[i], &s[j]) })
	return idx
}

// readQueue reads the database's queue.
func (s *Scheduler) readQueue(ctx context.Context, parties []QueuedParty, out chan<- billingChunk) error {
	return chunkLines(ctx, parties, out, func(fn func(*QueuedLine) error) error {
		return s.store.ScanBillingQueue(ctx, func(l *QueuedLine) error {
			p := &l.Period // the store's times are UTC; dates are Berlin's
			p.Start, p.End = p.Start.In(s.cfg.Location), p.End.In(s.cfg.Location)
			return fn(l)
		})
	})
}

// chunkLines sends the lines of scan, which come party by party, in
// chunks of at most MaxBillingLines.
func chunkLines(ctx context.Context, parties []QueuedParty, out chan<- billingChunk, scan func(func(*QueuedLine) error) error) error {
	count := map[LineKey]int{}
	for _, p := range parties {
		count[LineKey{Role: p.Role, PartyID: p.PartyID}] = p.Lines
	}
	var c billingChunk
	flush := func() error {
		if len(c.lines) == 0 {
			return nil
		}
		parts := (count[LineKey{Role: c.role, PartyID: c.party}] + MaxBillingLines - 1) / MaxBillingLines
		c.parts = max(parts, c.part)
		select {
		case out <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
		c = billingChunk{role: c.role, party: c.party, part: c.part + 1}
		return nil
	}
	err := scan(func(l *QueuedLine) error {
		if l.Role != c.role || l.PartyID != c.party {
			if err := flush(); err != nil {
				return err
			}
			c = billingChunk{role: l.Role, party: l.PartyID, part: 1}
		}
		c.lines = append(c.lines, *l)
		if len(c.lines) == MaxBillingLines {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// composeChunk builds a chunk's report lines and, unless dry, its mail.
func (s *Scheduler) composeChunk(c billingChunk, at time.Time, dry bool) (out composedChunk) {
	out.billingChunk = c
	defer func() {
		if r := recover(); r != nil {
			out.err = fmt.Errorf("compose billing reminder: panic: %v", r)
		}
	}()
	m := BillingMail{Role: c.role, Part: c.part, Parts: c.parts, At: at, Lines: make([]BillingLine, 0, len(c.lines))}
	out.report = make([]BillingReportLine, 0, len(c.lines))
	docs := map[int64]*BillingDoc{}
	for i := range c.lines {
		q := &c.lines[i]
		doc := docs[q.OrderID]
		if doc == nil {
			doc = new(BillingDoc)
			if err := DecodeBillingDoc(q.Doc, doc); err != nil {
				out.err = fmt.Errorf("order %s: billing doc: %w", q.Number, err)
				return out
			}
			docs[q.OrderID] = doc
		}
		to, line := reminderLine(q, doc)
		if i == 0 {
			m.To = to
		}
		m.Lines = append(m.Lines, line)
		out.report = append(out.report, BillingReportLine{BillingLine: line, Role: c.role, Recipient: to.Name})
	}
	if dry {
		return out
	}
	msg, err := s.mail.BillingReminder(m)
	if err != nil {
		out.err = fmt.Errorf("compose billing reminder to %s %s: %w", c.role, c.party, err)
	}
	out.msg = msg
	return out
}

// LastDay is the last billed day of the period (End is exclusive).
func (p Period) LastDay() time.Time { return p.End.AddDate(0, 0, -1) }

// Prorated reports whether the period is billed for part of its days.
func (p Period) Prorated() bool { return p.Days != p.FullDays }
