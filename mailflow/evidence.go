package mailflow

import "time"

// StoredMail is one mail of an order as the store keeps it, received
// (Inbound) or sent (Outbound), never both: what an evidence bundle
// (docs/evidence.md) lists, with the hash recorded when it was stored.
type StoredMail struct {
	Inbound  *InboundMessage
	Outbound *OutboxMessage
	// RawDeletedAt is when the retention job removed the raw bytes
	// (docs/operations.md); nil while they are kept.
	RawDeletedAt *time.Time
}

// At is when the mail was received, or queued to be sent.
func (m StoredMail) At() time.Time {
	if m.Inbound != nil {
		return m.Inbound.ReceivedAt
	}
	return m.Outbound.CreatedAt
}

// SHA256 is the hex SHA-256 of the raw bytes recorded when they were
// stored; "" for a received message that was never downloaded.
func (m StoredMail) SHA256() string {
	if m.Inbound != nil {
		return m.Inbound.SHA256
	}
	return m.Outbound.SHA256
}

// EvidenceExport records one exported evidence bundle: the SHA-256 of
// its signed manifest recognises the bundle when it is handed back.
type EvidenceExport struct {
	OrderNumber    string
	ExportedAt     time.Time
	Actor          string
	ManifestSHA256 string
}

// RetentionCutoffs say what the retention job deletes: whatever is older
// than its cutoff; a zero cutoff deletes nothing of that kind
// (docs/operations.md, "Retention").
type RetentionCutoffs struct {
	// Orders: final orders whose last activity (decision, mail, billed
	// period) is older go, with everything recorded about them.
	Orders time.Time
	// RawMail: the raw bytes of mails received or queued before it go,
	// unless their order is still open; their rows and hashes stay.
	RawMail time.Time
	// Evidence: records of bundles exported before it go.
	Evidence time.Time
}

// RetentionReport counts what one retention run deleted; it holds no
// personal data, so it can be logged as it is.
type RetentionReport struct {
	Orders        int64 `json:"orders"`
	InboundRaw    int64 `json:"inbound_raw"`
	OutboundRaw   int64 `json:"outbound_raw"`
	EvidenceLog   int64 `json:"evidence_exports"`
	InboundRows   int64 `json:"inbound_rows"`  // received mails deleted with their orders
	OutboundRows  int64 `json:"outbound_rows"` // sent mails deleted with their orders
	DecisionsRows int64 `json:"decision_rows"` // decisions deleted with their orders
}
