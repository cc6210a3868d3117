package mailflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Notifier composes the outbound messages that an event causes. The
// messages are enqueued in the same transaction as the event.
type Notifier interface {
	// OrderCreated returns the order notifications to the parties.
	OrderCreated(o *Order) ([]*OutboxMessage, error)
	// DecisionRecorded returns what a recorded decision sends: the binding
	// confirmation, rejection notices, an acknowledgement or a conflict alert.
	// prev is the status before the decision, d carries its Effect.
	DecisionRecorded(o *Order, d Decision, prev Status) ([]*OutboxMessage, error)
}

// SharedTxer is a Store that can run the transactions of concurrent
// callers as one (group commit). CreateOrder uses it where the store has
// it: creations serialise on the year's order counter, whose lock is held
// until commit, so each would otherwise wait for the commit of the one
// before it. *storage.Store implements it.
type SharedTxer interface {
	// InSharedTx is InTx in a transaction that concurrent callers may
	// share. When any function of the shared transaction fails, every
	// function of it runs again in a transaction of its own, so fn may run
	// twice.
	InSharedTx(ctx context.Context, fn func(Tx) error) error
}

// Flow runs the order loop's use cases on a store.
type Flow struct {
	Store    Store
	Notifier Notifier // nil: nothing is sent
	Now      func() time.Time
	// OnEnqueue, when set, is called after a transaction that enqueued
	// messages has committed: wire it to Sender.Wake so a new message is
	// sent at once rather than at the next poll.
	OnEnqueue func()
}

// enqueued tells OnEnqueue about committed messages.
func (s *Flow) enqueued(n int) {
	if n > 0 && s.OnEnqueue != nil {
		s.OnEnqueue()
	}
}

func (s *Flow) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// CreateOrder validates and stores an order with its frozen snapshot and
// enqueues its notifications. The same external_id again returns the
// existing order and created=false.
func (s *Flow) CreateOrder(ctx context.Context, req *OrderRequest) (o *Order, created bool, err error) {
	return s.CreateOrderBy(ctx, req, "")
}

// CreateOrderBy is CreateOrder on behalf of creator, the name of the API
// token that submits the order ("" for none), which the order records.
// An existing order with the same external_id is returned only when the
// request says the same as the one that created it (DuplicateConflicts);
// otherwise the error is a *DuplicateError, which is ErrConflict.
func (s *Flow) CreateOrderBy(ctx context.Context, req *OrderRequest, creator string) (o *Order, created bool, err error) {
	// The catalog comes from the store's memory; the transaction checks
	// that no import (by any process) came since, and else the order is
	// built again from the new catalog. Imports are rare: three tries.
	for range 3 {
		o, created, err = s.createOrder(ctx, req, creator)
		if !errors.Is(err, ErrCatalogChanged) {
			break
		}
	}
	return o, created, err
}

func (s *Flow) createOrder(ctx context.Context, req *OrderRequest, creator string) (o *Order, created bool, err error) {
	var queued int
	cat, err := s.Store.Catalog(ctx)
	if err != nil {
		return nil, false, err
	}
	snap, err := BuildSnapshot(req, cat)
	if err != nil {
		// A known external_id wins over validation: a retried request
		// whose catalog changed since still finds its order.
		if ex, _, e2 := s.existing(ctx, req, creator); e2 == nil || errors.Is(e2, ErrConflict) {
			return ex, false, e2
		}
		// The catalog in memory may predate another process's import
		// that makes the request valid (a new service, say); the
		// transaction would have found that, so ask here.
		e2 := s.Store.InTx(ctx, func(tx Tx) error { return tx.CheckCatalog(cat.Revision) })
		if errors.Is(e2, ErrCatalogChanged) {
			return nil, false, e2
		}
		return nil, false, err
	}
	createdAt := s.now().UTC()
	inTx := s.Store.InTx
	if st, ok := s.Store.(SharedTxer); ok {
		inTx = st.InSharedTx
	}
	year := req.OrderedAt.In(Berlin).Year()
	// fn may run twice (SharedTxer): it sets o, created and queued afresh
	// each time.
	err = inTx(ctx, func(tx Tx) error {
		queued = 0
		o = &Order{
			ExternalID:    req.ExternalID,
			OrderedAt:     req.OrderedAt.UTC(),
			CreatedAt:     createdAt,
			ContractModel: req.ContractModel,
			Status:        StatusOpen,
			Snapshot:      snap,
			CreatedBy:     creator,
		}
		// A concurrent duplicate that passes CreateOrder's check too
		// meets the unique key on external_id (ErrConflict below).
		var err error
		if created, err = tx.CreateOrder(o, year, cat.Revision); err != nil || !created {
			return err
		}
		if s.Notifier == nil {
			return nil
		}
		// The notifications carry the order's number and reply tokens
		// signed over its id, which exist only from here on.
		msgs, err := s.Notifier.OrderCreated(o)
		if err != nil {
			return err
		}
		queued = len(msgs)
		return tx.Enqueue(msgs...)
	})
	if err == nil && !created {
		return s.existing(ctx, req, creator)
	}
	if errors.Is(err, ErrConflict) {
		// Lost a race against a concurrent duplicate: the unique
		// constraint on external_id held, return the winner.
		if ex, _, e2 := s.existing(ctx, req, creator); e2 == nil || errors.Is(e2, ErrConflict) {
			return ex, false, e2
		}
	}
	if err != nil {
		return nil, false, err
	}
	s.enqueued(queued)
	return o, true, nil
}

