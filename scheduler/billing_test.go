package scheduler_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/scheduler"
	"mailflow/storage/storagetest"
)

// line is what a test expects of one report line.
type line struct {
	number, key, role, invoiceTo string
	days, full                   int
	net, vat, gross              int64
}

func reportLines(rep scheduler.BillingReport) []line {
	var out []line
	for _, l := range rep.Lines {
		p := l.Period
		out = append(out, line{l.Number, p.Key, l.Role, l.InvoiceTo.Role, p.Days, p.FullDays, p.NetCents, p.VATCents, p.GrossCents})
	}
	return out
}

func checkLines(t *testing.T, rep scheduler.BillingReport, want []line) {
	t.Helper()
	got := reportLines(rep)
	if !slices.Equal(got, want) {
		t.Errorf("billing run at %v:\n got  %+v\n want %+v", rep.At, got, want)
	}
}

// An order bound on the 31st: one day of January, then whole months. The
// daemon is down for three monthly runs; the next run sends each missed
// month once, and a rerun sends nothing new.
func TestBillingMonthEndsAndCatchUp(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			o := e.bound("order-dv.json", "basis-monat", at(e.loc, 2026, 1, 31, 15, 0))
			n := o.Number

			// 120000 ct/month: 1/31 → 3871 + 735 VAT (see scheduler.Amounts).
			rep := e.billing(at(e.loc, 2026, 2, 1, 6, 0), false)
			checkLines(t, rep, []line{{n, "2026-01", "provider", "customer", 1, 31, 3871, 735, 4606}})
			if rep.Mails != 1 || rep.Orders != 1 || rep.Periods != 1 {
				t.Errorf("first run: %d mails, %d orders, %d periods", rep.Mails, rep.Orders, rep.Periods)
			}
			if rep := e.billing(at(e.loc, 2026, 2, 1, 6, 5), false); len(rep.Lines) != 0 || rep.Mails != 0 {
				t.Errorf("rerun sent %d lines, %d mails", len(rep.Lines), rep.Mails)
			}

			// Down for the runs of March, April and May 1st... back on May 1st.
			rep = e.billing(at(e.loc, 2026, 5, 1, 6, 0), false)
			checkLines(t, rep, []line{
				{n, "2026-02", "provider", "customer", 28, 28, 120000, 22800, 142800},
				{n, "2026-03", "provider", "customer", 31, 31, 120000, 22800, 142800},
				{n, "2026-04", "provider", "customer", 30, 30, 120000, 22800, 142800},
			})
			if rep.Mails != 1 {
				t.Errorf("catch-up: %d mails, want one listing the three months", rep.Mails)
			}
			if rep := e.billing(at(e.loc, 2026, 5, 1, 6, 0), false); len(rep.Lines) != 0 || rep.Mails != 0 {
				t.Errorf("rerun after catch-up sent %d lines, %d mails", len(rep.Lines), rep.Mails)
			}
			// May ends at local midnight, not a minute before.
			if rep := e.billing(at(e.loc, 2026, 5, 31, 23, 59), false); len(rep.Lines) != 0 {
				t.Errorf("May billed before it ended: %+v", reportLines(rep))
			}
			rep = e.billing(at(e.loc, 2026, 6, 1, 0, 0), false)
			checkLines(t, rep, []line{{n, "2026-05", "provider", "customer", 31, 31, 120000, 22800, 142800}})

			var keys []string
			for _, r := range e.records() {
				keys = append(keys, r.PeriodKey)
			}
			if want := []string{"2026-01", "2026-02", "2026-03", "2026-04", "2026-05"}; !slices.Equal(keys, want) {
				t.Errorf("billing_periods %v, want %v", keys, want)
			}
			mails := e.outbox(mailflow.KindBilling)
			if len(mails) != 3 {
				t.Fatalf("%d billing mails, want 3", len(mails))
			}
			for _, m := range mails {
				if m.Party != mailflow.PartyProvider || !slices.Equal(m.Recipients, []string{"bestellungen@dataport.example"}) {
					t.Errorf("billing mail to %s %v, want the provider", m.Party, m.Recipients)
				}
			}
		})
	}
}

