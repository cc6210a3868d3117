package mailflow_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"mailflow/internal/exampletest"
	"mailflow/mailflow"
	"mailflow/storage"
	"mailflow/storage/storagetest"
)

// reviewEnv is a store with the example catalog, the real composer, and
// an inbox that sends what a person must look at to review.
type reviewEnv struct {
	t      *testing.T
	st     *storage.Store
	flow   *mailflow.Flow
	inbox  *mailflow.Inbox
	tokens *mailflow.Tokens
}

func newReviewEnv(t *testing.T, driver string) *reviewEnv {
	t.Helper()
	st := storagetest.Open(t, driver)
	if err := st.ImportCatalog(context.Background(), exampletest.Catalog(t)); err != nil {
		t.Fatal(err)
	}
	c := newComposer(t, nil)
	e := &reviewEnv{t: t, st: st, tokens: newTokens(t)}
	e.flow = &mailflow.Flow{Store: st, Notifier: c}
	e.inbox = &mailflow.Inbox{Flow: e.flow, Store: st, Tokens: e.tokens, Alerter: c}
	return e
}

func (e *reviewEnv) order(model string) *mailflow.Order {
	e.t.Helper()
	o, _, err := e.flow.CreateOrder(context.Background(), orderRequest(e.t, model))
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// receive hands a mail to the inbox and returns its stored row.
func (e *reviewEnv) receive(m rmail) *mailflow.InboundMessage {
	e.t.Helper()
	if m.id == "" {
		m.id = fmt.Sprintf("<%s-%d@client.example>", strings.ReplaceAll(e.t.Name(), "/", "-"), externalSeq.Add(1))
	}
	ctx := context.Background()
	if _, err := e.inbox.Process(ctx, mailflow.FetchedMessage{Raw: m.raw(), Size: int64(len(m.raw()))}); err != nil {
		e.t.Fatal(err)
	}
	all, err := e.st.InboundList(ctx, false, 0, 1)
	if err != nil || len(all) != 1 {
		e.t.Fatalf("inbound list: %v %v", all, err)
	}
	return all[0]
}

func (e *reviewEnv) replyAddr(o *mailflow.Order, party string) string {
	return "bestellungen+" + e.tokens.Sign(mailflow.Token{OrderID: o.ID, Party: party, NotificationID: 42}) + "@example.org"
}

// outcome lists what an order's decisions sent: kind and role of each
// outbound message after the notifications and coordinator alerts.
func (e *reviewEnv) outcome(o *mailflow.Order) []string {
	e.t.Helper()
	rows, err := e.st.OutboxList(context.Background(), "", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, m := range rows {
		if m.OrderID == o.ID && m.Kind != mailflow.KindNotification && m.Kind != mailflow.KindAlert {
			out = append(out, m.Kind+" to "+m.Party+" "+strings.Join(m.Recipients, ","))
		}
	}
	slices.Sort(out)
	return out
}

func (e *reviewEnv) outboxCount() int {
	rows, err := e.st.OutboxList(context.Background(), "", 10000)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(rows)
}

func (e *reviewEnv) reload(o *mailflow.Order) *mailflow.Order {
	e.t.Helper()
	got, err := e.st.Order(context.Background(), o.Number)
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

// TestAttachReviewedLikeAMail: a message in review attached to an order
// with a decision has the effects of the same decision by mail — status,
// binding time and the mails enqueued — and leaves the queue.
func TestAttachReviewedLikeAMail(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newReviewEnv(t, driver)
			ctx := context.Background()
			const provider = "bestellungen@dataport.example"

			// DV accept: by mail with a token on one order, from review on its twin.
			byMail, reviewed := e.order("dv"), e.order("dv")
			e.receive(rmail{from: provider, to: e.replyAddr(byMail, "provider"), subject: "AW: [Bestellung " + byMail.Number + "]", body: "BESTÄTIGT\n"})
			tagOnly := e.receive(rmail{from: provider, to: "bestellungen@example.org", subject: "AW: [Bestellung " + reviewed.Number + "]", body: "BESTÄTIGT\n"})
			lost := e.receive(rmail{from: provider, to: "bestellungen@example.org", subject: "Unsere Antwort", body: "Hallo,\n\nBESTÄTIGT\n"})
			if !tagOnly.NeedsReview || !lost.NeedsReview {
				t.Fatalf("setup: %+v / %+v", tagOnly, lost)
			}
			if n, linked := mailflow.SuggestOrder(tagOnly); n != reviewed.Number || linked {
				t.Errorf("subject tag suggests %q (linked %v), want %s, not linked", n, linked, reviewed.Number)
			}
			if n, _ := mailflow.SuggestOrder(lost); n != "" {
				t.Errorf("a message without tag suggests %q", n)
			}
			q, err := e.st.ReviewQueue(ctx, 0, 0)
			if err != nil || len(q) != 2 || q[0].ID != tagOnly.ID || q[1].ID != lost.ID {
				t.Fatalf("queue %+v %v, want the matched and the unmatched message", q, err)
			}

			o, res, err := e.flow.AttachReviewed(ctx, tagOnly.ID, reviewed.Number,
				mailflow.Decision{Party: "provider", Intent: mailflow.IntentAccept, Actor: "koordination"})
			if err != nil {
				t.Fatal(err)
			}
			if o.Status != mailflow.StatusOrdered || e.reload(byMail).Status != mailflow.StatusOrdered {
				t.Errorf("status %s, want ordered like the order decided by mail", o.Status)
			}
			if got, want := e.outcome(reviewed), e.outcome(byMail); !slices.Equal(got, want) || len(got) == 0 {
				t.Errorf("attached decision sent\n%q\nthe same by mail sent\n%q", got, want)
			}
			h := e.reload(reviewed).History
			if len(h) != 1 || h[0].Source != mailflow.SourceReview || h[0].Actor != "koordination" ||
				h[0].MessageID != tagOnly.MessageID || h[0].Effect != mailflow.EffectApplied || h[0].ID != res.DecisionID {
				t.Errorf("history %+v, resolution %+v", h, res)
			}
			if n, _ := e.st.CountReview(ctx); n != 1 {
				t.Errorf("%d in review, want 1 (the unmatched message)", n)
			}

			// UV reject: an unmatched message attached to an order of the
			// intermediary's, with the reason it gave.
			byMail, reviewed = e.order("uv"), e.order("uv")
			const im = "auftrag@govdigital.example"
			e.receive(rmail{from: im, to: e.replyAddr(byMail, "intermediary"), subject: "AW: [Bestellung " + byMail.Number + "]", body: "ABGELEHNT: Rahmenvertrag fehlt\n"})
			untagged := e.receive(rmail{from: im, to: "bestellungen@example.org", subject: "Ablehnung", body: "ABGELEHNT: Rahmenvertrag fehlt\n"})
			read := mailflow.ReadForReview(mustRaw(t, e.st, untagged.ID))
			if read.Intent != mailflow.IntentReject || read.Reason != "Rahmenvertrag fehlt" {
				t.Errorf("read for review: %+v", read)
			}
			if got := mailflow.SuggestParty(reviewed, untagged.From); got != "intermediary" {
				t.Errorf("suggested party %q", got)
			}
			o, res, err = e.flow.AttachReviewed(ctx, untagged.ID, " "+reviewed.Number+" ",
				mailflow.Decision{Party: "intermediary", Intent: read.Intent, Reason: read.Reason, Actor: "koordination"})
			if err != nil {
				t.Fatal(err)
			}
			if o.Status != mailflow.StatusRejectedIntermediary || e.reload(byMail).Status != o.Status {
				t.Errorf("status %s / %s", o.Status, e.reload(byMail).Status)
			}
			if got, want := e.outcome(reviewed), e.outcome(byMail); !slices.Equal(got, want) || len(got) == 0 {
				t.Errorf("attached rejection sent\n%q\nthe same by mail sent\n%q", got, want)
			}
			m, r, err := e.st.InboundMessage(ctx, untagged.ID)
			if err != nil || m.NeedsReview || m.OrderNumber != reviewed.Number || r == nil || r.Action != mailflow.ReviewAttached ||
				r.Party != "intermediary" || r.Intent != mailflow.IntentReject || r.DecisionReason != "Rahmenvertrag fehlt" || r.Actor != "koordination" {
				t.Errorf("after attaching: %+v %+v %v", m, r, err)
			}
			if rs, _ := e.st.OrderReviews(ctx, reviewed.ID); len(rs) != 1 || rs[0].InboundID != untagged.ID {
				t.Errorf("order's review history: %+v", rs)
			}
		})
	}
}

