package storage

import (
	"context"
	"fmt"
	"strings"
	"time"

	"mailflow/mailflow"
)

// finalStatuses is the SQL list of the statuses in which an order is
// final (mailflow.Status.Terminal): only such orders lose anything to
// the retention job.
var finalStatuses = func() string {
	var q []string
	for _, st := range mailflow.Statuses {
		if st.Terminal() {
			q = append(q, "'"+string(st)+"'")
		}
	}
	return "(" + strings.Join(q, ", ") + ")"
}()

// quietSince is the condition "order o has no recorded event at or
// after the cutoff": not its creation, a decision, a mail in or out, nor
// a billed period; it takes the cutoff five times. A contract that is
// still billed stays, however old its order.
const quietSince = `o.created_at < ?
	AND NOT EXISTS (SELECT 1 FROM decisions WHERE order_id = o.id AND at >= ?)
	AND NOT EXISTS (SELECT 1 FROM inbound WHERE order_id = o.id AND received_at >= ?)
	AND NOT EXISTS (SELECT 1 FROM outbox WHERE order_id = o.id AND created_at >= ?)
	AND NOT EXISTS (SELECT 1 FROM billing_periods WHERE order_id = o.id AND period_end >= ?)`

// DeleteExpired deletes what is older than its cutoff (a zero cutoff
// keeps everything of its kind), in one transaction, and counts it:
//
//   - Orders: a final order whose last activity is older goes with its
//     decisions, mails, reminders and billing rows. An order that is not
//     final is never deleted.
//   - RawMail: the bytes of mails received or queued before the cutoff,
//     except those of orders that are not final and outbound mail not yet
//     sent; the rows, their hashes and raw_deleted_at stay, so an evidence
//     bundle lists the mail and says its bytes were deleted.
//   - Evidence: records of bundles exported before the cutoff.
func (s *Store) DeleteExpired(ctx context.Context, c mailflow.RetentionCutoffs) (mailflow.RetentionReport, error) {
	var rep mailflow.RetentionReport
	err := s.inTx(ctx, func(tx *Tx) error {
		if !c.Orders.IsZero() {
			if err := tx.deleteOrders(c.Orders, &rep); err != nil {
				return err
			}
		}
		if !c.RawMail.IsZero() {
			if err := tx.deleteRaw(c.RawMail, &rep); err != nil {
				return err
			}
		}
		if !c.Evidence.IsZero() {
			res, err := tx.exec(`DELETE FROM evidence_exports WHERE exported_at < ?`, utc(c.Evidence))
			if err != nil {
				return fmt.Errorf("storage: retention: evidence exports: %w", err)
			}
			rep.EvidenceLog, _ = res.RowsAffected()
		}
		return nil
	})
	return rep, err
}

func (t *Tx) deleteOrders(cutoff time.Time, rep *mailflow.RetentionReport) error {
	var ids []int64
	c := utc(cutoff)
	if err := t.sel(&ids, `SELECT o.id FROM orders o WHERE o.status IN `+finalStatuses+` AND `+quietSince, c, c, c, c, c); err != nil {
		return fmt.Errorf("storage: retention: find orders: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	in := t.s.d.idIn("order_id")
	set := t.s.d.idsArg(ids)
	count := func(n *int64, query string) error {
		res, err := t.exec(query, set)
		if err != nil {
			return fmt.Errorf("storage: retention: %w", err)
		}
		if n != nil {
			*n, _ = res.RowsAffected()
		}
		return nil
	}
	// Children first (foreign keys); outbox_raw goes with its outbox row.
	steps := []struct {
		n     *int64
		query string
	}{
		{nil, `DELETE FROM inbound_raw WHERE inbound_id IN (SELECT id FROM inbound WHERE ` + in + `)`},
		{nil, `UPDATE decisions SET inbound_id = NULL WHERE inbound_id IN (SELECT id FROM inbound WHERE ` + in + `)`},
		{&rep.InboundRows, `DELETE FROM inbound WHERE ` + in},
		{&rep.DecisionsRows, `DELETE FROM decisions WHERE ` + in},
		{&rep.OutboundRows, `DELETE FROM outbox WHERE ` + in},
		{nil, `DELETE FROM confirmation_reminders WHERE ` + in},
		{nil, `DELETE FROM billing_periods WHERE ` + in},
		{nil, `DELETE FROM billing_orders WHERE ` + in},
		{&rep.Orders, `DELETE FROM orders WHERE ` + t.s.d.idIn("id")},
	}
	for _, st := range steps {
		if err := count(st.n, st.query); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tx) deleteRaw(cutoff time.Time, rep *mailflow.RetentionReport) error {
	now := utc(time.Now())
	// Mails of open orders keep their bytes: the order may still need them.
	keep := `(SELECT id FROM orders WHERE status NOT IN ` + finalStatuses + `)`
	_, err := t.exec(`DELETE FROM inbound_raw WHERE inbound_id IN (SELECT id FROM inbound WHERE received_at < ?
		AND (order_id IS NULL OR order_id NOT IN `+keep+`))`, utc(cutoff))
	if err != nil {
		return fmt.Errorf("storage: retention: received mail pieces: %w", err)
	}
	res, err := t.exec(`UPDATE inbound SET raw = NULL, raw_deleted_at = ? WHERE raw_deleted_at IS NULL AND received_at < ?
		AND sha256 <> '' AND (order_id IS NULL OR order_id NOT IN `+keep+`)`, now, utc(cutoff))
	if err != nil {
		return fmt.Errorf("storage: retention: received mail: %w", err)
	}
	rep.InboundRaw, _ = res.RowsAffected()
	res, err = t.exec(`UPDATE outbox_raw SET raw = ?, raw_deleted_at = ? WHERE raw_deleted_at IS NULL AND outbox_id IN (
		SELECT id FROM outbox WHERE created_at < ? AND status <> ? AND (order_id IS NULL OR order_id NOT IN `+keep+`))`,
		[]byte{}, now, utc(cutoff), mailflow.OutboxPending)
	if err != nil {
		return fmt.Errorf("storage: retention: sent mail: %w", err)
	}
	rep.OutboundRaw, _ = res.RowsAffected()
	return nil
}
