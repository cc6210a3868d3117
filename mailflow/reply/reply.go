// Package reply turns one raw inbound email into the facts the order flow
// decides on: which message it answers, who sent it, whether it is a reply at
// all (or a bounce or an auto-reply), and which intent the sender's own text
// declares (docs/design.md §3, §4 "Inbound" steps 2 and 5).
//
// The package is pure: no I/O, no clock, no package-level state. Everything
// it decides comes with a human-readable reason, because a coordinator has to
// be able to follow why a message was (or was not) taken as a binding
// declaration ("inbox explain").
package reply

import (
	"net/textproto"
	"time"
)

// Intent is what a party's reply declares (docs/design.md §3). The string values are
// the ones the order flow, the API and the database use.
type Intent string

// The intents a reply can carry. IntentNone means the own text carries no
// keyword; such a reply goes to a person instead of changing the order.
const (
	IntentNone    Intent = ""
	IntentAccept  Intent = "accept"
	IntentReview  Intent = "review"
	IntentWorking Intent = "working"
	IntentReject  Intent = "reject"
)

// Kind says what sort of message arrived, because only a reply may change an
// order: bounces mark our outbound message failed, auto-replies are ignored,
// and neither is ever answered (answering them risks mail loops).
type Kind string

// The message kinds Classify tells apart.
const (
	KindReply     Kind = "reply"
	KindBounce    Kind = "bounce"
	KindAutoReply Kind = "auto-reply"
)

// AuthResult is one parsed Authentication-Results header (RFC 8601). Only a
// result added by a server we trust means anything, so AuthServID is kept for
// the caller to compare with its configured trusted_authserv_id.
type AuthResult struct {
	AuthServID string       // the authserv-id, as written by the verifying server
	DMARC      string       // pass, fail, none, … or "" if no dmarc result
	DMARCFrom  string       // header.from of the dmarc result, lowercased
	DKIM       []DKIMResult // every dkim result, in header order
	// SPF is the first spf result (pass, fail, softfail, …, lowercased) and
	// SPFDomain the domain of its smtp.mailfrom (RFC 8601 §2.7.2), which
	// the caller checks for alignment with the From domain (RFC 7489
	// §3.1.2). A result for smtp.helo alone leaves SPFDomain "".
	SPF       string
	SPFDomain string
}

// DKIMResult is one dkim method result of an Authentication-Results header.
// Domain is what the caller checks for alignment with the From domain.
type DKIMResult struct {
	Result string // pass, fail, neutral, …, lowercased
	Domain string // header.d (or the domain of header.i), lowercased
}

// Message is what Parse learns from a raw message. Addresses are lowercased
// addr-specs because matching (token, registered senders) must not depend on
// how a client spelled them; display strings are decoded to UTF-8.
type Message struct {
	MessageID  string   // without <>, "" if absent
	InReplyTo  []string // msg-ids without <>
	References []string // msg-ids without <>, oldest first as sent
	From       string   // lowercased addr-spec of the (first) From address
	FromName   string   // decoded display name of From
	ReturnPath string   // lowercased addr-spec of Return-Path, "" if none or null
	NullSender bool     // Return-Path is "<>" (RFC 5321 §4.5.5)
	// Recipients are the lowercased addr-specs from To, Cc, Delivered-To,
	// X-Original-To and Envelope-To, deduplicated, in that order: the reply
	// token may survive in any of them.
	Recipients []string
	Subject    string    // decoded (RFC 2047), UTF-8
	Date       time.Time // the Date header; zero if absent or unparseable
	// Text is the body as UTF-8 text: text/plain preferred, else HTML
	// converted to text (blockquotes become "> " lines so that they count as
	// quoted). Attachments never contribute.
	Text        string
	AuthResults []AuthResult // every Authentication-Results header, topmost first
	Kind        Kind
	KindReason  string // why Kind was chosen, for the coordinator
	// BounceMessageIDs are, for a bounce, the Message-ID and References of
	// the returned message and the DSN's Original-Envelope-Id, so the caller
	// can find and mark the outbound message that failed.
	BounceMessageIDs []string
	// BounceRecipient is the Original-Recipient (else Final-Recipient) of
	// the DSN, lowercased, "" if the bounce has no delivery-status part.
	BounceRecipient string
	// BounceAction is the DSN Action of that recipient (RFC 3464 §2.3.3):
	// failed, delayed, delivered, relayed or expanded. Only "failed" (or ""
	// for a bounce without a delivery-status part) means the message is
	// lost; "delayed" is a warning while the sender still retries.
	BounceAction string
	// BounceStatus is the DSN Status code of that recipient, e.g. "5.1.1".
	BounceStatus string
	// BounceDiagnostic is the Diagnostic-Code text of that recipient, for
	// the coordinator.
	BounceDiagnostic string
	SHA256           string // hex SHA-256 of the raw bytes, the fallback dedup key
	Size             int64  // length of the raw bytes
	// Header holds the top-level header fields, unfolded and undecoded
	// (made valid UTF-8), so Classify and "inbox explain" can look at fields
	// the struct does not carry.
	Header textproto.MIMEHeader

	// deliveryStatus is set when a message/delivery-status part was found
	// anywhere in the MIME tree, so a DSN wrapped by a gateway is still
	// recognised.
	deliveryStatus bool
}