func mustRaw(t *testing.T, st *storage.Store, id int64) []byte {
	t.Helper()
	raw, err := st.InboundRaw(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestAttachReviewedRefuses: bad input names its field and changes
// nothing; the message stays in the queue.
func TestAttachReviewedRefuses(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newReviewEnv(t, driver)
			ctx := context.Background()
			dv := e.order("dv")
			m := e.receive(rmail{from: "mallory@evil.example", to: "bestellungen@example.org", subject: "Hallo", body: "BESTÄTIGT\n"})
			for _, tc := range []struct {
				name, number, field string
				d                   mailflow.Decision
			}{
				{"no order", "", "order", mailflow.Decision{Party: "provider", Intent: "accept"}},
				{"unknown order", "2026-999999", "order", mailflow.Decision{Party: "provider", Intent: "accept"}},
				{"bytes for a number", "2026-\xff\x00", "order", mailflow.Decision{Party: "provider", Intent: "accept"}},
				{"intermediary on DV", dv.Number, "party", mailflow.Decision{Party: "intermediary", Intent: "accept"}},
				{"customer", dv.Number, "party", mailflow.Decision{Party: "customer", Intent: "accept"}},
				{"reject without reason", dv.Number, "reason", mailflow.Decision{Party: "provider", Intent: "reject"}},
				{"no intent", dv.Number, "intent", mailflow.Decision{Party: "provider"}},
			} {
				tc.d.Actor = "koordination"
				_, _, err := e.flow.AttachReviewed(ctx, m.ID, tc.number, tc.d)
				var verr *mailflow.ValidationError
				if !errors.As(err, &verr) || verr.Errors[0].Field != tc.field {
					t.Errorf("%s: %v, want a validation error on %s", tc.name, err, tc.field)
				}
			}
			if n, _ := e.st.CountReview(ctx); n != 1 {
				t.Errorf("%d in review after refusals, want 1", n)
			}
			if got := e.reload(dv); len(got.History) != 0 {
				t.Errorf("a refused attachment recorded %+v", got.History)
			}
			if _, _, err := e.flow.AttachReviewed(ctx, 999999, dv.Number, mailflow.Decision{Party: "provider", Intent: "accept", Actor: "k"}); !errors.Is(err, mailflow.ErrNotFound) {
				t.Errorf("unknown message: %v", err)
			}

			// A message the inbox decided on never was in review.
			applied := e.receive(rmail{from: "bestellungen@dataport.example", to: e.replyAddr(dv, "provider"), subject: "AW", body: "IN BEARBEITUNG\n"})
			if _, err := e.flow.DismissReviewed(ctx, applied.ID, "weg", "k"); !errors.Is(err, mailflow.ErrNotInReview) {
				t.Errorf("dismissing a processed message: %v", err)
			}
			// A conflict's declaration is recorded already: attaching it
			// would record it twice.
			e.receive(rmail{from: "bestellungen@dataport.example", to: e.replyAddr(dv, "provider"), subject: "AW", body: "BESTÄTIGT\n"})
			conflict := e.receive(rmail{from: "bestellungen@dataport.example", to: e.replyAddr(dv, "provider"), subject: "AW", body: "ABGELEHNT: doch nicht\n"})
			if conflict.Verdict != mailflow.VerdictConflict || !conflict.NeedsReview {
				t.Fatalf("setup: %+v", conflict)
			}
			_, _, err := e.flow.AttachReviewed(ctx, conflict.ID, dv.Number, mailflow.Decision{Party: "provider", Intent: "reject", Reason: "doch nicht", Actor: "k"})
			var verr *mailflow.ValidationError
			if !errors.As(err, &verr) || verr.Errors[0].Field != "message" {
				t.Errorf("attaching a conflict: %v", err)
			}
			if got := e.reload(dv); len(got.History) != 3 {
				t.Errorf("history has %d decisions, want 3", len(got.History))
			}
		})
	}
}

