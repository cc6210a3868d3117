package storage_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/storage"
	"mailflow/storage/storagetest"
)

// enqueueAlerts enqueues n alerts in one transaction, the i-th with the
// ref i+1 and the bytes "raw i".
func enqueueAlerts(t *testing.T, s *storage.Store, n int) {
	t.Helper()
	err := s.InTx(context.Background(), func(tx mailflow.Tx) error {
		for i := range n {
			m := &mailflow.OutboxMessage{Ref: int64(i + 1), Kind: mailflow.KindAlert, Sender: "a@example.org",
				Recipients: []string{"b@example.org"}, MessageID: fmt.Sprintf("alert-%d@example.org", i), Raw: []byte(fmt.Sprintf("raw %d", i))}
			if err := tx.Enqueue(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOutboxMarkSentManyAndRelease checks the two batch operations of the
// sender: marking many rows sent in one statement, and handing back the
// claims on rows it will not send.
func TestOutboxMarkSentManyAndRelease(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := storagetest.Open(t, driver)
			enqueueAlerts(t, s, 4)
			now := time.Now()
			claimed, err := s.ClaimOutbox(ctx, now, 4, time.Hour)
			if err != nil || len(claimed) != 4 {
				t.Fatalf("claim: %d rows, %v", len(claimed), err)
			}
			if err := s.MarkSentMany(ctx, []int64{claimed[0].ID, claimed[1].ID}, now); err != nil {
				t.Fatal(err)
			}
			// Releasing a sent row changes nothing; a pending one is due again.
			if err := s.ReleaseOutbox(ctx, []int64{claimed[1].ID, claimed[2].ID}); err != nil {
				t.Fatal(err)
			}
			again, err := s.ClaimOutbox(ctx, now.Add(time.Second), 4, time.Hour)
			if err != nil || len(again) != 1 || again[0].ID != claimed[2].ID {
				t.Fatalf("after release: claimed %v, %v; want only row %d", again, err, claimed[2].ID)
			}
			rows, err := s.OutboxList(ctx, mailflow.OutboxSent, 10)
			if err != nil || len(rows) != 2 {
				t.Fatalf("sent rows: %d, %v", len(rows), err)
			}
			for _, r := range rows {
				if r.Attempts != 1 || r.SentAt == nil {
					t.Errorf("row %d: attempts %d, sent at %v", r.ID, r.Attempts, r.SentAt)
				}
			}
			if err := s.MarkSentMany(ctx, nil, now); err != nil {
				t.Errorf("empty batch: %v", err)
			}
		})
	}
}

// TestOutboxClaimDisjoint: two daemons on one database claim the outbox
// at the same time; each row goes to one of them, with its bytes.
func TestOutboxClaimDisjoint(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			daemons := openDaemons(t, driver)
			const n = 200
			enqueueAlerts(t, daemons[0], n)
			now := time.Now()
			claims := make([][]*mailflow.OutboxMessage, 2)
			var wg sync.WaitGroup
			for i, s := range daemons {
				wg.Go(func() {
					for {
						got, err := s.ClaimOutbox(ctx, now, 7, time.Hour)
						if err != nil {
							t.Error(err)
							return
						}
						if len(got) == 0 {
							return
						}
						claims[i] = append(claims[i], got...)
					}
				})
			}
			wg.Wait()
			seen := map[int64]int{}
			for _, c := range claims {
				for _, m := range c {
					seen[m.ID]++
					if want := fmt.Sprintf("raw %d", m.Ref-1); string(m.Raw) != want {
						t.Errorf("row %d: bytes %q, want %q", m.ID, m.Raw, want)
					}
				}
			}
			if len(seen) != n || len(claims[0])+len(claims[1]) != n {
				t.Errorf("claimed %d + %d rows, %d distinct; want %d rows, each once", len(claims[0]), len(claims[1]), len(seen), n)
			}
		})
	}
}

// TestOutboxClaimCutShort: a claim whose context ends while it runs
// either returns the rows it leased or leases none, so that a sender
// shutting down can hand every leased row back rather than leave it to
// wait for its lease to run out.
func TestOutboxClaimCutShort(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			s := storagetest.Open(t, driver)
			enqueueAlerts(t, s, 1)
			rows, err := s.OutboxList(context.Background(), "", 1)
			if err != nil || len(rows) != 1 {
				t.Fatalf("outbox: %d rows, %v", len(rows), err)
			}
			for i := range 300 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%20)*100*time.Microsecond)
				got, _ := s.ClaimOutbox(ctx, time.Now(), 1, time.Hour)
				cancel()
				if len(got) == 0 {
					// Leased to nobody, it must be there to claim.
					if got, err := s.ClaimOutbox(context.Background(), time.Now(), 1, time.Hour); err != nil || len(got) != 1 {
						t.Fatalf("try %d: the claim was cut short and the row stays leased (%d rows, %v)", i, len(got), err)
					}
				}
				if err := s.ReleaseOutbox(context.Background(), []int64{rows[0].ID}); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
