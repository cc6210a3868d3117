package scheduler_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailflow/internal/exampletest"
	"mailflow/internal/testdb"
	"mailflow/mailflow"
	"mailflow/scheduler"
	"mailflow/storage"
	"mailflow/storage/storagetest"
)

// benchOrders is the number of binding orders the billing benchmark seeds.
const benchOrders = 100_000

// BenchmarkBillingRun measures one billing run over 100,000 binding orders
// on each driver (seeding and resets are not timed):
//
//   - all-due: every order has been billed for years up to September and
//     October is due: 100,000 periods, 100,000 orders × a long history;
//   - first-run: every order became binding in October and no run has seen
//     it: each is initialised and its prorated October billed;
//   - all-due-without-invoices: all-due with a catalog without seller
//     data, so the reminders carry no e-invoices;
//   - none-due: the same orders mid-month, when nothing is due: the run
//     must cost next to nothing however many orders there are.
//
// One order in five is UV (two reminded parties), the orders belong to 50
// providers; every reminded party has seller data, so each reminder
// carries its XRechnung invoices. Run with
//
//	MAILFLOW_TEST_POSTGRES=... go test -run '^$' -bench BillingRun -benchtime 3x ./scheduler/
func BenchmarkBillingRun(b *testing.B) {
	for _, driver := range storagetest.Drivers() {
		b.Run(driver, func(b *testing.B) {
			e := newEnvOn(b, storagetest.Open(b, driver), false)
			// The run's own log line splits its time into billing
			// (recording periods) and mailing (composing the reminders).
			c, _ := newComposer(b, e.now)
			cfg := testConfig(e.loc)
			if n, err := strconv.Atoi(os.Getenv("MAILFLOW_BENCH_BATCH")); err == nil {
				cfg.BatchSize = n // orders per transaction of the first phase
			}
			e.sched = scheduler.New(cfg, e.store, scheduler.NewMailer(c), slog.New(slog.NewTextHandler(os.Stderr, nil)))
			e.sched.Now = e.now
			loc := e.loc
			withSellers := seedBindingOrders(b, e.store, loc, benchOrders)
			// The same catalog without seller data: reminders without
			// e-invoices, the billing run as it was before them.
			withoutSellers := *withSellers
			withoutSellers.Providers = slices.Clone(withSellers.Providers)
			withoutSellers.Intermediaries = slices.Clone(withSellers.Intermediaries)
			for i := range withoutSellers.Providers {
				withoutSellers.Providers[i].Seller = nil
			}
			for i := range withoutSellers.Intermediaries {
				withoutSellers.Intermediaries[i].Seller = nil
			}

			nov := at(loc, 2026, 11, 1, 0, 0)
			scenarios := []struct {
				name    string
				dueAt   any // the End of October: billed up to September
				run     time.Time
				periods int
				catalog *mailflow.Catalog
			}{
				{"all-due", nov.UTC(), at(loc, 2026, 11, 1, 6, 0), benchOrders, withSellers},
				{"all-due-without-invoices", nov.UTC(), at(loc, 2026, 11, 1, 6, 0), benchOrders, &withoutSellers},
				{"first-run", nil, at(loc, 2026, 11, 1, 6, 0), benchOrders, withSellers},
				{"none-due", nov.UTC(), at(loc, 2026, 10, 15, 6, 0), 0, withSellers},
			}
			for _, sc := range scenarios {
				b.Run(sc.name, func(b *testing.B) {
					if err := e.store.ImportCatalog(e.ctx, sc.catalog); err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					var rep scheduler.BillingReport
					var cpu, dbCPU time.Duration
					for i := 0; i < b.N; i++ {
						b.StopTimer()
						resetBilling(b, e.store, sc.name == "first-run", loc, sc.dueAt)
						e.setClock(sc.run)
						before, dbBefore, start := testdb.ProcessCPU(), serverCPU(driver), time.Now()
						b.StartTimer()
						var err error
						rep, err = e.sched.RunBilling(e.ctx, sc.run, false)
						if err != nil {
							b.Fatal(err)
						}
						b.StopTimer()
						wall, used, dbUsed := time.Since(start), testdb.ProcessCPU()-before, serverCPU(driver)-dbBefore
						cpu, dbCPU = cpu+used, dbCPU+dbUsed
						b.Logf("run %d: %.2fs wall, %.2fs CPU, %.2fs server CPU, load average %s", i+1, wall.Seconds(), used.Seconds(), dbUsed.Seconds(), loadAverage())
						b.StartTimer()
					}
					// The machine may be shared: CPU seconds of this process
					// (not of PostgreSQL) tell what wall time may not.
					b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
					if driver == "postgres" {
						b.ReportMetric(dbCPU.Seconds()/float64(b.N), "db-cpu-s/op")
					}
					if rep.Periods != sc.periods || len(rep.Errors) != 0 {
						b.Fatalf("billed %d periods (%d errors), want %d", rep.Periods, len(rep.Errors), sc.periods)
					}
					b.ReportMetric(float64(rep.Periods), "periods/op")
					b.ReportMetric(float64(rep.Mails), "mails/op")
					b.ReportMetric(float64(len(rep.Invoices)), "invoices/op")
				})
			}
		})
	}
}

