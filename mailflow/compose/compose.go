package compose

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"mailflow/mailflow"
	"mailflow/templates"
)

// Recipient roles besides the two deciding parties (PartyProvider,
// PartyIntermediary). OutboxMessage.Party holds one of the four.

// MailView is what every mail template receives. Compose fills Lang, Role,
// Coordinator, Order and Reply; the caller fills what its mail needs.
type MailView struct {
	Lang        string
	Role        string          // the recipient's role: provider, intermediary, customer, coordinator
	Coordinator string          // the coordinator's address, for questions
	Order       *mailflow.Order // nil for mails not about one order
	Reply       *ReplyView
	Decision    *mailflow.Decision // the decision that caused the mail
	DecidedBy   string             // the deciding party's name
	Deadline    *time.Time         // the provisioning deadline of a binding order
	Alert       *AlertView
	// TermsFile and ConditionsFile name the attachments of a notification.
	TermsFile      string
	ConditionsFile string
	// Data is a mail's own data, for mails added later (billing
	// reminders, digests).
	Data any
}

// ReplyView is how a deciding party answers: the tokenised reply address
// and two mailto links that prefill a reply with the keyword.
type ReplyView struct {
	Address    string // local+TOKEN@domain
	ConfirmURL string // mailto: prefilled with the accept keyword
	RejectURL  string // mailto: prefilled with the reject keyword and a colon
}

// AlertView is the text of a coordinator alert.
type AlertView struct {
	Subject string
	Body    string
	Number  string // order number when View.Order is nil
}

// Attachment is a file attached to a mail.
type Attachment struct {
	Name        string
	ContentType string // default text/plain; charset=utf-8
	Data        []byte
}

// Mail is one message for Compose to build.
type Mail struct {
	Kind     string // KindNotification, KindAck, …
	Role     string // the recipient's role (OutboxMessage.Party)
	Lang     string // "de" (default) or "en"
	To       []mail.Address
	Template string          // the mail's name in the template set
	Order    *mailflow.Order // sets OrderID, the number and View.Order
	View     MailView
	// Token signs a reply token for Role (which must then be provider or
	// intermediary) into Reply-To and Message-ID, so a reply from this
	// recipient matches the order and party.
	Token bool
	// ReplyTo is a plain Reply-To address for a mail without Token.
	ReplyTo string
	// InReplyTo is the Message-ID (without <>) this mail answers; it sets
	// In-Reply-To and References and marks the mail auto-replied.
	InReplyTo   string
	Attachments []Attachment
}

// Config configures a Composer.
type Config struct {
	// From is the author and envelope sender, "Name <addr>".
	From string
	// ReplyAddress receives replies as local+TOKEN@domain; default: From's address.
	ReplyAddress string
	// Coordinator is the coordinator's (shared mailbox) address.
	Coordinator string
	// MessageIDDomain is the right-hand side of Message-IDs; default: From's domain.
	MessageIDDomain string
	Tokens          *mailflow.Tokens
	Templates       *templates.Set
	Now             func() time.Time // default time.Now
}

// Composer builds outbound mails once, as the raw bytes the outbox stores
// and sends. It implements Notifier.
type Composer struct {
	from        mail.Address
	replyLocal  string
	replyDomain string
	coordinator mail.Address
	midDomain   string
	tokens      *mailflow.Tokens
	tmpl        *templates.Set
	now         func() time.Time
	// ref returns a new notification id; newRef, or a sequence in tests.
	ref func() (int64, error)
}

var _ mailflow.Notifier = (*Composer)(nil)

