package storage

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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

// registerBilling adds a binding order to order_billing, where billing
// runs find it, with what they need of its snapshot. It does nothing if
// the order is registered.
func (t *Tx) registerBilling(orderID int64) error {
	var n int
	if err := t.get(&n, `SELECT COUNT(*) FROM order_billing WHERE order_id = ?`, orderID); err != nil || n > 0 {
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
	if err := t.get(&r, `SELECT number, contract_model, provider_id, COALESCE(intermediary_id, '') AS intermediary_id,
		binding_at, snapshot FROM orders WHERE id = ? AND binding_at IS NOT NULL`, orderID); err != nil {
		return fmt.Errorf("storage: register billing of order %d: %w", orderID, mapErr(err))
	}
	var sn mailflow.Snapshot
	if err := json.Unmarshal([]byte(r.Snapshot), &sn); err != nil {
		return fmt.Errorf("storage: register billing of %s: snapshot: %w", r.Number, err)
	}
	doc := scheduler.NewBillingDoc(&sn)
	_, err := t.exec(`INSERT INTO order_billing (order_id, number, contract_model, provider_id, intermediary_id, binding_at,
		price_interval, amount_cents, vat_percent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING`,
		orderID, r.Number, r.ContractModel, r.ProviderID, r.IntermediaryID, utc(r.BindingAt),
		sn.Price.Interval, sn.Price.AmountCents, sn.Price.VATPercent)
	if err == nil {
		_, err = t.exec(`INSERT INTO order_billing_doc (order_id, doc) VALUES (?, ?) ON CONFLICT (order_id) DO NOTHING`, orderID, doc.Encode())
	}
	if err != nil {
		return fmt.Errorf("storage: register billing of %s: %w", r.Number, err)
	}
	return nil
}

// BillingCandidates lists the orders whose next billing period has ended
// by now (order_billing_due) and the binding orders no billing run has
// seen yet (order_billing_new, a partial index): both sets stay small
// whatever the number of orders and their age.
func (s *Store) BillingCandidates(ctx context.Context, now time.Time) ([]int64, error) {
	var ids []int64
	err := s.sel(ctx, &ids, `SELECT order_id FROM order_billing WHERE due_at <= ?
		UNION ALL SELECT order_id FROM order_billing WHERE due_at IS NULL AND done = FALSE`, utc(now))
	if err != nil {
		return nil, fmt.Errorf("storage: billing candidates: %w", err)
	}
	return ids, nil
}

const billingStateColumns = `order_id, number, contract_model, provider_id, intermediary_id, binding_at, price_interval,
	amount_cents, vat_percent, billed_until, due_at, done`

// scanBillingStates reads rows of billingStateColumns (and doc) with plain
// Scan: a run reads one row per due order, and reflection would cost more
// than the database does.
func scanBillingStates(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close() error
}, withDoc bool) ([]scheduler.BillingState, error) {
	defer rows.Close()
	var out []scheduler.BillingState
	for rows.Next() {
		var st scheduler.BillingState
		var until, due *time.Time
		dest := []any{&st.OrderID, &st.Number, &st.Model, &st.ProviderID, &st.IntermediaryID, &st.BindingAt, &st.Interval,
			&st.AmountCents, &st.VATPercent, &until, &due, &st.Done}
		if withDoc {
			dest = append(dest, &st.Doc)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		st.BindingAt = st.BindingAt.UTC()
		st.BilledUntil, st.DueAt = utcPtr(until), utcPtr(due)
		out = append(out, st)
	}
	return out, rows.Err()
}

// BillingStates loads billing states, with their docs if withDoc.
func (s *Store) BillingStates(ctx context.Context, ids []int64, withDoc bool) ([]scheduler.BillingState, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	// The ids as one parameter (idIn): SQLite's parser and PostgreSQL's
	// planner take long over a list of thousands of parameters. The
	// range of the ids beside them: without it PostgreSQL's planner
	// chose to scan the whole table for every batch of a billing run.
	lo, hi := ids[0], ids[0]
	for _, id := range ids {
		lo, hi = min(lo, id), max(hi, id)
	}
	query := `SELECT ` + billingStateColumns + ` FROM order_billing
		WHERE order_id BETWEEN ? AND ? AND ` + s.d.idIn("order_id") + ` ORDER BY order_id`
	args := []any{lo, hi, s.d.idsArg(ids)}
	if withDoc {
		query = `SELECT ` + billingStateColumns + `, d.doc FROM order_billing b JOIN order_billing_doc d USING (order_id)
			WHERE b.order_id BETWEEN ? AND ? AND d.order_id BETWEEN ? AND ? AND ` + s.d.idIn("b.order_id") + ` ORDER BY order_id`
		args = []any{lo, hi, lo, hi, s.d.idsArg(ids)}
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(query), args...)
	if err != nil {
		return nil, fmt.Errorf("storage: billing states: %w", err)
	}
	out, err := scanBillingStates(rows, withDoc)
	if err != nil {
		return nil, fmt.Errorf("storage: billing states: %w", err)
	}
	return out, nil
}

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
	for i, r := range recs {
		index[key{r.OrderID, r.Period.Key}] = i
	}
	mark := func(rows *sql.Rows, err error) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k key
			if err := rows.Scan(&k.order, &k.period); err != nil {
				return err
			}
			inserted[index[k]] = true
		}
		return rows.Err()
	}
	const tail = ` ON CONFLICT (order_id, period_key) DO NOTHING RETURNING order_id, period_key`
	if t.s.d.name == "postgres" {
		// Ten arrays rather than thousands of parameters: PostgreSQL
		// parses and plans the statement in no time.
		n := len(recs)
		orders, keys, starts, ends := make([]int64, n), make([]string, n), make([]string, n), make([]string, n)
		days, full, net, vat, gross := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		for i, r := range recs {
			p := &r.Period
			orders[i], keys[i], starts[i], ends[i] = r.OrderID, p.Key, pgTime(p.Start), pgTime(p.End)
			days[i], full[i], net[i], vat[i], gross[i] = int64(p.Days), int64(p.FullDays), p.NetCents, p.VATCents, p.GrossCents
		}
		const insert = `INSERT INTO billing_reminders (order_id, period_key, period_start, period_end,
			days, full_days, net_cents, vat_cents, gross_cents, created_at)
			SELECT o, k, s::timestamptz, e::timestamptz, d, f, n, v, g, ?::timestamptz
			FROM unnest(?::bigint[], ?::text[], ?::text[], ?::text[], ?::int[], ?::int[], ?::bigint[], ?::bigint[], ?::bigint[])
				AS x(o, k, s, e, d, f, n, v, g)`
		args := []any{pgTime(at), pq.Array(orders), pq.Array(keys), pq.Array(starts), pq.Array(ends), pq.Array(days), pq.Array(full),
			pq.Array(net), pq.Array(vat), pq.Array(gross)}
		// The rule is that every period is new (the caller advanced its
		// order by compare-and-set in this transaction): a plain INSERT
		// costs PostgreSQL half of one with ON CONFLICT and RETURNING. If
		// a period was recorded before after all, the savepoint undoes the
		// failed INSERT and the careful one tells which rows are new.
		if _, err := t.exec(`SAVEPOINT billing_records`); err != nil {
			return nil, fmt.Errorf("storage: insert billing records: %w", err)
		}
		_, err := t.exec(insert, args...)
		if err == nil {
			for i := range inserted {
				inserted[i] = true
			}
			_, err = t.exec(`RELEASE SAVEPOINT billing_records`)
			if err != nil {
				return nil, fmt.Errorf("storage: insert billing records: %w", err)
			}
			return inserted, nil
		}
		if !errors.Is(mapErr(err), mailflow.ErrConflict) {
			return nil, fmt.Errorf("storage: insert billing records: %w", mapErr(err))
		}
		if _, err := t.exec(`ROLLBACK TO SAVEPOINT billing_records`); err != nil {
			return nil, fmt.Errorf("storage: insert billing records: %w", err)
		}
		if err := mark(t.tx.QueryContext(t.ctx, t.tx.Rebind(insert+tail), args...)); err != nil {
			return nil, fmt.Errorf("storage: insert billing records: %w", mapErr(err))
		}
		return inserted, nil
	}
	// SQLite: a prepared statement per row. Passing the rows as JSON to
	// json_each cost more in extracting the values than the inserts did.
	st, err := t.tx.PrepareContext(t.ctx, `INSERT INTO billing_reminders (order_id, period_key, period_start, period_end, days, full_days,
		net_cents, vat_cents, gross_cents, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id, period_key) DO NOTHING`)
	if err != nil {
		return nil, fmt.Errorf("storage: insert billing records: %w", err)
	}
	defer st.Close()
	ctx, err := rowLoop(t.ctx)
	if err != nil {
		return nil, err
	}
	var ts timeTexts
	created := ts.text(at)
	for i := range recs {
		p := &recs[i].Period
		res, err := st.ExecContext(ctx, recs[i].OrderID, p.Key, ts.text(p.Start), ts.text(p.End), p.Days, p.FullDays, p.NetCents, p.VATCents, p.GrossCents, created)
		if err != nil {
			return nil, fmt.Errorf("storage: insert billing records: %w", mapErr(err))
		}
		n, _ := res.RowsAffected()
		inserted[i] = n == 1
	}
	return inserted, nil
}