func TestBillingLeapYear(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			m := e.bound("order-dv.json", "basis-monat", at(e.loc, 2028, 2, 29, 10, 0)).Number
			y := e.bound("order-dv.json", "basis-jahr", at(e.loc, 2028, 3, 1, 9, 0)).Number
			// 120000/29 = 4137.93 → 4138; 4138 × 19 % = 786.22 → 786.
			checkLines(t, e.billing(at(e.loc, 2028, 3, 1, 6, 0), false), []line{
				{m, "2028-02", "provider", "customer", 1, 29, 4138, 786, 4924},
			})
			// 1320000 × 306/366 = 1103606.56 → 1103607; VAT 209685.33 → 209685.
			rep := e.billing(at(e.loc, 2029, 1, 1, 6, 0), false)
			var yearly []line
			for _, l := range reportLines(rep) {
				if l.number == y {
					yearly = append(yearly, l)
				}
			}
			if want := []line{{y, "2028", "provider", "customer", 306, 366, 1103607, 209685, 1313292}}; !slices.Equal(yearly, want) {
				t.Errorf("yearly: got %+v, want %+v", yearly, want)
			}
		})
	}
}

// Orders bound on the days clocks change in Berlin: periods end at local
// midnight (23 or 25 hours after the previous midnight on those days), and
// billing_orders.due_at, stored in UTC, makes the next run wait for exactly that.
func TestBillingDST(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			spring := e.bound("order-dv.json", "basis-monat", at(e.loc, 2026, 3, 29, 12, 0)).Number
			autumn := e.bound("order-dv.json", "basis-monat", at(e.loc, 2026, 10, 25, 12, 0)).Number

			if rep := e.billing(at(e.loc, 2026, 3, 31, 23, 59), false); len(rep.Lines) != 0 {
				t.Errorf("March billed before midnight: %+v", reportLines(rep))
			}
			// 00:00 CEST on April 1st is 22:00 UTC on March 31st.
			checkLines(t, e.billing(time.Date(2026, 3, 31, 22, 0, 0, 0, time.UTC), false), []line{
				{spring, "2026-03", "provider", "customer", 3, 31, 11613, 2206, 13819},
			})
			if rep := e.billing(at(e.loc, 2026, 4, 30, 23, 59), false); len(rep.Lines) != 0 {
				t.Errorf("April billed before midnight: %+v", reportLines(rep))
			}
			checkLines(t, e.billing(at(e.loc, 2026, 5, 1, 0, 0), false), []line{
				{spring, "2026-04", "provider", "customer", 30, 30, 120000, 22800, 142800},
			})

			// 00:00 CET on November 1st is 23:00 UTC on October 31st; 22:59 UTC
			// is still October in Berlin.
			rep := e.billing(time.Date(2026, 10, 31, 22, 59, 0, 0, time.UTC), false)
			for _, l := range reportLines(rep) {
				if l.number == autumn {
					t.Errorf("October billed before midnight: %+v", l)
				}
			}
			rep = e.billing(time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC), false)
			var got []line
			for _, l := range reportLines(rep) {
				if l.number == autumn {
					got = append(got, l)
				}
			}
			// 7/31 of 120000 = 27096.77 → 27097.
			if want := []line{{autumn, "2026-10", "provider", "customer", 7, 31, 27097, 5148, 32245}}; !slices.Equal(got, want) {
				t.Errorf("autumn: got %+v, want %+v", got, want)
			}
			for _, r := range e.records() {
				for _, b := range []time.Time{r.Start, r.End} {
					if h, m, s := b.In(e.loc).Clock(); h != 0 || m != 0 || s != 0 {
						t.Errorf("%s %s: bound %v is not local midnight", r.Number, r.PeriodKey, b.In(e.loc))
					}
				}
			}
		})
	}
}