// New checks the configuration and returns a Composer.
func New(cfg Config) (*Composer, error) {
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mailflow: composer: from %q: %w", cfg.From, err)
	}
	from.Name = templates.OneLine(from.Name)
	replyAddr := cfg.ReplyAddress
	if replyAddr == "" {
		replyAddr = from.Address
	}
	if !mailflow.ValidEmail(replyAddr) {
		return nil, fmt.Errorf("mailflow: composer: reply address %q is not an address", replyAddr)
	}
	at := strings.LastIndexByte(replyAddr, '@')
	local := replyAddr[:at]
	if strings.Contains(local, "+") {
		return nil, fmt.Errorf("mailflow: composer: reply address %q must not contain '+'", replyAddr)
	}
	if len(local)+1+mailflow.TokenLen > 64 {
		return nil, fmt.Errorf("mailflow: composer: reply address local part %q is too long for a token (RFC 5321 §4.5.3.1.1)", local)
	}
	if !mailflow.ValidEmail(cfg.Coordinator) {
		return nil, fmt.Errorf("mailflow: composer: coordinator %q is not an address", cfg.Coordinator)
	}
	if cfg.Tokens == nil || cfg.Templates == nil {
		return nil, errors.New("mailflow: composer: tokens and templates are required")
	}
	for _, name := range []string{"notification", "confirmation", "rejection", "ack", "conflict", "alert"} {
		if !cfg.Templates.Has(name) {
			return nil, fmt.Errorf("mailflow: composer: template %q missing", name)
		}
	}
	dom := cfg.MessageIDDomain
	if dom == "" {
		dom = from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	}
	if !msgIDPart.MatchString(dom) {
		return nil, fmt.Errorf("mailflow: composer: message id domain %q is invalid", dom)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Composer{
		from: *from, replyLocal: local, replyDomain: replyAddr[at+1:],
		coordinator: mail.Address{Address: cfg.Coordinator}, midDomain: dom,
		tokens: cfg.Tokens, tmpl: cfg.Templates, now: now, ref: newRef,
	}, nil
}

// Coordinator returns the coordinator's address.
func (c *Composer) Coordinator() string { return c.coordinator.Address }

// OrderCreated returns the order notification to each deciding party
// (provider; in UV also the intermediary), each with its own reply token,
// the AGB and the service conditions attached.
func (c *Composer) OrderCreated(o *mailflow.Order) ([]*mailflow.OutboxMessage, error) {
	var out []*mailflow.OutboxMessage
	for _, m := range c.notifications(o) {
		msg, err := c.Compose(m)
		if err != nil {
			return nil, err
		}
		out = append(out, msg)
	}
	return out, nil
}

// notifications are the mails of OrderCreated.
func (c *Composer) notifications(o *mailflow.Order) []Mail {
	s := o.Snapshot
	termsFile := "AGB-" + fileSafe(s.Terms.Version) + ".txt"
	condFile := "Bedingungen-" + fileSafe(s.Service.ID) + "-" + fileSafe(s.Conditions.Version) + ".txt"
	atts := []Attachment{
		{Name: termsFile, Data: []byte(s.Terms.Text)},
		{Name: condFile, Data: []byte(s.Conditions.Text)},
	}
	var out []Mail
	for _, party := range o.Parties() {
		p, _ := o.Party(party)
		out = append(out, Mail{
			Kind: mailflow.KindNotification, Role: party, Lang: p.Language, To: []mail.Address{{Name: p.Name, Address: p.Email}},
			Template: "notification", Order: o, Token: true, Attachments: atts,
			View: MailView{TermsFile: termsFile, ConditionsFile: condFile},
		})
	}
	return out
}

