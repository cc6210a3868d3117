package storage_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/scheduler"
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

// AdvanceBilling is a compare-and-set: a run that planned from a state
// another run has moved on advances nothing, so it bills nothing.
func TestAdvanceBillingCompareAndSet(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := openWithCatalog(t, driver)
			o := bindOrder(t, s, loadOrder(t, "order-dv.json"))
			states, err := s.BillingStates(ctx, []int64{o.ID}, false)
			if err != nil || len(states) != 1 {
				t.Fatalf("states %v, %v", states, err)
			}
			was := states[0]
			until := time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)
			due := time.Date(2027, 1, 31, 23, 0, 0, 0, time.UTC)
			advance := func() bool {
				var ok []bool
				err := s.JobTx(ctx, func(tx scheduler.Tx) error {
					var err error
					ok, err = tx.AdvanceBilling([]scheduler.BillingProgress{{OrderID: o.ID, BilledUntil: &until, DueAt: &due, Was: &was}})
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				return ok[0]
			}
			if !advance() {
				t.Fatal("the first advance failed")
			}
			if advance() {
				t.Error("a second advance from the same state succeeded")
			}
			again, err := s.BillingStates(ctx, []int64{o.ID}, false)
			if err != nil || again[0].BilledUntil == nil || !again[0].BilledUntil.Equal(until) || !again[0].DueAt.Equal(due) {
				t.Fatalf("after advance: %+v, %v", again, err)
			}
			was = again[0]
			if !advance() {
				t.Error("an advance from the stored state failed")
			}
		})
	}
}

// DequeueBillingLines removes a party's queued lines and counts those it
// was given; a line missing, or another one queued, makes the count differ
// from the number of keys, and the caller's transaction rolls back.
func TestDequeueBillingLines(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := storagetest.Open(t, driver)
			line := func(party string, order int64, period string) scheduler.LineKey {
				return scheduler.LineKey{Role: mailflow.PartyProvider, PartyID: party, OrderID: order, PeriodKey: period}
			}
			a, b, c := line("p1", 1, "2026-10"), line("p1", 1, "2026-11"), line("p1", 2, "2026-10")
			other := line("p2", 1, "2026-10")
			queue := func(keys ...scheduler.LineKey) {
				t.Helper()
				if err := s.JobTx(ctx, func(tx scheduler.Tx) error { return tx.QueueBillingLines(keys) }); err != nil {
					t.Fatal(err)
				}
			}
			errRollback := errors.New("roll back")
			dequeue := func(commit bool, keys ...scheduler.LineKey) int {
				t.Helper()
				var n int
				err := s.JobTx(ctx, func(tx scheduler.Tx) (err error) {
					if n, err = tx.DequeueBillingLines(keys); err == nil && !commit {
						err = errRollback
					}
					return err
				})
				if err != nil && err != errRollback {
					t.Fatal(err)
				}
				return n
			}
			queue(a, other)
			queue(c, b) // a second batch
			parties, err := s.BillingQueue(ctx)
			if err != nil || len(parties) != 2 || parties[0].PartyID != "p1" || parties[0].Lines != 3 || parties[1].Lines != 1 {
				t.Fatalf("queue %+v, %v", parties, err)
			}
			if n := dequeue(false, a, b); n != 3 {
				t.Errorf("dequeue a, b with c queued too: %d, want 3 (more than given)", n)
			}
			if n := dequeue(false, a, b, c, line("p1", 3, "2026-10")); n != 3 {
				t.Errorf("dequeue with a line not queued: %d, want 3", n)
			}
			if n := dequeue(true, c, a, b); n != 3 {
				t.Errorf("dequeue a, b, c: %d", n)
			}
			if n := dequeue(true, a); n != 0 {
				t.Errorf("dequeue a again: %d", n)
			}
			if err := s.JobTx(ctx, func(tx scheduler.Tx) error {
				_, err := tx.DequeueBillingLines([]scheduler.LineKey{a, other})
				return err
			}); err == nil {
				t.Error("lines of two parties dequeued at once")
			}
			if parties, err := s.BillingQueue(ctx); err != nil || len(parties) != 1 || parties[0].PartyID != "p2" {
				t.Errorf("left in the queue: %+v, %v", parties, err)
			}
		})
	}
}

// InsertBillingRecords records each (order, period) once: a period
// recorded before is reported as not inserted and the others are recorded
// in the same call (PostgreSQL retries the batch behind a savepoint).
func TestInsertBillingRecordsOnce(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := openWithCatalog(t, driver)
			flow := &mailflow.Flow{Store: s}
			var ids []int64
			for _, f := range []string{"order-dv.json", "order-uv.json"} {
				o, _, err := flow.CreateOrder(ctx, loadOrder(t, f))
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, o.ID)
			}
			start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
			rec := func(order int64, key string) scheduler.BillingRecord {
				return scheduler.BillingRecord{OrderID: order, Period: scheduler.Period{Key: key, Start: start, End: start.AddDate(0, 1, 0),
					Days: 31, FullDays: 31, NetCents: 100, VATCents: 19, GrossCents: 119}}
			}
			insert := func(recs ...scheduler.BillingRecord) []bool {
				t.Helper()
				var got []bool
				if err := s.JobTx(ctx, func(tx scheduler.Tx) (err error) { got, err = tx.InsertBillingRecords(recs, start); return err }); err != nil {
					t.Fatal(err)
				}
				return got
			}
			if got := insert(rec(ids[0], "2026-10")); !reflect.DeepEqual(got, []bool{true}) {
				t.Errorf("first insert: %v", got)
			}
			if got := insert(rec(ids[1], "2026-10"), rec(ids[0], "2026-10"), rec(ids[0], "2026-11")); !reflect.DeepEqual(got, []bool{true, false, true}) {
				t.Errorf("insert with one recorded before: %v, want [true false true]", got)
			}
			var n int
			if err := s.DB().Get(&n, `SELECT COUNT(*) FROM billing_reminders`); err != nil || n != 3 {
				t.Errorf("%d records (%v), want 3", n, err)
			}
		})
	}
}

// BillingStates returns the states of exactly the ids asked for, in id
// order, whatever their order and the gaps between them (it also bounds
// the query by their range).
func TestBillingStatesOfIDs(t *testing.T) {
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
			ask := []int64{ids[4], ids[0], ids[2], ids[0] + ids[4] + 1000} // unsorted, with gaps and an id without a state
			for _, withDoc := range []bool{false, true} {
				states, err := s.BillingStates(ctx, ask, withDoc)
				if err != nil {
					t.Fatal(err)
				}
				var got []int64
				for _, st := range states {
					got = append(got, st.OrderID)
					if (st.Doc != "") != withDoc {
						t.Errorf("order %d: doc %q with withDoc %v", st.OrderID, st.Doc, withDoc)
					}
				}
				if want := []int64{ids[0], ids[2], ids[4]}; !reflect.DeepEqual(got, want) {
					t.Errorf("withDoc %v: states of %v, want %v", withDoc, got, want)
				}
			}
		})
	}
}