// pgTime formats a time for a PostgreSQL text array of timestamps.
func pgTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// The billing queue (billing_pending) holds the reminder lines still to be
// mailed: one row per reminded party and phase-one batch, its lines a JSON
// array of [order_id, period_key]. A run of 100,000 lines writes a few
// thousand rows instead of a row per line, and removes a party's lines
// with one statement.

// pendingLine is a line of a billing_pending row.
type pendingLine struct {
	order  int64
	period string
}

// QueueBillingLines adds reminder lines to the billing queue, a row per
// party.
func (t *Tx) QueueBillingLines(keys []scheduler.LineKey) error {
	type party struct{ role, id string }
	var order []party
	lines := map[party]*jsonRows{}
	count := map[party]int{}
	for i := range keys {
		k := &keys[i]
		p := party{k.Role, k.PartyID}
		j := lines[p]
		if j == nil {
			j = newJSONRows(8, 2)
			lines[p] = j
			order = append(order, p)
		}
		j.next().int(k.OrderID).str(k.PeriodKey)
		count[p]++
	}
	if t.s.d.name == "postgres" && len(order) > 1 {
		// One round trip for the batch's parties.
		roles, ids, ns, docs := make([]string, len(order)), make([]string, len(order)), make([]int64, len(order)), make([]string, len(order))
		for i, p := range order {
			roles[i], ids[i], ns[i], docs[i] = p.role, p.id, int64(count[p]), lines[p].String()
		}
		if _, err := t.exec(`INSERT INTO billing_pending (role, party_id, n, lines) SELECT * FROM unnest(?::text[], ?::text[], ?::int[], ?::text[])`,
			pq.Array(roles), pq.Array(ids), pq.Array(ns), pq.Array(docs)); err != nil {
			return fmt.Errorf("storage: queue billing lines: %w", err)
		}
		return nil
	}
	for _, p := range order {
		if _, err := t.exec(`INSERT INTO billing_pending (role, party_id, n, lines) VALUES (?, ?, ?, ?)`,
			p.role, p.id, count[p], lines[p].String()); err != nil {
			return fmt.Errorf("storage: queue billing lines: %w", err)
		}
	}
	return nil
}

