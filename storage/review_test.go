package storage_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/storage"
	"mailflow/storage/storagetest"
)

// storeInbound stores a received message with a verdict, as the inbox does.
func storeInbound(t *testing.T, s *storage.Store, key, verdict string, orderID int64, review bool) *mailflow.InboundMessage {
	t.Helper()
	raw := []byte("From: someone@example.net\r\nSubject: " + key + "\r\nMessage-ID: <" + key + ">\r\n\r\nBESTÄTIGT\r\n")
	m := &mailflow.InboundMessage{MessageID: key, SHA256: "x", ReceivedAt: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC),
		From: "someone@example.net", Subject: key, Size: int64(len(raw)), Raw: raw}
	err := s.InboxTx(context.Background(), func(tx mailflow.InboxTx) error {
		if _, err := tx.ClaimInbound(m); err != nil {
			return err
		}
		m.Verdict, m.Reason, m.OrderID, m.NeedsReview = verdict, "why: "+verdict, orderID, review
		return tx.FinishInbound(m)
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestReviewQueueAndClaim(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := openWithCatalog(t, driver)
			flow := &mailflow.Flow{Store: s}
			o, _, err := flow.CreateOrder(ctx, loadOrder(t, "order-dv.json"))
			if err != nil {
				t.Fatal(err)
			}
			unmatched := storeInbound(t, s, "a@x", mailflow.VerdictUnmatched, 0, true)
			matched := storeInbound(t, s, "b@x", mailflow.VerdictUnauthenticated, o.ID, true)
			storeInbound(t, s, "c@x", mailflow.VerdictApplied, o.ID, false)

			q, err := s.ReviewQueue(ctx, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(q) != 2 || q[0].ID != unmatched.ID || q[1].ID != matched.ID {
				t.Fatalf("queue %+v, want the unmatched and the matched message, oldest first", q)
			}
			if q[0].OrderNumber != "" || q[1].OrderNumber != o.Number || q[1].Reason != "why: unauthenticated" {
				t.Errorf("queue rows: %+v %+v", q[0], q[1])
			}
			if q, _ := s.ReviewQueue(ctx, 1, 1); len(q) != 1 || q[0].ID != matched.ID {
				t.Errorf("second page of one: %+v", q)
			}

			// A claim succeeds once; the message keeps its bytes.
			var first, second bool
			err = s.ReviewTx(ctx, func(tx mailflow.ReviewTx) error {
				var err error
				if first, err = tx.ClaimReview(matched.ID); err != nil {
					return err
				}
				if second, err = tx.ClaimReview(matched.ID); err != nil {
					return err
				}
				return tx.InsertReview(&mailflow.ReviewResolution{InboundID: matched.ID, Action: mailflow.ReviewDismissed,
					Actor: "koordination", At: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), Reason: "Werbung", OrderID: o.ID})
			})
			if err != nil {
				t.Fatal(err)
			}
			if !first || second {
				t.Errorf("claims: %v then %v, want true then false", first, second)
			}
			if n, _ := s.CountReview(ctx); n != 1 {
				t.Errorf("%d in review after the claim, want 1", n)
			}
			if raw, err := s.InboundRaw(ctx, matched.ID); err != nil || string(raw) != string(matched.Raw) {
				t.Errorf("raw after dismissal: %q %v", raw, err)
			}
			m, r, err := s.InboundMessage(ctx, matched.ID)
			if err != nil {
				t.Fatal(err)
			}
			if m.NeedsReview || r == nil || r.Action != mailflow.ReviewDismissed || r.Actor != "koordination" || r.Reason != "Werbung" ||
				r.OrderNumber != o.Number || !r.At.Equal(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)) || r.From != "someone@example.net" {
				t.Errorf("message %+v, resolution %+v", m, r)
			}
			if _, r, _ := s.InboundMessage(ctx, unmatched.ID); r != nil {
				t.Errorf("an open message has a resolution: %+v", r)
			}
			if _, _, err := s.InboundMessage(ctx, 999999); !errors.Is(err, mailflow.ErrNotFound) {
				t.Errorf("unknown message: %v", err)
			}
			// A second resolution of one message is refused by the key too.
			err = s.ReviewTx(ctx, func(tx mailflow.ReviewTx) error {
				return tx.InsertReview(&mailflow.ReviewResolution{InboundID: matched.ID, Action: mailflow.ReviewDismissed, Actor: "x", At: time.Now()})
			})
			if !errors.Is(err, mailflow.ErrConflict) {
				t.Errorf("second resolution: %v, want a conflict", err)
			}
			if rs, _ := s.OrderReviews(ctx, o.ID); len(rs) != 1 || rs[0].InboundID != matched.ID {
				t.Errorf("order reviews %+v", rs)
			}
			if rs, _ := s.RecentReviews(ctx, 0); len(rs) != 1 {
				t.Errorf("recent reviews %+v", rs)
			}

			// An attachment links the unmatched message to its order.
			err = s.ReviewTx(ctx, func(tx mailflow.ReviewTx) error {
				if ok, err := tx.ClaimReview(unmatched.ID); err != nil || !ok {
					return fmt.Errorf("claim: %v %v", ok, err)
				}
				return tx.InsertReview(&mailflow.ReviewResolution{InboundID: unmatched.ID, Action: mailflow.ReviewAttached,
					Actor: "koordination", At: time.Now(), OrderID: o.ID})
			})
			if err != nil {
				t.Fatal(err)
			}
			if m, _, _ := s.InboundMessage(ctx, unmatched.ID); m.OrderNumber != o.Number {
				t.Errorf("attached message not linked: %+v", m)
			}
			if q, _ := s.ReviewQueue(ctx, 0, 0); len(q) != 0 {
				t.Errorf("queue not empty: %+v", q)
			}
		})
	}
}

