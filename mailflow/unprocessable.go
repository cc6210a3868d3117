package mailflow

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"strings"
)

// VerdictUnprocessable marks a received message that failed MaxAttempts
// times for no passing reason (the IMAP watcher's MaxAttempts): it waits in the review
// folder for a person, and its row holds the error instead of a decision.
const VerdictUnprocessable = "unprocessable"

// Transient says why a failure to process a message may pass by itself:
// the database refused for a reason of its own state, or does not answer
// (a ping after the failure fails). Otherwise it returns "", and the
// watcher counts the failure against the message (Quarantiner).
func (in *Inbox) Transient(ctx context.Context, cause error) string {
	switch {
	case errors.Is(cause, context.Canceled), errors.Is(cause, context.DeadlineExceeded):
		return "cancelled or timed out"
	case in.Store.Transient(cause):
		return "the database refused for a passing reason"
	}
	if err := in.Store.Ping(ctx); err != nil {
		return "the database does not answer"
	}
	return ""
}

// Quarantine records a message that could not be processed: an inbound
// row for review with verdict "unprocessable" and the error, and an alert
// to the coordinator, in a transaction of its own. The row is keyed by
// mailbox, UIDVALIDITY and UID and holds none of the message's own fields
// (sender, subject, Message-ID, raw bytes), since one of them may be what
// failed; the message itself is in the review folder. When the alert
// cannot be composed or stored, the row is still written alone.
func (in *Inbox) Quarantine(ctx context.Context, m FetchedMessage, attempts int, cause error) error {
	mailbox := CleanText(m.Mailbox, 200)
	rec := &InboundMessage{
		MessageID:   fmt.Sprintf("unprocessable:%s:%d:%d", mailbox, m.UIDValidity, m.UID),
		ReceivedAt:  in.Flow.now().UTC(),
		Mailbox:     mailbox,
		UIDValidity: m.UIDValidity,
		UID:         m.UID,
		Size:        m.Size,
		Verdict:     VerdictUnprocessable,
		Reason:      CleanText(fmt.Sprintf("not processed after %d attempts: %v", attempts, cause), maxReasonText),
		NeedsReview: true,
	}
	if m.Raw != nil {
		rec.SHA256 = sha256Hex(m.Raw)
	}
	var alert *OutboxMessage
	if in.Alerter != nil {
		var err error
		if alert, err = in.Alerter.Alert("Nachricht nicht verarbeitet", unprocessableAlert(rec, m), 0, ""); err != nil {
			in.logError(ctx, "inbound: compose alert for an unprocessable message", "uid", m.UID, "err", err)
			alert = nil
		}
	}
	record := func(alert *OutboxMessage) (enqueued bool, err error) {
		err = in.Store.InboxTx(ctx, func(tx InboxTx) error {
			dup, err := tx.ClaimInbound(rec)
			if err != nil || dup { // recorded before: alerted before
				return err
			}
			if err := tx.FinishInbound(rec); err != nil {
				return err
			}
			enqueued = alert != nil
			return tx.Enqueue(alert)
		})
		return enqueued && err == nil, err
	}
	enqueued, err := record(alert)
	if err != nil && alert != nil {
		in.logError(ctx, "inbound: record unprocessable message with its alert; trying without the alert", "uid", m.UID, "err", err)
		enqueued, err = record(nil)
	}
	if err != nil {
		return fmt.Errorf("mailflow: inbound: record unprocessable message: %w", err)
	}
	if enqueued && in.OnEnqueue != nil {
		in.OnEnqueue()
	}
	if in.Log != nil {
		in.Log.Info("inbound message", "uid", m.UID, "verdict", rec.Verdict, "attempts", attempts)
	}
	return nil
}

func (in *Inbox) logError(ctx context.Context, msg string, args ...any) {
	if in.Log != nil {
		in.Log.ErrorContext(ctx, msg, args...)
	}
}

// unprocessableAlert tells the coordinator where the message is and why.
// The subject helps find it in the review folder; it is read from the
// header best effort, and only here: the alert is stored as bytes, which
// no text column's rules can refuse.
func unprocessableAlert(rec *InboundMessage, m FetchedMessage) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Eine eingegangene Nachricht ließ sich wiederholt nicht verarbeiten und liegt jetzt im Prüfordner.\n")
	fmt.Fprintf(&b, "Sie hält die Nachrichten hinter ihr nicht mehr auf; bitte prüfen und von Hand erfassen.\n\n")
	fmt.Fprintf(&b, "Fehler:      %s\n", rec.Reason)
	if subject := peekSubject(m.Raw); subject != "" {
		fmt.Fprintf(&b, "Betreff:     %s\n", subject)
	}
	if !m.InternalDate.IsZero() {
		fmt.Fprintf(&b, "Eingang:     %s\n", m.InternalDate.In(Berlin).Format("02.01.2006 15:04:05"))
	}
	fmt.Fprintf(&b, "Postfach:    %s, UID %d (UIDVALIDITY %d)\n", rec.Mailbox, rec.UID, rec.UIDValidity)
	fmt.Fprintf(&b, "Größe:       %d Bytes\n", m.Size)
	if rec.SHA256 != "" {
		fmt.Fprintf(&b, "SHA-256:     %s\n", rec.SHA256)
	}
	return b.String()
}

// peekSubject returns the undecoded Subject of a raw message, cleaned and
// cut, or "" — without the parser, which may be what failed.
func peekSubject(raw []byte) string {
	if raw == nil {
		return ""
	}
	// A malformed header still yields the fields before the fault.
	h, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
	return CleanText(strings.Join(strings.Fields(h.Get("Subject")), " "), 200)
}
