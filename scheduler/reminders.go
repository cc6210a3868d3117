package scheduler

import (
	"context"
	"fmt"
	"time"

	"mailflow/mailflow"
)

// Kinds of confirmation_reminders rows.
const (
	KindRemind   = "remind"
	KindEscalate = "escalate"
)

// ReminderEntry is one reminder or escalation a run sent.
type ReminderEntry struct {
	Order     string
	Party     string
	Undecided time.Duration // since the order notification
}

// ReminderReport is what a reminder run sent.
type ReminderReport struct {
	At        time.Time
	Orders    int // undecided orders looked at
	Reminded  []ReminderEntry
	Escalated []ReminderEntry
}

// RunReminders reminds every party that has not decided (accepted or
// rejected) an order it was notified of RemindAfter ago, once per further
// RemindAfter, and alerts the coordinator once when a party has been
// undecided for EscalateAfter. A party that declared "working" or
// "review" has not decided. Both stop when the party decides or the order
// becomes final. Time counts from the notification (the order's creation);
// a daemon that was down sends one reminder for the current interval, not
// one per missed interval.
func (s *Scheduler) RunReminders(ctx context.Context, at time.Time) (ReminderReport, error) {
	start := time.Now()
	rep := ReminderReport{At: at}
	release, err := s.lead(ctx, JobReminders)
	if err != nil {
		return rep, err
	}
	defer release()
	createdBefore := at.Add(-min(s.cfg.RemindAfter, s.cfg.EscalateAfter))
	n := s.cfg.batchSize()
	var after int64
	for {
		if err := ctx.Err(); err != nil {
			return rep, s.remindersDone(rep, start, err)
		}
		var (
			count               int
			last                int64
			reminded, escalated []ReminderEntry
		)
		err := s.store.JobTx(ctx, func(tx mailflow.JobTx) error {
			orders, err := tx.LockUndecidedOrders(createdBefore, after, n)
			if err != nil {
				return err
			}
			count = len(orders)
			var msgs []*mailflow.OutboxMessage
			for i := range orders {
				o := &orders[i]
				last = o.ID
				age := at.Sub(o.CreatedAt)
				for _, party := range UndecidedParties(o) {
					e := ReminderEntry{Order: o.Number, Party: party, Undecided: age}
					if age >= s.cfg.EscalateAfter {
						ok, err := tx.RecordReminder(mailflow.ReminderRecord{OrderID: o.ID, Party: party, Kind: KindEscalate, SentAt: s.now()})
						if err != nil {
							return err
						}
						if ok {
							m, err := s.mail.Escalation(o, party, age)
							if err != nil {
								return fmt.Errorf("compose escalation: %w", err)
							}
							msgs = append(msgs, m)
							escalated = append(escalated, e)
						}
					}
					if age >= s.cfg.RemindAfter {
						slot := int64(age / s.cfg.RemindAfter)
						ok, err := tx.RecordReminder(mailflow.ReminderRecord{OrderID: o.ID, Party: party, Kind: KindRemind, Slot: slot, SentAt: s.now()})
						if err != nil {
							return err
						}
						if ok {
							m, err := s.mail.ConfirmationReminder(o, party, age)
							if err != nil {
								return fmt.Errorf("compose reminder: %w", err)
							}
							msgs = append(msgs, m)
							reminded = append(reminded, e)
						}
					}
				}
			}
			return tx.Enqueue(msgs...)
		})
		if err != nil {
			return rep, s.remindersDone(rep, start, err)
		}
		rep.Orders += count
		rep.Reminded = append(rep.Reminded, reminded...)
		rep.Escalated = append(rep.Escalated, escalated...)
		if count < n {
			return rep, s.remindersDone(rep, start, nil)
		}
		after = last
	}
}

func (s *Scheduler) remindersDone(rep ReminderReport, start time.Time, err error) error {
	attrs := []any{"at", rep.At.Format(time.RFC3339), "orders", rep.Orders, "reminded", len(rep.Reminded),
		"escalated", len(rep.Escalated), "took", time.Since(start).Round(time.Millisecond)}
	if err != nil {
		s.log.Error("scheduler: reminder run stopped", append(attrs, "err", err)...)
		return fmt.Errorf("scheduler: reminders: %w", err)
	}
	s.log.Info("scheduler: reminder run", attrs...)
	return nil
}

// UndecidedParties returns the parties of a non-final order that have
// neither accepted nor rejected it, in the order o.Parties lists them. In
// UV a provider that accepted before the intermediary has decided: its
// acceptance takes effect when the intermediary accepts.
func UndecidedParties(o *mailflow.Order) []string {
	ev := mailflow.Evaluate(o.ContractModel, o.History)
	if ev.Status.Terminal() {
		return nil
	}
	var out []string
	for _, p := range o.Parties() {
		decided := false
		for _, d := range ev.Decisions {
			if d.Party == p && d.Effect == mailflow.EffectApplied && (d.Intent == mailflow.IntentAccept || d.Intent == mailflow.IntentReject) {
				decided = true
				break
			}
		}
		if !decided {
			out = append(out, p)
		}
	}
	return out
}
