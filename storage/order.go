package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"mailflow/mailflow"
)

type orderRow struct {
	ID            int64      `db:"id"`
	Number        string     `db:"number"`
	ExternalID    string     `db:"external_id"`
	ContractModel string     `db:"contract_model"`
	OrderedAt     time.Time  `db:"ordered_at"`
	CreatedAt     time.Time  `db:"created_at"`
	Status        string     `db:"status"`
	BindingAt     *time.Time `db:"binding_at"`
	Conflict      bool       `db:"conflict"`
	Snapshot      string     `db:"snapshot"`
	CreatedBy     *string    `db:"created_by"`
}

const orderColumns = `id, number, external_id, contract_model, ordered_at, created_at, status, binding_at, conflict, snapshot, created_by`

func (r *orderRow) order() (*mailflow.Order, error) {
	o := &mailflow.Order{
		ID: r.ID, Number: r.Number, ExternalID: r.ExternalID, ContractModel: r.ContractModel,
		OrderedAt: r.OrderedAt.UTC(), CreatedAt: r.CreatedAt.UTC(), Status: mailflow.Status(r.Status),
		BindingAt: utcPtr(r.BindingAt), Conflict: r.Conflict,
	}
	if r.CreatedBy != nil {
		o.CreatedBy = *r.CreatedBy
	}
	if err := json.Unmarshal([]byte(r.Snapshot), &o.Snapshot); err != nil {
		return nil, fmt.Errorf("storage: order %s: snapshot: %w", r.Number, err)
	}
	return o, nil
}

type decisionRow struct {
	ID        int64     `db:"id"`
	OrderID   int64     `db:"order_id"`
	Party     string    `db:"party"`
	Intent    string    `db:"intent"`
	Reason    string    `db:"reason"`
	Source    string    `db:"source"`
	Actor     string    `db:"actor"`
	MessageID string    `db:"message_id"`
	Effect    string    `db:"effect"`
	At        time.Time `db:"at"`
}

func (r decisionRow) decision() mailflow.Decision {
	return mailflow.Decision{ID: r.ID, Party: r.Party, Intent: mailflow.Intent(r.Intent), Reason: r.Reason,
		Source: r.Source, Actor: r.Actor, MessageID: r.MessageID, Effect: r.Effect, At: r.At.UTC()}
}

const decisionColumns = `id, order_id, party, intent, reason, source, actor, message_id, effect, at`

type querier interface {
	SelectContext(ctx context.Context, dest any, query string, args ...any) error
	Rebind(string) string
}

func loadHistory(ctx context.Context, q querier, o *mailflow.Order) error {
	var rows []decisionRow
	if err := q.SelectContext(ctx, &rows, q.Rebind(`SELECT `+decisionColumns+` FROM decisions WHERE order_id = ? ORDER BY id`), o.ID); err != nil {
		return fmt.Errorf("storage: load history of %s: %w", o.Number, err)
	}
	o.History = make([]mailflow.Decision, len(rows))
	for i, r := range rows {
		o.History[i] = r.decision()
	}
	return nil
}