// UV: the provider is reminded to invoice the intermediary, the
// intermediary to invoice the customer, each in its own mail.
func TestBillingUVRouting(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			n := e.bound("order-uv.json", "", at(e.loc, 2026, 11, 21, 14, 30)).Number
			// team-quartal 45000 per quarter: Nov 21 – Dec 31 is 41 of 92 days,
			// 20054.35 → 20054 + 3810 VAT.
			rep := e.billing(at(e.loc, 2027, 1, 1, 6, 0), false)
			checkLines(t, rep, []line{
				{n, "2026-Q4", "provider", "intermediary", 41, 92, 20054, 3810, 23864},
				{n, "2026-Q4", "intermediary", "customer", 41, 92, 20054, 3810, 23864},
			})
			prov, interm := rep.Lines[0].InvoiceTo, rep.Lines[1].InvoiceTo
			if prov.Name != "govdigital eG" || prov.Street != "Alt-Moabit 91" || prov.PostalCode != "10559" || prov.City != "Berlin" || prov.LeitwegID != "992-90009-96" {
				t.Errorf("provider invoices %+v, want govdigital with its address and Leitweg-ID", prov)
			}
			if interm.Name != "Landkreis Beispielkreis" || interm.LeitwegID != "09564000-NUE0001-49" || interm.CustomerNumber != "K-2002" {
				t.Errorf("intermediary invoices %+v, want the customer", interm)
			}
			if rep.Lines[0].Recipient != "IT.NRW" || rep.Lines[1].Recipient != "govdigital eG" {
				t.Errorf("reminded %q and %q", rep.Lines[0].Recipient, rep.Lines[1].Recipient)
			}
			mails := e.outbox(mailflow.KindBilling)
			if len(mails) != 2 {
				t.Fatalf("%d billing mails, want 2", len(mails))
			}
			got := map[string][]string{}
			for _, m := range mails {
				got[m.Party] = m.Recipients
			}
			if !slices.Equal(got["provider"], []string{"orders@it.nrw.example"}) || !slices.Equal(got["intermediary"], []string{"auftrag@govdigital.example"}) {
				t.Errorf("billing mails to %v", got)
			}
		})
	}
}

// A "once" price is billed once, after its day, and never again.
func TestBillingOnce(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			o := e.bound("order-dv.json", "einrichtung", at(e.loc, 2026, 3, 10, 15, 0))
			if rep := e.billing(at(e.loc, 2026, 3, 10, 23, 0), false); len(rep.Lines) != 0 {
				t.Errorf("billed on the binding day: %+v", reportLines(rep))
			}
			checkLines(t, e.billing(at(e.loc, 2026, 4, 1, 6, 0), false), []line{
				{o.Number, "once", "provider", "customer", 1, 1, 50000, 9500, 59500},
			})
			for _, when := range []time.Time{at(e.loc, 2026, 5, 1, 6, 0), at(e.loc, 2029, 1, 1, 6, 0)} {
				if rep := e.billing(when, false); len(rep.Lines) != 0 || rep.Orders != 0 {
					t.Errorf("run at %v looked at %d orders, billed %+v", when, rep.Orders, reportLines(rep))
				}
			}
			var due *time.Time
			db := e.store.DB()
			if err := db.QueryRow(db.Rebind(`SELECT due_at FROM billing_orders WHERE order_id = ?`), o.ID).Scan(&due); err != nil {
				t.Fatal(err)
			}
			if due != nil {
				t.Errorf("due_at %v; want no due date: all is billed", due)
			}
		})
	}
}

