package scheduler_test

// PHASE 1 ONLY: a stand-in until the Composer lands on main; replaced by
// the real Mailer.

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/scheduler"
)

var stubRef atomic.Int64

type stubMailer struct{ now func() time.Time }

func newTestMailer(t testing.TB, now func() time.Time) scheduler.Mailer { return stubMailer{now} }

func mailText(t testing.TB, raw []byte) string { return string(raw) }

func stubMsg(kind, party, to, number string, orderID int64, body string) *mailflow.OutboxMessage {
	ref := stubRef.Add(1)
	return &mailflow.OutboxMessage{OrderID: orderID, OrderNumber: number, Ref: ref, Kind: kind, Party: party,
		Sender: "bestellungen@example.org", Recipients: []string{to}, MessageID: fmt.Sprintf("%d@stub", ref),
		Subject: kind, Raw: []byte(body)}
}

func (m stubMailer) BillingReminder(b scheduler.BillingMail) (*mailflow.OutboxMessage, error) {
	var sb strings.Builder
	for _, l := range b.Lines {
		fmt.Fprintf(&sb, "%s %s %s %s %s %s %s %d %d %d\n", l.Number, l.Period.Key, l.InvoiceTo.Role, l.InvoiceTo.Name,
			l.InvoiceTo.Street, l.InvoiceTo.LeitwegID, l.InvoiceTo.CustomerNumber, l.Period.NetCents, l.Period.VATCents, l.Period.GrossCents)
	}
	return stubMsg(mailflow.KindBilling, b.Role, b.To.Email, "", 0, sb.String()), nil
}

func (m stubMailer) ConfirmationReminder(o *mailflow.Order, party string, d time.Duration) (*mailflow.OutboxMessage, error) {
	p, _ := o.Party(party)
	return stubMsg(mailflow.KindReminder, party, p.Email, o.Number, o.ID, o.Number), nil
}

func (m stubMailer) Escalation(o *mailflow.Order, party string, d time.Duration) (*mailflow.OutboxMessage, error) {
	return stubMsg(mailflow.KindAlert, "coordinator", "koordinierung@example.org", o.Number, o.ID, o.Number+" "+party), nil
}

func (m stubMailer) Digest(d scheduler.DigestData) (*mailflow.OutboxMessage, error) {
	return stubMsg(mailflow.KindDigest, "coordinator", "koordinierung@example.org", "", 0, fmt.Sprint(d.Orders)), nil
}

func billingMailLines(t testing.TB, m sent) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(m.Text), "\n") {
		f := strings.Fields(l)
		out = append(out, f[0]+"/"+f[1])
	}
	return out
}