// seedBindingOrders inserts n binding orders directly, in bulk.
// It returns the catalog it imported, whose providers have seller data.
func seedBindingOrders(b *testing.B, s *storage.Store, loc *time.Location, n int) *mailflow.Catalog {
	b.Helper()
	cat := exampletest.Catalog(b)
	var snaps, docs [2][]string // [DV, UV] per provider
	for k, file := range []string{"order-dv.json", "order-uv.json"} {
		req := exampletest.Request(b, file)
		sn, err := mailflow.BuildSnapshot(req, cat)
		if err != nil {
			b.Fatal(err)
		}
		// Monthly for all: every order is due once a month.
		sn.Price.Interval = mailflow.IntervalMonthly
		for p := 0; p < 50; p++ {
			sn.Provider.ID = fmt.Sprintf("p%02d", p)
			sn.Provider.Name = fmt.Sprintf("Anbieter %02d", p)
			sn.Provider.Email = fmt.Sprintf("abrechnung@p%02d.example", p)
			snap, err := json.Marshal(sn)
			if err != nil {
				b.Fatal(err)
			}
			doc, err := json.Marshal(mailflow.NewBillingDoc(&sn))
			if err != nil {
				b.Fatal(err)
			}
			snaps[k] = append(snaps[k], string(snap))
			docs[k] = append(docs[k], string(doc))
		}
	}
	// The providers and the intermediary in the catalog, with the example
	// provider's seller data, so that every reminder composes its
	// e-invoices.
	seller := cat.Providers[0]
	for p := 0; p < 50; p++ {
		pp := seller
		pp.ID, pp.Name, pp.Email = fmt.Sprintf("p%02d", p), fmt.Sprintf("Anbieter %02d", p), fmt.Sprintf("abrechnung@p%02d.example", p)
		cat.Providers = append(cat.Providers, pp)
	}
	if err := s.ImportCatalog(b.Context(), cat); err != nil {
		b.Fatal(err)
	}
	db := s.DB()
	tx, err := db.Beginx()
	if err != nil {
		b.Fatal(err)
	}
	start := at(loc, 2021, 1, 1, 10, 0)
	insert := func(head string, width int, row func(i int) []any) {
		for lo := 0; lo < n; lo += 500 {
			hi := min(lo+500, n)
			var q strings.Builder
			q.WriteString(head)
			tuple := "(" + strings.TrimSuffix(strings.Repeat("?,", width), ",") + ")"
			var args []any
			for i := lo; i < hi; i++ {
				if i > lo {
					q.WriteByte(',')
				}
				q.WriteString(tuple)
				args = append(args, row(i)...)
			}
			if _, err := tx.Exec(tx.Rebind(q.String()), args...); err != nil {
				b.Fatal(err)
			}
		}
	}
	model := func(i int) (string, int, string) {
		if i%5 == 4 {
			return "UV", 1, "govdigital"
		}
		return "DV", 0, ""
	}
	insert(`INSERT INTO orders (id, number, external_id, contract_model, ordered_at, created_at, status, binding_at,
		provider_id, intermediary_id, search, snapshot, conflict) VALUES `, 13, func(i int) []any {
		m, k, interm := model(i)
		binding := start.Add(time.Duration(i) * 17 * time.Minute) // resetBilling sets the binding date
		var im any
		if interm != "" {
			im = interm
		}
		return []any{i + 1, fmt.Sprintf("B-%07d", i), fmt.Sprintf("bench-%d", i), m, binding.Add(-time.Hour).UTC(),
			binding.Add(-time.Hour).UTC(), string(mailflow.StatusOrdered), binding.UTC(), fmt.Sprintf("p%02d", i%50), im, "", snaps[k][i%50], false}
	})
	// What SaveEvaluation registers when an order becomes binding.
	insert(`INSERT INTO billing_orders (order_id, number, contract_model, provider_id, intermediary_id, binding_at, due_at,
		price_interval, amount_cents, vat_percent, doc) VALUES `, 11, func(i int) []any {
		m, k, interm := model(i)
		return []any{i + 1, fmt.Sprintf("B-%07d", i), m, fmt.Sprintf("p%02d", i%50), interm, start.UTC(), start.UTC(),
			"monthly", 120000, 19.0, docs[k][i%50]}
	})
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return cat
}