// TestReviewClaimRace lets several transactions claim one message at once:
// exactly one wins, on both drivers.
func TestReviewClaimRace(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := storagetest.Open(t, driver)
			m := storeInbound(t, s, "race@x", mailflow.VerdictUnmatched, 0, true)
			const n = 8
			var wg sync.WaitGroup
			wins := make(chan int, n)
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					err := s.ReviewTx(ctx, func(tx mailflow.ReviewTx) error {
						ok, err := tx.ClaimReview(m.ID)
						if err != nil || !ok {
							return err
						}
						wins <- i
						return tx.InsertReview(&mailflow.ReviewResolution{InboundID: m.ID, Action: mailflow.ReviewDismissed,
							Actor: fmt.Sprint("k", i), At: time.Now(), Reason: "r"})
					})
					if err != nil {
						t.Errorf("claim %d: %v", i, err)
					}
				}()
			}
			close(start)
			wg.Wait()
			close(wins)
			var won []int
			for i := range wins {
				won = append(won, i)
			}
			if len(won) != 1 {
				t.Fatalf("%d claims won, want 1", len(won))
			}
			if _, r, _ := s.InboundMessage(ctx, m.ID); r == nil || r.Actor != fmt.Sprint("k", won[0]) {
				t.Errorf("resolution %+v, want the winner's", r)
			}
		})
	}
}

// BenchmarkReviewQueue reads the first page of the queue and its count
// among 20,000 received messages, 1,000 of them in review: what the
// queue page asks the database.
func BenchmarkReviewQueue(b *testing.B) {
	for _, driver := range storagetest.Drivers() {
		b.Run(driver, func(b *testing.B) {
			ctx := context.Background()
			s := storagetest.Open(b, driver)
			err := s.InboxTx(ctx, func(tx mailflow.InboxTx) error {
				for i := range 20000 {
					m := &mailflow.InboundMessage{MessageID: fmt.Sprintf("<%d@bench>", i), SHA256: "x", ReceivedAt: time.Now(),
						From: "a@b.example", Subject: "s", Raw: []byte("Subject: s\r\n\r\nx")}
					if _, err := tx.ClaimInbound(m); err != nil {
						return err
					}
					m.Verdict, m.NeedsReview = mailflow.VerdictApplied, i%20 == 0
					if err := tx.FinishInbound(m); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.DB().Exec(`ANALYZE`); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if n, err := s.CountReview(ctx); err != nil || n != 1000 {
					b.Fatal(n, err)
				}
				if q, err := s.ReviewQueue(ctx, 50, 0); err != nil || len(q) != 50 {
					b.Fatal(len(q), err)
				}
			}
		})
	}
}

// TestReviewRetention: the retention job deletes a final order with the
// review records of its messages (attached or dismissed), and keeps the
// record of a dismissed message that belonged to no order.
func TestReviewRetention(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := openWithCatalog(t, driver)
			at := time.Date(2019, 3, 1, 9, 0, 0, 0, time.UTC)
			o := retentionOrder(t, s, at, mailflow.IntentReject, 1)
			flow := &mailflow.Flow{Store: s, Now: func() time.Time { return at }}
			review := func(key string, orderID int64) *mailflow.InboundMessage {
				m := &mailflow.InboundMessage{MessageID: key, SHA256: "x", ReceivedAt: at, From: "x@y.example", Raw: []byte("Subject: s\r\n\r\nx")}
				err := s.InboxTx(ctx, func(tx mailflow.InboxTx) error {
					if _, err := tx.ClaimInbound(m); err != nil {
						return err
					}
					m.Verdict, m.OrderID, m.NeedsReview = mailflow.VerdictUnmatched, orderID, true
					return tx.FinishInbound(m)
				})
				if err != nil {
					t.Fatal(err)
				}
				return m
			}
			attached, linked, loose := review("r1@x", 0), review("r2@x", o.ID), review("r3@x", 0)
			if _, _, err := flow.AttachReviewed(ctx, attached.ID, o.Number, mailflow.Decision{Party: "provider", Intent: "accept", Actor: "k"}); err != nil {
				t.Fatal(err)
			}
			for _, m := range []*mailflow.InboundMessage{linked, loose} {
				if _, err := flow.DismissReviewed(ctx, m.ID, "erledigt", "k"); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := s.DeleteExpired(ctx, mailflow.RetentionCutoffs{Orders: at.AddDate(1, 0, 0)})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Orders != 1 {
				t.Fatalf("deleted %d orders, want 1", rep.Orders)
			}
			rs, err := s.RecentReviews(ctx, 10)
			if err != nil || len(rs) != 1 || rs[0].InboundID != loose.ID {
				t.Errorf("review records after retention: %+v %v, want only the loose message's", rs, err)
			}
		})
	}
}