// A dry run reports what a real run would send and writes nothing; the
// real run then sends exactly that.
func TestBillingDryRun(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			e.bound("order-dv.json", "basis-monat", at(e.loc, 2026, 1, 15, 9, 0))
			e.bound("order-uv.json", "", at(e.loc, 2026, 2, 3, 9, 0))
			when := at(e.loc, 2026, 7, 1, 6, 0)
			outbox := e.count("outbox")
			dry := e.billing(when, true)
			if len(dry.Lines) != 6+4 || dry.Mails != 0 || !dry.DryRun {
				t.Errorf("dry run: %d lines, %d mails", len(dry.Lines), dry.Mails)
			}
			var initialised int
			e.store.DB().Get(&initialised, `SELECT COUNT(*) FROM billing_orders WHERE due_at IS NULL OR due_at <> binding_at`)
			if n, q := e.count("billing_periods"), e.queued(); n != 0 || q != 0 || e.count("outbox") != outbox || initialised != 0 {
				t.Errorf("dry run wrote: %d billing_periods, %d queued lines, %d new outbox rows, %d orders changed", n, q, e.count("outbox")-outbox, initialised)
			}
			var buf bytes.Buffer
			if err := dry.WriteTable(&buf); err != nil {
				t.Fatal(err)
			}
			if strings.Count(buf.String(), "would send") != 10 || strings.Contains(buf.String(), " sent") {
				t.Errorf("dry run table:\n%s", buf.String())
			}

			real := e.billing(when, false)
			if !slices.Equal(reportLines(real), reportLines(dry)) {
				t.Errorf("real run differs from the dry run:\n real %+v\n dry  %+v", reportLines(real), reportLines(dry))
			}
			if again := e.billing(when, true); len(again.Lines) != 0 {
				t.Errorf("dry run after the real run would send %+v", reportLines(again))
			}
		})
	}
}

// Only a dry run may look into the future: a real one would bill periods
// that have not ended.
func TestBillingRefusesFuture(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.bound("order-dv.json", "basis-monat", at(e.loc, 2026, 1, 15, 9, 0))
	e.setClock(at(e.loc, 2026, 2, 1, 6, 0))
	if _, err := e.sched.RunBilling(e.ctx, at(e.loc, 2026, 3, 1, 6, 0), false); err == nil {
		t.Error("a real run in the future was accepted")
	}
	rep, err := e.sched.RunBilling(e.ctx, at(e.loc, 2026, 3, 1, 6, 0), true)
	if err != nil || len(rep.Lines) != 2 {
		t.Errorf("future dry run: %v, %d lines", err, len(rep.Lines))
	}
}

// Orders that are not binding are never billed.
func TestBillingOnlyBindingOrders(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			e.setClock(at(e.loc, 2026, 1, 5, 9, 0))
			open := e.order("order-dv.json", "")
			e.decide(open, mailflow.PartyProvider, mailflow.IntentReview, at(e.loc, 2026, 1, 6, 9, 0))
			rejected := e.order("order-dv.json", "")
			e.decide(rejected, mailflow.PartyProvider, mailflow.IntentReject, at(e.loc, 2026, 1, 6, 9, 0))
			half := e.order("order-uv.json", "") // intermediary accepted, provider not yet
			e.decide(half, mailflow.PartyIntermediary, mailflow.IntentAccept, at(e.loc, 2026, 1, 6, 9, 0))
			if rep := e.billing(at(e.loc, 2026, 6, 1, 6, 0), false); rep.Orders != 0 || len(rep.Lines) != 0 {
				t.Errorf("billed orders that are not binding: %+v", reportLines(rep))
			}
		})
	}
}

