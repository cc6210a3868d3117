package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/lib/pq"

	"mailflow/mailflow"
)

var _ mailflow.JobTx = (*Tx)(nil)

// JobTx runs fn in one transaction with the scheduler's methods. A panic
// in fn (a template bug in a job, say) rolls the transaction back before it
// goes on up to the job's recover: an abandoned SQLite transaction would
// keep the database locked.
func (s *Store) JobTx(ctx context.Context, fn func(mailflow.JobTx) error) error {
	var panicked any
	err := s.inTx(ctx, func(tx *Tx) (err error) {
		defer func() {
			if p := recover(); p != nil {
				panicked, err = p, fmt.Errorf("storage: job transaction: panic: %v", p)
			}
		}()
		return fn(tx)
	})
	if panicked != nil {
		panic(panicked)
	}
	return err
}

// registerBilling adds a binding order to billing_orders, due at its
// binding time, with what billing needs of its snapshot. It does nothing
// if the order is registered.
func (t *Tx) registerBilling(orderID int64) error {
	var n int
	if err := t.get(&n, `SELECT COUNT(*) FROM billing_orders WHERE order_id = ?`, orderID); err != nil || n > 0 {
		return err
	}
	var r struct {
		Number         string    `db:"number"`
		ContractModel  string    `db:"contract_model"`
		ProviderID     string    `db:"provider_id"`
		IntermediaryID string    `db:"intermediary_id"`
		BindingAt      time.Time `db:"binding_at"`
		Snapshot       string    `db:"snapshot"`
	}
	if err := t.get(&r, `SELECT number, contract_model, provider_id, COALESCE(intermediary_id, '') AS intermediary_id, binding_at,
		snapshot FROM orders WHERE id = ? AND binding_at IS NOT NULL`, orderID); err != nil {
		return fmt.Errorf("storage: register billing of order %d: %w", orderID, mapErr(err))
	}
	var sn mailflow.Snapshot
	if err := json.Unmarshal([]byte(r.Snapshot), &sn); err != nil {
		return fmt.Errorf("storage: register billing of order %d: snapshot: %w", orderID, err)
	}
	doc, err := json.Marshal(mailflow.NewBillingDoc(&sn))
	if err != nil {
		return fmt.Errorf("storage: register billing of order %d: %w", orderID, err)
	}
	if _, err := t.exec(`INSERT INTO billing_orders (order_id, number, contract_model, provider_id, intermediary_id, binding_at,
		due_at, price_interval, amount_cents, vat_percent, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING`,
		orderID, r.Number, r.ContractModel, r.ProviderID, r.IntermediaryID, utc(r.BindingAt), utc(r.BindingAt),
		sn.Price.Interval, sn.Price.AmountCents, sn.Price.VATPercent, string(doc)); err != nil {
		return fmt.Errorf("storage: register billing of order %d: %w", orderID, err)
	}
	return nil
}