// TestDismissReviewed: a reason is required; the message is kept and
// leaves the queue; its order's review history shows the dismissal.
func TestDismissReviewed(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newReviewEnv(t, driver)
			ctx := context.Background()
			dv := e.order("dv")
			m := e.receive(rmail{from: "mallory@evil.example", to: e.replyAddr(dv, "provider"), subject: "AW: [Bestellung " + dv.Number + "]", body: "BESTÄTIGT\n"})
			if m.Verdict != mailflow.VerdictUnauthenticated || m.OrderNumber != dv.Number {
				t.Fatalf("setup: %+v", m)
			}
			for name, reason := range map[string]string{"empty": "", "blank": " \n\t ", "NUL only": "\x00", "too long": strings.Repeat("ü", 4001)} {
				_, err := e.flow.DismissReviewed(ctx, m.ID, reason, "koordination")
				var verr *mailflow.ValidationError
				if !errors.As(err, &verr) || verr.Errors[0].Field != "reason" {
					t.Errorf("%s reason: %v, want a validation error on reason", name, err)
				}
			}
			if n, _ := e.st.CountReview(ctx); n != 1 {
				t.Fatalf("refused dismissals took the message out of review")
			}
			res, err := e.flow.DismissReviewed(ctx, m.ID, "  Gefälschter Absender,\x00 bei Dataport nachgefragt \xff ", "koordination")
			if err != nil {
				t.Fatal(err)
			}
			if want := "Gefälschter Absender, bei Dataport nachgefragt \uFFFD"; res.Reason != want {
				t.Errorf("reason %q, want %q (cleaned, trimmed)", res.Reason, want)
			}
			if n, _ := e.st.CountReview(ctx); n != 0 {
				t.Errorf("%d in review after dismissal", n)
			}
			if raw := mustRaw(t, e.st, m.ID); len(raw) == 0 {
				t.Error("the dismissed message's bytes are gone")
			}
			rs, err := e.st.OrderReviews(ctx, dv.ID)
			if err != nil || len(rs) != 1 || rs[0].Action != mailflow.ReviewDismissed || rs[0].Reason != res.Reason || rs[0].Actor != "koordination" {
				t.Errorf("order's review history %+v %v", rs, err)
			}
			if got := e.reload(dv); len(got.History) != 0 || got.Status != mailflow.StatusOpen {
				t.Errorf("dismissal changed the order: %s %+v", got.Status, got.History)
			}
		})
	}
}