// Statements of order creation, prepared at start-up (prepareHot):
// SQLite looks up the external id, counts the year's counter up and
// inserts the order, three statements; PostgreSQL does all of it in one,
// createOrderSQL.
const (
	orderIDByExternalIDSQL = `SELECT id FROM orders WHERE external_id = ?`
	nextOrderNumberSQL     = `INSERT INTO order_counters (year, last) VALUES (?, 1)
		ON CONFLICT (year) DO UPDATE SET last = order_counters.last + 1 RETURNING last`
	insertOrderSQL = `INSERT INTO orders (number, external_id, contract_model, ordered_at, created_at, status,
		binding_at, conflict, provider_id, intermediary_id, search, snapshot, created_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
	// createOrderSQL (PostgreSQL) inserts an order unless its external
	// id exists or the catalog's revision is not the one given, with the
	// next number of its year, formatted as orderNumber does, and returns
	// its id and number; no row when it inserted none. Its parameters are
	// the external id, the revision, the year, then those of
	// insertOrderSQL from the external id on, the search text without the
	// number in front, the snapshot and the creator.
	createOrderSQL = `WITH existing AS (SELECT id FROM orders WHERE external_id = ?::text),
		current AS (SELECT FROM catalog_revision WHERE id = 1 AND revision = ?::bigint),
		counter AS (INSERT INTO order_counters (year, last) SELECT ?::integer, 1
			WHERE NOT EXISTS (SELECT FROM existing) AND EXISTS (SELECT FROM current)
			ON CONFLICT (year) DO UPDATE SET last = order_counters.last + 1 RETURNING year, last),
		numbered AS (SELECT lpad(year::text, 4, '0') || '-' ||
			CASE WHEN last < 1000000 THEN lpad(last::text, 6, '0') ELSE last::text END AS number FROM counter)
		INSERT INTO orders (number, external_id, contract_model, ordered_at, created_at, status,
			binding_at, conflict, provider_id, intermediary_id, search, snapshot, created_by)
		SELECT number, ?::text, ?::text, ?::timestamptz, ?::timestamptz, ?::text,
			?::timestamptz, ?::boolean, ?::text, ?::text, number || ?::text, ?::text, ?::text FROM numbered
		RETURNING id, number`
	orderByExternalIDSQL = `SELECT ` + orderColumns + ` FROM orders WHERE external_id = ?`
)

// orderNumber formats the number'th order number of a year; the order
// counter's row lock, held until the transaction ends, makes numbers
// unique and, since a rolled-back creation returns its number, without
// gaps.
func orderNumber(year int, number int64) string {
	return fmt.Sprintf("%04d-%06d", year, number)
}

// CreateOrder stores o as a new order with the next number of year and
// sets its Number and ID, unless an order with o.ExternalID exists or
// the catalog's revision is no longer catalog (see mailflow.Tx).
func (t *Tx) CreateOrder(o *mailflow.Order, year int, catalog int64) (bool, error) {
	snap, err := json.Marshal(o.Snapshot)
	if err != nil {
		return false, fmt.Errorf("storage: create order: %w", err)
	}
	var interm *string
	if o.Snapshot.Intermediary != nil {
		interm = &o.Snapshot.Intermediary.ID
	}
	// The search text is lowercased; the number in front of it has no
	// letters.
	search := strings.ToLower(" | " + strings.Join([]string{o.ExternalID, o.Snapshot.Customer.Name,
		o.Snapshot.Customer.CustomerNumber, o.Snapshot.Provider.Name, o.Snapshot.Service.Name}, " | "))
	args := []any{o.ExternalID, o.ContractModel, utc(o.OrderedAt), utc(o.CreatedAt), string(o.Status),
		utcPtr(o.BindingAt), o.Conflict, o.Snapshot.Provider.ID, interm}
	var createdBy *string // NULL: not created through the API
	if o.CreatedBy != "" {
		createdBy = &o.CreatedBy
	}
	if t.s.d.inOne && catalog != 0 {
		var r struct {
			ID     int64  `db:"id"`
			Number string `db:"number"`
		}
		err := t.getPrepared(&r, createOrderSQL, append(append(append([]any{o.ExternalID, catalog, year}, args...), search, string(snap)), createdBy)...)
		if errors.Is(err, sql.ErrNoRows) {
			// The external id exists, or the catalog changed.
			return false, t.CheckCatalog(catalog)
		}
		if err != nil {
			return false, fmt.Errorf("storage: create order: %w", mapErr(err))
		}
		o.ID, o.Number = r.ID, r.Number
		return true, nil
	}
	if err := t.CheckCatalog(catalog); err != nil {
		return false, err
	}
	var id int64
	switch err := t.getPrepared(&id, orderIDByExternalIDSQL, o.ExternalID); {
	case err == nil:
		return false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("storage: create order: %w", err)
	}
	var last int64
	if err := t.getPrepared(&last, nextOrderNumberSQL, year); err != nil {
		return false, fmt.Errorf("storage: next order number: %w", mapErr(err))
	}
	number := orderNumber(year, last)
	err = t.getPrepared(&o.ID, insertOrderSQL, append(append(append([]any{number}, args...), number+search, string(snap)), createdBy)...)
	if err != nil {
		return false, fmt.Errorf("storage: insert order: %w", mapErr(err))
	}
	o.Number = number
	return true, nil
}

// CheckCatalog returns mailflow.ErrCatalogChanged when the catalog's
// revision is no longer rev (0: not checked), and has the store read the
// catalog again.
func (t *Tx) CheckCatalog(rev int64) error {
	if rev == 0 {
		return nil
	}
	var now int64
	if err := t.getPrepared(&now, catalogRevisionSQL); err != nil {
		return fmt.Errorf("storage: catalog revision: %w", err)
	}
	if now != rev {
		t.s.catalog.forget(rev)
		return fmt.Errorf("storage: create order: %w (revision %d, now %d)", mailflow.ErrCatalogChanged, rev, now)
	}
	return nil
}

// OrderByExternalID finds an order by the portal's id.
func (t *Tx) OrderByExternalID(externalID string) (*mailflow.Order, error) {
	var r orderRow
	if err := t.getPrepared(&r, orderByExternalIDSQL, externalID); err != nil {
		return nil, fmt.Errorf("storage: order by external id: %w", mapErr(err))
	}
	return r.order()
}

// LockOrder loads an order with its history and locks it.
func (t *Tx) LockOrder(number string) (*mailflow.Order, error) {
	return t.lockOrder("number", number)
}

// LockOrderByID loads an order by id with its history and locks it.
func (t *Tx) LockOrderByID(id int64) (*mailflow.Order, error) {
	return t.lockOrder("id", id)
}

func (t *Tx) lockOrder(col string, v any) (*mailflow.Order, error) {
	var r orderRow
	if err := t.get(&r, `SELECT `+orderColumns+` FROM orders WHERE `+col+` = ?`+t.s.d.forUpdate, v); err != nil {
		return nil, fmt.Errorf("storage: lock order: %w", mapErr(err))
	}
	o, err := r.order()
	if err != nil {
		return nil, err
	}
	return o, loadHistory(t.ctx, t.tx, o)
}

// InsertDecision appends a decision to an order's history.
func (t *Tx) InsertDecision(orderID int64, d *mailflow.Decision) error {
	err := t.get(&d.ID, `INSERT INTO decisions (order_id, party, intent, reason, source, actor, message_id, effect, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		orderID, d.Party, string(d.Intent), d.Reason, d.Source, d.Actor, d.MessageID, d.Effect, utc(d.At))
	if err != nil {
		return fmt.Errorf("storage: insert decision: %w", mapErr(err))
	}
	return nil
}

