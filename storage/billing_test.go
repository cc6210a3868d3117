package storage_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/storage"
	"mailflow/storage/storagetest"
)

// bindOrder creates a DV order and makes it binding: the provider accepts.
func bindOrder(t *testing.T, s *storage.Store, req *mailflow.OrderRequest) *mailflow.Order {
	t.Helper()
	ctx := context.Background()
	flow := &mailflow.Flow{Store: s}
	o, _, err := flow.CreateOrder(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flow.Decide(ctx, o.Number, mailflow.Decision{Party: mailflow.PartyProvider, Intent: mailflow.IntentAccept,
		Source: mailflow.SourceManual}); err != nil {
		t.Fatal(err)
	}
	return o
}

// An order that becomes binding is due for billing at its binding time,
// with its price and, as JSON, whom its reminders go to and whom they
// invoice; an order that is not binding is never due.
func TestBindingOrderIsDue(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := openWithCatalog(t, driver)
			if _, _, err := (&mailflow.Flow{Store: s}).CreateOrder(ctx, loadOrder(t, "order-uv.json")); err != nil {
				t.Fatal(err)
			}
			req := loadOrder(t, "order-dv.json")
			o := bindOrder(t, s, req)
			bound, err := s.Order(ctx, o.Number)
			if err != nil {
				t.Fatal(err)
			}
			later := bound.BindingAt.Add(time.Hour)
			if ids, err := s.DueBilling(ctx, bound.BindingAt.Add(-time.Second)); err != nil || len(ids) != 0 {
				t.Errorf("due before binding: %v, %v", ids, err)
			}
			ids, err := s.DueBilling(ctx, later)
			if err != nil || !reflect.DeepEqual(ids, []int64{o.ID}) {
				t.Fatalf("due: %v, %v; want the binding order %d", ids, err, o.ID)
			}
			due, err := s.DueBillingOrders(ctx, 0, o.ID+10, later)
			if err != nil || len(due) != 1 {
				t.Fatalf("due orders %+v, %v", due, err)
			}
			b := due[0]
			price := bound.Snapshot.Price
			if b.OrderID != o.ID || b.Number != o.Number || b.Model != "DV" || !b.BindingAt.Equal(*bound.BindingAt) || !b.DueAt.Equal(*bound.BindingAt) ||
				b.Interval != price.Interval || b.AmountCents != price.AmountCents || b.VATPercent != price.VATPercent {
				t.Errorf("due order %+v", b)
			}
			var doc mailflow.BillingDoc
			if err := json.Unmarshal([]byte(b.Doc), &doc); err != nil {
				t.Fatal(err)
			}
			sn := bound.Snapshot
			if doc.Customer.LeitwegID != sn.Customer.LeitwegID || doc.Customer.CustomerNumber != sn.Customer.CustomerNumber ||
				doc.Provider.Email != sn.Provider.Email || doc.Intermediary != nil || doc.Service != sn.Service.Name ||
				doc.PriceName != sn.Price.Name || doc.Currency != sn.Price.Currency {
				t.Errorf("billing doc %+v", doc)
			}
		})
	}
}