// Batches are transactions, not mails: a party gets one mail per run
// however many batches its orders fall into, and a second only beyond
// MaxBillingLines lines.
func TestBillingBatchesAndMailParts(t *testing.T) {
	e := newEnv(t, "sqlite")
	cfg := testConfig(e.loc)
	cfg.BatchSize = 2
	e.sched = scheduler.New(cfg, e.store, newTestMailer(t, e.now), nil)
	e.sched.Now = e.now
	for d := 1; d <= 5; d++ {
		e.bound("order-dv.json", "basis-monat", at(e.loc, 2026, 1, d, 9, 0))
	}
	rep := e.billing(at(e.loc, 2026, 3, 1, 6, 0), false)
	if rep.Orders != 5 || rep.Periods != 10 || rep.Mails != 1 || len(rep.Lines) != 10 {
		t.Errorf("%d orders, %d periods, %d mails, %d lines; want 5, 10, 1, 10", rep.Orders, rep.Periods, rep.Mails, len(rep.Lines))
	}
	if n := e.count("billing_periods"); n != 10 {
		t.Errorf("%d billing_periods, want 10", n)
	}

	// Six orders 42 years unbilled: 6 × 504 months, 7 mails of at most 500.
	e.bound("order-dv.json", "basis-monat", at(e.loc, 2026, 3, 1, 9, 0))
	rep = e.billing(at(e.loc, 2068, 3, 1, 6, 0), false)
	if rep.Periods != 6*504 || rep.Mails != 7 {
		t.Errorf("%d periods in %d mails, want %d in 7", rep.Periods, rep.Mails, 6*504)
	}
	mails := e.outbox(mailflow.KindBilling)[1:]
	var n int
	for _, m := range mails {
		n += len(billingMailLines(t, m))
	}
	if len(mails) != 7 || n != rep.Periods {
		t.Errorf("%d lines in %d mails, want %d in 7", n, len(mails), rep.Periods)
	}
	if q := e.queued(); q != 0 {
		t.Errorf("%d lines left in the queue", q)
	}
}

