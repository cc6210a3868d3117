package mailflow

import (
	"context"
	"time"
)

// Store is what the domain needs from persistence. storage.Store
// implements it for SQLite and PostgreSQL.
type Store interface {
	// InTx runs fn in one database transaction: everything fn writes
	// commits together or not at all.
	InTx(ctx context.Context, fn func(Tx) error) error
	// Catalog returns the whole catalog as of the latest import the store
	// knows of: another process may have imported since, which
	// Tx.CreateOrder finds. It may be shared with other callers and must
	// not be modified.
	Catalog(ctx context.Context) (*Catalog, error)
	// ImportCatalog inserts or updates every entry of cat; existing orders'
	// snapshots are untouched.
	ImportCatalog(ctx context.Context, cat *Catalog) error
	// Order returns one order by number with its history.
	Order(ctx context.Context, number string) (*Order, error)
	// Orders lists orders newest first.
	Orders(ctx context.Context, f OrderFilter) ([]Order, error)
}

// OrderFilter selects orders for a list.
type OrderFilter struct {
	Status Status
	Query  string // order number, customer or provider, case-insensitive substring
	// Party and PartyID, when Party is set, keep only the orders that
	// party of the catalog is a deciding party of: PartyProvider, the
	// orders placed with provider PartyID (DV and UV); PartyIntermediary,
	// the UV orders of intermediary PartyID. Any other Party selects
	// nothing. The status page scopes a signed-in provider or
	// intermediary with it (docs/design.md §7).
	Party   string
	PartyID string
	Limit   int
	Offset  int
}

// Tx is the part of the store that runs inside one transaction.
type Tx interface {
	// CreateOrder stores o as a new order with the next number of year,
	// YYYY-NNNNNN, and sets its Number and ID; numbers have no gaps, so
	// the allocation serialises concurrent creations until the
	// transaction ends. When an order with o.ExternalID exists it stores
	// nothing and returns false. catalog is the Revision of the catalog
	// o's snapshot was built from: when the catalog has been imported
	// since, it stores nothing and returns ErrCatalogChanged (0: not
	// checked).
	CreateOrder(o *Order, year int, catalog int64) (created bool, err error)
	// CheckCatalog returns ErrCatalogChanged when the catalog has been
	// imported since its Revision revision (0: not checked).
	CheckCatalog(revision int64) error
	// OrderByExternalID returns ErrNotFound when no order has the id.
	OrderByExternalID(externalID string) (*Order, error)
	// LockOrder loads an order with its history and locks it against
	// concurrent decisions until the transaction ends.
	LockOrder(number string) (*Order, error)
	// LockOrderByID is LockOrder by the internal id.
	LockOrderByID(id int64) (*Order, error)
	// InsertDecision appends a decision to an order's history and sets its ID.
	InsertDecision(orderID int64, d *Decision) error
	// SaveEvaluation stores the derived status, binding time, conflict flag
	// and each decision's effect.
	SaveEvaluation(orderID int64, ev Evaluation) error
	// Enqueue adds messages to the outbox; they are sent after commit.
	Enqueue(msgs ...*OutboxMessage) error
}

// OutboxMessage is one outbound email, built once and stored raw so that a
// resend is byte-identical.
type OutboxMessage struct {
	ID            int64      `json:"id"`
	OrderID       int64      `json:"order_id,omitempty"` // 0: not about one order (digest)
	OrderNumber   string     `json:"order_number,omitempty"`
	Ref           int64      `json:"ref"` // the notification id that reply tokens carry
	Kind          string     `json:"kind"`
	Party         string     `json:"party,omitempty"`
	Sender        string     `json:"sender"` // envelope sender
	Recipients    []string   `json:"recipients"`
	MessageID     string     `json:"message_id"`
	Subject       string     `json:"subject"`
	Raw           []byte     `json:"-"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	LastError     string     `json:"last_error,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	SentAt        *time.Time `json:"sent_at,omitempty"`
	// SHA256 is the hex SHA-256 of Raw, recorded when the message is
	// stored; the evidence export checks the stored bytes against it.
	SHA256 string `json:"sha256,omitempty"`
}

// Outbox row states.
const (
	OutboxPending = "pending"
	OutboxSent    = "sent"
	OutboxFailed  = "failed"
)