// decodePending reads the lines of a billing_pending row.
func decodePending(s string) ([]pendingLine, error) {
	var raw [][2]any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&raw); err != nil {
		return nil, fmt.Errorf("pending lines: %w", err)
	}
	out := make([]pendingLine, len(raw))
	for i, r := range raw {
		num, ok1 := r[0].(json.Number)
		key, ok2 := r[1].(string)
		id, err := num.Int64()
		if !ok1 || !ok2 || err != nil {
			return nil, fmt.Errorf("pending lines: malformed line %v", r)
		}
		out[i] = pendingLine{id, key}
	}
	return out, nil
}

// DequeueBillingLines removes the queued lines of the keys' party, which
// must be all of one party, and counts those among keys. Any result but
// len(keys) means the queue changed meanwhile, and the transaction must
// roll back: it has removed every line of the party.
func (t *Tx) DequeueBillingLines(keys []scheduler.LineKey) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	if !sameParty(keys) {
		return 0, fmt.Errorf("storage: dequeue billing lines: lines of several parties")
	}
	want := make(map[pendingLine]int, len(keys))
	for _, k := range keys {
		want[pendingLine{k.OrderID, k.PeriodKey}]++
	}
	rows, err := t.tx.QueryContext(t.ctx, t.tx.Rebind(`DELETE FROM billing_pending WHERE role = ? AND party_id = ? RETURNING lines`),
		keys[0].Role, keys[0].PartyID)
	if err != nil {
		return 0, fmt.Errorf("storage: dequeue billing lines: %w", err)
	}
	defer rows.Close()
	found, other := 0, false
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return 0, fmt.Errorf("storage: dequeue billing lines: %w", err)
		}
		lines, err := decodePending(s)
		if err != nil {
			return 0, fmt.Errorf("storage: dequeue billing lines: %w", err)
		}
		for _, l := range lines {
			if want[l] > 0 {
				want[l]--
				found++
			} else {
				other = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("storage: dequeue billing lines: %w", err)
	}
	if other {
		return len(keys) + 1, nil // removed lines it was not given: the caller rolls back
	}
	return found, nil
}

