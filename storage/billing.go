package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"

	"mailflow/mailflow"
	"mailflow/scheduler"
)

var _ scheduler.Store = (*Store)(nil)
var _ scheduler.Tx = (*Tx)(nil)

// JobTx runs fn in one transaction with the scheduler's methods. A panic
// in fn (a template bug in a job, say) rolls the transaction back before it
// goes on up to the job's recover: an abandoned SQLite transaction would
// keep the database locked.
func (s *Store) JobTx(ctx context.Context, fn func(scheduler.Tx) error) error {
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

// BillingCandidates lists the orders whose next billing period has ended
// by now (orders_billing_due) and the binding orders no billing run has
// seen yet (orders_billing_new, a partial index): both sets stay small
// whatever the number of orders and their age.
func (s *Store) BillingCandidates(ctx context.Context, now time.Time) ([]scheduler.BillingCandidate, error) {
	var rows []struct {
		ID             int64  `db:"id"`
		ProviderID     string `db:"provider_id"`
		IntermediaryID string `db:"intermediary_id"`
	}
	err := s.sel(ctx, &rows, `SELECT id, provider_id, COALESCE(intermediary_id, '') AS intermediary_id FROM orders
		WHERE billing_due_at <= ?
		UNION ALL
		SELECT id, provider_id, COALESCE(intermediary_id, '') AS intermediary_id FROM orders
		WHERE binding_at IS NOT NULL AND billing_due_at IS NULL AND billing_done = FALSE`, utc(now))
	if err != nil {
		return nil, fmt.Errorf("storage: billing candidates: %w", err)
	}
	out := make([]scheduler.BillingCandidate, len(rows))
	for i, r := range rows {
		out[i] = scheduler.BillingCandidate{ID: r.ID, ProviderID: r.ProviderID, IntermediaryID: r.IntermediaryID}
	}
	return out, nil
}

type billingRow struct {
	ID            int64      `db:"id"`
	Number        string     `db:"number"`
	ContractModel string     `db:"contract_model"`
	BindingAt     time.Time  `db:"binding_at"`
	BilledUntil   *time.Time `db:"billed_until"`
	DueAt         *time.Time `db:"billing_due_at"`
	Done          bool       `db:"billing_done"`
	Snapshot      string     `db:"snapshot"`
}

const billingOrderQuery = `SELECT id, number, contract_model, binding_at, billed_until, billing_due_at, billing_done, snapshot
	FROM orders WHERE binding_at IS NOT NULL AND id IN (%s) ORDER BY id`

// BillingOrders loads binding orders by id, without locking them.
func (s *Store) BillingOrders(ctx context.Context, ids []int64) ([]scheduler.BillingOrder, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	q, args := inList(ids)
	var rows []billingRow
	if err := s.sel(ctx, &rows, fmt.Sprintf(billingOrderQuery, q), args...); err != nil {
		return nil, fmt.Errorf("storage: billing orders: %w", err)
	}
	return billingOrders(rows)
}

// LockBillingOrders loads binding orders by id and locks them (in id
// order, so concurrent runs cannot deadlock) until the transaction ends.
func (t *Tx) LockBillingOrders(ids []int64) ([]scheduler.BillingOrder, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	q, args := inList(ids)
	var rows []billingRow
	if err := t.sel(&rows, fmt.Sprintf(billingOrderQuery, q)+t.s.d.forUpdate, args...); err != nil {
		return nil, fmt.Errorf("storage: lock billing orders: %w", err)
	}
	return billingOrders(rows)
}

func billingOrders(rows []billingRow) ([]scheduler.BillingOrder, error) {
	out := make([]scheduler.BillingOrder, len(rows))
	for i, r := range rows {
		sn, err := billingSnapshot(r.Snapshot, r.ContractModel == mailflow.ModelUV)
		if err != nil {
			return nil, fmt.Errorf("storage: order %s: snapshot: %w", r.Number, err)
		}
		out[i] = scheduler.BillingOrder{ID: r.ID, Number: r.Number, ContractModel: r.ContractModel, BindingAt: r.BindingAt.UTC(),
			BilledUntil: utcPtr(r.BilledUntil), DueAt: utcPtr(r.DueAt), Done: r.Done, Snapshot: sn}
	}
	return out, nil
}

// billingSnapshot decodes the parts of a snapshot that billing needs —
// customer, provider, intermediary (UV), service and price — and stops
// there. encoding/json writes them before the terms and conditions, whose
// full texts make up most of a snapshot, so those are not even scanned.
func billingSnapshot(doc string, uv bool) (mailflow.Snapshot, error) {
	var sn mailflow.Snapshot
	dec := json.NewDecoder(strings.NewReader(doc))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return sn, errors.New("not a JSON object")
	}
	need := map[string]any{"customer": &sn.Customer, "provider": &sn.Provider, "service": &sn.Service, "price": &sn.Price}
	if uv {
		sn.Intermediary = &mailflow.Party{}
		need["intermediary"] = sn.Intermediary
	}
	for len(need) > 0 && dec.More() {
		t, err := dec.Token()
		if err != nil {
			return sn, err
		}
		key, _ := t.(string)
		dst, ok := need[key]
		if !ok {
			var skip json.RawMessage
			dst = &skip
		}
		if err := dec.Decode(dst); err != nil {
			return sn, fmt.Errorf("%s: %w", key, err)
		}
		delete(need, key)
	}
	if _, missing := need["intermediary"]; missing {
		sn.Intermediary = nil
	}
	return sn, nil
}

