package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"mailflow/mailflow"
)

// InboxTx runs fn in a transaction with the inbound methods.
func (s *Store) InboxTx(ctx context.Context, fn func(mailflow.InboxTx) error) error {
	return s.inTx(ctx, func(tx *Tx) error { return fn(tx) })
}

// VerdictProcessing marks a claimed message whose verdict is not stored yet.
const VerdictProcessing = "processing"

// ClaimInbound inserts a message unless its dedup key exists. The raw
// message follows with FinishInbound: SQLite rewrites a whole row on
// UPDATE, so a row inserted with a 10 MB message and then updated would
// write the message twice.
func (t *Tx) ClaimInbound(m *mailflow.InboundMessage) (bool, error) {
	var ids []int64
	err := t.sel(&ids, `INSERT INTO inbound (message_id, sha256, received_at, mailbox, uidvalidity, uid, from_addr, subject,
		verdict, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (message_id) DO NOTHING RETURNING id`,
		m.MessageID, m.SHA256, utc(m.ReceivedAt), m.Mailbox, int64(m.UIDValidity), int64(m.UID), m.From, m.Subject,
		VerdictProcessing, m.Size)
	if err != nil {
		return false, fmt.Errorf("storage: claim inbound: %w", mapErr(err))
	}
	if len(ids) == 0 {
		return true, nil
	}
	m.ID = ids[0]
	return false, nil
}

// rawChunk is the size above which a received message is stored in
// pieces of this size in inbound_raw (docs/benchmarks.md says why).
const rawChunk = 1 << 20

// FinishInbound stores the verdict and the raw message of a claimed
// message.
func (t *Tx) FinishInbound(m *mailflow.InboundMessage) error {
	var orderID *int64
	if m.OrderID != 0 {
		orderID = &m.OrderID
	}
	inline := m.Raw
	if len(m.Raw) > rawChunk {
		inline = nil
		for seq, rest := 0, m.Raw; len(rest) > 0; seq++ {
			chunk := rest[:min(len(rest), rawChunk)]
			rest = rest[len(chunk):]
			if _, err := t.exec(`INSERT INTO inbound_raw (inbound_id, seq, chunk) VALUES (?, ?, ?)`, m.ID, seq, chunk); err != nil {
				return fmt.Errorf("storage: finish inbound: store raw: %w", err)
			}
		}
	}
	var auth string
	if m.Auth != nil {
		b, _ := json.Marshal(m.Auth)
		auth = string(b)
	}
	_, err := t.exec(`UPDATE inbound SET verdict = ?, reason = ?, order_id = ?, party = ?, intent = ?, needs_review = ?, alert_suppressed = ?, auth = ?, raw = ? WHERE id = ?`,
		m.Verdict, m.Reason, orderID, m.Party, string(m.Intent), m.NeedsReview, m.AlertSuppressed, auth, inline, m.ID)
	if err != nil {
		return fmt.Errorf("storage: finish inbound: %w", err)
	}
	return nil
}