// sameParty reports whether the keys are all of one role and party.
func sameParty(keys []scheduler.LineKey) bool {
	for _, k := range keys {
		if k.Role != keys[0].Role || k.PartyID != keys[0].PartyID {
			return false
		}
	}
	return true
}

// BillingQueue lists the parties with queued reminder lines.
func (s *Store) BillingQueue(ctx context.Context) ([]scheduler.QueuedParty, error) {
	var rows []struct {
		Role    string `db:"role"`
		PartyID string `db:"party_id"`
		N       int    `db:"n"`
	}
	if err := s.sel(ctx, &rows, `SELECT role, party_id, SUM(n) AS n FROM billing_pending GROUP BY role, party_id ORDER BY role, party_id`); err != nil {
		return nil, fmt.Errorf("storage: billing queue: %w", err)
	}
	out := make([]scheduler.QueuedParty, len(rows))
	for i, r := range rows {
		out[i] = scheduler.QueuedParty{Role: r.Role, PartyID: r.PartyID, Lines: r.N}
	}
	return out, nil
}

// ScanBillingQueue reads the billing queue party by party, each party's
// lines by order and period, with what their mails show.
func (s *Store) ScanBillingQueue(ctx context.Context, fn func(*scheduler.QueuedLine) error) error {
	var rows []struct {
		Role    string `db:"role"`
		PartyID string `db:"party_id"`
		Lines   string `db:"lines"`
	}
	if err := s.sel(ctx, &rows, `SELECT role, party_id, lines FROM billing_pending ORDER BY role, party_id, id`); err != nil {
		return fmt.Errorf("storage: billing queue: %w", err)
	}
	for lo := 0; lo < len(rows); {
		hi := lo
		var lines []pendingLine
		for ; hi < len(rows) && rows[hi].Role == rows[lo].Role && rows[hi].PartyID == rows[lo].PartyID; hi++ {
			l, err := decodePending(rows[hi].Lines)
			if err != nil {
				return fmt.Errorf("storage: billing queue: %w", err)
			}
			lines = append(lines, l...)
		}
		slices.SortFunc(lines, func(a, b pendingLine) int {
			return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.period, b.period))
		})
		for start := 0; start < len(lines); start += 1000 {
			if err := s.scanLines(ctx, rows[lo].Role, rows[lo].PartyID, lines[start:min(start+1000, len(lines))], fn); err != nil {
				return err
			}
		}
		lo = hi
	}
	return nil
}