// billingChunk bounds the rows of one INSERT: 8 parameters each stay far
// below SQLite's and PostgreSQL's parameter limits.
const billingChunk = 1000

// InsertBillingRecords inserts billed periods; the unique key (order_id,
// period_key) drops those a concurrent run inserted first, and RETURNING
// tells which rows are new.
func (t *Tx) InsertBillingRecords(recs []scheduler.BillingRecord, at time.Time) ([]bool, error) {
	inserted := make([]bool, len(recs))
	type key struct {
		order  int64
		period string
	}
	index := make(map[key]int, len(recs))
	var b strings.Builder
	for start := 0; start < len(recs); start += billingChunk {
		part := recs[start:min(start+billingChunk, len(recs))]
		b.Reset()
		b.WriteString(`INSERT INTO billing_reminders (order_id, period_key, period_start, period_end, net_cents, vat_cents, gross_cents, created_at) VALUES `)
		args := make([]any, 0, 8*len(part))
		for i, r := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?,?,?,?)")
			p := r.Period
			args = append(args, r.OrderID, p.Key, utc(p.Start), utc(p.End), p.NetCents, p.VATCents, p.GrossCents, utc(at))
			index[key{r.OrderID, p.Key}] = start + i
		}
		b.WriteString(` ON CONFLICT (order_id, period_key) DO NOTHING RETURNING order_id, period_key`)
		var rows []struct {
			OrderID int64  `db:"order_id"`
			Key     string `db:"period_key"`
		}
		if err := t.sel(&rows, b.String(), args...); err != nil {
			return nil, fmt.Errorf("storage: insert billing records: %w", mapErr(err))
		}
		for _, r := range rows {
			inserted[index[key{r.OrderID, r.Key}]] = true
		}
	}
	return inserted, nil
}

// AdvanceBilling stores each order's billing progress: PostgreSQL in one
// statement over arrays (one round trip per batch), SQLite, which has no
// round trips, with a prepared statement per row.
func (t *Tx) AdvanceBilling(ps []scheduler.BillingProgress) error {
	if len(ps) == 0 {
		return nil
	}
	if t.s.d.name == "postgres" {
		ids := make([]int64, len(ps))
		until := make([]string, len(ps))
		due := make([]string, len(ps))
		done := make([]bool, len(ps))
		ts := func(p *time.Time) string {
			if p == nil {
				return ""
			}
			return p.UTC().Format(time.RFC3339Nano)
		}
		for i, p := range ps {
			ids[i], until[i], due[i], done[i] = p.OrderID, ts(p.BilledUntil), ts(p.DueAt), p.Done
		}
		_, err := t.exec(`UPDATE orders AS o SET billed_until = NULLIF(v.until, '')::timestamptz,
			billing_due_at = NULLIF(v.due, '')::timestamptz, billing_done = v.done
			FROM unnest(?::bigint[], ?::text[], ?::text[], ?::boolean[]) AS v(id, until, due, done) WHERE o.id = v.id`,
			pq.Array(ids), pq.Array(until), pq.Array(due), pq.Array(done))
		if err != nil {
			return fmt.Errorf("storage: advance billing: %w", err)
		}
		return nil
	}
	st, err := t.tx.PreparexContext(t.ctx, `UPDATE orders SET billed_until = ?, billing_due_at = ?, billing_done = ? WHERE id = ?`)
	if err != nil {
		return fmt.Errorf("storage: advance billing: %w", err)
	}
	defer st.Close()
	for _, p := range ps {
		if _, err := st.ExecContext(t.ctx, utcPtr(p.BilledUntil), utcPtr(p.DueAt), p.Done, p.OrderID); err != nil {
			return fmt.Errorf("storage: advance billing: %w", err)
		}
	}
	return nil
}

// BillingRecord is a row of billing_reminders, for tests and tools.
type BillingRecord struct {
	OrderID    int64     `db:"order_id"`
	Number     string    `db:"number"`
	PeriodKey  string    `db:"period_key"`
	Start      time.Time `db:"period_start"`
	End        time.Time `db:"period_end"`
	NetCents   int64     `db:"net_cents"`
	VATCents   int64     `db:"vat_cents"`
	GrossCents int64     `db:"gross_cents"`
	CreatedAt  time.Time `db:"created_at"`
}

// BillingRecords lists the billed periods of every order, by order number
// and period.
func (s *Store) BillingRecords(ctx context.Context) ([]BillingRecord, error) {
	var rows []BillingRecord
	if err := s.sel(ctx, &rows, `SELECT b.order_id, o.number, b.period_key, b.period_start, b.period_end, b.net_cents,
		b.vat_cents, b.gross_cents, b.created_at FROM billing_reminders b JOIN orders o ON o.id = b.order_id
		ORDER BY o.number, b.period_start`); err != nil {
		return nil, fmt.Errorf("storage: billing records: %w", err)
	}
	return rows, nil
}
