package storage

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"mailflow/examples"
	"mailflow/internal/exampletest"
	"mailflow/internal/testdb"
	"mailflow/mailflow"
	"mailflow/scheduler"
)

// openAtVersion opens a store whose schema stops at migration n, as an
// older binary left it.
func openAtVersion(t *testing.T, driver, dsn string, n int) *Store {
	t.Helper()
	all := migrations
	migrations = all[:n]
	defer func() { migrations = all }()
	s, err := Open(context.Background(), driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// upgrade closes a store opened at an older version and opens the same
// database with every migration, as a new binary would.
func upgrade(t *testing.T, old *Store, driver, dsn string) *Store {
	t.Helper()
	old.Close()
	s, err := Open(context.Background(), driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// createExample creates an example order (examples.OrderDV, OrderUV) in
// a store that has the example catalog.
func createExample(t *testing.T, s *Store, raw []byte) *mailflow.Order {
	t.Helper()
	var req mailflow.OrderRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	o, _, err := (&mailflow.Flow{Store: s}).CreateOrder(context.Background(), &req)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// A database with binding orders from before migration 2 gets their
// order_billing rows when it is upgraded, as SaveEvaluation makes them
// for orders that become binding afterwards.
func TestUpgradeRegistersBindingOrders(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old := openAtVersion(t, "sqlite", path, 1)
	if err := old.ImportCatalog(ctx, exampletest.Catalog(t)); err != nil {
		t.Fatal(err)
	}
	var bound, open *mailflow.Order
	for i, raw := range [][]byte{examples.OrderUV(), examples.OrderDV()} {
		o := createExample(t, old, raw)
		if i == 0 {
			// What the old binary's SaveEvaluation wrote.
			at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
			if _, err := old.DB().Exec(`UPDATE orders SET status = ?, binding_at = ? WHERE id = ?`, "ordered", at, o.ID); err != nil {
				t.Fatal(err)
			}
			o.BindingAt = &at
			bound = o
		} else {
			open = o
		}
	}
	s := upgrade(t, old, "sqlite", path)
	states, err := s.BillingStates(ctx, []int64{bound.ID, open.ID}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 {
		t.Fatalf("%d orders registered for billing, want the binding one", len(states))
	}
	st := states[0]
	if st.OrderID != bound.ID || st.Number != bound.Number || st.Model != "UV" || st.ProviderID != "itnrw" || st.IntermediaryID != "govdigital" ||
		!st.BindingAt.Equal(*bound.BindingAt) || st.Interval != "quarterly" || st.AmountCents != 45000 || st.VATPercent != 19 ||
		st.DueAt != nil || st.BilledUntil != nil || st.Done {
		t.Errorf("registered %+v", st)
	}
	var doc scheduler.BillingDoc
	if err := scheduler.DecodeBillingDoc(st.Doc, &doc); err != nil {
		t.Fatal(err)
	}
	t.Logf("billing doc, %d bytes: %s", len(st.Doc), st.Doc)
	if doc.Customer.LeitwegID != "09564000-NUE0001-49" || doc.Customer.CustomerNumber != "K-2002" || doc.Customer.City != "Nürnberg" ||
		doc.Intermediary == nil || doc.Intermediary.LeitwegID != "992-90009-96" || doc.Intermediary.Street != "Alt-Moabit 91" ||
		doc.Provider.Email != "orders@it.nrw.example" || doc.Provider.Language != "en" || doc.Service != "Kollaboration" ||
		doc.PriceName != "Team" || doc.Currency != "EUR" {
		t.Errorf("billing doc %+v", doc)
	}
}

// Migration 4 moves the billing docs of a version-3 database into
// order_billing_doc, where a billing run reads them.
func TestUpgradeMovesBillingDocs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v3.db")
	old := openAtVersion(t, "sqlite", path, 3)
	if err := old.ImportCatalog(ctx, exampletest.Catalog(t)); err != nil {
		t.Fatal(err)
	}
	o := createExample(t, old, examples.OrderDV())
	// What a version-3 binary wrote when the order became binding.
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	doc, _ := json.Marshal(scheduler.BillingDoc{Customer: scheduler.Invoicee{Name: "Stadt Musterstadt", LeitwegID: "04011000-12345-03"},
		Provider: scheduler.BillingParty{ID: "dataport", Email: "b@dataport.example"}, Service: "Mail", PriceName: "Basis", Currency: "EUR"})
	if _, err := old.DB().Exec(`UPDATE orders SET status = 'ordered', binding_at = ? WHERE id = ?`, at, o.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := old.DB().Exec(`INSERT INTO order_billing (order_id, number, contract_model, provider_id, binding_at, price_interval,
		amount_cents, vat_percent, doc) VALUES (?, ?, 'DV', 'dataport', ?, 'monthly', 1000, 19, ?)`, o.ID, o.Number, at, string(doc)); err != nil {
		t.Fatal(err)
	}
	s := upgrade(t, old, "sqlite", path)
	states, err := s.BillingStates(ctx, []int64{o.ID}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || states[0].Doc != string(doc) {
		t.Fatalf("after the upgrade: %+v", states)
	}
	var d scheduler.BillingDoc
	if err := scheduler.DecodeBillingDoc(states[0].Doc, &d); err != nil || d.Customer.LeitwegID != "04011000-12345-03" || d.Provider.Email != "b@dataport.example" {
		t.Errorf("doc %+v, %v", d, err)
	}
	var n int
	if err := s.DB().Get(&n, `SELECT COUNT(*) FROM pragma_table_info('order_billing') WHERE name = 'doc'`); err != nil || n != 0 {
		t.Errorf("order_billing still has doc (%d, %v)", n, err)
	}
}

// Migration 5 moves the lines of billing_queue, a row per line, into
// billing_pending, a row per party.
func TestUpgradeMovesQueuedLines(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v4.db")
	old := openAtVersion(t, "sqlite", path, 4)
	for _, l := range []struct {
		role, party string
		order       int64
		period      string
	}{{"provider", "p1", 2, "2026-10"}, {"provider", "p1", 1, "2026-10"}, {"intermediary", "i1", 1, "2026-10"}} {
		if _, err := old.DB().Exec(`INSERT INTO billing_queue (role, party_id, order_id, period_key) VALUES (?, ?, ?, ?)`,
			l.role, l.party, l.order, l.period); err != nil {
			t.Fatal(err)
		}
	}
	s := upgrade(t, old, "sqlite", path)
	parties, err := s.BillingQueue(ctx)
	if err != nil || len(parties) != 2 || parties[0] != (scheduler.QueuedParty{Role: "intermediary", PartyID: "i1", Lines: 1}) ||
		parties[1] != (scheduler.QueuedParty{Role: "provider", PartyID: "p1", Lines: 2}) {
		t.Fatalf("queue after the upgrade: %+v, %v", parties, err)
	}
	var n int
	if err := s.DB().Get(&n, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'billing_queue'`); err != nil || n != 0 {
		t.Errorf("billing_queue still there (%d, %v)", n, err)
	}
	err = s.JobTx(ctx, func(tx scheduler.Tx) error {
		n, err := tx.DequeueBillingLines([]scheduler.LineKey{{Role: "provider", PartyID: "p1", OrderID: 1, PeriodKey: "2026-10"},
			{Role: "provider", PartyID: "p1", OrderID: 2, PeriodKey: "2026-10"}})
		if err == nil && n != 2 {
			t.Errorf("dequeued %d moved lines, want 2", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Migration 7 rebuilds billing_reminders keyed by (order, period) alone:
// the periods recorded before keep every value, and the key still makes a
// period recorded twice a conflict.
func TestUpgradeKeysBillingPeriods(t *testing.T) {
	for _, driver := range testdb.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			_, dsn := testdb.DSN(t, driver)
			old := openAtVersion(t, driver, dsn, 6)
			if err := old.ImportCatalog(ctx, exampletest.Catalog(t)); err != nil {
				t.Fatal(err)
			}
			o := createExample(t, old, examples.OrderDV())
			start := time.Date(2026, 10, 11, 22, 0, 0, 0, time.UTC)
			end := time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC)
			created := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
			if _, err := old.DB().Exec(old.DB().Rebind(`INSERT INTO billing_reminders (order_id, period_key, period_start, period_end,
				net_cents, vat_cents, gross_cents, created_at, days, full_days) VALUES (?, '2026-10', ?, ?, 645, 123, 768, ?, 20, 31)`),
				o.ID, start, end, created); err != nil {
				t.Fatal(err)
			}
			s := upgrade(t, old, driver, dsn)
			recs, err := s.BillingRecords(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := BillingRecord{OrderID: o.ID, Number: o.Number, PeriodKey: "2026-10", Start: start, End: end, Days: 20, FullDays: 31,
				NetCents: 645, VATCents: 123, GrossCents: 768, CreatedAt: created}
			if len(recs) != 1 || !sameRecord(recs[0], want) {
				t.Fatalf("after the upgrade: %+v, want %+v", recs, want)
			}
			if slices.Contains(columns(t, s, "billing_reminders"), "id") {
				t.Errorf("billing_reminders still has the column id")
			}
			p := scheduler.Period{Key: "2026-10", Start: start, End: end, Days: 20, FullDays: 31, NetCents: 645, VATCents: 123, GrossCents: 768}
			next := p
			next.Key, next.Start, next.End = "2026-11", end, time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)
			var inserted []bool
			err = s.JobTx(ctx, func(tx scheduler.Tx) (err error) {
				inserted, err = tx.InsertBillingRecords([]scheduler.BillingRecord{{OrderID: o.ID, Period: p}, {OrderID: o.ID, Period: next}}, created)
				return err
			})
			if err != nil || len(inserted) != 2 || inserted[0] || !inserted[1] {
				t.Errorf("recording October again and November: inserted %v, %v; want [false true]", inserted, err)
			}
		})
	}
}

// sameRecord compares billing records by their instants, whatever the
// time zone a driver returns them in.
func sameRecord(a, b BillingRecord) bool {
	return a.OrderID == b.OrderID && a.Number == b.Number && a.PeriodKey == b.PeriodKey && a.Start.Equal(b.Start) && a.End.Equal(b.End) &&
		a.Days == b.Days && a.FullDays == b.FullDays && a.NetCents == b.NetCents && a.VATCents == b.VATCents &&
		a.GrossCents == b.GrossCents && a.CreatedAt.Equal(b.CreatedAt)
}
