package storage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/storage"
	"mailflow/storage/storagetest"
)

// retentionFixture stores an order created at `at` by flow, with a
// received and a sent mail at the same time; decide (if not "") is the
// provider's decision.
func retentionOrder(t *testing.T, s *storage.Store, at time.Time, decide mailflow.Intent, n int) *mailflow.Order {
	t.Helper()
	ctx := context.Background()
	flow := &mailflow.Flow{Store: s, Now: func() time.Time { return at }}
	req := loadOrder(t, "order-dv.json")
	req.ExternalID = fmt.Sprintf("retention-%d", n)
	o, _, err := flow.CreateOrder(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if decide != "" {
		d := mailflow.Decision{Party: mailflow.PartyProvider, Intent: decide, Source: mailflow.SourceManual, Actor: "test"}
		if decide == mailflow.IntentReject {
			d.Reason = "Kein Bedarf mehr"
		}
		if o, err = flow.Decide(ctx, o.Number, d); err != nil {
			t.Fatal(err)
		}
	}
	storeMails(t, s, o.ID, at, fmt.Sprint(n))
	return o
}

// storeMails stores a received and a sent mail of the order (0: none).
func storeMails(t *testing.T, s *storage.Store, orderID int64, at time.Time, key string) {
	t.Helper()
	ctx := context.Background()
	raw := []byte("From: a@b.example\r\nMessage-ID: <" + key + "@b.example>\r\n\r\nHallo")
	var out *mailflow.OutboxMessage
	err := s.InboxTx(ctx, func(tx mailflow.InboxTx) error {
		m := &mailflow.InboundMessage{MessageID: key + "@b.example", SHA256: "x", ReceivedAt: at, Verdict: mailflow.VerdictAutoReply,
			OrderID: orderID, Size: int64(len(raw)), Raw: raw}
		if _, err := tx.ClaimInbound(m); err != nil {
			return err
		}
		if err := tx.FinishInbound(m); err != nil {
			return err
		}
		out = &mailflow.OutboxMessage{OrderID: orderID, Ref: time.Now().UnixNano(), Kind: mailflow.KindAlert, Sender: "x@example.org",
			Recipients: []string{"k@example.org"}, MessageID: "out-" + key + "@example.org", Subject: "s", Raw: []byte("raw " + key), CreatedAt: at}
		return tx.Enqueue(out)
	})
	if err == nil {
		err = s.MarkSent(ctx, out.ID, at)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// The retention job deletes only what is past its cutoff: a final order
// quiet since before it with all that belongs to it, never an open one
// however old; the bytes of old mails except an open order's, keeping
// the rows and their hashes; old records of exported evidence. A second
// run finds nothing, zero cutoffs delete nothing.
func TestDeleteExpired(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := openWithCatalog(t, driver)
			old := time.Date(2018, 3, 1, 10, 0, 0, 0, time.UTC)
			recent := time.Now().Add(-24 * time.Hour)
			finalOld := retentionOrder(t, s, old, mailflow.IntentAccept, 1)
			openOld := retentionOrder(t, s, old, "", 2)
			finalNew := retentionOrder(t, s, recent, mailflow.IntentReject, 3)
			storeMails(t, s, 0, old, "junk") // matched no order
			for _, at := range []time.Time{old, recent} {
				if err := s.RecordEvidenceExport(ctx, mailflow.EvidenceExport{OrderNumber: finalOld.Number, ExportedAt: at, Actor: "t", ManifestSHA256: "x"}); err != nil {
					t.Fatal(err)
				}
			}

			if rep, err := s.DeleteExpired(ctx, mailflow.RetentionCutoffs{}); err != nil || rep != (mailflow.RetentionReport{}) {
				t.Fatalf("zero cutoffs: %+v %v", rep, err)
			}
			cut := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
			rep, err := s.DeleteExpired(ctx, mailflow.RetentionCutoffs{Orders: cut, RawMail: cut, Evidence: cut})
			if err != nil {
				t.Fatal(err)
			}
			want := mailflow.RetentionReport{Orders: 1, DecisionsRows: 1, InboundRows: 1, OutboundRows: 1, InboundRaw: 1, OutboundRaw: 1, EvidenceLog: 1}
			if rep != want {
				t.Errorf("report %+v, want %+v", rep, want)
			}
			if _, err := s.Order(ctx, finalOld.Number); !errors.Is(err, mailflow.ErrNotFound) {
				t.Errorf("the old final order is still there: %v", err)
			}
			for _, o := range []*mailflow.Order{openOld, finalNew} {
				mails, err := s.OrderMails(ctx, o.ID)
				if err != nil {
					t.Fatal(err)
				}
				if len(mails) != 2 {
					t.Fatalf("order %s has %d mails, want 2", o.Number, len(mails))
				}
				for _, m := range mails {
					if n, err := s.CopyRaw(ctx, m, discard{}); err != nil || n == 0 || m.RawDeletedAt != nil {
						t.Errorf("order %s lost a mail's bytes: %d %v", o.Number, n, err)
					}
				}
			}
			junk, err := s.InboundList(ctx, false, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range junk {
				if m.MessageID == "junk@b.example" {
					if raw, err := s.InboundRaw(ctx, m.ID); err != nil || raw != nil || m.SHA256 == "" {
						t.Errorf("unmatched old mail: bytes %q (%v), hash %q; want the bytes gone, the row and hash kept", raw, err, m.SHA256)
					}
				}
			}
			if ex, _ := s.EvidenceExports(ctx, finalOld.Number); len(ex) != 1 || !ex[0].ExportedAt.After(cut) {
				t.Errorf("export records: %+v, want the recent one", ex)
			}
			if rep, err := s.DeleteExpired(ctx, mailflow.RetentionCutoffs{Orders: cut, RawMail: cut, Evidence: cut}); err != nil || rep != (mailflow.RetentionReport{}) {
				t.Errorf("second run: %+v %v, want nothing deleted", rep, err)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