// OutboxByID finds the outbound message a bounce token names.
func (t *Tx) OutboxByID(id int64) (*mailflow.OutboxMessage, error) {
	var rows []outboxRow
	if err := t.sel(&rows, `SELECT `+outboxColumns+outboxFrom+` WHERE o.id = ?`, id); err != nil {
		return nil, fmt.Errorf("storage: outbox by id: %w", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("storage: outbox by id: %w", mailflow.ErrNotFound)
	}
	return rows[0].message(), nil
}

// FailOutbox marks an outbound message failed after a bounce.
func (t *Tx) FailOutbox(id int64, reason string) (bool, error) {
	res, err := t.exec(`UPDATE outbox SET status = ?, claimed_until = NULL, last_error = ? WHERE id = ? AND status <> ?`,
		mailflow.OutboxFailed, lastError(reason), id, mailflow.OutboxFailed)
	if err != nil {
		return false, fmt.Errorf("storage: fail outbox: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// AllowAnswer throttles answers to one per sender, reason and day.
func (t *Tx) AllowAnswer(sender, reason, day string) (bool, error) {
	res, err := t.exec(`INSERT INTO answer_throttle (sender, reason, day) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, sender, reason, day)
	if err != nil {
		return false, fmt.Errorf("storage: throttle answer: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// CountInboundFrom counts recent messages of a sender, for the loop guard.
func (t *Tx) CountInboundFrom(sender string, since time.Time) (int, error) {
	var n int
	if err := t.get(&n, `SELECT COUNT(*) FROM inbound WHERE from_addr = ? AND received_at >= ?`, sender, utc(since)); err != nil {
		return 0, fmt.Errorf("storage: count inbound: %w", err)
	}
	return n, nil
}

type inboundRow struct {
	ID          int64     `db:"id"`
	MessageID   string    `db:"message_id"`
	SHA256      string    `db:"sha256"`
	ReceivedAt  time.Time `db:"received_at"`
	Mailbox     string    `db:"mailbox"`
	UIDValidity int64     `db:"uidvalidity"`
	UID         int64     `db:"uid"`
	From        string    `db:"from_addr"`
	Subject     string    `db:"subject"`
	Verdict     string    `db:"verdict"`
	Reason      string    `db:"reason"`
	OrderID     *int64    `db:"order_id"`
	Number      *string   `db:"number"`
	Party       string    `db:"party"`
	Intent      string    `db:"intent"`
	NeedsReview bool      `db:"needs_review"`
	Size        int64     `db:"size"`
	Auth        string    `db:"auth"`
}

const inboundColumns = `i.id, i.message_id, i.sha256, i.received_at, i.mailbox, i.uidvalidity, i.uid, i.from_addr, i.subject,
	i.verdict, i.reason, i.order_id, o.number, i.party, i.intent, i.needs_review, i.size, i.auth`

func (r inboundRow) message() *mailflow.InboundMessage {
	m := &mailflow.InboundMessage{ID: r.ID, MessageID: r.MessageID, SHA256: r.SHA256, ReceivedAt: r.ReceivedAt.UTC(),
		Mailbox: r.Mailbox, UIDValidity: uint32(r.UIDValidity), UID: uint32(r.UID), From: r.From, Subject: r.Subject,
		Verdict: r.Verdict, Reason: r.Reason, Party: r.Party, Intent: mailflow.Intent(r.Intent), NeedsReview: r.NeedsReview, Size: r.Size}
	if r.OrderID != nil {
		m.OrderID = *r.OrderID
	}
	if r.Number != nil {
		m.OrderNumber = *r.Number
	}
	if r.Auth != "" {
		m.Auth = &mailflow.AuthCheck{}
		json.Unmarshal([]byte(r.Auth), m.Auth) // written by FinishInbound
	}
	return m
}

// InboundList lists received messages newest first; review selects those
// waiting for a person, orderID (if not 0) those of one order.
func (s *Store) InboundList(ctx context.Context, review bool, orderID int64, limit int) ([]*mailflow.InboundMessage, error) {
	where, args := " WHERE 1=1", []any{}
	if review {
		where += " AND i.needs_review = ?"
		args = append(args, true)
	}
	if orderID != 0 {
		where += " AND i.order_id = ?"
		args = append(args, orderID)
	}
	if limit <= 0 {
		limit = 100
	}
	var rows []inboundRow
	if err := s.sel(ctx, &rows, `SELECT `+inboundColumns+` FROM inbound i LEFT JOIN orders o ON o.id = i.order_id`+where+` ORDER BY i.id DESC LIMIT ?`, append(args, limit)...); err != nil {
		return nil, fmt.Errorf("storage: list inbound: %w", err)
	}
	out := make([]*mailflow.InboundMessage, len(rows))
	for i, r := range rows {
		out[i] = r.message()
	}
	return out, nil
}

// InboundRaw returns the stored bytes of a received message (nil when it
// was too large to download).
func (s *Store) InboundRaw(ctx context.Context, id int64) ([]byte, error) {
	var raw []byte
	if err := s.get(ctx, &raw, `SELECT raw FROM inbound WHERE id = ?`, id); err != nil {
		return nil, fmt.Errorf("storage: inbound raw: %w", mapErr(err))
	}
	if raw != nil {
		return raw, nil
	}
	var chunks [][]byte
	if err := s.sel(ctx, &chunks, `SELECT chunk FROM inbound_raw WHERE inbound_id = ? ORDER BY seq`, id); err != nil {
		return nil, fmt.Errorf("storage: inbound raw: %w", err)
	}
	if len(chunks) == 0 {
		return nil, nil // too large to download
	}
	return bytes.Join(chunks, nil), nil
}

// CountReview counts received messages waiting for a person.
func (s *Store) CountReview(ctx context.Context) (int, error) {
	var n int
	if err := s.get(ctx, &n, `SELECT COUNT(*) FROM inbound WHERE needs_review = ?`, true); err != nil {
		return 0, fmt.Errorf("storage: count review: %w", err)
	}
	return n, nil
}

// CountSuppressedAlerts counts received messages since `since` whose
// coordinator alert the junk throttle held back.
func (s *Store) CountSuppressedAlerts(ctx context.Context, since time.Time) (int, error) {
	var n int
	if err := s.get(ctx, &n, `SELECT COUNT(*) FROM inbound WHERE alert_suppressed = ? AND received_at >= ?`, true, utc(since)); err != nil {
		return 0, fmt.Errorf("storage: count suppressed alerts: %w", err)
	}
	return n, nil
}

// InboundVerdictCounts counts received messages per verdict.
func (s *Store) InboundVerdictCounts(ctx context.Context) (map[string]int, error) {
	var rows []struct {
		Verdict string `db:"verdict"`
		N       int    `db:"n"`
	}
	if err := s.sel(ctx, &rows, `SELECT verdict, COUNT(*) AS n FROM inbound GROUP BY verdict`); err != nil {
		return nil, fmt.Errorf("storage: inbound verdicts: %w", err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.Verdict] = r.N
	}
	return out, nil
}
