package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"

	"mailflow/mailflow"
)

type outboxRow struct {
	ID            int64      `db:"id"`
	OrderID       *int64     `db:"order_id"`
	OrderNumber   *string    `db:"number"`
	Ref           int64      `db:"ref"`
	Kind          string     `db:"kind"`
	Party         string     `db:"party"`
	Sender        string     `db:"sender"`
	Recipients    string     `db:"recipients"`
	MessageID     string     `db:"message_id"`
	Subject       string     `db:"subject"`
	Status        string     `db:"status"`
	Attempts      int        `db:"attempts"`
	NextAttemptAt time.Time  `db:"next_attempt_at"`
	LastError     string     `db:"last_error"`
	CreatedAt     time.Time  `db:"created_at"`
	SentAt        *time.Time `db:"sent_at"`
}

func (r outboxRow) message() *mailflow.OutboxMessage {
	m := &mailflow.OutboxMessage{ID: r.ID, Ref: r.Ref, Kind: r.Kind, Party: r.Party, Sender: r.Sender,
		MessageID: r.MessageID, Subject: r.Subject, Status: r.Status, Attempts: r.Attempts,
		NextAttemptAt: r.NextAttemptAt.UTC(), LastError: r.LastError, CreatedAt: r.CreatedAt.UTC(), SentAt: utcPtr(r.SentAt)}
	if r.OrderID != nil {
		m.OrderID = *r.OrderID
	}
	if r.OrderNumber != nil {
		m.OrderNumber = *r.OrderNumber
	}
	json.Unmarshal([]byte(r.Recipients), &m.Recipients)
	return m
}

const outboxColumns = `o.id, o.order_id, ord.number, o.ref, o.kind, o.party, o.sender, o.recipients, o.message_id, o.subject,
	o.status, o.attempts, o.next_attempt_at, o.last_error, o.created_at, o.sent_at`

const outboxFrom = ` FROM outbox o LEFT JOIN orders ord ON ord.id = o.order_id`