// A recorded period is unreminded until marked, and marked once: a second
// mark (a concurrent run's) counts nothing. The order is due again when
// its next period ends. A period is recorded once.
func TestRecordBillingAndMarkReminded(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := openWithCatalog(t, driver)
			o := bindOrder(t, s, loadOrder(t, "order-dv.json"))
			oct := time.Date(2026, 9, 30, 22, 0, 0, 0, time.UTC)
			nov := time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC)
			dec := time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)
			period := func(key string, start, end time.Time) mailflow.Period {
				return mailflow.Period{Key: key, Start: start, End: end, Days: 30, FullDays: 30, NetCents: 100, VATCents: 19, GrossCents: 119}
			}
			bill := mailflow.Bill{OrderID: o.ID, Periods: []mailflow.Period{period("2026-10", oct, nov), period("2026-11", nov, dec)},
				DueAt: &[]time.Time{dec.AddDate(0, 1, 0)}[0]}
			record := func(b mailflow.Bill) error {
				return s.JobTx(ctx, func(tx mailflow.JobTx) error { return tx.RecordBilling([]mailflow.Bill{b}, dec) })
			}
			if err := record(bill); err != nil {
				t.Fatal(err)
			}
			if ids, err := s.DueBilling(ctx, dec); err != nil || len(ids) != 0 {
				t.Errorf("due before the next period ends: %v, %v", ids, err)
			}
			if ids, err := s.DueBilling(ctx, *bill.DueAt); err != nil || len(ids) != 1 {
				t.Errorf("due when the next period ends: %v, %v", ids, err)
			}
			if err := record(mailflow.Bill{OrderID: o.ID, Periods: bill.Periods[1:], DueAt: bill.DueAt}); !errors.Is(err, mailflow.ErrConflict) {
				t.Errorf("recording November again: %v, want a conflict", err)
			}
			un, err := s.UnremindedPeriods(ctx)
			if err != nil || len(un) != 2 || un[0].Period.Key != "2026-10" || un[1].Period.Key != "2026-11" || un[0].Number != o.Number ||
				un[0].ProviderID != "dataport" || un[0].Model != "DV" || !un[1].Period.Start.Equal(nov) || un[1].Period.GrossCents != 119 {
				t.Fatalf("unreminded %+v, %v", un, err)
			}
			mark := func(refs ...mailflow.PeriodRef) int {
				t.Helper()
				var n int
				if err := s.JobTx(ctx, func(tx mailflow.JobTx) (err error) { n, err = tx.MarkReminded(refs, dec); return err }); err != nil {
					t.Fatal(err)
				}
				return n
			}
			oct26, nov26 := mailflow.PeriodRef{OrderID: o.ID, Key: "2026-10"}, mailflow.PeriodRef{OrderID: o.ID, Key: "2026-11"}
			if n := mark(oct26); n != 1 {
				t.Errorf("marked %d of October, want 1", n)
			}
			if n := mark(oct26, nov26, mailflow.PeriodRef{OrderID: o.ID, Key: "2026-12"}); n != 1 {
				t.Errorf("marked %d of October, November and a period never recorded; want 1 (November)", n)
			}
			if un, err := s.UnremindedPeriods(ctx); err != nil || len(un) != 0 {
				t.Errorf("unreminded after marking: %+v, %v", un, err)
			}
			recs, err := s.BillingRecords(ctx)
			if err != nil || len(recs) != 2 || recs[0].RemindedAt == nil || !recs[0].RemindedAt.Equal(dec) {
				t.Errorf("records %+v, %v", recs, err)
			}
		})
	}
}

// DueBillingOrders returns exactly the due orders within the range of ids
// asked for, in id order.
func TestDueBillingOrdersOfRange(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := openWithCatalog(t, driver)
			var ids []int64
			for i := range 5 {
				req := loadOrder(t, "order-dv.json")
				req.ExternalID = fmt.Sprintf("%s-%d", req.ExternalID, i)
				ids = append(ids, bindOrder(t, s, req).ID)
			}
			now := time.Now().Add(time.Hour)
			// The middle one is billed and not due.
			next := now.Add(24 * time.Hour)
			if err := s.JobTx(ctx, func(tx mailflow.JobTx) error {
				return tx.RecordBilling([]mailflow.Bill{{OrderID: ids[2], DueAt: &next}}, now)
			}); err != nil {
				t.Fatal(err)
			}
			for _, lock := range []bool{false, true} {
				var due []mailflow.BillingOrder
				var err error
				if lock {
					err = s.JobTx(ctx, func(tx mailflow.JobTx) (err error) {
						due, err = tx.LockDueBillingOrders(ids[1], ids[3], now)
						return err
					})
				} else {
					due, err = s.DueBillingOrders(ctx, ids[1], ids[3], now)
				}
				if err != nil {
					t.Fatal(err)
				}
				var got []int64
				for _, o := range due {
					got = append(got, o.OrderID)
				}
				if want := []int64{ids[1], ids[3]}; !reflect.DeepEqual(got, want) {
					t.Errorf("lock %v: due orders %v, want %v", lock, got, want)
				}
			}
		})
	}
}