// Kinds of outbound message.
const (
	KindNotification = "notification"
	KindConfirmation = "confirmation"
	KindRejection    = "rejection"
	KindAck          = "ack"
	KindAlert        = "alert"
	KindReminder     = "reminder"
	KindBilling      = "billing"
	KindDigest       = "digest"
	// KindSignin is a sign-in link to the status page; it belongs to no
	// order and is never shown on the page (it is a credential).
	KindSignin = "signin"
)

// InboundMessage is one received email kept as evidence with its verdict.
type InboundMessage struct {
	ID          int64     `json:"id"`
	MessageID   string    `json:"message_id"` // the dedup key: Message-ID, or sha256:<hex>
	SHA256      string    `json:"sha256"`
	ReceivedAt  time.Time `json:"received_at"`
	Mailbox     string    `json:"mailbox,omitempty"`
	UIDValidity uint32    `json:"uidvalidity,omitempty"`
	UID         uint32    `json:"uid,omitempty"`
	From        string    `json:"from"`
	Subject     string    `json:"subject"`
	Verdict     string    `json:"verdict"`
	Reason      string    `json:"reason"`
	OrderID     int64     `json:"order_id,omitempty"`
	OrderNumber string    `json:"order_number,omitempty"`
	Party       string    `json:"party,omitempty"`
	Intent      Intent    `json:"intent,omitempty"`
	NeedsReview bool      `json:"needs_review"`
	// AlertSuppressed: the coordinator alert for this junk message was
	// held back, one having gone out for its sender within the hour.
	AlertSuppressed bool   `json:"alert_suppressed,omitempty"`
	Size            int64  `json:"size"`
	Raw             []byte `json:"-"`
	// Auth is how the message was tied to its order and its sender
	// checked; nil when it matched no order.
	Auth *AuthCheck `json:"auth,omitempty"`
}

// AuthCheck records, with a received reply, the checks of docs/design.md
// §4 steps 3 and 4 as they were made: the verdict an evidence bundle
// shows for the decision it carried. The configuration may change later;
// this says what applied then.
type AuthCheck struct {
	// Match is what tied the message to the order: "reply token" (in a
	// recipient address or In-Reply-To/References) or "subject tag".
	Match string `json:"match"`
	// Token is the reply token check: "valid" (its HMAC verified) or
	// "none" (no token; matched by the subject tag).
	Token string `json:"token"`
	// Sender is the check of the From address against the party's
	// registered addresses: "registered for the provider", or why not.
	Sender string `json:"sender"`
	// DMARC is the verdict on our trusted server's Authentication-Results:
	// "pass" (a DMARC pass or an aligned DKIM or SPF pass), or why not.
	DMARC string `json:"dmarc"`
	// Results are the DMARC, DKIM and SPF results of the topmost
	// Authentication-Results header of that server, as it wrote them
	// ("mx.example.org; dmarc=pass header.from=…; dkim=pass header.d=…");
	// "" when there is none or no trusted server is configured.
	Results string `json:"authentication_results,omitempty"`
	// DMARCRequired: replies.require_authenticated_sender was set, or the
	// match was by subject tag, so a DMARC pass was needed to decide.
	DMARCRequired bool `json:"dmarc_required"`
}

// InboxTx is what inbound processing needs inside its transaction.
type InboxTx interface {
	Tx
	// ClaimInbound inserts the message with verdict "processing" unless
	// its MessageID is already stored; duplicate is true then. Concurrent
	// daemons see the unique key, so one message is decided once.
	ClaimInbound(m *InboundMessage) (duplicate bool, err error)
	// FinishInbound stores the verdict of a claimed message, and its raw
	// bytes (the claim need not store them).
	FinishInbound(m *InboundMessage) error
	// OutboxByID returns one outbound message (without its raw bytes), or
	// ErrNotFound.
	OutboxByID(id int64) (*OutboxMessage, error)
	// FailOutbox marks an outbound message failed (a bounce); reports a change.
	FailOutbox(id int64, reason string) (bool, error)
	// AllowAnswer records an answer to sender for reason on day and reports
	// false if one was already sent (one per sender, reason and day). day
	// is any bucket string: the junk alert throttle passes an hour.
	AllowAnswer(sender, reason, day string) (bool, error)
	// CountInboundFrom counts messages from sender received since t.
	CountInboundFrom(sender string, since time.Time) (int, error)
}

// InboxStore runs inbound transactions.
type InboxStore interface {
	Store
	InboxTx(ctx context.Context, fn func(InboxTx) error) error
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Transient reports whether err may pass by itself on another try (the
	// connection failed, a lock or conflict) rather than being caused by
	// the data.
	Transient(err error) bool
}