// DecisionRecorded returns what a recorded decision sends:
//   - the order just became Bestellt: the binding confirmation to the
//     provider, the customer, the intermediary (UV) and the coordinator;
//   - a rejection: its reason to the other parties, the customer and the
//     coordinator; the rejecting party gets nothing, not even when it
//     repeats its rejection: an acknowledgement answers accept, working
//     and review only;
//   - any other declaration by email or on the status page: an
//     acknowledgement to its sender (the signed-in address);
//   - a declaration after the order became final that disagrees with it: an
//     alert to the coordinator and, by email, an answer that the order is
//     already final.
//
// Decisions recorded by hand get no acknowledgement: nobody wrote to us.
func (c *Composer) DecisionRecorded(o *mailflow.Order, d mailflow.Decision, prev mailflow.Status) ([]*mailflow.OutboxMessage, error) {
	var out []*mailflow.OutboxMessage
	add := func(m *mailflow.OutboxMessage, err error) error {
		if err != nil {
			return err
		}
		out = append(out, m)
		return nil
	}
	// A party's own declaration, by email or on the status page, is
	// answered alike; one recorded by a coordinator is not.
	byEmail := d.Source == mailflow.SourceEmail || d.Source == mailflow.SourcePage
	switch {
	case d.Effect == mailflow.EffectConflict:
		if err := add(c.conflictAlert(o, d)); err != nil {
			return nil, err
		}
		if byEmail {
			if err := add(c.Ack(o, d, "")); err != nil {
				return nil, err
			}
		}
	case d.Effect == mailflow.EffectApplied && !prev.Terminal() && o.Status == mailflow.StatusOrdered:
		for _, role := range c.recipients(o, "") {
			if err := add(c.outcome(mailflow.KindConfirmation, "confirmation", o, d, role)); err != nil {
				return nil, err
			}
		}
	case d.Effect == mailflow.EffectApplied && !prev.Terminal() && o.Status.Terminal():
		for _, role := range c.recipients(o, d.Party) {
			if err := add(c.outcome(mailflow.KindRejection, "rejection", o, d, role)); err != nil {
				return nil, err
			}
		}
	case byEmail && d.Intent != mailflow.IntentReject && (d.Effect == mailflow.EffectApplied || d.Effect == mailflow.EffectSuperseded || d.Effect == mailflow.EffectRepeat):
		if err := add(c.Ack(o, d, "")); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// recipients lists who hears of an outcome: the order's deciding parties
// except skip, the customer and the coordinator.
func (c *Composer) recipients(o *mailflow.Order, skip string) []string {
	var roles []string
	for _, p := range []string{mailflow.PartyProvider, mailflow.PartyIntermediary} {
		if _, ok := o.Party(p); ok && p != skip && (p == mailflow.PartyProvider || o.ContractModel == mailflow.ModelUV) {
			roles = append(roles, p)
		}
	}
	return append(roles, mailflow.RoleCustomer, mailflow.RoleCoordinator)
}

// outcome composes a confirmation or rejection notice for one recipient.
func (c *Composer) outcome(kind, tmpl string, o *mailflow.Order, d mailflow.Decision, role string) (*mailflow.OutboxMessage, error) {
	m := Mail{Kind: kind, Role: role, Template: tmpl, Order: o,
		View: MailView{Decision: &d, Deadline: o.ProvisioningDeadline()}}
	if p, ok := o.Party(d.Party); ok {
		m.View.DecidedBy = p.Name
	}
	switch role {
	case mailflow.PartyProvider, mailflow.PartyIntermediary:
		p, _ := o.Party(role)
		m.Lang, m.To, m.Token = p.Language, []mail.Address{{Name: p.Name, Address: p.Email}}, true
		if role == d.Party && d.Source == mailflow.SourceEmail {
			m.InReplyTo = d.MessageID // this answers the decider's own mail
		}
	case mailflow.RoleCustomer:
		cu := o.Snapshot.Customer
		m.Lang, m.To = cu.Language, []mail.Address{{Name: cu.Name, Address: cu.Email}}
		m.ReplyTo = c.coordinator.Address // a customer's questions go to people
	case mailflow.RoleCoordinator:
		m.To = []mail.Address{c.coordinator}
	}
	return c.Compose(m)
}

// Ack composes the answer to a party's declaration: an acknowledgement, or,
// when the declaration came after the order became final and disagrees
// (d.Effect conflict), the answer that the order is already final. to is
// the authenticated sender's address; "" uses d.Actor when the party
// registered exactly that address (not just its domain), else the
// party's notification address.
// The answer is an auto-reply (RFC 3834 §5) to d.MessageID.
func (c *Composer) Ack(o *mailflow.Order, d mailflow.Decision, to string) (*mailflow.OutboxMessage, error) {
	p, ok := o.Party(d.Party)
	if !ok {
		return nil, fmt.Errorf("mailflow: ack: order %s has no %s", o.Number, d.Party)
	}
	if to == "" {
		to = p.Email
		if a := strings.TrimSpace(d.Actor); mailflow.ValidEmail(a) && p.OwnAddress(a) {
			to = a
		}
	}
	tmpl := "ack"
	if d.Effect == mailflow.EffectConflict {
		tmpl = "conflict"
	}
	return c.Compose(Mail{
		Kind: mailflow.KindAck, Role: d.Party, Lang: p.Language, To: []mail.Address{{Name: p.Name, Address: to}},
		Template: tmpl, Order: o, Token: true, InReplyTo: d.MessageID,
		View: MailView{Decision: &d, DecidedBy: p.Name},
	})
}

func (c *Composer) conflictAlert(o *mailflow.Order, d mailflow.Decision) (*mailflow.OutboxMessage, error) {
	var b strings.Builder
	name := d.Party
	if p, ok := o.Party(d.Party); ok {
		name = p.Name + " (" + d.Party + ")"
	}
	fmt.Fprintf(&b, "Zur Bestellung %s ist nach ihrem Abschluss eine abweichende Erklärung eingegangen.\n\n", o.Number)
	fmt.Fprintf(&b, "Partei:     %s\n", name)
	fmt.Fprintf(&b, "Erklärung:  %s\n", d.Intent)
	if d.Reason != "" {
		fmt.Fprintf(&b, "Begründung: %s\n", d.Reason)
	}
	fmt.Fprintf(&b, "Quelle:     %s", d.Source)
	if d.Actor != "" {
		fmt.Fprintf(&b, " (%s)", d.Actor)
	}
	if d.MessageID != "" {
		fmt.Fprintf(&b, ", Message-ID <%s>", d.MessageID)
	}
	fmt.Fprintf(&b, "\nZeit:       %s\n\n", d.At.In(mailflow.Berlin).Format("02.01.2006 15:04:05"))
	fmt.Fprintf(&b, "Der Status bleibt %q. Bitte klären Sie den Vorgang mit der Partei.\n", o.Status.Label())
	return c.Compose(Mail{
		Kind: mailflow.KindAlert, Role: mailflow.RoleCoordinator, To: []mail.Address{c.coordinator}, Template: "alert", Order: o,
		View: MailView{Decision: &d, Alert: &AlertView{Subject: "Erklärung nach Abschluss der Bestellung", Body: b.String()}},
	})
}

// Alert composes an alert to the coordinator. orderID and number may be
// zero and empty for alerts not about one order.
func (c *Composer) Alert(subject, body string, orderID int64, number string) (*mailflow.OutboxMessage, error) {
	m, err := c.Compose(Mail{
		Kind: mailflow.KindAlert, Role: mailflow.RoleCoordinator, To: []mail.Address{c.coordinator}, Template: "alert",
		View: MailView{Alert: &AlertView{Subject: subject, Body: body, Number: number}},
	})
	if err != nil {
		return nil, err
	}
	m.OrderID, m.OrderNumber = orderID, number
	return m, nil
}

// msgIDPart is what mailflow puts on either side of a Message-ID's "@":
// RFC 5322 §3.6.4 dot-atom-text, restricted to characters no mail system
// mangles.
var msgIDPart = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+/=?^_{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_{|}~-]+)*$`)

// cleanMsgID returns a Message-ID from a header without its brackets, or
// "" when it is not a plain id-left@id-right: a value from a received mail
// must not carry anything else into our headers.
func cleanMsgID(id string) string {
	id = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(id), "<"), ">")
	left, right, ok := strings.Cut(id, "@")
	if !ok || len(id) > 250 || !msgIDPart.MatchString(left) || !(msgIDPart.MatchString(right) || isDomainLiteral(right)) {
		return ""
	}
	return id
}

func isDomainLiteral(s string) bool {
	return len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' && !strings.ContainsAny(s[1:len(s)-1], "[]\\ \r\n\t<>")
}

// Compose renders a mail and builds it once, as the raw message the outbox
// stores and sends unchanged. Every header value is one line: template
// output and names pass through templates.OneLine, addresses are checked.
// Compose is the building block for mails added later (billing reminders,
// digests): give it a template name and put the mail's data in View.Data.
func (c *Composer) Compose(m Mail) (*mailflow.OutboxMessage, error) {
	ref, err := c.ref()
	if err != nil {
		return nil, err
	}
	if len(m.To) == 0 {
		return nil, fmt.Errorf("mailflow: compose %s: no recipient", m.Kind)
	}
	var number, token string
	var orderID int64
	if m.Order != nil {
		number, orderID = m.Order.Number, m.Order.ID
	}
	lang := templates.Lang(m.Lang)
	view := m.View
	view.Lang, view.Role, view.Coordinator, view.Order = lang, m.Role, c.coordinator.Address, m.Order
	if m.Token {
		if m.Order == nil || (m.Role != mailflow.PartyProvider && m.Role != mailflow.PartyIntermediary) {
			return nil, fmt.Errorf("mailflow: compose %s: a reply token needs an order and a deciding party", m.Kind)
		}
		token = c.tokens.Sign(mailflow.Token{OrderID: orderID, Party: m.Role, NotificationID: ref})
		view.Reply = c.replyView(token, number, lang)
	}
	r, err := c.tmpl.Render(m.Template, lang, &view)
	if err != nil {
		return nil, fmt.Errorf("mailflow: compose %s: %w", m.Kind, err)
	}

	msgID, err := c.messageID(m.Kind, number, token, ref)
	if err != nil {
		return nil, err
	}
	raw, rcpts, err := c.build(m, r, msgID, token)
	if err != nil {
		return nil, err
	}
	return &mailflow.OutboxMessage{
		OrderID: orderID, OrderNumber: number, Ref: ref, Kind: m.Kind, Party: m.Role,
		Sender: c.from.Address, Recipients: rcpts, MessageID: msgID, Subject: r.Subject, Raw: raw,
	}, nil
}

// messageID is the Message-ID of a mail: stable per outbox row (ref), and
// for a notification it carries the reply token, so that a reply from a
// server without plus-addressing matches through In-Reply-To/References.
func (c *Composer) messageID(kind, number, token string, ref int64) (string, error) {
	idLeft := fmt.Sprintf("%s.%d", kind, ref)
	if number != "" {
		idLeft = fmt.Sprintf("%s.%d", number, ref)
	}
	if token != "" {
		idLeft = number + "." + token
	}
	if !msgIDPart.MatchString(idLeft) {
		return "", fmt.Errorf("mailflow: compose %s: order number %q does not fit a Message-ID", kind, number)
	}
	return idLeft + "@" + c.midDomain, nil
}

// build writes the message with go-mail: headers, the text and HTML
// alternatives and the attachments. It returns the bytes to store and
// send, and the envelope recipients.
func (c *Composer) build(m Mail, r templates.Rendered, msgID, token string) ([]byte, []string, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(&c.from)
	to := make([]*mail.Address, len(m.To))
	rcpts := make([]string, len(m.To))
	for i, a := range m.To {
		if !mailflow.ValidEmail(a.Address) {
			return nil, nil, fmt.Errorf("mailflow: compose %s: recipient %q is not an address", m.Kind, a.Address)
		}
		to[i] = &mail.Address{Name: templates.OneLine(a.Name), Address: a.Address}
		rcpts[i] = a.Address
	}
	msg.ToMailAddress(to...)
	switch {
	case token != "":
		msg.ReplyToMailAddress(&mail.Address{Address: c.replyLocal + "+" + token + "@" + c.replyDomain})
	case m.ReplyTo != "":
		if !mailflow.ValidEmail(m.ReplyTo) {
			return nil, nil, fmt.Errorf("mailflow: compose %s: reply-to %q is not an address", m.Kind, m.ReplyTo)
		}
		msg.ReplyToMailAddress(&mail.Address{Address: m.ReplyTo})
	}
	msg.Subject(r.Subject)
	msg.SetMessageIDWithValue(msgID)
	msg.SetDateWithValue(c.now().In(mailflow.Berlin))
	// RFC 3834 §5: auto-generated for what we send on our own, auto-replied
	// for answers to a message; both tell responders not to answer.
	auto := "auto-generated"
	if irt := cleanMsgID(m.InReplyTo); irt != "" {
		auto = "auto-replied"
		msg.SetGenHeader(gomail.HeaderInReplyTo, "<"+irt+">")
		// Preformatted: go-mail joins the values of a header with ", ",
		// where RFC 5322 §3.6.4 separates message ids by white space.
		msg.SetGenHeaderPreformatted(gomail.HeaderReferences, "<"+irt+">")
	}
	msg.SetGenHeader("Auto-Submitted", auto)
	msg.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	// Both alternatives quoted-printable (go-mail's default encoding):
	// the German text stays readable in the raw message.
	msg.SetBodyString(gomail.TypeTextPlain, r.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, r.HTML)
	for _, a := range m.Attachments {
		ct := a.ContentType
		if ct == "" {
			ct = "text/plain; charset=utf-8"
		}
		if err := msg.AttachReader(fileSafe(a.Name), bytes.NewReader(a.Data), gomail.WithFileContentType(gomail.ContentType(ct))); err != nil {
			return nil, nil, fmt.Errorf("mailflow: compose %s: attach %s: %w", m.Kind, a.Name, err)
		}
	}
	var raw bytes.Buffer
	if _, err := msg.WriteTo(&raw); err != nil {
		return nil, nil, fmt.Errorf("mailflow: compose %s: %w", m.Kind, err)
	}
	return raw.Bytes(), rcpts, nil
}

// replyView builds the reply address and the two mailto links (RFC 6068)
// that prefill a reply with the keyword, so a party needs one click and
// one sentence.
func (c *Composer) replyView(token, number, lang string) *ReplyView {
	addr := c.replyLocal + "+" + token + "@" + c.replyDomain
	subject := "Re: [Bestellung " + number + "]"
	accept, reject := "BESTÄTIGT", "ABGELEHNT: "
	if lang == "en" {
		accept, reject = "CONFIRMED", "REJECTED: "
	}
	link := func(body string) string {
		return "mailto:" + addr + "?subject=" + pctEncode(subject) + "&body=" + pctEncode(body)
	}
	return &ReplyView{Address: addr, ConfirmURL: link(accept), RejectURL: link(reject)}
}

// pctEncode percent-encodes everything but RFC 3986 unreserved characters,
// as RFC 6068 §2 requires for mailto header values (space is %20, never +).
func pctEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'A' <= ch && ch <= 'Z' || 'a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '.' || ch == '_' || ch == '~' {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[ch>>4])
		b.WriteByte(hex[ch&15])
	}
	return b.String()
}

// fileSafe keeps letters, digits, '.', '_' and '-' of a file name part.
func fileSafe(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if !('A' <= ch && ch <= 'Z' || 'a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// newRef returns a random, nonzero 40-bit notification id: the width the
// reply token carries.
func newRef() (int64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[3:]); err != nil {
			return 0, fmt.Errorf("mailflow: random: %w", err)
		}
		if v := int64(binary.BigEndian.Uint64(b[:])); v != 0 {
			return v, nil
		}
	}
}
