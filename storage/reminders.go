package storage

import (
	"context"
	"fmt"
	"strings"
	"time"

	"mailflow/mailflow"
)

// openStatuses is the SQL list of the statuses that are not final, and
// its arguments.
func openStatuses() (string, []any) {
	var args []any
	for _, st := range mailflow.Statuses {
		if !st.Terminal() {
			args = append(args, string(st))
		}
	}
	return strings.TrimSuffix(strings.Repeat("?,", len(args)), ","), args
}

func undecidedQuery() (string, []any) {
	list, args := openStatuses()
	return `SELECT ` + orderColumns + ` FROM orders WHERE status IN (` + list + `) AND created_at <= ? AND id > ?
		ORDER BY id LIMIT ?`, args
}

// UndecidedOrders lists orders that are not final, created at or before
// createdBefore, after afterID by id, with their histories.
func (s *Store) UndecidedOrders(ctx context.Context, createdBefore time.Time, afterID int64, limit int) ([]mailflow.Order, error) {
	q, args := undecidedQuery()
	var rows []orderRow
	if err := s.sel(ctx, &rows, q, append(args, utc(createdBefore), afterID, limit)...); err != nil {
		return nil, fmt.Errorf("storage: undecided orders: %w", err)
	}
	return ordersWithHistory(ctx, s.db, rows)
}

// LockUndecidedOrders is UndecidedOrders, locking the orders against
// concurrent decisions until the transaction ends.
func (t *Tx) LockUndecidedOrders(createdBefore time.Time, afterID int64, limit int) ([]mailflow.Order, error) {
	q, args := undecidedQuery()
	var rows []orderRow
	if err := t.sel(&rows, q+t.s.d.forUpdate, append(args, utc(createdBefore), afterID, limit)...); err != nil {
		return nil, fmt.Errorf("storage: lock undecided orders: %w", err)
	}
	return ordersWithHistory(t.ctx, t.tx, rows)
}

// ordersWithHistory decodes orders and loads all their histories with one
// query.
func ordersWithHistory(ctx context.Context, q querier, rows []orderRow) ([]mailflow.Order, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	out := make([]mailflow.Order, len(rows))
	ids := make([]int64, len(rows))
	pos := make(map[int64]int, len(rows))
	for i := range rows {
		o, err := rows[i].order()
		if err != nil {
			return nil, err
		}
		out[i], ids[i], pos[o.ID] = *o, o.ID, i
	}
	list, args := inList(ids)
	var ds []decisionRow
	if err := q.SelectContext(ctx, &ds, q.Rebind(`SELECT `+decisionColumns+` FROM decisions WHERE order_id IN (`+list+`) ORDER BY order_id, id`), args...); err != nil {
		return nil, fmt.Errorf("storage: load histories: %w", err)
	}
	for _, d := range ds {
		o := &out[pos[d.OrderID]]
		o.History = append(o.History, d.decision())
	}
	return out, nil
}

// RecordReminder records a confirmation reminder or escalation unless its
// key (order, party, kind, slot) exists.
func (t *Tx) RecordReminder(r mailflow.ReminderRecord) (bool, error) {
	res, err := t.exec(`INSERT INTO confirmation_reminders (order_id, party, kind, slot, sent_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, r.OrderID, r.Party, r.Kind, r.Slot, utc(r.SentAt))
	if err != nil {
		return false, fmt.Errorf("storage: record reminder: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// ReminderRecords lists the confirmation reminders of an order, oldest
// first.
func (s *Store) ReminderRecords(ctx context.Context, orderID int64) ([]mailflow.ReminderRecord, error) {
	var rows []struct {
		OrderID int64     `db:"order_id"`
		Party   string    `db:"party"`
		Kind    string    `db:"kind"`
		Slot    int64     `db:"slot"`
		SentAt  time.Time `db:"sent_at"`
	}
	if err := s.sel(ctx, &rows, `SELECT order_id, party, kind, slot, sent_at FROM confirmation_reminders WHERE order_id = ?
		ORDER BY sent_at, kind, party`, orderID); err != nil {
		return nil, fmt.Errorf("storage: reminder records: %w", err)
	}
	out := make([]mailflow.ReminderRecord, len(rows))
	for i, r := range rows {
		out[i] = mailflow.ReminderRecord{OrderID: r.OrderID, Party: r.Party, Kind: r.Kind, Slot: r.Slot, SentAt: r.SentAt.UTC()}
	}
	return out, nil
}

// ClaimDigest records the digest of a cron tick; false if it was sent.
func (t *Tx) ClaimDigest(slot, at time.Time) (bool, error) {
	res, err := t.exec(`INSERT INTO digest_runs (slot, sent_at) VALUES (?, ?) ON CONFLICT DO NOTHING`, utc(slot), utc(at))
	if err != nil {
		return false, fmt.Errorf("storage: claim digest: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
