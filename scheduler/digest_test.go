package scheduler_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// The digest counts orders per status, lists orders undecided beyond
// escalate_after, and counts messages waiting in review and failed outbox
// rows; one digest goes out per cron tick.
func TestDigest(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			t0 := at(e.loc, 2026, 11, 16, 9, 0)
			e.setClock(t0)
			overdue := e.order("order-uv.json", "")
			e.decide(overdue, mailflow.PartyIntermediary, mailflow.IntentAccept, t0.Add(time.Hour))
			e.bound("order-dv.json", "", t0.Add(2*time.Hour))
			e.setClock(t0.Add(5 * 24 * time.Hour))
			recent := e.order("order-dv.json", "") // undecided, but not for 120h yet
			e.decide(recent, mailflow.PartyProvider, mailflow.IntentReview, t0.Add(5*24*time.Hour+time.Hour))

			// A message waiting for a person, and a bounced notification.
			err := e.store.InboxTx(e.ctx, func(tx mailflow.InboxTx) error {
				m := &mailflow.InboundMessage{MessageID: "q@example.org", SHA256: "x", ReceivedAt: t0, From: "x@example.org"}
				if _, err := tx.ClaimInbound(m); err != nil {
					return err
				}
				m.Verdict, m.NeedsReview = mailflow.VerdictUnmatched, true
				return tx.FinishInbound(m)
			})
			if err != nil {
				t.Fatal(err)
			}
			// Junk whose alert the throttle held back, already looked at:
			// one within the digest's 24 hours, one before.
			tick := at(e.loc, 2026, 11, 23, 7, 0)
			for i, received := range []time.Time{tick.Add(-time.Hour), tick.Add(-25 * time.Hour)} {
				err := e.store.InboxTx(e.ctx, func(tx mailflow.InboxTx) error {
					m := &mailflow.InboundMessage{MessageID: fmt.Sprintf("junk%d@example.org", i), SHA256: "y", ReceivedAt: received, From: "mallory@evil.example"}
					if _, err := tx.ClaimInbound(m); err != nil {
						return err
					}
					m.Verdict, m.AlertSuppressed = mailflow.VerdictUnauthenticated, true
					return tx.FinishInbound(m)
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			failed := sentKind(t, e, mailflow.KindNotification)
			if _, err := e.store.MarkFailed(e.ctx, failed.ID, "550 5.1.1 user unknown"); err != nil {
				t.Fatal(err)
			}

			e.setClock(tick)
			rep, err := e.sched.RunDigest(e.ctx, tick)
			if err != nil {
				t.Fatal(err)
			}
			d := rep.Data
			if !rep.Sent || d.Orders != 3 || len(d.Statuses) != len(mailflow.Statuses) {
				t.Errorf("sent %v, %d orders, %d statuses", rep.Sent, d.Orders, len(d.Statuses))
			}
			counts := map[mailflow.Status]int{}
			for _, c := range d.Statuses {
				counts[c.Status] = c.Count
			}
			if counts[mailflow.StatusOrdered] != 1 || counts[mailflow.StatusWorkingIntermediary] != 1 || counts[mailflow.StatusReviewProviderDV] != 1 || counts[mailflow.StatusOpen] != 0 {
				t.Errorf("status counts %v", counts)
			}
			var od []string
			for _, o := range d.Overdue {
				od = append(od, o.Number+"/"+o.Party+"/"+o.PartyName+"/"+o.For.String())
			}
			if want := []string{overdue.Number + "/provider/IT.NRW/166h0m0s"}; !slices.Equal(od, want) || d.OverdueTotal != 1 {
				t.Errorf("overdue %v (total %d), want %v", od, d.OverdueTotal, want)
			}
			if d.Review != 1 || d.FailedTotal != 1 || len(d.Failed) != 1 || d.Failed[0].ID != failed.ID || d.SuppressedAlerts != 1 {
				t.Errorf("review %d, failed %d %v, alerts held back %d", d.Review, d.FailedTotal, d.Failed, d.SuppressedAlerts)
			}
			digests := e.outbox(mailflow.KindDigest)
			if len(digests) != 1 || !slices.Equal(digests[0].Recipients, []string{"koordinierung@example.org"}) {
				t.Fatalf("%d digests", len(digests))
			}
			mustContain(t, "digest", digests[0].Text,
				"[mailflow] Übersicht vom 23.11.2026: 1 überfällig, 1 zur Prüfung, 1 nicht zustellbar",
				"Bestellungen nach Status (3 insgesamt):",
				"     1  Bestätigt durch Intermediär\n", "     1  In Prüfung durch Anbieter (DV)\n", "     1  Bestellt\n", "     0  Offen\n",
				"Überfällig, seit mehr als 5 Tagen unentschieden: 1\n  "+overdue.Number+"  Anbieter IT.NRW, seit 16.11.2026 (6 Tage), Bestätigt durch Intermediär",
				"Eingegangene Nachrichten zur Prüfung: 1",
				"Warnungen zurückgehalten (höchstens eine je Absender und Stunde), letzte 24 Std.: 1",
				"Nicht zustellbare Nachrichten: 1", "550 5.1.1 user unknown", "mailflow outbox retry ID")
			if strings.Contains(digests[0].Text, recent.Number) {
				t.Error("the digest lists an order undecided for less than escalate_after")
			}

			// The same tick again (another daemon, a retry): nothing new.
			again, err := e.sched.RunDigest(e.ctx, tick.Add(30*time.Second))
			if err != nil || again.Sent {
				t.Errorf("second digest of a tick: sent %v, %v", again.Sent, err)
			}
			if next, err := e.sched.RunDigest(e.ctx, tick.Add(24*time.Hour)); err != nil || !next.Sent {
				t.Errorf("next day's digest: sent %v, %v", next.Sent, err)
			}
			if n := len(e.outbox(mailflow.KindDigest)); n != 2 {
				t.Errorf("%d digests, want 2", n)
			}
		})
	}
}

// sentKind returns the first outbox row of a kind.
func sentKind(t *testing.T, e *env, kind string) *mailflow.OutboxMessage {
	t.Helper()
	all := e.outbox(kind)
	if len(all) == 0 {
		// Without a Notifier nothing was enqueued at creation: enqueue one.
		m := &mailflow.OutboxMessage{Ref: 424242, Kind: kind, Sender: "bestellungen@example.org",
			Recipients: []string{"x@example.org"}, MessageID: "failed@example.org", Subject: "s", Raw: []byte("x")}
		if err := e.store.InTx(e.ctx, func(tx mailflow.Tx) error { return tx.Enqueue(m) }); err != nil {
			t.Fatal(err)
		}
		return m
	}
	return all[0].OutboxMessage
}