// scanLines reads the details of queued lines of one party and calls fn
// for each, in the order given.
func (s *Store) scanLines(ctx context.Context, role, party string, lines []pendingLine, fn func(*scheduler.QueuedLine) error) error {
	const cols = `SELECT r.order_id, r.period_key, b.number, b.contract_model, b.price_interval, b.vat_percent, d.doc,
		r.period_start, r.period_end, r.days, r.full_days, r.net_cents, r.vat_cents, r.gross_cents
		FROM billing_reminders r
		JOIN order_billing b ON b.order_id = r.order_id
		JOIN order_billing_doc d ON d.order_id = r.order_id
		WHERE (r.order_id, r.period_key) IN `
	var rows *sql.Rows
	var err error
	if s.d.name == "postgres" {
		orders, periods := make([]int64, len(lines)), make([]string, len(lines))
		for i, l := range lines {
			orders[i], periods[i] = l.order, l.period
		}
		rows, err = s.db.QueryContext(ctx, s.db.Rebind(cols+`(SELECT * FROM unnest(?::bigint[], ?::text[]))`), pq.Array(orders), pq.Array(periods))
	} else {
		j := newJSONRows(len(lines), 2)
		for _, l := range lines {
			j.next().int(l.order).str(l.period)
		}
		rows, err = s.db.QueryContext(ctx, cols+`(SELECT value->>0, value->>1 FROM json_each(?))`, j.String())
	}
	if err != nil {
		return fmt.Errorf("storage: billing queue: %w", err)
	}
	defer rows.Close()
	got := make(map[pendingLine]*scheduler.QueuedLine, len(lines))
	for rows.Next() {
		l := &scheduler.QueuedLine{LineKey: scheduler.LineKey{Role: role, PartyID: party}}
		p := &l.Period
		if err := rows.Scan(&l.OrderID, &l.PeriodKey, &l.Number, &l.Model, &l.Interval, &l.VATPercent, &l.Doc,
			&p.Start, &p.End, &p.Days, &p.FullDays, &p.NetCents, &p.VATCents, &p.GrossCents); err != nil {
			return fmt.Errorf("storage: billing queue: %w", err)
		}
		p.Key = l.PeriodKey
		got[pendingLine{l.OrderID, l.PeriodKey}] = l
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("storage: billing queue: %w", err)
	}
	for _, k := range lines {
		l := got[k]
		if l == nil {
			return fmt.Errorf("storage: billing queue: line of order %d, period %s has no billing record", k.order, k.period)
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}

// AdvanceBilling stores each order's billing progress where it is still
// what the plan started from (Was): a compare-and-set, so that of two
// concurrent runs one advances an order and the other learns it must not
// bill it. PostgreSQL does it in one statement over arrays (one round trip
// per batch) and re-checks the condition on a row another transaction
// changed meanwhile; SQLite, which has no round trips, a prepared
// statement per row (cheaper than extracting the values from JSON).
func (t *Tx) AdvanceBilling(ps []scheduler.BillingProgress) ([]bool, error) {
	advanced := make([]bool, len(ps))
	if len(ps) == 0 {
		return advanced, nil
	}
	if t.s.d.name == "postgres" {
		n := len(ps)
		ids, until, due, done := make([]int64, n), make([]string, n), make([]string, n), make([]bool, n)
		wasUntil, wasDue, wasDone := make([]string, n), make([]string, n), make([]bool, n)
		ts := func(p *time.Time) string {
			if p == nil {
				return ""
			}
			return pgTime(*p)
		}
		index := make(map[int64]int, n)
		for i, p := range ps {
			ids[i], until[i], due[i], done[i] = p.OrderID, ts(p.BilledUntil), ts(p.DueAt), p.Done
			wasUntil[i], wasDue[i], wasDone[i] = ts(p.Was.BilledUntil), ts(p.Was.DueAt), p.Was.Done
			index[p.OrderID] = i
		}
		rows, err := t.tx.QueryContext(t.ctx, t.tx.Rebind(`UPDATE order_billing AS b SET billed_until = NULLIF(v.until, '')::timestamptz,
			due_at = NULLIF(v.due, '')::timestamptz, done = v.done
			FROM unnest(?::bigint[], ?::text[], ?::text[], ?::boolean[], ?::text[], ?::text[], ?::boolean[])
				AS v(id, until, due, done, was_until, was_due, was_done)
			WHERE b.order_id = v.id AND b.order_id = ANY(?::bigint[]) AND b.done = v.was_done
				AND b.billed_until IS NOT DISTINCT FROM NULLIF(v.was_until, '')::timestamptz
				AND b.due_at IS NOT DISTINCT FROM NULLIF(v.was_due, '')::timestamptz
			RETURNING b.order_id`),
			pq.Array(ids), pq.Array(until), pq.Array(due), pq.Array(done), pq.Array(wasUntil), pq.Array(wasDue), pq.Array(wasDone), pq.Array(ids))
		if err != nil {
			return nil, fmt.Errorf("storage: advance billing: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return nil, fmt.Errorf("storage: advance billing: %w", err)
			}
			advanced[index[id]] = true
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("storage: advance billing: %w", err)
		}
		return advanced, nil
	}
	st, err := t.tx.PrepareContext(t.ctx, `UPDATE order_billing SET billed_until = ?, due_at = ?, done = ?
		WHERE order_id = ? AND billed_until IS ? AND due_at IS ? AND done = ?`)
	if err != nil {
		return nil, fmt.Errorf("storage: advance billing: %w", err)
	}
	defer st.Close()
	ctx, err := rowLoop(t.ctx)
	if err != nil {
		return nil, err
	}
	var ts timeTexts
	for i := range ps {
		p := &ps[i]
		res, err := st.ExecContext(ctx, ts.ptr(p.BilledUntil), ts.ptr(p.DueAt), p.Done,
			p.OrderID, ts.ptr(p.Was.BilledUntil), ts.ptr(p.Was.DueAt), p.Was.Done)
		if err != nil {
			return nil, fmt.Errorf("storage: advance billing: %w", err)
		}
		n, _ := res.RowsAffected()
		advanced[i] = n == 1
	}
	return advanced, nil
}

// rowLoop is the context of a loop of single-row statements in SQLite:
// without cancellation, which the driver implements with a goroutine per
// statement. The loop is short; ctx is checked before it.
func rowLoop(ctx context.Context) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.WithoutCancel(ctx), nil
}

// sqliteTimeFormat is modernc.org/sqlite's format for a bound time.Time
// with _time_format=sqlite.
const sqliteTimeFormat = "2006-01-02 15:04:05.999999999-07:00"

// timeTexts formats times as the SQLite driver stores a bound time.Time,
// each distinct time once: the rows of a billing batch share a few
// period boundaries.
type timeTexts map[int64]string

func (m *timeTexts) text(t time.Time) string {
	if *m == nil {
		*m = timeTexts{}
	}
	k := t.UnixNano()
	s, ok := (*m)[k]
	if !ok {
		s = t.UTC().Format(sqliteTimeFormat)
		(*m)[k] = s
	}
	return s
}

func (m *timeTexts) ptr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return m.text(*t)
}

