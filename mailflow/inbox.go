package mailflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"mailflow/mailflow/reply"
)

// FetchedMessage is one message of the watched mailbox.
type FetchedMessage struct {
	Mailbox      string
	UIDValidity  uint32
	UID          uint32
	Size         int64  // RFC822.SIZE as the server reports it
	Raw          []byte // the whole message; nil if TooLarge
	TooLarge     bool   // Size exceeds MaxSize; the message was not downloaded
	InternalDate time.Time
}

// Destinations a Processor returns.
const (
	FolderProcessed = "processed" // WatcherConfig.ProcessedMailbox
	FolderReview    = "review"    // WatcherConfig.ReviewMailbox: a person must look at it
	FolderKeep      = ""          // leave the message where it is
)

// Verdicts of inbound messages.
const (
	VerdictApplied         = "applied"
	VerdictDuplicate       = "duplicate"
	VerdictAutoReply       = "auto-reply"
	VerdictBounce          = "bounce"
	VerdictUnmatched       = "unmatched"
	VerdictUnauthenticated = "unauthenticated"
	VerdictNoIntent        = "no intent"
	VerdictConflict        = "conflict"
	VerdictTooLarge        = "too large"
	VerdictMalformed       = "malformed"
)

// InboxConfig is how replies are authenticated and answered.
type InboxConfig struct {
	// RequireAuthenticatedSender also demands a DMARC pass or an aligned
	// DKIM or SPF pass in the topmost Authentication-Results header of
	// TrustedAuthServID, also for replies that carry a token.
	// TrustedAuthServID is our own MX's authserv-id; only with it can a
	// reply matched by its subject tag alone decide anything.
	RequireAuthenticatedSender bool
	TrustedAuthServID          string
	// LoopLimit is how many messages one sender may send per hour before
	// answers to it stop (a misbehaving autoresponder). Default 20.
	LoopLimit int
}

// Alerter composes a coordinator alert (the composer implements it).
type Alerter interface {
	Alert(subject, body string, orderID int64, number string) (*OutboxMessage, error)
}

// Inbox decides what each received email means: docs/design.md §4 "Inbound".
type Inbox struct {
	Flow    *Flow
	Store   InboxStore
	Tokens  *Tokens
	Alerter Alerter // nil: no alerts
	Config  InboxConfig
	Log     *slog.Logger
	// OnEnqueue is called after a commit that enqueued messages.
	OnEnqueue func()
}

// Result is the verdict on one message.
type Result struct {
	Verdict string
	Reason  string
	Order   string // order number, "" if unmatched
	Party   string
	Intent  Intent
	Dest    string // FolderProcessed or FolderReview
	Status  Status // the order's status afterwards
}

// errExplain rolls back the transaction of a dry run.
var errExplain = errors.New("explain: roll back")

// Process handles one fetched message: store it, classify, match,
// authenticate, extract the intent, record the decision and enqueue the
// answers, all in one transaction; then the caller moves the message.
func (in *Inbox) Process(ctx context.Context, m FetchedMessage) (string, error) {
	res, err := in.handle(ctx, m, false)
	if err != nil {
		return "", err
	}
	if in.Log != nil {
		in.Log.Info("inbound message", "uid", m.UID, "verdict", res.Verdict, "order", res.Order, "party", res.Party, "intent", res.Intent, "status", res.Status)
	}
	return res.Dest, nil
}

// Explain says what Process would do with a raw message, changing nothing.
func (in *Inbox) Explain(ctx context.Context, raw []byte) (Result, error) {
	return in.handle(ctx, FetchedMessage{Raw: raw, Size: int64(len(raw))}, true)
}

