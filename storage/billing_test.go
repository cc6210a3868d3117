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
