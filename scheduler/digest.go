package scheduler

import (
	"context"
	"fmt"
	"time"

	"mailflow/mailflow"
)

// Digest list limits: the mail names this many and counts the rest.
const (
	digestMaxOverdue = 50
	digestMaxFailed  = 20
)

// StatusCount is how many orders are in one status.
type StatusCount struct {
	Status mailflow.Status
	Count  int
}

// Overdue is a party that has not decided an order for longer than
// EscalateAfter.
type Overdue struct {
	Number    string
	Status    mailflow.Status
	Party     string // mailflow.PartyProvider or mailflow.PartyIntermediary
	PartyName string
	Since     time.Time // the notification
	For       time.Duration
}

// Days is For in whole days.
func (o Overdue) Days() int { return int(o.For / (24 * time.Hour)) }

// DigestData is what the coordinator's digest reports.
type DigestData struct {
	At time.Time
	// Statuses lists every status in the status page's order, also those
	// with no orders; Orders is their sum.
	Statuses []StatusCount
	Orders   int
	// Overdue lists the longest-undecided parties first, at most
	// digestMaxOverdue; OverdueTotal counts all.
	Overdue       []Overdue
	OverdueTotal  int
	EscalateAfter time.Duration
	// Review counts received messages waiting for a person.
	Review int
	// SuppressedAlerts counts the junk messages (unmatched,
	// unauthenticated, too large, malformed) of the 24 hours before At
	// whose alert was held back, one having gone out for the same sender
	// within the hour; they are in review all the same.
	SuppressedAlerts int
	// Failed lists the newest failed outbox rows, FailedTotal counts all.
	Failed      []*mailflow.OutboxMessage
	FailedTotal int
	// Pending counts unsent outbox rows; OldestPending is the age of the
	// oldest.
	Pending       int
	OldestPending time.Duration
}

// EscalateDays is EscalateAfter in whole days.
func (d DigestData) EscalateDays() int { return int(d.EscalateAfter / (24 * time.Hour)) }

// OldestPendingHours is OldestPending in whole hours.
func (d DigestData) OldestPendingHours() int { return int(d.OldestPending / time.Hour) }

// Attention reports whether the digest has something to act on.
func (d DigestData) Attention() bool { return d.OverdueTotal > 0 || d.Review > 0 || d.FailedTotal > 0 }

// DigestReport is what a digest run did.
type DigestReport struct {
	Sent bool // false: the digest of this cron tick was sent before
	Data DigestData
}

// RunDigest sends the coordinator the digest of the state at `at`: orders
// per status, overdue orders, inbound messages waiting in review, failed
// outbox rows. One digest is sent per cron tick (at, to the minute), also
// when several daemons run the job for the same tick.
func (s *Scheduler) RunDigest(ctx context.Context, at time.Time) (DigestReport, error) {
	start := time.Now()
	var rep DigestReport
	release, err := s.lead(ctx, JobDigest)
	if err != nil {
		return rep, err
	}
	defer release()
	d, err := s.digestData(ctx, at)
	if err != nil {
		return rep, fmt.Errorf("scheduler: digest: %w", err)
	}
	rep.Data = d
	err = s.store.JobTx(ctx, func(tx mailflow.JobTx) error {
		ok, err := tx.ClaimDigest(at.Truncate(time.Minute), s.now())
		if err != nil || !ok {
			return err
		}
		m, err := s.mail.Digest(d)
		if err != nil {
			return fmt.Errorf("compose digest: %w", err)
		}
		rep.Sent = true
		return tx.Enqueue(m)
	})
	if err != nil {
		rep.Sent = false
		s.log.Error("scheduler: digest failed", "err", err)
		return rep, fmt.Errorf("scheduler: digest: %w", err)
	}
	s.log.Info("scheduler: digest", "at", at.Format(time.RFC3339), "sent", rep.Sent, "orders", d.Orders,
		"overdue", d.OverdueTotal, "review", d.Review, "alerts_held_back", d.SuppressedAlerts, "failed", d.FailedTotal, "took", time.Since(start).Round(time.Millisecond))
	return rep, nil
}

func (s *Scheduler) digestData(ctx context.Context, at time.Time) (DigestData, error) {
	d := DigestData{At: at, EscalateAfter: s.cfg.EscalateAfter}
	counts, err := s.store.StatusCounts(ctx)
	if err != nil {
		return d, err
	}
	for _, st := range mailflow.Statuses {
		d.Statuses = append(d.Statuses, StatusCount{Status: st, Count: counts[st]})
		d.Orders += counts[st]
	}
	n := s.cfg.batchSize()
	for after := int64(0); ; {
		orders, err := s.store.UndecidedOrders(ctx, at.Add(-s.cfg.EscalateAfter), after, n)
		if err != nil {
			return d, err
		}
		for i := range orders {
			o := &orders[i]
			after = o.ID
			for _, party := range UndecidedParties(o) {
				d.OverdueTotal++
				if len(d.Overdue) < digestMaxOverdue {
					p, _ := o.Party(party)
					d.Overdue = append(d.Overdue, Overdue{Number: o.Number, Status: o.Status, Party: party, PartyName: p.Name,
						Since: o.CreatedAt, For: at.Sub(o.CreatedAt)})
				}
			}
		}
		if len(orders) < n {
			break
		}
	}
	if d.Review, err = s.store.CountReview(ctx); err != nil {
		return d, err
	}
	if d.SuppressedAlerts, err = s.store.CountSuppressedAlerts(ctx, at.Add(-24*time.Hour)); err != nil {
		return d, err
	}
	stats, oldest, err := s.store.OutboxStats(ctx, at)
	if err != nil {
		return d, err
	}
	d.FailedTotal, d.Pending = stats[mailflow.OutboxFailed], stats[mailflow.OutboxPending]
	if d.Pending > 0 {
		d.OldestPending = max(oldest, 0) // a clock behind the rows' creation
	}
	if d.FailedTotal > 0 {
		if d.Failed, err = s.store.OutboxList(ctx, mailflow.OutboxFailed, digestMaxFailed); err != nil {
			return d, err
		}
	}
	return d, nil
}