func (in *Inbox) handle(ctx context.Context, fm FetchedMessage, dryRun bool) (Result, error) {
	now := in.Flow.now().UTC()
	rec := &InboundMessage{ReceivedAt: now, Mailbox: fm.Mailbox, UIDValidity: fm.UIDValidity, UID: fm.UID, Size: fm.Size, Raw: fm.Raw}
	var msg *reply.Message
	if fm.TooLarge || fm.Raw == nil {
		rec.MessageID = fmt.Sprintf("too-large:%s:%d:%d", fm.Mailbox, fm.UIDValidity, fm.UID)
	} else {
		var err error
		msg, err = reply.Parse(fm.Raw)
		if err != nil {
			msg = nil
			rec.SHA256 = sha256Hex(fm.Raw)
			rec.MessageID = "sha256:" + rec.SHA256
		} else {
			cleanMessage(msg)
			rec.SHA256, rec.From, rec.Subject = msg.SHA256, CleanText(msg.From, maxFromText), CleanText(msg.Subject, maxSubjectText)
			rec.MessageID = msg.MessageID
			if rec.MessageID == "" {
				rec.MessageID = "sha256:" + msg.SHA256
			}
		}
	}
	var res Result
	var enqueued bool
	err := in.Store.InboxTx(ctx, func(tx InboxTx) error {
		dup, err := tx.ClaimInbound(rec)
		if err != nil {
			return err
		}
		var msgs []*OutboxMessage
		if dup {
			res = Result{Verdict: VerdictDuplicate, Reason: "already received: " + rec.MessageID, Dest: FolderProcessed}
		} else {
			res, msgs, err = in.decide(tx, rec, msg, fm)
			if err != nil {
				return err
			}
			rec.Verdict, rec.Reason, rec.Party, rec.Intent = res.Verdict, CleanText(res.Reason, maxReasonText), res.Party, res.Intent
			rec.NeedsReview = res.Dest == FolderReview
			if err := tx.FinishInbound(rec); err != nil {
				return err
			}
		}
		if err := tx.Enqueue(msgs...); err != nil {
			return err
		}
		enqueued = len(msgs) > 0
		if dryRun {
			return errExplain
		}
		return nil
	})
	if errors.Is(err, errExplain) {
		return res, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("mailflow: inbound: %w", err)
	}
	if enqueued && in.OnEnqueue != nil {
		in.OnEnqueue()
	}
	return res, nil
}

// junk are the verdicts anyone can provoke by sending mail: their
// coordinator alerts are throttled per sender.
var junk = map[string]bool{VerdictUnmatched: true, VerdictUnauthenticated: true, VerdictTooLarge: true, VerdictMalformed: true}

// tokenShaped finds strings that look like a reply token, to tell a forged
// or altered token from a reply that carries none.
var tokenShaped = regexp.MustCompile(`[+.]([a-z2-7]{45})@`)

// decision is the work on one received message inside its transaction.
type decision struct {
	in  *Inbox
	tx  InboxTx
	rec *InboundMessage
	msg *reply.Message // nil: unreadable or not downloaded
}

// review is the result for a message a person must look at.
func review(verdict, reason string) Result {
	return Result{Verdict: verdict, Reason: reason, Dest: FolderReview}
}

// decide follows the steps of docs/design.md §4 "Inbound": classify,
// match by a secret, authenticate the sender, read the intent, apply.
func (in *Inbox) decide(tx InboxTx, rec *InboundMessage, msg *reply.Message, fm FetchedMessage) (Result, []*OutboxMessage, error) {
	d := &decision{in: in, tx: tx, rec: rec, msg: msg}
	switch {
	case fm.TooLarge || fm.Raw == nil:
		return d.alert(review(VerdictTooLarge, fmt.Sprintf("message of %d bytes exceeds the size limit; not downloaded", fm.Size)), nil)
	case msg == nil:
		return d.alert(review(VerdictMalformed, "no message header could be read"), nil)
	case msg.Kind == reply.KindBounce:
		return d.bounce()
	case msg.Kind == reply.KindAutoReply:
		if err := d.linkByToken(); err != nil {
			return Result{}, nil, err
		}
		return Result{Verdict: VerdictAutoReply, Reason: msg.KindReason, Dest: FolderProcessed}, nil, nil
	}
	o, party, how, refused, err := d.match()
	if err != nil {
		return Result{}, nil, err
	}
	if refused != nil {
		return d.alert(*refused, o)
	}
	rec.OrderID = o.ID
	rec.Auth = d.authCheck(o, party, how)
	if res, ok := d.authenticate(o, party); !ok {
		return d.alert(res, o)
	}
	return d.apply(o, party, how)
}

