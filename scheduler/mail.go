package scheduler

import (
	"fmt"
	"net/mail"
	"time"

	"mailflow/mailflow"
)

// NewMailer returns the Mailer that composes the scheduler's mails with
// the Composer, from the templates billing, reminder, escalation and
// digest.
func NewMailer(c *mailflow.Composer) Mailer { return &composerMailer{c: c} }

type composerMailer struct{ c *mailflow.Composer }

// BillingView is MailView.Data of the billing template.
type BillingView struct {
	BillingMail
	Orders int     // orders the lines belong to
	UV     bool    // some line is of a UV order
	Totals []Total // per currency, in order of appearance
}

// Total sums lines of one currency.
type Total struct {
	Currency                       string
	NetCents, VATCents, GrossCents int64
	Lines                          int
}

// BillingReminder is one mail to the reminded party, in its language,
// with questions going to the coordinator. A mail about a single order
// carries its subject tag and is linked to it.
func (m *composerMailer) BillingReminder(b BillingMail) (*mailflow.OutboxMessage, error) {
	v := &BillingView{BillingMail: b}
	seen := map[int64]bool{}
	totals := map[string]int{}
	for _, l := range b.Lines {
		if !seen[l.OrderID] {
			seen[l.OrderID] = true
			v.Orders++
		}
		v.UV = v.UV || l.Model == mailflow.ModelUV
		i, ok := totals[l.Currency]
		if !ok {
			i = len(v.Totals)
			totals[l.Currency] = i
			v.Totals = append(v.Totals, Total{Currency: l.Currency})
		}
		t := &v.Totals[i]
		t.NetCents += l.Period.NetCents
		t.VATCents += l.Period.VATCents
		t.GrossCents += l.Period.GrossCents
		t.Lines++
	}
	msg := mailflow.Mail{Kind: mailflow.KindBilling, Role: b.Role, Lang: b.To.Language,
		To: []mail.Address{{Name: b.To.Name, Address: b.To.Email}}, Template: "billing",
		ReplyTo: m.c.Coordinator(), View: mailflow.MailView{Data: v}}
	if v.Orders == 1 && len(b.Lines) > 0 {
		msg.Order = &mailflow.Order{ID: b.Lines[0].OrderID, Number: b.Lines[0].Number}
	}
	return m.c.Compose(msg)
}

// ReminderView is MailView.Data of the reminder template.
type ReminderView struct {
	Since time.Time // the notification
	Days  int       // whole days undecided
}

// ConfirmationReminder goes to the party's notification address with the
// reply address and links of the notification, so that the party can
// answer the reminder itself.
func (m *composerMailer) ConfirmationReminder(o *mailflow.Order, party string, undecidedFor time.Duration) (*mailflow.OutboxMessage, error) {
	p, ok := o.Party(party)
	if !ok {
		return nil, fmt.Errorf("scheduler: reminder: order %s has no %s", o.Number, party)
	}
	return m.c.Compose(mailflow.Mail{Kind: mailflow.KindReminder, Role: party, Lang: p.Language,
		To: []mail.Address{{Name: p.Name, Address: p.Email}}, Template: "reminder", Order: o, Token: true,
		View: mailflow.MailView{Data: &ReminderView{Since: o.CreatedAt, Days: int(undecidedFor / (24 * time.Hour))}}})
}

// EscalationView is MailView.Data of the escalation template.
type EscalationView struct {
	Party     string // provider or intermediary
	PartyName string
	Email     string
	Since     time.Time
	Days      int
}

// Escalation alerts the coordinator.
func (m *composerMailer) Escalation(o *mailflow.Order, party string, undecidedFor time.Duration) (*mailflow.OutboxMessage, error) {
	p, _ := o.Party(party)
	return m.c.Compose(mailflow.Mail{Kind: mailflow.KindAlert, Role: mailflow.RoleCoordinator,
		To: []mail.Address{{Address: m.c.Coordinator()}}, Template: "escalation", Order: o,
		View: mailflow.MailView{Data: &EscalationView{Party: party, PartyName: p.Name, Email: p.Email, Since: o.CreatedAt,
			Days: int(undecidedFor / (24 * time.Hour))}}})
}

// Digest goes to the coordinator.
func (m *composerMailer) Digest(d DigestData) (*mailflow.OutboxMessage, error) {
	return m.c.Compose(mailflow.Mail{Kind: mailflow.KindDigest, Role: mailflow.RoleCoordinator,
		To: []mail.Address{{Address: m.c.Coordinator()}}, Template: "digest", View: mailflow.MailView{Data: &d}})
}
