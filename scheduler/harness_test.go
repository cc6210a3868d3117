package scheduler_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
	_ "time/tzdata"

	"mailflow/internal/exampletest"
	"mailflow/mailflow"
	"mailflow/scheduler"
	"mailflow/storage"
	"mailflow/storage/storagetest"
)

// env is one store with a scheduler and an injected clock.
type env struct {
	t      testing.TB
	ctx    context.Context
	store  *storage.Store
	flow   *mailflow.Flow
	sched  *scheduler.Scheduler
	tokens *mailflow.Tokens
	loc    *time.Location

	mu    sync.Mutex
	clock time.Time
	n     int // orders created
}

func berlin(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// at is a wall-clock time in Berlin.
func at(loc *time.Location, y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, loc)
}

func testConfig(loc *time.Location) scheduler.Config {
	return scheduler.Config{
		Location: loc, Billing: "0 6 1 * *", Reminders: "0 8 * * 1-5", Digest: "0 7 * * 1-5",
		RemindAfter: 48 * time.Hour, EscalateAfter: 120 * time.Hour,
	}
}

func newEnv(t testing.TB, driver string) *env {
	t.Helper()
	return newEnvOn(t, storagetest.Open(t, driver), true)
}

// newEnvOn builds an env over a store; catalog imports the example catalog.
func newEnvOn(t testing.TB, s *storage.Store, catalog bool) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), store: s, loc: berlin(t)}
	if catalog {
		if err := s.ImportCatalog(e.ctx, exampletest.Catalog(t)); err != nil {
			t.Fatal(err)
		}
	}
	c, tokens := newComposer(t, e.now)
	e.tokens = tokens
	e.flow = &mailflow.Flow{Store: s, Now: e.now, Notifier: c}
	e.sched = scheduler.New(testConfig(e.loc), s, scheduler.NewMailer(c), nil)
	e.sched.Now = e.now
	return e
}

func (e *env) now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clock
}

func (e *env) setClock(t time.Time) {
	e.mu.Lock()
	e.clock = t
	e.mu.Unlock()
}

// order creates an order from an example file at the clock's time, with
// price (if not "") instead of the example's.
func (e *env) order(file, price string) *mailflow.Order {
	e.t.Helper()
	req := exampletest.Request(e.t, file)
	e.n++
	req.ExternalID = fmt.Sprintf("%s-%d", req.ExternalID, e.n)
	ordered := e.now()
	req.OrderedAt = &ordered
	if price != "" {
		req.Price = price
	}
	o, created, err := e.flow.CreateOrder(e.ctx, req)
	if err != nil || !created {
		e.t.Fatalf("create order: %v (created %v)", err, created)
	}
	return o
}

// decide records a decision by hand at t.
func (e *env) decide(o *mailflow.Order, party string, intent mailflow.Intent, t time.Time) *mailflow.Order {
	e.t.Helper()
	d := mailflow.Decision{Party: party, Intent: intent, Source: mailflow.SourceManual, Actor: "test", At: t}
	if intent == mailflow.IntentReject {
		d.Reason = "Kapazität erschöpft"
	}
	o, err := e.flow.Decide(e.ctx, o.Number, d)
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// bound creates an order at binding and makes it binding then: every
// required party accepts.
func (e *env) bound(file, price string, binding time.Time) *mailflow.Order {
	e.t.Helper()
	e.setClock(binding.Add(-time.Hour))
	o := e.order(file, price)
	for _, p := range o.Parties() {
		o = e.decide(o, p, mailflow.IntentAccept, binding)
	}
	if o.Status != mailflow.StatusOrdered {
		e.t.Fatalf("order %s is %s, want ordered", o.Number, o.Status)
	}
	return o
}

func (e *env) billing(t time.Time, dry bool) scheduler.BillingReport {
	e.t.Helper()
	e.setClock(t)
	rep, err := e.sched.RunBilling(e.ctx, t, dry)
	if err != nil {
		e.t.Fatalf("billing run at %v: %v", t, err)
	}
	return rep
}

// sent is one composed outbox message with its readable text.
type sent struct {
	*mailflow.OutboxMessage
	Text string
}

// outbox returns the outbox rows of a kind, oldest first, with their text.
func (e *env) outbox(kind string) []sent {
	e.t.Helper()
	all, err := e.store.OutboxList(e.ctx, "", 100000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []sent
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		if m.Kind != kind {
			continue
		}
		raw, err := e.store.OutboxRaw(e.ctx, m.ID)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, sent{m, mailText(e.t, raw)})
	}
	return out
}

func (e *env) records() []storage.BillingRecord {
	e.t.Helper()
	recs, err := e.store.BillingRecords(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

// queued counts the reminder lines still to be mailed: a line per
// unreminded period and reminded party.
func (e *env) queued() int {
	e.t.Helper()
	var n int
	if err := e.store.DB().Get(&n, `SELECT COALESCE(SUM(CASE WHEN o.contract_model = 'UV' THEN 2 ELSE 1 END), 0)
		FROM billing_periods p JOIN orders o ON o.id = p.order_id WHERE p.reminded_at IS NULL`); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) count(table string) int {
	e.t.Helper()
	var n int
	if err := e.store.DB().Get(&n, `SELECT COUNT(*) FROM `+table); err != nil {
		e.t.Fatal(err)
	}
	return n
}