// DueBilling lists the ids of the orders due by now, in id order, by the
// index on due_at: however many orders there are, a run that finds none
// due costs next to nothing. (They are sorted here: with ORDER BY, SQLite
// scans the table in id order instead.)
func (s *Store) DueBilling(ctx context.Context, now time.Time) ([]int64, error) {
	var ids []int64
	if err := s.sel(ctx, &ids, `SELECT order_id FROM billing_orders WHERE due_at <= ?`, utc(now)); err != nil {
		return nil, fmt.Errorf("storage: due billing: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// dueOrdersSQL selects the orders due by now with ids from lo to hi: a
// batch of a billing run.
const dueOrdersSQL = `SELECT order_id, number, contract_model, provider_id, intermediary_id, binding_at, due_at, price_interval,
	amount_cents, vat_percent, doc FROM billing_orders WHERE order_id BETWEEN ? AND ? AND due_at <= ? ORDER BY order_id`

func scanBillingOrders(rows *sql.Rows, err error) ([]mailflow.BillingOrder, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []mailflow.BillingOrder
	for rows.Next() {
		var o mailflow.BillingOrder
		if err := rows.Scan(&o.OrderID, &o.Number, &o.Model, &o.ProviderID, &o.IntermediaryID, &o.BindingAt, &o.DueAt, &o.Interval,
			&o.AmountCents, &o.VATPercent, &o.Doc); err != nil {
			return nil, err
		}
		o.BindingAt, o.DueAt = o.BindingAt.UTC(), o.DueAt.UTC()
		out = append(out, o)
	}
	return out, rows.Err()
}

// DueBillingOrders reads the orders due by now with ids from lo to hi,
// for a dry run.
func (s *Store) DueBillingOrders(ctx context.Context, lo, hi int64, now time.Time) ([]mailflow.BillingOrder, error) {
	out, err := scanBillingOrders(s.db.QueryContext(ctx, s.db.Rebind(dueOrdersSQL), lo, hi, utc(now)))
	if err != nil {
		return nil, fmt.Errorf("storage: due billing orders: %w", err)
	}
	return out, nil
}

// LockDueBillingOrders is DueBillingOrders in the transaction, locking
// the orders until it ends: a concurrent run waits and then finds them
// no longer due. (SQLite's transactions lock the whole database.)
func (t *Tx) LockDueBillingOrders(lo, hi int64, now time.Time) ([]mailflow.BillingOrder, error) {
	q := dueOrdersSQL
	if t.s.d.name == "postgres" {
		q += ` FOR UPDATE`
	}
	out, err := scanBillingOrders(t.tx.QueryContext(t.ctx, t.tx.Rebind(q), lo, hi, utc(now)))
	if err != nil {
		return nil, fmt.Errorf("storage: lock due billing orders: %w", err)
	}
	return out, nil
}

// RecordBilling records the billed periods of orders, still to be
// reminded of, and when each order is due next. PostgreSQL takes a batch
// as arrays, a statement each (a statement per row would cost a round
// trip per row); SQLite, which has no round trips, runs a prepared
// statement per row.
func (t *Tx) RecordBilling(bills []mailflow.Bill, at time.Time) error {
	if len(bills) == 0 {
		return nil
	}
	if t.s.d.name == "postgres" {
		return t.recordBillingPG(bills, at)
	}
	insert, err := t.tx.PrepareContext(t.ctx, `INSERT INTO billing_periods (order_id, period_key, period_start, period_end,
		days, full_days, net_cents, vat_cents, gross_cents, billed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("storage: record billing: %w", err)
	}
	defer insert.Close()
	advance, err := t.tx.PrepareContext(t.ctx, `UPDATE billing_orders SET due_at = ? WHERE order_id = ?`)
	if err != nil {
		return fmt.Errorf("storage: record billing: %w", err)
	}
	defer advance.Close()
	for _, b := range bills {
		for _, p := range b.Periods {
			if _, err := insert.ExecContext(t.ctx, b.OrderID, p.Key, utc(p.Start), utc(p.End), p.Days, p.FullDays,
				p.NetCents, p.VATCents, p.GrossCents, utc(at)); err != nil {
				return fmt.Errorf("storage: record billing: %w", mapErr(err))
			}
		}
		if _, err := advance.ExecContext(t.ctx, utcPtr(b.DueAt), b.OrderID); err != nil {
			return fmt.Errorf("storage: record billing: %w", err)
		}
	}
	return nil
}

func (t *Tx) recordBillingPG(bills []mailflow.Bill, at time.Time) error {
	var orders, days, full, net, vat, gross []int64
	var keys, starts, ends []string
	ids, dues := make([]int64, len(bills)), make([]string, len(bills))
	for i, b := range bills {
		ids[i] = b.OrderID
		if b.DueAt != nil {
			dues[i] = pgTime(*b.DueAt)
		}
		for _, p := range b.Periods {
			orders, keys, starts, ends = append(orders, b.OrderID), append(keys, p.Key), append(starts, pgTime(p.Start)), append(ends, pgTime(p.End))
			days, full = append(days, int64(p.Days)), append(full, int64(p.FullDays))
			net, vat, gross = append(net, p.NetCents), append(vat, p.VATCents), append(gross, p.GrossCents)
		}
	}
	if _, err := t.exec(`INSERT INTO billing_periods (order_id, period_key, period_start, period_end, days, full_days,
		net_cents, vat_cents, gross_cents, billed_at)
		SELECT o, k, s::timestamptz, e::timestamptz, d, f, n, v, g, ?::timestamptz
		FROM unnest(?::bigint[], ?::text[], ?::text[], ?::text[], ?::int[], ?::int[], ?::bigint[], ?::bigint[], ?::bigint[])
			AS x(o, k, s, e, d, f, n, v, g)`,
		pgTime(at), pq.Array(orders), pq.Array(keys), pq.Array(starts), pq.Array(ends), pq.Array(days), pq.Array(full),
		pq.Array(net), pq.Array(vat), pq.Array(gross)); err != nil {
		return fmt.Errorf("storage: record billing: %w", mapErr(err))
	}
	// The range of the ids lets the planner use the primary key rather
	// than hash the whole table for each batch.
	if _, err := t.exec(`UPDATE billing_orders b SET due_at = NULLIF(v.due, '')::timestamptz
		FROM unnest(?::bigint[], ?::text[]) AS v(id, due)
		WHERE b.order_id = v.id AND b.order_id BETWEEN ? AND ?`,
		pq.Array(ids), pq.Array(dues), slices.Min(ids), slices.Max(ids)); err != nil {
		return fmt.Errorf("storage: record billing: %w", err)
	}
	return nil
}

// pgTime formats a time for a PostgreSQL text array of timestamps.
func pgTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// billedPeriodCols are the columns scanBilledPeriods reads: a billed
// period with its order as a billing run sees it.
const billedPeriodCols = `p.order_id, b.number, b.contract_model, b.provider_id, b.intermediary_id,
		b.binding_at, b.price_interval, b.amount_cents, b.vat_percent, b.doc, p.period_key, p.period_start, p.period_end,
		p.days, p.full_days, p.net_cents, p.vat_cents, p.gross_cents
		FROM billing_periods p JOIN billing_orders b ON b.order_id = p.order_id`

// UnremindedPeriods lists the billed periods whose reminders are still
// to be mailed, by order and period, with what the reminders show.
func (s *Store) UnremindedPeriods(ctx context.Context) ([]mailflow.BilledPeriod, error) {
	out, err := s.billedPeriods(ctx, `SELECT `+billedPeriodCols+` WHERE p.reminded_at IS NULL ORDER BY p.order_id, p.period_key`)
	if err != nil {
		return nil, fmt.Errorf("storage: unreminded periods: %w", err)
	}
	return out, nil
}

// OrderBilledPeriods lists the billed periods of one order, reminded or
// not, by period; none for an order never billed or unknown.
func (s *Store) OrderBilledPeriods(ctx context.Context, number string) ([]mailflow.BilledPeriod, error) {
	out, err := s.billedPeriods(ctx, `SELECT `+billedPeriodCols+` WHERE b.number = ? ORDER BY p.period_start`, number)
	if err != nil {
		return nil, fmt.Errorf("storage: billed periods of %s: %w", number, err)
	}
	return out, nil
}

func (s *Store) billedPeriods(ctx context.Context, query string, args ...any) ([]mailflow.BilledPeriod, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []mailflow.BilledPeriod
	for rows.Next() {
		b := mailflow.BilledPeriod{BillingOrder: new(mailflow.BillingOrder)}
		p := &b.Period
		if err := rows.Scan(&b.OrderID, &b.Number, &b.Model, &b.ProviderID, &b.IntermediaryID, &b.BindingAt, &b.Interval,
			&b.AmountCents, &b.VATPercent, &b.Doc, &p.Key, &p.Start, &p.End, &p.Days, &p.FullDays, &p.NetCents, &p.VATCents,
			&p.GrossCents); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// CountUnreminded counts the billed periods whose reminders are still
// to be mailed.
func (s *Store) CountUnreminded(ctx context.Context) (int, error) {
	var n int
	if err := s.get(ctx, &n, `SELECT COUNT(*) FROM billing_periods WHERE reminded_at IS NULL`); err != nil {
		return 0, fmt.Errorf("storage: count unreminded: %w", err)
	}
	return n, nil
}

// MarkReminded records that the reminders of the periods were enqueued,
// and returns how many of them were still unreminded: fewer than given
// means a concurrent run mailed some meanwhile, and the caller rolls
// back.
func (t *Tx) MarkReminded(periods []mailflow.PeriodRef, at time.Time) (int, error) {
	if len(periods) == 0 {
		return 0, nil
	}
	if t.s.d.name == "postgres" {
		orders, keys := make([]int64, len(periods)), make([]string, len(periods))
		for i, p := range periods {
			orders[i], keys[i] = p.OrderID, p.Key
		}
		res, err := t.exec(`UPDATE billing_periods p SET reminded_at = ? FROM unnest(?::bigint[], ?::text[]) AS k(o, pk)
			WHERE p.order_id = k.o AND p.period_key = k.pk AND p.reminded_at IS NULL`, utc(at), pq.Array(orders), pq.Array(keys))
		if err != nil {
			return 0, fmt.Errorf("storage: mark reminded: %w", err)
		}
		n, err := res.RowsAffected()
		return int(n), err
	}
	st, err := t.tx.PrepareContext(t.ctx, `UPDATE billing_periods SET reminded_at = ?
		WHERE order_id = ? AND period_key = ? AND reminded_at IS NULL`)
	if err != nil {
		return 0, fmt.Errorf("storage: mark reminded: %w", err)
	}
	defer st.Close()
	marked := 0
	for _, p := range periods {
		res, err := st.ExecContext(t.ctx, utc(at), p.OrderID, p.Key)
		if err != nil {
			return 0, fmt.Errorf("storage: mark reminded: %w", err)
		}
		n, _ := res.RowsAffected()
		marked += int(n)
	}
	return marked, nil
}

// BillingRecord is a row of billing_periods, for tests and tools.
type BillingRecord struct {
	OrderID    int64      `db:"order_id"`
	Number     string     `db:"number"`
	PeriodKey  string     `db:"period_key"`
	Start      time.Time  `db:"period_start"`
	End        time.Time  `db:"period_end"`
	Days       int        `db:"days"`
	FullDays   int        `db:"full_days"`
	NetCents   int64      `db:"net_cents"`
	VATCents   int64      `db:"vat_cents"`
	GrossCents int64      `db:"gross_cents"`
	BilledAt   time.Time  `db:"billed_at"`
	RemindedAt *time.Time `db:"reminded_at"`
}

// BillingRecords lists the billed periods of every order, by order number
// and period.
func (s *Store) BillingRecords(ctx context.Context) ([]BillingRecord, error) {
	var rows []BillingRecord
	if err := s.sel(ctx, &rows, `SELECT b.order_id, o.number, b.period_key, b.period_start, b.period_end, b.days, b.full_days,
		b.net_cents, b.vat_cents, b.gross_cents, b.billed_at, b.reminded_at FROM billing_periods b JOIN orders o ON o.id = b.order_id
		ORDER BY o.number, b.period_start`); err != nil {
		return nil, fmt.Errorf("storage: billing records: %w", err)
	}
	return rows, nil
}