// existing returns the order with req's external_id and created=false,
// the result of creating an order that exists, or a *DuplicateError when
// req differs from what created it.
func (s *Flow) existing(ctx context.Context, req *OrderRequest, creator string) (*Order, bool, error) {
	var o *Order
	err := s.Store.InTx(ctx, func(tx Tx) error {
		var err error
		o, err = tx.OrderByExternalID(req.ExternalID)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if o, err = s.Store.Order(ctx, o.Number); err != nil {
		return nil, false, err
	}
	if diff := DuplicateConflicts(o, req, creator); len(diff) > 0 {
		return nil, false, &DuplicateError{Errors: diff}
	}
	return o, false, nil
}

// Berlin is the time zone of order numbers' years and of dates in mails.
var Berlin = mustLoadLocation("Europe/Berlin")

func mustLoadLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		// Without tzdata on the host fall back to UTC rather than fail;
		// cmd/mailflow embeds time/tzdata so this does not happen there.
		return time.UTC
	}
	return loc
}

// ValidateDecision checks a manual decision's fields against the order.
func ValidateDecision(o *Order, d *Decision) error {
	var verr ValidationError
	switch d.Party {
	case PartyProvider:
	case PartyIntermediary:
		if o.ContractModel != ModelUV {
			verr.add("party", "a %s order has no intermediary", o.ContractModel)
		}
	case "":
		verr.add("party", "is required (provider or intermediary)")
	default:
		verr.add("party", "must be provider or intermediary")
	}
	if !d.Intent.Valid() {
		verr.add("intent", "must be accept, review, working or reject")
	}
	d.Reason = strings.TrimSpace(d.Reason)
	if d.Intent == IntentReject && d.Reason == "" {
		verr.add("reason", "is required for reject")
	}
	switch {
	case utf8.RuneCountInString(d.Reason) > 4000:
		verr.add("reason", "must be at most 4000 characters")
	case CleanText(d.Reason, 0) != d.Reason:
		// A form field may hold any bytes; PostgreSQL would refuse them.
		verr.add("reason", "must be UTF-8 text without NUL characters")
	}
	return verr.orNil()
}

// Decide records a decision on an order, derives the new status and
// enqueues what the outcome sends, all in one transaction.
func (s *Flow) Decide(ctx context.Context, number string, d Decision) (*Order, error) {
	var o *Order
	err := s.InTx(ctx, func(tx Tx) error {
		var err error
		o, err = tx.LockOrder(number)
		if err != nil {
			return err
		}
		if err := ValidateDecision(o, &d); err != nil {
			return err
		}
		_, err = s.apply(tx, o, d)
		return err
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// apply appends d to a locked order, re-evaluates it, stores the result
// and enqueues the outcome's messages. It returns the recorded decision
// with its effect.
func (s *Flow) apply(tx Tx, o *Order, d Decision) (Decision, error) {
	var msgs []*OutboxMessage
	d, err := s.applyWith(tx, o, d, nil, &msgs)
	if err != nil {
		return d, err
	}
	return d, tx.Enqueue(msgs...)
}

// applyWith is apply with a filter over the composed messages; the kept
// ones are appended to out for the caller to enqueue.
func (s *Flow) applyWith(tx Tx, o *Order, d Decision, keep func(*OutboxMessage) (bool, error), out *[]*OutboxMessage) (Decision, error) {
	if d.At.IsZero() {
		d.At = s.now()
	}
	d.At = d.At.UTC()
	if err := tx.InsertDecision(o.ID, &d); err != nil {
		return d, err
	}
	prev := o.Status
	ev := Evaluate(o.ContractModel, append(o.History, d))
	if err := tx.SaveEvaluation(o.ID, ev); err != nil {
		return d, err
	}
	o.History = ev.Decisions
	o.Status, o.BindingAt, o.Conflict = ev.Status, ev.BindingAt, ev.Conflict
	d = ev.Decisions[len(ev.Decisions)-1]
	if s.Notifier != nil {
		msgs, err := s.Notifier.DecisionRecorded(o, d, prev)
		if err != nil {
			return d, fmt.Errorf("mailflow: compose outcome: %w", err)
		}
		for _, m := range msgs {
			if keep != nil {
				ok, err := keep(m)
				if err != nil {
					return d, err
				}
				if !ok {
					continue
				}
			}
			*out = append(*out, m)
		}
	}
	return d, nil
}

// countingTx counts the messages enqueued through it, so the flow knows
// after commit whether to call OnEnqueue.
type countingTx struct {
	Tx
	n int
}

func (t *countingTx) Enqueue(msgs ...*OutboxMessage) error {
	if err := t.Tx.Enqueue(msgs...); err != nil {
		return err
	}
	t.n += len(msgs)
	return nil
}

// InTx runs fn in a transaction of the flow's store and calls OnEnqueue
// after a commit if fn enqueued messages. Use it for use cases outside
// Flow (inbound replies, scheduler jobs) that enqueue mail.
func (s *Flow) InTx(ctx context.Context, fn func(Tx) error) error {
	var ct *countingTx
	err := s.Store.InTx(ctx, func(tx Tx) error {
		ct = &countingTx{Tx: tx}
		return fn(ct)
	})
	if err == nil && ct != nil {
		s.enqueued(ct.n)
	}
	return err
}
