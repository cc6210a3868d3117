package web

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"mailflow/mailflow"
	"mailflow/mailflow/reply"
)

// maxMailText is how many characters of a message's text the order page
// shows; the .eml download keeps everything.
const maxMailText = 20000

// conversationEntry is one mail of an order as the order page shows it:
// received ("eingang") or sent ("ausgang"), with its readable text.
type conversationEntry struct {
	// Direction is "eingang" or "ausgang", as in the .eml download's path.
	Direction string
	ID        int64
	Anchor    string
	At        time.Time
	From      string
	To        []string
	Subject   string
	MessageID string
	// Received: what became of it, and whether a person must look at it.
	Verdict string
	Party   string
	Intent  mailflow.Intent
	Review  bool
	// Sent: what kind of mail, and whether it went out.
	Kind       string
	SendStatus string
	SentAt     *time.Time
	// Detail is the technical reason the daemon recorded (English, as in
	// the logs and "inbox explain").
	Detail string
	// Stored is false for a received message too large to keep.
	Stored    bool
	Text      string
	Truncated bool
}

// conversation puts an order's sent and received mails into one list in
// time order, each with the text a person reads: the plain-text part, or
// the HTML part rendered as text when there is none (reply.Parse, the
// same reading that found the intent). The page escapes it like every
// other value; no markup from a mail reaches the browser.
func (p *Pages) conversation(ctx context.Context, lang string, out []*mailflow.OutboxMessage, in []*mailflow.InboundMessage) ([]conversationEntry, error) {
	var list []conversationEntry
	for _, m := range in {
		e := conversationEntry{Direction: "eingang", ID: m.ID, At: m.ReceivedAt, From: m.From, Subject: m.Subject,
			MessageID: m.MessageID, Verdict: m.Verdict, Party: m.Party, Intent: m.Intent, Review: m.NeedsReview, Detail: m.Reason}
		raw, err := p.Store.InboundRaw(ctx, m.ID)
		if err != nil {
			return nil, fmt.Errorf("web: conversation: %w", err)
		}
		if pm := e.read(raw); pm != nil {
			e.To = pm.Recipients
		}
		list = append(list, e)
	}
	for _, m := range out {
		e := conversationEntry{Direction: "ausgang", ID: m.ID, At: m.CreatedAt, To: m.Recipients, Subject: m.Subject,
			MessageID: m.MessageID, Party: m.Party, Kind: m.Kind, SendStatus: m.Status, SentAt: m.SentAt, Detail: m.LastError}
		raw, err := p.Store.OutboxRaw(ctx, m.ID)
		if err != nil {
			return nil, fmt.Errorf("web: conversation: %w", err)
		}
		e.read(raw)
		list = append(list, e)
	}
	for i := range list {
		list[i].Anchor = fmt.Sprintf("%s-%d", list[i].Direction, list[i].ID)
	}
	// Oldest first; at the same instant a received mail comes before the
	// answers it caused, and each direction keeps its storage order.
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		if a.Direction != b.Direction {
			return a.Direction == "eingang"
		}
		return a.ID < b.ID
	})
	return list, nil
}

// read takes the sender and the readable text from a mail's stored bytes
// (nil when they are gone) and returns the parsed mail, or nil when there
// is none to read.
func (e *conversationEntry) read(raw []byte) *reply.Message {
	if raw == nil {
		return nil
	}
	e.Stored = true
	pm, err := reply.Parse(raw)
	if err != nil {
		return nil
	}
	e.From = displayAddress(pm.FromName, pm.From)
	e.Text, e.Truncated = mailText(pm.Text)
	return pm
}

// displayAddress writes "Name <addr>" (or the bare address) for a reader;
// the template escapes it.
func displayAddress(name, addr string) string {
	if addr == "" {
		return name
	}
	if name == "" {
		return addr
	}
	return name + " <" + addr + ">"
}

// mailText trims a mail's text for the page: trailing blank lines go, the
// text is cut after maxMailText characters, and control characters other
// than line breaks and tabs are dropped (they would show as boxes).
func mailText(s string) (string, bool) {
	s = strings.TrimRight(s, " \t\n")
	cut := false
	if utf8.RuneCountInString(s) > maxMailText {
		s, cut = mailflow.CleanText(s, maxMailText), true
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s), cut
}