// SaveEvaluation stores the derived state of an order.
func (t *Tx) SaveEvaluation(orderID int64, ev mailflow.Evaluation) error {
	if _, err := t.exec(`UPDATE orders SET status = ?, binding_at = ?, conflict = ? WHERE id = ?`,
		string(ev.Status), utcPtr(ev.BindingAt), ev.Conflict, orderID); err != nil {
		return fmt.Errorf("storage: save evaluation: %w", err)
	}
	if ev.BindingAt != nil {
		if err := t.registerBilling(orderID); err != nil {
			return fmt.Errorf("storage: save evaluation: %w", err)
		}
	}
	for _, d := range ev.Decisions {
		if _, err := t.exec(`UPDATE decisions SET effect = ? WHERE id = ? AND effect <> ?`, d.Effect, d.ID, d.Effect); err != nil {
			return fmt.Errorf("storage: save decision effect: %w", err)
		}
	}
	return nil
}

// Order returns one order by number with its history.
func (s *Store) Order(ctx context.Context, number string) (*mailflow.Order, error) {
	var r orderRow
	if err := s.get(ctx, &r, `SELECT `+orderColumns+` FROM orders WHERE number = ?`, number); err != nil {
		return nil, fmt.Errorf("storage: order %s: %w", number, mapErr(err))
	}
	o, err := r.order()
	if err != nil {
		return nil, err
	}
	return o, loadHistory(ctx, s.db, o)
}