// TestReviewOnce: a double submit, or two coordinators at once, resolve a
// message once; the second is told who was first and changes nothing.
func TestReviewOnce(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newReviewEnv(t, driver)
			ctx := context.Background()
			dv := e.order("dv")
			accept := mailflow.Decision{Party: "provider", Intent: mailflow.IntentAccept, Actor: "anna"}
			m := e.receive(rmail{from: "x@unknown.example", to: "bestellungen@example.org", subject: "?", body: "BESTÄTIGT\n"})
			if _, _, err := e.flow.AttachReviewed(ctx, m.ID, dv.Number, accept); err != nil {
				t.Fatal(err)
			}
			before := e.outboxCount()
			second := accept
			second.Actor = "ben"
			_, _, err := e.flow.AttachReviewed(ctx, m.ID, dv.Number, second)
			var already *mailflow.AlreadyResolvedError
			if !errors.As(err, &already) || already.Resolution.Actor != "anna" || already.Resolution.Action != mailflow.ReviewAttached || !errors.Is(err, mailflow.ErrConflict) {
				t.Errorf("second attach: %v", err)
			}
			if _, err := e.flow.DismissReviewed(ctx, m.ID, "", "ben"); !errors.As(err, &already) {
				t.Errorf("dismiss after attach (even without a reason): %v, want already resolved", err)
			}
			if got := e.reload(dv); len(got.History) != 1 || e.outboxCount() != before {
				t.Errorf("a refused second submit changed something: %d decisions, %d→%d mails", len(got.History), before, e.outboxCount())
			}

			// Two coordinators at once, one attaching, one dismissing,
			// several times over.
			for round := range 5 {
				o := e.order("dv")
				m := e.receive(rmail{from: "x@unknown.example", to: "bestellungen@example.org", subject: fmt.Sprint("race ", round), body: "BESTÄTIGT\n"})
				var wg sync.WaitGroup
				errs := make([]error, 2)
				start := make(chan struct{})
				wg.Add(2)
				go func() {
					defer wg.Done()
					<-start
					_, _, errs[0] = e.flow.AttachReviewed(ctx, m.ID, o.Number, accept)
				}()
				go func() {
					defer wg.Done()
					<-start
					_, errs[1] = e.flow.DismissReviewed(ctx, m.ID, "Doppelt", "ben")
				}()
				close(start)
				wg.Wait()
				won := 0
				for i, err := range errs {
					switch {
					case err == nil:
						won = i
					case errors.As(err, &already):
					default:
						t.Fatalf("round %d: %v", round, err)
					}
				}
				if (errs[0] == nil) == (errs[1] == nil) {
					t.Fatalf("round %d: errors %v, want exactly one success", round, errs)
				}
				_, r, _ := e.st.InboundMessage(ctx, m.ID)
				history := e.reload(o).History
				switch won {
				case 0:
					if r.Actor != "anna" || len(history) != 1 {
						t.Errorf("round %d: attach won, resolution %+v, %d decisions", round, r, len(history))
					}
				case 1:
					if r.Actor != "ben" || len(history) != 0 {
						t.Errorf("round %d: dismissal won, resolution %+v, %d decisions", round, r, len(history))
					}
				}
			}
		})
	}
}

func TestReadForReview(t *testing.T) {
	if r := mailflow.ReadForReview(nil); r.Problem == "" {
		t.Error("a message not stored reads without a problem")
	}
	raw := rmail{from: "a@b.example", to: "c@d.example", subject: "s", id: "<1@b>", body: "In Bearbeitung\n\nAm Montag schrieb X:\n> ABGELEHNT: alt\n"}.raw()
	r := mailflow.ReadForReview(raw)
	if r.Intent != mailflow.IntentWorking || !strings.Contains(r.Text, "> ABGELEHNT: alt") || r.Problem != "" || len(r.To) != 1 {
		t.Errorf("%+v", r)
	}
	long := rmail{from: "a@b.example", to: "c@d.example", subject: "s", id: "<2@b>", body: strings.Repeat("ä", mailflow.MaxReviewText+10)}.raw()
	if r := mailflow.ReadForReview(long); !r.Cut || len([]rune(r.Text)) != mailflow.MaxReviewText {
		t.Errorf("long text: cut=%v, %d characters", r.Cut, len([]rune(r.Text)))
	}
}
