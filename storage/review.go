package storage

import (
	"context"
	"fmt"
	"time"

	"mailflow/mailflow"
)

// The review queue: received messages with needs_review set, and how a
// coordinator took each out of it (table inbound_reviews).

var _ mailflow.ReviewStore = (*Store)(nil)

// ReviewTx runs fn in a transaction with the review methods.
func (s *Store) ReviewTx(ctx context.Context, fn func(mailflow.ReviewTx) error) error {
	return s.inTx(ctx, func(tx *Tx) error { return fn(tx) })
}

// ClaimReview takes a message out of review if it is still in it. The
// WHERE clause is the guard: on PostgreSQL a concurrent claim of the same
// row waits for the first to commit, then finds needs_review false and
// changes nothing; SQLite runs the transactions one after the other.
func (t *Tx) ClaimReview(inboundID int64) (bool, error) {
	res, err := t.exec(`UPDATE inbound SET needs_review = ? WHERE id = ? AND needs_review = ?`, false, inboundID, true)
	if err != nil {
		return false, fmt.Errorf("storage: claim review: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("storage: claim review: %w", err)
	}
	return n == 1, nil
}

// InsertReview records how a claimed message left review; an attachment
// also links the message to its order. The primary key on inbound_id
// refuses a second resolution even without the claim.
func (t *Tx) InsertReview(r *mailflow.ReviewResolution) error {
	if _, err := t.exec(`INSERT INTO inbound_reviews (inbound_id, action, actor, at, reason, order_id, decision_id)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.InboundID, r.Action, r.Actor, utc(r.At), r.Reason, nullID(r.OrderID), nullID(r.DecisionID)); err != nil {
		return fmt.Errorf("storage: insert review: %w", mapErr(err))
	}
	if r.Action == mailflow.ReviewAttached {
		if _, err := t.exec(`UPDATE inbound SET order_id = ? WHERE id = ?`, r.OrderID, r.InboundID); err != nil {
			return fmt.Errorf("storage: link reviewed message: %w", err)
		}
	}
	return nil
}

// InboundForReview returns a received message and its resolution.
func (t *Tx) InboundForReview(id int64) (*mailflow.InboundMessage, *mailflow.ReviewResolution, error) {
	return inboundForReview(t.ctx, t.tx, id)
}

// InboundMessage returns one received message (without its raw bytes)
// and, if it left review, how; ErrNotFound if there is none.
func (s *Store) InboundMessage(ctx context.Context, id int64) (*mailflow.InboundMessage, *mailflow.ReviewResolution, error) {
	return inboundForReview(ctx, s.db, id)
}

func inboundForReview(ctx context.Context, q querier, id int64) (*mailflow.InboundMessage, *mailflow.ReviewResolution, error) {
	var rows []inboundRow
	if err := q.SelectContext(ctx, &rows, q.Rebind(`SELECT `+inboundColumns+` FROM inbound i LEFT JOIN orders o ON o.id = i.order_id WHERE i.id = ?`), id); err != nil {
		return nil, nil, fmt.Errorf("storage: inbound message: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil, fmt.Errorf("storage: inbound message %d: %w", id, mailflow.ErrNotFound)
	}
	var rs []reviewRow
	if err := q.SelectContext(ctx, &rs, q.Rebind(`SELECT `+reviewColumns+reviewFrom+` WHERE r.inbound_id = ?`), id); err != nil {
		return nil, nil, fmt.Errorf("storage: inbound message: %w", err)
	}
	var res *mailflow.ReviewResolution
	if len(rs) > 0 {
		res = rs[0].resolution()
	}
	return rows[0].message(), res, nil
}

// ReviewQueue lists the received messages waiting for a person, oldest
// first (a queue is worked from the front), with the order each was
// matched to, if any.
func (s *Store) ReviewQueue(ctx context.Context, limit, offset int) ([]*mailflow.InboundMessage, error) {
	if limit <= 0 {
		limit = 50
	}
	var rows []inboundRow
	if err := s.sel(ctx, &rows, `SELECT `+inboundColumns+` FROM inbound i LEFT JOIN orders o ON o.id = i.order_id
		WHERE i.needs_review = ? ORDER BY i.id LIMIT ? OFFSET ?`, true, limit, max(offset, 0)); err != nil {
		return nil, fmt.Errorf("storage: review queue: %w", err)
	}
	out := make([]*mailflow.InboundMessage, len(rows))
	for i, r := range rows {
		out[i] = r.message()
	}
	return out, nil
}

// OrderReviews lists how messages of an order left review, oldest first:
// attached to it, or dismissed while matched to it.
func (s *Store) OrderReviews(ctx context.Context, orderID int64) ([]*mailflow.ReviewResolution, error) {
	return s.reviews(ctx, ` WHERE r.order_id = ? ORDER BY r.at, r.inbound_id`, orderID)
}

// RecentReviews lists the latest resolutions, newest first.
func (s *Store) RecentReviews(ctx context.Context, limit int) ([]*mailflow.ReviewResolution, error) {
	if limit <= 0 {
		limit = 20
	}
	return s.reviews(ctx, ` ORDER BY r.at DESC, r.inbound_id DESC LIMIT ?`, limit)
}

func (s *Store) reviews(ctx context.Context, tail string, args ...any) ([]*mailflow.ReviewResolution, error) {
	var rows []reviewRow
	if err := s.sel(ctx, &rows, `SELECT `+reviewColumns+reviewFrom+tail, args...); err != nil {
		return nil, fmt.Errorf("storage: list reviews: %w", err)
	}
	out := make([]*mailflow.ReviewResolution, len(rows))
	for i, r := range rows {
		out[i] = r.resolution()
	}
	return out, nil
}

type reviewRow struct {
	InboundID      int64     `db:"inbound_id"`
	Action         string    `db:"action"`
	Actor          string    `db:"actor"`
	At             time.Time `db:"at"`
	Reason         string    `db:"reason"`
	OrderID        *int64    `db:"order_id"`
	Number         *string   `db:"number"`
	DecisionID     *int64    `db:"decision_id"`
	Party          *string   `db:"party"`
	Intent         *string   `db:"intent"`
	DecisionReason *string   `db:"decision_reason"`
	From           string    `db:"from_addr"`
	Subject        string    `db:"subject"`
}

const reviewColumns = `r.inbound_id, r.action, r.actor, r.at, r.reason, r.order_id, o.number, r.decision_id,
	d.party, d.intent, d.reason AS decision_reason, i.from_addr, i.subject`

const reviewFrom = ` FROM inbound_reviews r JOIN inbound i ON i.id = r.inbound_id
	LEFT JOIN orders o ON o.id = r.order_id LEFT JOIN decisions d ON d.id = r.decision_id`

func (r reviewRow) resolution() *mailflow.ReviewResolution {
	res := &mailflow.ReviewResolution{InboundID: r.InboundID, Action: r.Action, Actor: r.Actor, At: r.At.UTC(),
		Reason: r.Reason, From: r.From, Subject: r.Subject}
	if r.OrderID != nil {
		res.OrderID = *r.OrderID
	}
	if r.Number != nil {
		res.OrderNumber = *r.Number
	}
	if r.DecisionID != nil {
		res.DecisionID = *r.DecisionID
	}
	if r.Party != nil {
		res.Party = *r.Party
	}
	if r.Intent != nil {
		res.Intent = mailflow.Intent(*r.Intent)
	}
	if r.DecisionReason != nil {
		res.DecisionReason = *r.DecisionReason
	}
	return res
}

// nullID stores 0 as NULL, for optional references.
func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}
