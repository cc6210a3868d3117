package storage_test

import (
	"context"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/scheduler"
	"mailflow/storage/storagetest"
)

// AdvanceBilling is a compare-and-set: a run that planned from a state
// another run has moved on advances nothing, so it bills nothing.
func TestAdvanceBillingCompareAndSet(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := storagetest.Open(t, driver)
			if err := s.ImportCatalog(ctx, loadCatalog(t)); err != nil {
				t.Fatal(err)
			}
			flow := &mailflow.Flow{Store: s}
			o, _, err := flow.CreateOrder(ctx, loadOrder(t, "order-dv.json"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := flow.Decide(ctx, o.Number, mailflow.Decision{Party: mailflow.PartyProvider, Intent: mailflow.IntentAccept,
				Source: mailflow.SourceManual}); err != nil {
				t.Fatal(err)
			}
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

// DequeueBillingLines removes exactly the lines it is given and counts
// them; where a line is missing or (SQLite, which removes a party's range
// of lines) another lies between them, the count differs from the number
// of keys, and the caller's transaction rolls back.
func TestDequeueBillingLines(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := storagetest.Open(t, driver)
			line := func(party string, order int64, period string) scheduler.LineKey {
				return scheduler.LineKey{Role: mailflow.PartyProvider, PartyID: party, OrderID: order, PeriodKey: period}
			}
			a, b, c, d := line("p1", 1, "2026-10"), line("p1", 1, "2026-11"), line("p1", 2, "2026-10"), line("p1", 10, "2026-10")
			other := line("p2", 1, "2026-10")
			if err := s.JobTx(ctx, func(tx scheduler.Tx) error { return tx.QueueBillingLines([]scheduler.LineKey{a, b, c, d, other}) }); err != nil {
				t.Fatal(err)
			}
			dequeue := func(keys ...scheduler.LineKey) int {
				t.Helper()
				var n int
				if err := s.JobTx(ctx, func(tx scheduler.Tx) (err error) { n, err = tx.DequeueBillingLines(keys); return err }); err != nil {
					t.Fatal(err)
				}
				return n
			}
			if n := dequeue(b); n != 1 {
				t.Errorf("dequeue b: %d", n)
			}
			if n := dequeue(b); n != 0 {
				t.Errorf("dequeue b again: %d", n)
			}
			n := dequeue(a, d) // c lies between them
			if driver == "sqlite" && n == 2 || driver == "postgres" && n != 2 {
				t.Errorf("dequeue a, d with c between: %d", n)
			}
			var left []struct {
				Party  string `db:"party_id"`
				Order  int64  `db:"order_id"`
				Period string `db:"period_key"`
			}
			if err := s.DB().Select(&left, `SELECT party_id, order_id, period_key FROM billing_queue ORDER BY party_id, order_id`); err != nil {
				t.Fatal(err)
			}
			if driver == "postgres" && (len(left) != 2 || left[0].Order != 2 || left[1].Party != "p2") {
				t.Errorf("left in the queue: %v", left)
			}
			if n := dequeue(other, c); driver == "postgres" && n != 2 {
				t.Errorf("dequeue lines of two parties: %d", n)
			}
		})
	}
}