// BillingRecord is a row of billing_reminders, for tests and tools.
type BillingRecord struct {
	OrderID    int64     `db:"order_id"`
	Number     string    `db:"number"`
	PeriodKey  string    `db:"period_key"`
	Start      time.Time `db:"period_start"`
	End        time.Time `db:"period_end"`
	Days       int       `db:"days"`
	FullDays   int       `db:"full_days"`
	NetCents   int64     `db:"net_cents"`
	VATCents   int64     `db:"vat_cents"`
	GrossCents int64     `db:"gross_cents"`
	CreatedAt  time.Time `db:"created_at"`
}

// BillingRecords lists the billed periods of every order, by order number
// and period.
func (s *Store) BillingRecords(ctx context.Context) ([]BillingRecord, error) {
	var rows []BillingRecord
	if err := s.sel(ctx, &rows, `SELECT b.order_id, o.number, b.period_key, b.period_start, b.period_end, b.days, b.full_days,
		b.net_cents, b.vat_cents, b.gross_cents, b.created_at FROM billing_reminders b JOIN orders o ON o.id = b.order_id
		ORDER BY o.number, b.period_start`); err != nil {
		return nil, fmt.Errorf("storage: billing records: %w", err)
	}
	return rows, nil
}

// Writers is how many transactions a billing run lets write at once: one
// on SQLite, which serialises writers anyway; on PostgreSQL two, so that
// the server works on one batch while the next one's statements travel
// (the batches' orders are disjoint, so they never wait for each other).
func (s *Store) Writers() int {
	if s.d.name == "postgres" {
		return 2
	}
	return 1
}