// resetBilling puts every order's billing state back: billed up to the
// period before dueAt, or, for a first run, bound in October and never
// billed.
func resetBilling(b *testing.B, s *storage.Store, firstRun bool, loc *time.Location, dueAt any) {
	b.Helper()
	db := s.DB()
	for _, q := range []string{`DELETE FROM billing_periods`, `DELETE FROM outbox`} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	binding := at(loc, 2021, 3, 4, 10, 0).UTC()
	if firstRun {
		// Bound on some day of October: one prorated period each.
		binding, dueAt = at(loc, 2026, 10, 13, 10, 0).UTC(), at(loc, 2026, 10, 13, 10, 0).UTC()
	}
	for _, q := range []string{`UPDATE orders SET binding_at = ?`, `UPDATE billing_orders SET binding_at = ?`, `UPDATE billing_orders SET due_at = ?`} {
		arg := any(binding)
		if strings.Contains(q, "due_at") {
			arg = dueAt
		}
		if _, err := db.Exec(db.Rebind(q), arg); err != nil {
			b.Fatal(err)
		}
	}
	if s.Driver() == "sqlite" {
		if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			b.Fatal(err)
		}
	}
	if s.Driver() == "postgres" {
		// As autovacuum would after such an update.
		if _, err := db.Exec(`VACUUM ANALYZE orders, billing_orders, billing_periods, outbox`); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBillingReminder composes one billing reminder of
// MaxBillingLines lines with the real Composer and templates.
func BenchmarkBillingReminder(b *testing.B) {
	loc := berlin(b)
	m := newTestMailer(b, time.Now)
	ps, err := scheduler.DuePeriods(at(loc, 2026, 1, 15, 9, 0), "monthly", 120000, 19, loc, time.Time{}, at(loc, 2067, 10, 1, 0, 0))
	if err != nil {
		b.Fatal(err)
	}
	mail := scheduler.BillingMail{Role: mailflow.PartyProvider, To: mailflow.Party{ID: "dataport", Name: "Dataport AöR", Email: "bestellungen@dataport.example"}}
	for i := range scheduler.MaxBillingLines {
		mail.Lines = append(mail.Lines, scheduler.BillingLine{OrderID: int64(i), Number: fmt.Sprintf("2026-%06d", i), Model: "DV",
			Service: "Verwaltungs-Mail", PriceName: "Basis", Interval: "monthly", Currency: "EUR", VATPercent: 19, Period: ps[i],
			InvoiceTo: mailflow.Invoicee{Role: "customer", Name: "Stadt Musterstadt", Street: "Markt 1", PostalCode: "12345",
				City: "Musterstadt", CustomerNumber: "K-1001", LeitwegID: "04011000-12345-03"}})
	}
	var size int
	for b.Loop() {
		msg, err := m.BillingReminder(mail)
		if err != nil {
			b.Fatal(err)
		}
		size = len(msg.Raw)
	}
	b.ReportMetric(float64(size), "bytes")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/scheduler.MaxBillingLines, "µs/line")
}

// serverCPU is the database server's CPU time so far: PostgreSQL's; 0
// for SQLite, which runs in this process.
func serverCPU(driver string) time.Duration {
	if driver != "postgres" {
		return 0
	}
	return testdb.PostgresCPU()
}

// loadAverage is the one-minute load average, for reading a figure taken
// on a shared machine.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
