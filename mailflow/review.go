package mailflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"mailflow/mailflow/reply"
)

// The review queue (docs/design.md §4 "The review queue"): every received
// message the inbox sent to a person waits there until a coordinator
// attaches it to an order with the decision it asks for, or dismisses it
// with a reason. Nothing is deleted; the message only leaves the queue.

// SourceReview is the source of a decision a coordinator recorded from a
// received message in review. It sends what a manual decision sends (no
// acknowledgement: the sender was not authenticated by the inbox, and
// answers never go to unauthenticated senders).
const SourceReview = "review"

// How a message left the review queue.
const (
	ReviewAttached  = "attached"  // attached to an order with a decision
	ReviewDismissed = "dismissed" // dismissed with a reason
)

// maxReviewReason is the longest dismissal reason, in characters, as for
// a decision's reason.
const maxReviewReason = 4000

// ReviewResolution is how a person took a received message out of review.
type ReviewResolution struct {
	InboundID int64     `json:"inbound_id"`
	Action    string    `json:"action"` // ReviewAttached or ReviewDismissed
	Actor     string    `json:"actor"`  // the coordinator
	At        time.Time `json:"at"`
	Reason    string    `json:"reason,omitempty"` // why it was dismissed
	// OrderID is the order it was attached to, or for a dismissal the
	// order it was matched to (0: none).
	OrderID     int64  `json:"-"`
	OrderNumber string `json:"order,omitempty"`
	// DecisionID is the decision an attachment recorded; Party, Intent
	// and DecisionReason are that decision's, for lists.
	DecisionID     int64  `json:"decision_id,omitempty"`
	Party          string `json:"party,omitempty"`
	Intent         Intent `json:"intent,omitempty"`
	DecisionReason string `json:"decision_reason,omitempty"`
	// From and Subject are the message's, for lists.
	From    string `json:"from,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// ErrNotInReview is returned for a message that never waited for review
// (it was processed without a person).
var ErrNotInReview = errors.New("the message is not waiting for review")

// AlreadyResolvedError says that someone took the message out of review
// before: a double submit, or two coordinators at once. It is ErrConflict.
type AlreadyResolvedError struct {
	Resolution *ReviewResolution
}

func (e *AlreadyResolvedError) Error() string {
	r := e.Resolution
	return fmt.Sprintf("message %d was already %s by %s at %s", r.InboundID, r.Action, r.Actor, r.At.UTC().Format(time.RFC3339))
}

// Is makes an AlreadyResolvedError an ErrConflict.
func (e *AlreadyResolvedError) Is(target error) bool { return target == ErrConflict }

// ReviewTx is what resolving a message in review needs inside its
// transaction.
type ReviewTx interface {
	Tx
	// InboundForReview returns a received message (without its raw bytes)
	// and how it left review (nil while it has not), or ErrNotFound.
	InboundForReview(id int64) (*InboundMessage, *ReviewResolution, error)
	// ClaimReview takes a message out of review if it is still in it:
	// one conditional UPDATE, so of two concurrent claims one gets true
	// and the other (on PostgreSQL after waiting for the first to commit)
	// false.
	ClaimReview(inboundID int64) (bool, error)
	// InsertReview records how a claimed message left review and, for an
	// attachment, links the message to r.OrderID.
	InsertReview(r *ReviewResolution) error
}

// ReviewStore runs review transactions; storage.Store implements it.
type ReviewStore interface {
	ReviewTx(ctx context.Context, fn func(ReviewTx) error) error
}

// countingReviewTx counts enqueued messages, for OnEnqueue.
type countingReviewTx struct {
	ReviewTx
	n int
}

func (t *countingReviewTx) Enqueue(msgs ...*OutboxMessage) error {
	if err := t.ReviewTx.Enqueue(msgs...); err != nil {
		return err
	}
	t.n += len(msgs)
	return nil
}

// reviewTx runs fn in a review transaction of the flow's store.
func (s *Flow) reviewTx(ctx context.Context, fn func(ReviewTx) error) error {
	rs, ok := s.Store.(ReviewStore)
	if !ok {
		return errors.New("mailflow: review: the store keeps no review queue")
	}
	var ct *countingReviewTx
	err := rs.ReviewTx(ctx, func(tx ReviewTx) error {
		ct = &countingReviewTx{ReviewTx: tx}
		return fn(ct)
	})
	if err == nil && ct != nil {
		s.enqueued(ct.n)
	}
	return err
}

// claim takes the message out of review or says why it cannot: it does
// not exist (ErrNotFound), someone was first (*AlreadyResolvedError), or
// it never was in review (ErrNotInReview).
func claim(tx ReviewTx, inboundID int64) (*InboundMessage, error) {
	ok, err := tx.ClaimReview(inboundID)
	if err != nil {
		return nil, err
	}
	// Read after the claim: on PostgreSQL a losing claim waited for the
	// winner's commit, whose resolution this statement sees.
	m, prior, err := tx.InboundForReview(inboundID)
	if err != nil {
		return nil, err
	}
	switch {
	case ok:
		return m, nil
	case prior != nil:
		return nil, &AlreadyResolvedError{Resolution: prior}
	}
	return nil, ErrNotInReview
}

// AttachReviewed attaches a received message in review to the order
// number and records the decision it asks for, as d says (Party, Intent,
// Reason; Actor is the coordinator). The decision goes through the same
// path as one by mail or by hand — status, effects and mails are the
// same — with source "review" and the message's Message-ID. The message
// leaves the queue, linked to the order. A message that someone took out
// of review before gives an *AlreadyResolvedError and changes nothing.
func (s *Flow) AttachReviewed(ctx context.Context, inboundID int64, number string, d Decision) (*Order, *ReviewResolution, error) {
	if strings.TrimSpace(d.Actor) == "" {
		return nil, nil, errors.New("mailflow: attach reviewed message: no actor")
	}
	// A form field may hold any bytes; PostgreSQL refuses invalid UTF-8
	// as a parameter, and an order number has none.
	number = strings.TrimSpace(CleanText(number, 100))
	var o *Order
	var res *ReviewResolution
	err := s.reviewTx(ctx, func(tx ReviewTx) error {
		// Claim before the order is locked: a losing submit stops here
		// and learns who was first, whatever else it got wrong; and every
		// transaction locks the message before the order.
		m, err := claim(tx, inboundID)
		if err != nil {
			return err
		}
		var verr ValidationError
		if m.Verdict == VerdictConflict {
			// Its declaration is in the order's history already.
			verr.add("message", "its declaration was recorded when it arrived (after the order was final); dismiss it with a reason instead")
			return &verr
		}
		if number == "" {
			verr.add("order", "is required")
			return &verr
		}
		o, err = tx.LockOrder(number)
		if errors.Is(err, ErrNotFound) {
			verr.add("order", "no order has the number %q", CleanText(number, 40))
			return &verr
		} else if err != nil {
			return err
		}
		d.Source, d.MessageID, d.At = SourceReview, m.MessageID, time.Time{}
		if err := ValidateDecision(o, &d); err != nil {
			return err
		}
		rec, err := s.apply(tx, o, d)
		if err != nil {
			return err
		}
		res = &ReviewResolution{InboundID: m.ID, Action: ReviewAttached, Actor: d.Actor, At: rec.At,
			OrderID: o.ID, OrderNumber: o.Number, DecisionID: rec.ID, Party: rec.Party, Intent: rec.Intent,
			DecisionReason: rec.Reason, From: m.From, Subject: m.Subject}
		return tx.InsertReview(res)
	})
	if err != nil {
		return nil, nil, err
	}
	return o, res, nil
}

// DismissReviewed takes a received message out of review without a
// decision: reason (required, at most 4000 characters, cleaned with
// CleanText) says why, actor is the coordinator. The message is kept;
// when it was matched to an order, the order's history shows the
// dismissal. A message that someone took out of review before gives an
// *AlreadyResolvedError and changes nothing.
func (s *Flow) DismissReviewed(ctx context.Context, inboundID int64, reason, actor string) (*ReviewResolution, error) {
	if strings.TrimSpace(actor) == "" {
		return nil, errors.New("mailflow: dismiss reviewed message: no actor")
	}
	reason = strings.TrimSpace(CleanText(reason, 0))
	var verr ValidationError
	switch n := utf8.RuneCountInString(reason); {
	case n == 0:
		verr.add("reason", "is required")
	case n > maxReviewReason:
		verr.add("reason", "must be at most %d characters", maxReviewReason)
	}
	var res *ReviewResolution
	err := s.reviewTx(ctx, func(tx ReviewTx) error {
		m, err := claim(tx, inboundID)
		if err != nil {
			return err
		}
		if err := verr.orNil(); err != nil {
			return err
		}
		res = &ReviewResolution{InboundID: m.ID, Action: ReviewDismissed, Actor: actor, At: s.now().UTC(),
			Reason: reason, OrderID: m.OrderID, OrderNumber: m.OrderNumber, From: m.From, Subject: m.Subject}
		return tx.InsertReview(res)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// ReviewReading is what a person needs to read a received message in
// review: its plain text and what the reply parser made of it.
type ReviewReading struct {
	To      []string  // recipients as received
	Date    time.Time // the Date header; zero if absent
	Text    string    // the plain text (HTML turned into text), quotes kept
	Cut     bool      // Text was cut at MaxReviewText characters
	Intent  Intent    // the keyword found, "" if none
	Reason  string    // a rejection's reason as found
	Problem string    // why nothing could be read, "" if the message parsed
}

// MaxReviewText is how much of a message's text the review page shows;
// the .eml download keeps everything.
const MaxReviewText = 100000

// ReadForReview parses a stored message for the review page. It never
// fails: a message the parser cannot read says so in Problem.
func ReadForReview(raw []byte) ReviewReading {
	if raw == nil {
		return ReviewReading{Problem: "not stored"}
	}
	msg, err := reply.Parse(raw)
	if err != nil {
		return ReviewReading{Problem: "unreadable: " + CleanText(err.Error(), 200)}
	}
	cleanMessage(msg)
	r := ReviewReading{To: msg.Recipients, Date: msg.Date, Text: msg.Text}
	if utf8.RuneCountInString(r.Text) > MaxReviewText {
		r.Text, r.Cut = CleanText(r.Text, MaxReviewText), true
	}
	if intent, reason, _, _ := reply.ExtractIntent(msg.Text); intent != reply.IntentNone {
		r.Intent, r.Reason = Intent(intent), CleanText(reason, maxReviewReason)
	}
	return r
}

// SuggestOrder returns the order number a message in review points to:
// the order it is linked to, else the one its subject tag names. The
// inbox links a message to an order only when a secret matched it (a
// reply token) — a subject tag is public, and linking by it would let
// anyone put text onto an order's page — so a tag-only match is a
// suggestion for the person, no more. linked says which it is.
func SuggestOrder(m *InboundMessage) (number string, linked bool) {
	if m.OrderNumber != "" {
		return m.OrderNumber, true
	}
	return reply.SubjectOrderNumber(m.Subject), false
}

// SuggestParty returns the party of o that from is registered to answer
// for, when exactly one is; else "".
func SuggestParty(o *Order, from string) string {
	var found []string
	for _, p := range o.Parties() {
		if pt, ok := o.Party(p); ok && pt.MaySend(from) {
			found = append(found, p)
		}
	}
	if len(found) == 1 {
		return found[0]
	}
	return ""
}
