package mailflow

import (
	"errors"
	"time"
)

// The billing domain: the periods a binding order is billed for, what a
// billing run records and what its reminders need. The scheduler computes
// and mails them; storage keeps them.

// Period is one billing period of an order: [Start, End) in the billing time
// zone, both at local midnight. Key together with the order is the unique key
// of the reminder sent for it, which is what makes a billing run idempotent:
// periods are recomputed from the binding date on every run, and a period
// whose key already has a reminder is not billed again.
type Period struct {
	// Key is stable for the order's lifetime: "2026-11" (monthly), "2026-Q4"
	// (quarterly), "2026" (yearly) or "once". The prorated first period has
	// the key of the calendar period it lies in.
	Key string `json:"key"`
	// Start is local midnight of the first billed day: the binding date for
	// the first period, the start of the calendar period otherwise. End is
	// local midnight after the last billed day (exclusive).
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Days is the number of calendar days in [Start, End); it is less than
	// FullDays only in a prorated first period.
	Days int `json:"days"`
	// FullDays is the number of calendar days of the whole calendar period,
	// the denominator of the proration.
	FullDays int `json:"full_days"`
	// NetCents, VATCents and GrossCents are the line amounts (scheduler.Amounts).
	NetCents   int64 `json:"net_cents"`
	VATCents   int64 `json:"vat_cents"`
	GrossCents int64 `json:"gross_cents"`
}

// LastDay is the last billed day of the period (End is exclusive).
func (p Period) LastDay() time.Time { return p.End.AddDate(0, 0, -1) }

// Prorated reports whether the period is billed for part of its days.
func (p Period) Prorated() bool { return p.Days != p.FullDays }

// BillingDoc is what billing reminders need of an order's frozen
// snapshot: whom to remind and whom they invoice. Storage keeps it as JSON
// beside the order's price when the order becomes binding, so that a
// billing run never reads the snapshot with its terms texts. Its JSON keys
// are the snapshot's.
type BillingDoc struct {
	Customer     Invoicee      `json:"customer"`
	Provider     BillingParty  `json:"provider"`
	Intermediary *BillingParty `json:"intermediary,omitempty"`
	Service      string        `json:"service"`
	PriceName    string        `json:"price_name"`
	Currency     string        `json:"currency"`
}

// BillingParty is a reminded party: where its reminders go and, for the
// intermediary, the invoice address the provider bills in UV.
type BillingParty struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Email      string `json:"email"`
	Language   string `json:"language,omitempty"`
	Street     string `json:"street,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	City       string `json:"city,omitempty"`
	LeitwegID  string `json:"leitweg_id,omitempty"`
}

func billingParty(p *Party) BillingParty {
	return BillingParty{ID: p.ID, Name: p.Name, Email: p.Email, Language: p.Language, Street: p.Street,
		PostalCode: p.PostalCode, City: p.City, LeitwegID: p.LeitwegID}
}

// NewBillingDoc extracts the BillingDoc of a snapshot.
func NewBillingDoc(sn *Snapshot) BillingDoc {
	c := &sn.Customer
	d := BillingDoc{
		Customer: Invoicee{Name: c.Name, Street: c.Street, PostalCode: c.PostalCode, City: c.City, Country: c.Country,
			CustomerNumber: c.CustomerNumber, LeitwegID: c.LeitwegID},
		Provider: billingParty(&sn.Provider), Service: sn.Service.Name, PriceName: sn.Price.Name, Currency: sn.Price.Currency,
	}
	if sn.Intermediary != nil {
		im := billingParty(sn.Intermediary)
		d.Intermediary = &im
	}
	return d
}

// Invoicee is whom a reminded party is to invoice: the customer, or in UV
// for the provider the intermediary.
type Invoicee struct {
	Role           string `json:"role,omitempty"` // scheduler.RoleCustomer or PartyIntermediary; not stored in a BillingDoc
	Name           string `json:"name"`
	Street         string `json:"street"`
	PostalCode     string `json:"postal_code"`
	City           string `json:"city"`
	Country        string `json:"country,omitempty"`
	CustomerNumber string `json:"customer_number,omitempty"` // "" for the intermediary
	LeitwegID      string `json:"leitweg_id"`                // routing id of the e-invoice (XRechnung)
}

// BillingOrder is a binding order as a billing run sees it.
type BillingOrder struct {
	OrderID        int64
	Number         string
	Model          string // DV or UV
	ProviderID     string
	IntermediaryID string // "" in DV
	BindingAt      time.Time
	DueAt          time.Time // End of the next unbilled period; the binding time until a run has seen the order
	Interval       string
	AmountCents    int64
	VATPercent     float64
	Doc            string // JSON of the order's BillingDoc
}

// Bill is what a run records for one order: the periods it bills and
// when the order is due next (nil: nothing more to bill).
type Bill struct {
	OrderID int64
	Periods []Period
	DueAt   *time.Time
}

// BilledPeriod is a recorded period of an order.
type BilledPeriod struct {
	*BillingOrder
	Period Period
}

// PeriodRef names a billed period: its order and key.
type PeriodRef struct {
	OrderID int64
	Key     string
}

// ReminderRecord is a confirmation reminder or escalation sent: a row of
// confirmation_reminders. Slot is the number of
// whole RemindAfter intervals the party had been undecided when the
// reminder was sent (1 for the first), 0 for the escalation: (order,
// party, kind, slot) is unique, so each interval is reminded once and the
// coordinator alerted once, however many runs or daemons look.
type ReminderRecord struct {
	OrderID int64
	Party   string
	Kind    string
	Slot    int64
	SentAt  time.Time
}

// JobTx is what a scheduler job does inside one transaction; storage
// implements it.
type JobTx interface {
	// Enqueue adds messages to the outbox; they are sent after commit.
	Enqueue(msgs ...*OutboxMessage) error

	// LockDueBillingOrders reads the orders due by now with ids from lo
	// to hi, by id, locking them against concurrent runs until the
	// transaction ends.
	LockDueBillingOrders(lo, hi int64, now time.Time) ([]BillingOrder, error)
	// RecordBilling records the periods of each bill, unreminded, under
	// the unique key (order, period), and when its order is due next.
	RecordBilling(bills []Bill, at time.Time) error
	// MarkReminded marks periods reminded and returns how many of them
	// were not: fewer than given means a concurrent run mailed some.
	MarkReminded(periods []PeriodRef, at time.Time) (int, error)

	// LockUndecidedOrders lists orders that are not final, created at or
	// before createdBefore, with id > afterID, by id, with their
	// history, locking them against concurrent decisions until the
	// transaction ends.
	LockUndecidedOrders(createdBefore time.Time, afterID int64, limit int) ([]Order, error)
	// RecordReminder records a confirmation reminder or escalation under
	// its unique key (order, party, kind, slot) and reports false if it
	// was recorded before.
	RecordReminder(r ReminderRecord) (bool, error)

	// ClaimDigest records the digest of a cron tick and reports false if
	// it was sent before.
	ClaimDigest(slot, at time.Time) (bool, error)
}

// OrderInvoice is the e-invoice of one billed period of an order from one
// seller: what GET /api/v1/orders/{number}/invoices lists.
type OrderInvoice struct {
	Period         string // the period's key
	Role           string // the seller's: provider or intermediary
	Seller         string
	Buyer          string
	BuyerReference string // the buyer's Leitweg-ID
	XML            []byte
}

// ErrNoInvoice is returned for an order whose billed periods have no
// e-invoice because its sellers' catalog data is incomplete.
var ErrNoInvoice = errors.New("no e-invoice")
