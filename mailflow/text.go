package mailflow

import (
	"strings"
	"unicode/utf8"

	"mailflow/mailflow/reply"
)

// CleanText returns s as text that SQLite and PostgreSQL both store:
// invalid UTF-8 replaced by U+FFFD, NUL bytes dropped, and at most max
// characters (max <= 0: no limit), cut between characters.
//
// PostgreSQL rejects a text value with an invalid UTF-8 sequence or a 0x00
// byte, so one such value in a received message would fail its INSERT on
// every try. Cutting bytes instead of characters creates exactly such a
// sequence out of valid text (a subject of 29 ASCII bytes and 600 "ü" cut
// at 500 bytes ends in half a character).
func CleanText(s string, max int) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 && (max <= 0 || len(s) <= max) {
		return s // len(s) bytes are at least as many characters
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if max <= 0 {
		return s
	}
	n := 0
	for i := range s {
		if n == max {
			return s[:i]
		}
		n++
	}
	return s
}

// Limits, in characters, of the text stored about a received message: a
// person reads them in a list, and the raw message keeps everything.
const (
	maxFromText    = 320 // an addr-spec is at most 64 + 1 + 255 (RFC 5321 §4.5.3.1)
	maxSubjectText = 500
	maxReasonText  = 1000
	// maxMessageID is the longest Message-ID kept, in bytes: a header
	// line is at most 998 characters (RFC 5322 §2.1.1).
	maxMessageID = 998
)

// cleanMessage makes every field of a parsed message that is stored or
// put into a stored text (decisions, reasons, alerts) valid UTF-8 without
// NUL. The parser already decodes to UTF-8 but passes NUL bytes through,
// and a header may carry bytes no charset explains. Nothing is cut here:
// matching must see the fields whole.
func cleanMessage(m *reply.Message) {
	m.MessageID = CleanText(m.MessageID, 0)
	if len(m.MessageID) > maxMessageID {
		// The Message-ID is the inbound table's unique key, and a
		// PostgreSQL index entry holds at most 2704 bytes: a longer one
		// failed every insert. It cannot be genuine, so the message is
		// deduplicated by its hash, like one without a Message-ID.
		m.MessageID = ""
	}
	m.From = CleanText(m.From, 0)
	m.FromName = CleanText(m.FromName, 0)
	m.ReturnPath = CleanText(m.ReturnPath, 0)
	m.Subject = CleanText(m.Subject, 0)
	m.Text = CleanText(m.Text, 0)
	m.KindReason = CleanText(m.KindReason, 0)
	m.BounceRecipient = CleanText(m.BounceRecipient, 0)
	m.BounceAction = CleanText(m.BounceAction, 0)
	m.BounceStatus = CleanText(m.BounceStatus, 0)
	m.BounceDiagnostic = CleanText(m.BounceDiagnostic, 0)
	for _, list := range [][]string{m.InReplyTo, m.References, m.Recipients, m.BounceMessageIDs} {
		for i, s := range list {
			list[i] = CleanText(s, 0)
		}
	}
}