// Statements of the outbox's hot path, prepared at start-up (prepareHot).
const (
	enqueueSQL = `INSERT INTO outbox (order_id, ref, kind, party, sender, recipients, message_id, subject,
		status, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
	enqueueRawSQL = `INSERT INTO outbox_raw (outbox_id, raw, sha256) VALUES (?, ?, ?)`
	// enqueueOneSQL (PostgreSQL) is enqueueSQL and enqueueRawSQL in one
	// statement; its parameters are enqueueSQL's and then the bytes and
	// their hash.
	enqueueOneSQL = `WITH queued AS (` + enqueueSQL + `)
		INSERT INTO outbox_raw (outbox_id, raw, sha256) SELECT id, ?::bytea, ? FROM queued RETURNING outbox_id`
)

// claimDueSQL selects the ids of due, unclaimed rows; with PostgreSQL
// it locks them, skipping rows another daemon is claiming.
func (d dialect) claimDueSQL() string {
	q := `SELECT id FROM outbox WHERE status = ? AND next_attempt_at <= ?
			AND (claimed_until IS NULL OR claimed_until <= ?) ORDER BY next_attempt_at, id LIMIT ?`
	if d.name == "postgres" {
		q += " FOR UPDATE SKIP LOCKED"
	}
	return q
}

// claimSQL claims due rows and returns them with their message bytes in
// one statement (PostgreSQL; "" for SQLite, which claims in three and
// reads the bytes after commit, see ClaimOutbox). Its parameters are
// claimDueSQL's and then the end of the lease.
func (d dialect) claimSQL() string {
	if d.name != "postgres" {
		return ""
	}
	return `WITH due AS (` + d.claimDueSQL() + `),
		claimed AS (UPDATE outbox SET claimed_until = ? FROM due WHERE outbox.id = due.id RETURNING outbox.*)
		SELECT ` + outboxColumns + `, r.raw FROM claimed o LEFT JOIN orders ord ON ord.id = o.order_id
		LEFT JOIN outbox_raw r ON r.outbox_id = o.id ORDER BY o.next_attempt_at, o.id`
}

// idIn is the condition "col is one of the ids" with the ids as one
// parameter (idsArg), so that the statement's text is the same for any
// number of them and can be prepared: a JSON array in SQLite, an array in
// PostgreSQL.
func (d dialect) idIn(col string) string {
	if d.name == "postgres" {
		return col + " = ANY(?)"
	}
	return col + " IN (SELECT value FROM json_each(?))"
}

// idsArg is the parameter of idIn.
func (d dialect) idsArg(ids []int64) any {
	if d.name == "postgres" {
		return pq.Array(ids)
	}
	return jsonInts(ids)
}

// jsonInts is a JSON array of integers, for SQLite's json_each.
func jsonInts(ids []int64) string {
	b := make([]byte, 0, len(ids)*8+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

// The statements of claiming, reading and marking a batch of rows.
func (d dialect) claimMarkSQL() string {
	return `UPDATE outbox SET claimed_until = ? WHERE ` + d.idIn("id")
}

func (d dialect) claimRowsSQL() string {
	return `SELECT ` + outboxColumns + outboxFrom + ` WHERE ` + d.idIn("o.id") + ` ORDER BY o.next_attempt_at, o.id`
}

func (d dialect) loadRawSQL() string {
	return `SELECT outbox_id, raw FROM outbox_raw WHERE ` + d.idIn("outbox_id")
}

func (d dialect) markSentManySQL() string {
	return `UPDATE outbox SET status = ?, sent_at = ?, attempts = attempts + 1, claimed_until = NULL, last_error = '' WHERE ` + d.idIn("id")
}

// Enqueue adds messages to the outbox in the caller's transaction: the
// row, and the raw bytes in outbox_raw, which are never
// changed afterwards.
func (t *Tx) Enqueue(msgs ...*mailflow.OutboxMessage) error {
	for _, m := range msgs {
		if m == nil {
			continue
		}
		if len(m.Raw) == 0 {
			return fmt.Errorf("storage: enqueue %s: no message bytes", m.Kind)
		}
		rcpt, _ := json.Marshal(m.Recipients)
		if m.CreatedAt.IsZero() {
			m.CreatedAt = time.Now()
		}
		if m.NextAttemptAt.IsZero() {
			m.NextAttemptAt = m.CreatedAt
		}
		m.Status = mailflow.OutboxPending
		var orderID *int64
		if m.OrderID != 0 {
			orderID = &m.OrderID
		}
		args := []any{orderID, m.Ref, m.Kind, m.Party, m.Sender, string(rcpt), m.MessageID, m.Subject,
			m.Status, utc(m.NextAttemptAt), utc(m.CreatedAt)}
		// The hash of the bytes as they will be sent, before the database
		// stores (and PostgreSQL compresses) them: the evidence export
		// checks the stored bytes against it.
		sum := sha256.Sum256(m.Raw)
		m.SHA256 = hex.EncodeToString(sum[:])
		var err error
		if t.s.d.inOne {
			err = t.getPrepared(&m.ID, enqueueOneSQL, append(args, m.Raw, m.SHA256)...)
		} else if err = t.getPrepared(&m.ID, enqueueSQL, args...); err == nil {
			_, err = t.execPrepared(enqueueRawSQL, m.ID, m.Raw, m.SHA256)
		}
		if err != nil {
			return fmt.Errorf("storage: enqueue: %w", mapErr(err))
		}
	}
	return nil
}

// ClaimOutbox leases up to limit due messages to this sender until
// now+lease. A message whose sender died is claimed again once its lease
// ends; with PostgreSQL several daemons claim disjoint rows (SKIP LOCKED).
// With PostgreSQL one statement claims the rows and returns them with
// their bytes: one round trip instead of six (begin, select, update,
// select, commit, read the bytes). With SQLite the bytes are read after
// the claim has committed: they never change, and SQLite's write lock is
// held for the small rows only.
func (s *Store) ClaimOutbox(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]*mailflow.OutboxMessage, error) {
	if q := s.d.claimSQL(); q != "" {
		// The statement commits by itself: were it cut short when ctx
		// ends (a shutdown), it could commit and its rows stay leased to
		// nobody until the lease ran out. It runs to its end, and the
		// sender hands back the rows it will not send.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		var rows []struct {
			outboxRow
			Raw []byte `db:"raw"`
		}
		if err := s.selPrepared(cctx, &rows, q, mailflow.OutboxPending, utc(now), utc(now), limit, utc(now.Add(lease))); err != nil {
			return nil, fmt.Errorf("storage: claim outbox: %w", err)
		}
		var out []*mailflow.OutboxMessage
		for _, r := range rows {
			m := r.message()
			m.Raw = r.Raw
			out = append(out, m)
		}
		return out, nil
	}
	var out []*mailflow.OutboxMessage
	err := s.inTx(ctx, func(tx *Tx) error {
		var ids []int64
		if err := tx.selPrepared(&ids, s.d.claimDueSQL(),
			mailflow.OutboxPending, utc(now), utc(now), limit); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		set := s.d.idsArg(ids)
		if _, err := tx.execPrepared(s.d.claimMarkSQL(), utc(now.Add(lease)), set); err != nil {
			return err
		}
		var rows []outboxRow
		if err := tx.selPrepared(&rows, s.d.claimRowsSQL(), set); err != nil {
			return err
		}
		for _, r := range rows {
			out = append(out, r.message())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: claim outbox: %w", mapErr(err))
	}
	if len(out) == 0 {
		return nil, nil
	}
	// The claim has committed: the rows are this sender's until their
	// lease ends, so their bytes are read even if ctx ended meanwhile (a
	// shutdown), and the sender hands back what it will not send. Should
	// the read fail, the claims are given up here.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.loadRaw(rctx, out); err != nil {
		ids := make([]int64, len(out))
		for i, m := range out {
			ids[i] = m.ID
		}
		if rerr := s.ReleaseOutbox(rctx, ids); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, fmt.Errorf("storage: claim outbox: read messages: %w", err)
	}
	return out, nil
}

// loadRaw sets the raw bytes of msgs. A row without bytes keeps Raw nil;
// the sender refuses to send it.
func (s *Store) loadRaw(ctx context.Context, msgs []*mailflow.OutboxMessage) error {
	ids := make([]int64, len(msgs))
	byID := make(map[int64]*mailflow.OutboxMessage, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
		byID[m.ID] = m
	}
	rows, err := s.queryPrepared(ctx, s.d.loadRawSQL(), s.d.idsArg(ids))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			return err
		}
		if m := byID[id]; m != nil {
			m.Raw = raw
		}
	}
	return rows.Err()
}

func inList(ids []int64) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return strings.TrimSuffix(strings.Repeat("?,", len(ids)), ","), args
}

// MarkSent records a delivered message.
func (s *Store) MarkSent(ctx context.Context, id int64, at time.Time) error {
	_, err := s.exec(ctx, `UPDATE outbox SET status = ?, sent_at = ?, attempts = attempts + 1, claimed_until = NULL, last_error = '' WHERE id = ?`,
		mailflow.OutboxSent, utc(at), id)
	if err != nil {
		return fmt.Errorf("storage: mark sent: %w", err)
	}
	return nil
}

// MarkSentMany records delivered messages in one statement, so a busy
// sender needs one write for many messages.
func (s *Store) MarkSentMany(ctx context.Context, ids []int64, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.execPrepared(ctx, s.d.markSentManySQL(), mailflow.OutboxSent, utc(at), s.d.idsArg(ids))
	if err != nil {
		return fmt.Errorf("storage: mark sent: %w", err)
	}
	return nil
}

// ReleaseOutbox ends the claims on pending rows that a sender holds but
// will not send (it is shutting down), so they are due again at once
// rather than when their lease runs out.
func (s *Store) ReleaseOutbox(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	q, args := inList(ids)
	_, err := s.exec(ctx, `UPDATE outbox SET claimed_until = NULL WHERE status = ? AND id IN (`+q+`)`,
		append([]any{mailflow.OutboxPending}, args...)...)
	if err != nil {
		return fmt.Errorf("storage: release outbox: %w", err)
	}
	return nil
}

// maxErrorText is how many characters of an error last_error keeps.
const maxErrorText = 1000

// lastError makes an error text storable: it often quotes a remote
// server's reply, which may hold any bytes, and a value PostgreSQL refuses
// would leave the row pending and failing forever.
func lastError(reason string) string { return mailflow.CleanText(reason, maxErrorText) }

// MarkRetry records a temporary failure and when to try again.
func (s *Store) MarkRetry(ctx context.Context, id int64, next time.Time, reason string) error {
	_, err := s.exec(ctx, `UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, claimed_until = NULL, last_error = ? WHERE id = ? AND status = ?`,
		utc(next), lastError(reason), id, mailflow.OutboxPending)
	if err != nil {
		return fmt.Errorf("storage: mark retry: %w", err)
	}
	return nil
}

// MarkFailed records a permanent failure. It reports whether this call
// changed the row, so the coordinator is alerted once.
func (s *Store) MarkFailed(ctx context.Context, id int64, reason string) (bool, error) {
	res, err := s.exec(ctx, `UPDATE outbox SET status = ?, attempts = attempts + 1, claimed_until = NULL, last_error = ? WHERE id = ? AND status <> ?`,
		mailflow.OutboxFailed, lastError(reason), id, mailflow.OutboxFailed)
	if err != nil {
		return false, fmt.Errorf("storage: mark failed: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// NextOutboxDue returns when the earliest pending message is due, or
// false when none is pending.
func (s *Store) NextOutboxDue(ctx context.Context) (time.Time, bool, error) {
	var rows []struct {
		Next  time.Time  `db:"next_attempt_at"`
		Claim *time.Time `db:"claimed_until"`
	}
	if err := s.sel(ctx, &rows, `SELECT next_attempt_at, claimed_until FROM outbox WHERE status = ? ORDER BY next_attempt_at LIMIT 50`, mailflow.OutboxPending); err != nil {
		return time.Time{}, false, fmt.Errorf("storage: next outbox due: %w", err)
	}
	var best time.Time
	for _, r := range rows {
		t := r.Next
		if r.Claim != nil && r.Claim.After(t) {
			t = *r.Claim
		}
		if best.IsZero() || t.Before(best) {
			best = t
		}
	}
	return best, !best.IsZero(), nil
}

// OutboxList lists outbox rows newest first; status "" lists all.
func (s *Store) OutboxList(ctx context.Context, status string, limit int) ([]*mailflow.OutboxMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	where, args := "", []any{}
	if status != "" {
		where, args = " WHERE o.status = ?", append(args, status)
	}
	var rows []outboxRow
	if err := s.sel(ctx, &rows, `SELECT `+outboxColumns+outboxFrom+where+` ORDER BY o.id DESC LIMIT ?`, append(args, limit)...); err != nil {
		return nil, fmt.Errorf("storage: list outbox: %w", err)
	}
	out := make([]*mailflow.OutboxMessage, len(rows))
	for i, r := range rows {
		out[i] = r.message()
	}
	return out, nil
}

// OrderMessages returns the outbox rows of one order, oldest first.
func (s *Store) OrderMessages(ctx context.Context, orderID int64) ([]*mailflow.OutboxMessage, error) {
	var rows []outboxRow
	if err := s.sel(ctx, &rows, `SELECT `+outboxColumns+outboxFrom+` WHERE o.order_id = ? ORDER BY o.id`, orderID); err != nil {
		return nil, fmt.Errorf("storage: order messages: %w", err)
	}
	out := make([]*mailflow.OutboxMessage, len(rows))
	for i, r := range rows {
		out[i] = r.message()
	}
	return out, nil
}

// OutboxRaw returns the stored bytes of one outbound message.
func (s *Store) OutboxRaw(ctx context.Context, id int64) ([]byte, error) {
	var raw []byte
	if err := s.get(ctx, &raw, `SELECT raw FROM outbox_raw WHERE outbox_id = ?`, id); err != nil {
		return nil, fmt.Errorf("storage: outbox raw: %w", mapErr(err))
	}
	return raw, nil
}

// OutboxMessage returns one outbound message without its raw bytes, or
// ErrNotFound.
func (s *Store) OutboxMessage(ctx context.Context, id int64) (*mailflow.OutboxMessage, error) {
	var r outboxRow
	if err := s.get(ctx, &r, `SELECT `+outboxColumns+outboxFrom+` WHERE o.id = ?`, id); err != nil {
		return nil, fmt.Errorf("storage: outbox message: %w", mapErr(err))
	}
	return r.message(), nil
}

// OutboxByMessageID finds an outbound message by its Message-ID.
func (s *Store) OutboxByMessageID(ctx context.Context, messageID string) (*mailflow.OutboxMessage, error) {
	var r outboxRow
	if err := s.get(ctx, &r, `SELECT `+outboxColumns+outboxFrom+` WHERE o.message_id = ?`, messageID); err != nil {
		return nil, fmt.Errorf("storage: outbox by message id: %w", mapErr(err))
	}
	return r.message(), nil
}

// RetryOutbox puts a failed (or pending) row back into the queue now.
func (s *Store) RetryOutbox(ctx context.Context, id int64, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE outbox SET status = ?, next_attempt_at = ?, claimed_until = NULL WHERE id = ? AND status <> ?`,
		mailflow.OutboxPending, utc(now), id, mailflow.OutboxSent)
	if err != nil {
		return fmt.Errorf("storage: retry outbox: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var status string
		if err := s.get(ctx, &status, `SELECT status FROM outbox WHERE id = ?`, id); err != nil {
			return fmt.Errorf("storage: retry outbox %d: %w", id, mapErr(err))
		}
		return fmt.Errorf("storage: retry outbox %d: %w: already sent", id, mailflow.ErrConflict)
	}
	return nil
}

// OutboxStats counts rows per status and the age of the oldest pending one.
func (s *Store) OutboxStats(ctx context.Context, now time.Time) (map[string]int, time.Duration, error) {
	var rows []struct {
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	if err := s.sel(ctx, &rows, `SELECT status, COUNT(*) AS n FROM outbox GROUP BY status`); err != nil {
		return nil, 0, fmt.Errorf("storage: outbox stats: %w", err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	var oldest []time.Time
	if err := s.sel(ctx, &oldest, `SELECT created_at FROM outbox WHERE status = ? ORDER BY created_at LIMIT 1`, mailflow.OutboxPending); err != nil {
		return nil, 0, fmt.Errorf("storage: outbox stats: %w", err)
	}
	var age time.Duration
	if len(oldest) > 0 {
		age = now.Sub(oldest[0])
	}
	return out, age, nil
}