// OrderByExternalID returns one order by the portal's id with its
// history.
func (s *Store) OrderByExternalID(ctx context.Context, externalID string) (*mailflow.Order, error) {
	var r orderRow
	if err := s.get(ctx, &r, `SELECT `+orderColumns+` FROM orders WHERE external_id = ?`, externalID); err != nil {
		return nil, fmt.Errorf("storage: order by external id: %w", mapErr(err))
	}
	o, err := r.order()
	if err != nil {
		return nil, err
	}
	return o, loadHistory(ctx, s.db, o)
}

// Orders lists orders newest first.
func (s *Store) Orders(ctx context.Context, f mailflow.OrderFilter) ([]mailflow.Order, error) {
	where, args := ordersWhere(f)
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	args = append(args, limit, f.Offset)
	var rows []orderRow
	if err := s.sel(ctx, &rows, `SELECT `+orderColumns+` FROM orders`+where+` ORDER BY id DESC LIMIT ? OFFSET ?`, args...); err != nil {
		return nil, fmt.Errorf("storage: list orders: %w", err)
	}
	out := make([]mailflow.Order, 0, len(rows))
	for _, r := range rows {
		o, err := r.order()
		if err != nil {
			return nil, err
		}
		out = append(out, *o)
	}
	return out, nil
}

// CountOrders counts the orders a filter selects, for pagination.
func (s *Store) CountOrders(ctx context.Context, f mailflow.OrderFilter) (int, error) {
	where, args := ordersWhere(f)
	var n int
	if err := s.get(ctx, &n, `SELECT COUNT(*) FROM orders`+where, args...); err != nil {
		return 0, fmt.Errorf("storage: count orders: %w", err)
	}
	return n, nil
}

// StatusCounts returns how many orders are in each status.
func (s *Store) StatusCounts(ctx context.Context) (map[mailflow.Status]int, error) {
	return s.StatusCountsFor(ctx, mailflow.OrderFilter{})
}

// StatusCountsFor returns how many orders are in each status among those
// of f's party scope (f.Party, f.PartyID); f's other fields are ignored,
// so the counts of a filtered list still show every status.
func (s *Store) StatusCountsFor(ctx context.Context, f mailflow.OrderFilter) (map[mailflow.Status]int, error) {
	var rows []struct {
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	where, args := ordersWhere(mailflow.OrderFilter{Party: f.Party, PartyID: f.PartyID})
	if err := s.sel(ctx, &rows, `SELECT status, COUNT(*) AS n FROM orders`+where+` GROUP BY status`, args...); err != nil {
		return nil, fmt.Errorf("storage: status counts: %w", err)
	}
	out := map[mailflow.Status]int{}
	for _, r := range rows {
		out[mailflow.Status(r.Status)] = r.N
	}
	return out, nil
}

func ordersWhere(f mailflow.OrderFilter) (string, []any) {
	var conds []string
	var args []any
	if f.Status != "" {
		conds = append(conds, "status = ?")
		args = append(args, string(f.Status))
	}
	switch f.Party {
	case "":
	case mailflow.PartyProvider:
		conds = append(conds, "provider_id = ?")
		args = append(args, f.PartyID)
	case mailflow.PartyIntermediary:
		conds = append(conds, "contract_model = ? AND intermediary_id = ?")
		args = append(args, mailflow.ModelUV, f.PartyID)
	default:
		conds = append(conds, "1 = 0") // an unknown scope sees nothing
	}
	if q := strings.TrimSpace(strings.ToLower(f.Query)); q != "" {
		q = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(q)
		conds = append(conds, `search LIKE ? ESCAPE '\'`)
		args = append(args, "%"+q+"%")
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}