func TestBillingReportTable(t *testing.T) {
	loc := berlin(t)
	p := mailflow.Period{Key: "2026-01", Start: at(loc, 2026, 1, 31, 0, 0), End: at(loc, 2026, 2, 1, 0, 0), Days: 1, FullDays: 31,
		NetCents: 123456789, VATCents: 23456789, GrossCents: 146913578}
	rep := scheduler.BillingReport{At: at(loc, 2026, 2, 1, 6, 0), Orders: 1, Periods: 1, Mails: 1, Lines: []scheduler.BillingReportLine{{
		BillingLine: scheduler.BillingLine{Number: "2026-000007", Currency: "EUR", Period: p,
			InvoiceTo: mailflow.Invoicee{Role: "customer", Name: "Stadt\nMusterstadt"}},
		Role: "provider", Recipient: "Dataport AöR", Sent: true,
	}}, Errors: []scheduler.BillingError{{Order: "2026-000008", Err: "boom"}}}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"ORDER", "PERIOD", "ROLE", "RECIPIENT", "INVOICE TO", "NET", "VAT", "GROSS", "STATUS",
		"2026-000007", "2026-01 (31.01.–31.01.2026, 1/31 days)", "provider", "Dataport AöR", "Stadt Musterstadt",
		"1.234.567,89 EUR", "234.567,89 EUR", "1.469.135,78 EUR", "sent",
		"billed 1 periods of 1 orders", "not billed: 2026-000008: boom",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// `billing run -json` prints the report as JSON.
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"dry_run":false`, `"order":"2026-000007"`, `"period":{"key":"2026-01"`, `"days":1,"full_days":31`,
		`"net_cents":123456789`, `"invoice_to":{"role":"customer","name":"Stadt\nMusterstadt"`, `"role":"provider"`, `"sent":true`,
		`"errors":[{"order":"2026-000008","error":"boom"}]`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON lacks %s:\n%s", want, js)
		}
	}
}

// failingBilling is the real mailer with billing reminders failing while
// fail is set: a run that stops between recording periods and mailing.
type failingBilling struct {
	scheduler.Mailer
	fail atomic.Bool
}

func (f *failingBilling) BillingReminder(m scheduler.BillingMail) (*mailflow.OutboxMessage, error) {
	if f.fail.Load() {
		return nil, errors.New("smtp template exploded")
	}
	return f.Mailer.BillingReminder(m)
}

// A run that records periods but stops before mailing them leaves the
// lines queued; the next run, or the daemon's start, mails each once.
func TestBillingResumesQueuedLines(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			mailer := &failingBilling{Mailer: newTestMailer(t, e.now)}
			e.sched = scheduler.New(testConfig(e.loc), e.store, mailer, nil)
			e.sched.Now = e.now
			e.bound("order-dv.json", "basis-monat", at(e.loc, 2026, 1, 15, 9, 0))
			e.bound("order-uv.json", "", at(e.loc, 2026, 1, 20, 9, 0))

			mailer.fail.Store(true)
			when := at(e.loc, 2026, 4, 1, 6, 0)
			e.setClock(when)
			if _, err := e.sched.RunBilling(e.ctx, when, false); err == nil {
				t.Fatal("the failing run reported no error")
			}
			if n, q := e.count("billing_periods"), e.queued(); n != 3+1 || q != 3+2 {
				t.Fatalf("after the failed run: %d billing_periods, %d queued lines; want 4 and 5", n, q)
			}
			if n := len(e.outbox(mailflow.KindBilling)); n != 0 {
				t.Fatalf("%d billing mails from the failed run", n)
			}
			dry := e.billing(when, true)
			if len(dry.Lines) != 5 || dry.Periods != 0 {
				t.Errorf("dry run after the failure: %d lines, %d new periods; want the 5 queued lines", len(dry.Lines), dry.Periods)
			}

			// The daemon restarts: Start mails the queue at once.
			mailer.fail.Store(false)
			cfg := testConfig(e.loc)
			cfg.Reminders, cfg.Digest = "", ""
			s := scheduler.New(cfg, e.store, mailer, nil)
			s.Now = e.now
			if err := s.Start(e.ctx); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for e.queued() > 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			s.Stop()
			if q := e.queued(); q != 0 {
				t.Fatalf("%d lines still queued after start", q)
			}
			lines := map[string]int{}
			for _, m := range e.outbox(mailflow.KindBilling) {
				for _, k := range billingMailLines(t, m) {
					lines[k+"/"+m.Party]++
				}
			}
			if len(lines) != 5 {
				t.Errorf("mailed lines %v, want 5", lines)
			}
			for k, n := range lines {
				if n != 1 {
					t.Errorf("%s mailed %d times", k, n)
				}
			}
			if rep := e.billing(when, false); rep.Mails != 0 || len(rep.Lines) != 0 {
				t.Errorf("rerun mailed %d (%d lines)", rep.Mails, len(rep.Lines))
			}
		})
	}
}

// Billing docs stored by the first version (the snapshot's types, with
// fields billing does not need) still decode.
func TestBillingDocFirstVersion(t *testing.T) {
	old := `{"customer":{"name":"Stadt Musterstadt","street":"Markt 1","postal_code":"12345","city":"Musterstadt","country":"DE",` +
		`"contact_name":"Erika Mustermann","email":"it@musterstadt.example","phone":"+49 30 1234567","customer_number":"K-1001",` +
		`"leitweg_id":"04011000-12345-03"},"provider":{"id":"itnrw","name":"IT.NRW","email":"orders@it.nrw.example",` +
		`"reply_senders":null,"language":"en"},"intermediary":{"id":"govdigital","name":"govdigital eG","email":"auftrag@govdigital.example",` +
		`"reply_senders":null,"language":"de","street":"Alt-Moabit 91","postal_code":"10559","city":"Berlin","leitweg_id":"992-90009-96"},` +
		`"service":"Kollaboration","price_name":"Team","currency":"EUR"}`
	var d mailflow.BillingDoc
	if err := json.Unmarshal([]byte(old), &d); err != nil {
		t.Fatal(err)
	}
	if d.Customer.Name != "Stadt Musterstadt" || d.Customer.CustomerNumber != "K-1001" || d.Customer.LeitwegID != "04011000-12345-03" ||
		d.Provider.Language != "en" || d.Provider.Email != "orders@it.nrw.example" || d.Intermediary == nil ||
		d.Intermediary.LeitwegID != "992-90009-96" || d.Intermediary.City != "Berlin" || d.PriceName != "Team" || d.Service != "Kollaboration" {
		t.Errorf("decoded %+v", d)
	}
}