// linkByToken files a message that decides nothing (an auto-reply) with
// the order its reply token names, so that it is among the order's mails
// (its evidence, docs/evidence.md, and the order page's conversation).
// Only a verified token links: a subject tag is anyone's to write. An
// auto-reply sent to the envelope sender (RFC 3834 §4) carries our
// bounce token instead, which names the message it answers.
func (d *decision) linkByToken() error {
	msg := d.msg
	candidates := append(append(append([]string{}, msg.Recipients...), msg.InReplyTo...), msg.References...)
	tok, ok := d.in.Tokens.FindToken(candidates...)
	if !ok {
		if id, ok, _ := d.in.Tokens.FindBounceToken(msg.Recipients...); ok {
			out, err := d.tx.OutboxByID(id)
			if errors.Is(err, ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			d.rec.OrderID = out.OrderID
		}
		return nil
	}
	o, err := d.tx.LockOrderByID(tok.OrderID)
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	d.rec.OrderID = o.ID
	return nil
}

// alert records that the coordinator is told about res (o may be nil).
// Anyone can send junk, so alerts about it are throttled to one per sender
// and hour; the message still goes to review and the digest counts the
// alerts held back.
func (d *decision) alert(res Result, o *Order) (Result, []*OutboxMessage, error) {
	if d.in.Alerter == nil {
		return res, nil, nil
	}
	if junk[res.Verdict] {
		ok, err := d.tx.AllowAnswer(d.rec.From, "coordinator alert: junk", d.rec.ReceivedAt.UTC().Format("2006-01-02T15"))
		if err != nil {
			return res, nil, err
		}
		if !ok {
			d.rec.AlertSuppressed = true
			res.Reason += "; coordinator alert held back (one per sender and hour)"
			return res, nil, nil
		}
	}
	var orderID int64
	var number string
	if o != nil {
		orderID, number = o.ID, o.Number
	}
	body := fmt.Sprintf("Eine eingegangene Nachricht braucht eine Entscheidung.\n\nUrteil: %s\nGrund: %s\nAbsender: %s\nBetreff: %s\nMessage-ID: %s\n",
		res.Verdict, res.Reason, d.rec.From, d.rec.Subject, d.rec.MessageID)
	a, err := d.in.Alerter.Alert("Nachricht zur Prüfung: "+res.Verdict, body, orderID, number)
	if err != nil {
		return res, nil, err
	}
	return res, []*OutboxMessage{a}, nil
}

// bounce handles a delivery status notification (RFC 3464). Only the
// secret VERP token of the address it came back to names our message: a
// Message-ID quoted in a bounce is no proof, anyone can quote one.
func (d *decision) bounce() (Result, []*OutboxMessage, error) {
	msg := d.msg
	res := Result{Verdict: VerdictBounce, Reason: msg.KindReason, Dest: FolderProcessed}
	if msg.BounceAction != "" && msg.BounceAction != "failed" {
		res.Reason += "; DSN action " + msg.BounceAction + ", nothing failed"
		return res, nil, nil
	}
	id, ok, shaped := d.in.Tokens.FindBounceToken(msg.Recipients...)
	if !ok {
		why := "not sent to a bounce address of ours (no VERP token)"
		if shaped {
			why = "the bounce address's token does not verify (forged or altered)"
		}
		return d.alert(review(VerdictUnauthenticated, res.Reason+"; "+why+" — needs a person, nothing marked failed"), nil)
	}
	out, err := d.tx.OutboxByID(id)
	if errors.Is(err, ErrNotFound) {
		return d.alert(review(VerdictUnauthenticated, res.Reason+"; the bounce token names no outbound message — needs a person, nothing marked failed"), nil)
	} else if err != nil {
		return res, nil, err
	}
	why := fmt.Sprintf("bounced: %s %s %s", msg.BounceRecipient, msg.BounceStatus, msg.BounceDiagnostic)
	changed, err := d.tx.FailOutbox(out.ID, CleanText(strings.TrimSpace(why), 1000))
	if err != nil {
		return res, nil, err
	}
	res.Order = out.OrderNumber
	d.rec.OrderID = out.OrderID // the bounce is among the order's mails
	res.Reason += fmt.Sprintf("; outbound message %d (%s) marked failed", out.ID, out.Kind)
	if !changed {
		return res, nil, nil
	}
	return d.alert(res, &Order{ID: out.OrderID, Number: out.OrderNumber})
}

// match finds the order and party a reply answers: the token in a
// recipient, else in In-Reply-To/References (our Message-IDs carry it),
// else the subject tag, which carries no secret and decides only for a
// sender our own MX authenticated by DMARC. A non-nil refused says why the
// message decides nothing; o is then the order it named, if any.
func (d *decision) match() (o *Order, party, how string, refused *Result, err error) {
	msg := d.msg
	var candidates []string
	candidates = append(candidates, msg.Recipients...)
	candidates = append(candidates, msg.InReplyTo...)
	candidates = append(candidates, msg.References...)
	unmatched := func(r Result, o *Order) (*Order, string, string, *Result, error) {
		return o, "", "", &r, nil
	}
	if tok, ok := d.in.Tokens.FindToken(candidates...); ok {
		o, err = d.tx.LockOrderByID(tok.OrderID)
		if errors.Is(err, ErrNotFound) {
			return unmatched(review(VerdictUnmatched, "the reply token names an unknown order"), nil)
		} else if err != nil {
			return nil, "", "", nil, err
		}
		return o, tok.Party, "reply token", nil, nil
	}
	for _, c := range candidates {
		if tokenShaped.MatchString(strings.ToLower(c)+"@") || tokenShaped.MatchString(strings.ToLower(c)) {
			return unmatched(review(VerdictUnauthenticated, "a reply token is present but does not verify (forged or altered)"), nil)
		}
	}
	number := reply.SubjectOrderNumber(msg.Subject)
	if number == "" {
		return unmatched(review(VerdictUnmatched, "no reply token, no known In-Reply-To/References and no subject tag"), nil)
	}
	o, err = d.tx.LockOrder(number)
	if errors.Is(err, ErrNotFound) {
		return unmatched(review(VerdictUnmatched, "the subject names unknown order "+number), nil)
	} else if err != nil {
		return nil, "", "", nil, err
	}
	// The subject tag is no secret and a From header is easily forged:
	// without our own server's DMARC verdict for the sender such a
	// message decides nothing.
	if why, ok := authenticated(msg, d.in.Config.TrustedAuthServID); !ok {
		return unmatched(review(VerdictUnauthenticated, fmt.Sprintf("matched order %s by subject tag only — needs a person (%s)", number, why)), o)
	}
	var parties []string
	for _, p := range o.Parties() {
		if pt, _ := o.Party(p); pt.MaySend(msg.From) {
			parties = append(parties, p)
		}
	}
	if len(parties) != 1 {
		return unmatched(review(VerdictUnauthenticated, fmt.Sprintf("matched order %s by subject tag only — needs a person (the DMARC-authenticated sender is registered for %d of its parties)", number, len(parties))), o)
	}
	return o, parties[0], "subject tag and DMARC-authenticated registered sender", nil, nil
}

// authenticate checks that the sender is registered for the matched party
// and, when configured, that our MX authenticated it. If not, res says why.
func (d *decision) authenticate(o *Order, party string) (res Result, ok bool) {
	msg := d.msg
	res = review(VerdictUnauthenticated, "")
	res.Order, res.Party = o.Number, party
	pt, ok := o.Party(party)
	if !ok {
		res.Reason = "the token's party has no part in this order"
		return res, false
	}
	if !pt.MaySend(msg.From) {
		res.Reason = fmt.Sprintf("sender is not registered to answer for the %s", party)
		for _, other := range o.Parties() {
			if op, _ := o.Party(other); other != party && op.MaySend(msg.From) {
				res.Reason = fmt.Sprintf("sender is registered for the %s, but the reply answers the %s's notification", other, party)
			}
		}
		return res, false
	}
	if d.in.Config.RequireAuthenticatedSender {
		if why, ok := authenticated(msg, d.in.Config.TrustedAuthServID); !ok {
			res.Reason = why
			return res, false
		}
	}
	return Result{}, true
}

// authCheck records the match and the sender checks as they are made
// now, for the evidence of the order (AuthCheck).
func (d *decision) authCheck(o *Order, party, how string) *AuthCheck {
	c := &AuthCheck{Match: "reply token", Token: "valid", DMARCRequired: d.in.Config.RequireAuthenticatedSender}
	if how != "reply token" {
		c.Match, c.Token, c.DMARCRequired = "subject tag", "none", true
	}
	c.Sender = "registered for the " + party
	if pt, ok := o.Party(party); !ok || !pt.MaySend(d.msg.From) {
		c.Sender = "not registered for the " + party
	}
	c.DMARC = "pass"
	if why, ok := authenticated(d.msg, d.in.Config.TrustedAuthServID); !ok {
		c.DMARC = why
	}
	c.Results = trustedResults(d.msg, d.in.Config.TrustedAuthServID)
	return c
}

// trustedResults lists the results of the topmost Authentication-Results
// header of our trusted server (the only one believed, RFC 8601 §5); ""
// when there is none.
func trustedResults(msg *reply.Message, trusted string) string {
	if trusted == "" {
		return ""
	}
	for _, ar := range msg.AuthResults {
		if !strings.EqualFold(ar.AuthServID, trusted) {
			continue
		}
		parts := []string{ar.AuthServID}
		if ar.DMARC != "" {
			parts = append(parts, strings.TrimSuffix("dmarc="+ar.DMARC+" header.from="+ar.DMARCFrom, " header.from="))
		}
		for _, k := range ar.DKIM {
			parts = append(parts, strings.TrimSuffix("dkim="+k.Result+" header.d="+k.Domain, " header.d="))
		}
		if ar.SPF != "" {
			parts = append(parts, strings.TrimSuffix("spf="+ar.SPF+" smtp.mailfrom="+ar.SPFDomain, " smtp.mailfrom="))
		}
		return strings.Join(parts, "; ")
	}
	return ""
}

// apply reads the intent from the reply's own text and records the
// decision with the mails it sends.
func (d *decision) apply(o *Order, party, how string) (Result, []*OutboxMessage, error) {
	msg, rec, tx := d.msg, d.rec, d.tx
	res := Result{Order: o.Number, Party: party}
	intent, reason, ok, explanation := reply.ExtractIntent(msg.Text)
	if !ok || intent == reply.IntentNone {
		res.Verdict, res.Reason, res.Dest = VerdictNoIntent, explanation, FolderReview
		return d.alert(res, o)
	}
	dec := Decision{Party: party, Intent: Intent(intent), Reason: reason, Source: SourceEmail, Actor: msg.From, MessageID: msg.MessageID}
	// Answers are throttled and stop when a sender floods us (loop guard).
	answer := true
	if n, err := tx.CountInboundFrom(msg.From, rec.ReceivedAt.Add(-time.Hour)); err != nil {
		return res, nil, err
	} else if limit := d.in.Config.LoopLimit; n > limit && limit > 0 || limit == 0 && n > 20 {
		answer = false
	}
	var msgs []*OutboxMessage
	dec, err := d.in.Flow.applyWith(tx, o, dec, func(m *OutboxMessage) (bool, error) {
		if m.Kind != KindAck {
			return true, nil
		}
		if !answer {
			return false, nil
		}
		return tx.AllowAnswer(msg.From, o.Number+":"+string(dec.Intent), rec.ReceivedAt.In(Berlin).Format(time.DateOnly))
	}, &msgs)
	if err != nil {
		return res, nil, err
	}
	res.Intent, res.Status = dec.Intent, o.Status
	res.Reason = fmt.Sprintf("matched by %s; %s; effect %s", how, explanation, dec.Effect)
	res.Verdict, res.Dest = VerdictApplied, FolderProcessed
	if dec.Effect == EffectConflict {
		res.Verdict, res.Dest = VerdictConflict, FolderReview
	}
	return res, msgs, nil
}

// authenticated reports whether our own trusted server found the From
// domain authenticated: a DMARC pass, or an aligned DKIM or SPF pass (RFC
// 7489 §3.1, relaxed alignment). Only the topmost Authentication-Results
// header of the trusted authserv-id counts (RFC 8601 §5): headers further
// down were added before the message reached that server, by anyone.
func authenticated(msg *reply.Message, trusted string) (string, bool) {
	if trusted == "" {
		return "no trusted_authserv_id is configured, so no sender is authenticated", false
	}
	at := strings.LastIndexByte(msg.From, '@')
	if at < 0 {
		return "sender has no domain", false
	}
	domain := msg.From[at+1:]
	aligned := func(d string) bool {
		return d != "" && (d == domain || strings.HasSuffix(domain, "."+d) || strings.HasSuffix(d, "."+domain))
	}
	for _, ar := range msg.AuthResults {
		if !strings.EqualFold(ar.AuthServID, trusted) {
			continue
		}
		if ar.DMARC == "pass" && (ar.DMARCFrom == "" || aligned(ar.DMARCFrom)) {
			return "", true
		}
		for _, d := range ar.DKIM {
			if d.Result == "pass" && aligned(d.Domain) {
				return "", true
			}
		}
		if ar.SPF == "pass" && aligned(ar.SPFDomain) {
			return "", true
		}
		return "the trusted server " + trusted + " found neither a DMARC pass nor an aligned DKIM or SPF pass", false
	}
	return "no Authentication-Results from the trusted server " + trusted, false
}

// ExplainTooLarge says what Process does with a message over the size limit.
func (in *Inbox) ExplainTooLarge(ctx context.Context, size int64) (Result, error) {
	return in.handle(ctx, FetchedMessage{TooLarge: true, Size: size}, true)
}
