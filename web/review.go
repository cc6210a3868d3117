package web

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"mailflow/mailflow"
	"mailflow/templates"
)

// The review queue "Nachrichten zur Prüfung" (docs/design.md §4 "The
// review queue"): every received message a person must look at, with two
// ways out — attach it to an order with the decision it asks for, or
// file it away without one, giving a reason. Coordinators only.

// ReviewStore is what the review queue reads; storage.Store implements it.
type ReviewStore interface {
	// ReviewQueue lists the messages waiting for a person, oldest first.
	ReviewQueue(ctx context.Context, limit, offset int) ([]*mailflow.InboundMessage, error)
	// InboundMessage returns one received message and how it left review
	// (nil while it has not).
	InboundMessage(ctx context.Context, id int64) (*mailflow.InboundMessage, *mailflow.ReviewResolution, error)
	// OrderReviews lists how messages of an order left review, oldest first.
	OrderReviews(ctx context.Context, orderID int64) ([]*mailflow.ReviewResolution, error)
	// RecentReviews lists the latest resolutions, newest first.
	RecentReviews(ctx context.Context, limit int) ([]*mailflow.ReviewResolution, error)
}

// reviewPageSize is how many messages one page of the queue shows.
const reviewPageSize = 50

// reviewRoutes registers the queue's pages.
func (p *Pages) reviewRoutes(mux *http.ServeMux) {
	mux.Handle("GET /pruefung", p.coordinatorOnly(p.reviewQueue))
	mux.Handle("GET /pruefung/{id}", p.coordinatorOnly(p.reviewMessage))
	mux.Handle("POST /pruefung/{id}/zuordnen", p.coordinatorOnly(p.reviewAttach))
	mux.Handle("POST /pruefung/{id}/ablegen", p.coordinatorOnly(p.reviewDismiss))
}

// coordinatorOnly is authed for the coordinators' pages: anyone else who
// is signed in gets 404, as for a page that does not exist.
func (p *Pages) coordinatorOnly(h http.HandlerFunc) http.Handler {
	return p.authed(func(w http.ResponseWriter, r *http.Request) {
		if !viewerFrom(r).coordinator() {
			p.notFound(w, r)
			return
		}
		h(w, r)
	})
}

func (p *Pages) notFound(w http.ResponseWriter, r *http.Request) {
	p.errorKey(w, r, http.StatusNotFound, "Seite nicht gefunden", "Diese Seite gibt es nicht.")
}

// reviewTime shows a time to the second with its zone: the order of
// messages that arrive within a minute matters.
func reviewTime(t time.Time) string { return t.In(berlin).Format("02.01.2006 15:04:05 MST") }

// stamp is a time as the page shows it and as a <time datetime>; At
// is the time itself, which the templates show in the page's language.
type stamp struct {
	Text, ISO string
	At        time.Time
}

func newStamp(t time.Time) stamp {
	if t.IsZero() {
		return stamp{}
	}
	return stamp{Text: reviewTime(t), ISO: t.UTC().Format(time.RFC3339), At: t}
}

// queueRow is one message in the queue.
type queueRow struct {
	*mailflow.InboundMessage
	Received stamp
	Order    string // the order it is linked to or its subject names
	Linked   bool   // Order is linked, not only named in the subject
}

// resolutionView is how a message left review, for lists and notices.
type resolutionView struct {
	*mailflow.ReviewResolution
	When stamp
}

func newResolutionView(r *mailflow.ReviewResolution) *resolutionView {
	if r == nil {
		return nil
	}
	return &resolutionView{ReviewResolution: r, When: newStamp(r.At)}
}

type queueView struct {
	layout
	Rows    []queueRow
	Total   int
	Page    int
	Pages   int
	PrevURL string
	NextURL string
	Done    *resolutionView // the message just handled
	Recent  []*resolutionView
}

func queueURL(page int) string {
	if page > 1 {
		return "/pruefung?seite=" + strconv.Itoa(page)
	}
	return "/pruefung"
}

func (p *Pages) reviewQueue(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := queueView{layout: p.layoutFor(r, "Nachrichten zur Prüfung")}
	var err error
	if v.Total, err = p.Store.CountReview(ctx); err != nil {
		p.fail(w, r, err)
		return
	}
	v.Pages = max(1, (v.Total+reviewPageSize-1)/reviewPageSize)
	v.Page, _ = strconv.Atoi(r.URL.Query().Get("seite"))
	v.Page = min(max(v.Page, 1), v.Pages)
	msgs, err := p.Store.ReviewQueue(ctx, reviewPageSize, (v.Page-1)*reviewPageSize)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	for _, m := range msgs {
		row := queueRow{InboundMessage: m, Received: newStamp(m.ReceivedAt)}
		row.Order, row.Linked = mailflow.SuggestOrder(m)
		v.Rows = append(v.Rows, row)
	}
	if v.Page > 1 {
		v.PrevURL = queueURL(v.Page - 1)
	}
	if v.Page < v.Pages {
		v.NextURL = queueURL(v.Page + 1)
	}
	if id, err := strconv.ParseInt(r.URL.Query().Get("erledigt"), 10, 64); err == nil && id > 0 {
		if _, res, err := p.Store.InboundMessage(ctx, id); err == nil {
			v.Done = newResolutionView(res)
		}
	}
	recent, err := p.Store.RecentReviews(ctx, 20)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	for _, res := range recent {
		v.Recent = append(v.Recent, newResolutionView(res))
	}
	p.render(w, r, http.StatusOK, "review.html", v)
}

// reviewForms are the two forms of a message in review with what was
// entered and, after a refused post, why. Errors hold messages or, for
// the fields only this page has, codes the template words.
type reviewForms struct {
	Order        string
	Attach       decisionForm // party, intent and reason, as on the order page
	DismissText  string
	DismissError string
}

type reviewMessageView struct {
	layout
	Msg        *mailflow.InboundMessage
	Received   stamp
	Sent       stamp // the Date header
	Read       mailflow.ReviewReading
	Order      string
	Linked     bool
	Resolution *resolutionView
	// Already is set when a post came after someone else's: the post
	// changed nothing.
	Already    bool
	NotInQueue bool
	Forms      reviewForms
}

// reviewID parses the {id} of a review URL.
func reviewID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

func (p *Pages) reviewMessage(w http.ResponseWriter, r *http.Request) {
	p.renderReviewMessage(w, r, http.StatusOK, nil)
}

// entered is what a refused post carried, to show it again.
type entered struct {
	attach     bool
	number     string
	decision   mailflow.Decision
	dismissal  string
	verr       *mailflow.ValidationError
	already    bool
	notInQueue bool
}

func (p *Pages) renderReviewMessage(w http.ResponseWriter, r *http.Request, status int, in *entered) {
	ctx := r.Context()
	id, ok := reviewID(r)
	if !ok {
		p.notFound(w, r)
		return
	}
	m, res, err := p.Store.InboundMessage(ctx, id)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	raw, err := p.Store.InboundRaw(ctx, id)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := reviewMessageView{layout: p.layoutFor(r, "Nachricht %d", id), Msg: m,
		Received: newStamp(m.ReceivedAt), Read: mailflow.ReadForReview(raw), Resolution: newResolutionView(res)}
	v.Sent = newStamp(v.Read.Date)
	v.Order, v.Linked = mailflow.SuggestOrder(m)
	// The forms start from what the message says: its order, the party
	// its sender is registered for, the keyword and reason found.
	d := mailflow.Decision{Party: m.Party, Intent: v.Read.Intent, Reason: v.Read.Reason}
	number := v.Order
	if d.Party == "" && number != "" {
		if o, err := p.Store.Order(ctx, number); err == nil {
			d.Party = mailflow.SuggestParty(o, m.From)
		}
	}
	if in != nil {
		v.Already, v.NotInQueue = in.already, in.notInQueue
		if in.attach {
			d, number = in.decision, in.number
		} else {
			v.Forms.DismissText = in.dismissal
		}
	}
	v.Forms.Order, v.Forms.Attach.Reason = number, d.Reason
	for _, party := range []string{mailflow.PartyProvider, mailflow.PartyIntermediary} {
		v.Forms.Attach.Parties = append(v.Forms.Attach.Parties, option{Value: party, Label: label(v.Lang, templates.LabelParty, party), Selected: d.Party == party})
	}
	for _, i := range []mailflow.Intent{mailflow.IntentAccept, mailflow.IntentReview, mailflow.IntentWorking, mailflow.IntentReject} {
		v.Forms.Attach.Intents = append(v.Forms.Attach.Intents, option{Value: string(i), Label: label(v.Lang, templates.LabelIntent, string(i)), Selected: d.Intent == i})
	}
	if in != nil && in.verr != nil {
		v.Forms.Attach.ByField = map[string]string{}
		for _, fe := range in.verr.Errors {
			if !in.attach {
				v.Forms.DismissError = "dismiss-required"
				if strings.Contains(fe.Message, "at most") {
					v.Forms.DismissError = "dismiss-long"
				}
				continue
			}
			if _, dup := v.Forms.Attach.ByField[fe.Field]; dup {
				continue
			}
			m := reviewErrorCode(v.Lang, fe)
			v.Forms.Attach.ByField[fe.Field] = m
			v.Forms.Attach.Errors = append(v.Forms.Attach.Errors, fieldError{Field: fe.Field, Label: msg(v.Lang, attachLabels[fe.Field]), Message: m})
		}
	}
	p.render(w, r, status, "review_message.html", v)
}

// attachLabels name the attach form's controls in its error summary.
var attachLabels = map[string]string{"order": "Bestellnummer", "party": "Partei", "intent": "Erklärung", "reason": "Grund", "message": "Nachricht"}

// reviewErrorCode gives a field error as the code review_message.html
// words ("order-required" …), or, for the fields the decision form shares,
// its message in lang.
func reviewErrorCode(lang string, fe mailflow.FieldError) string {
	switch fe.Field {
	case "order":
		if fe.Message == "is required" {
			return "order-required"
		}
		return "order-unknown"
	case "message":
		return "message-conflict"
	}
	return fieldMessage(lang, fe)
}

func (p *Pages) reviewAttach(w http.ResponseWriter, r *http.Request) {
	id, ok := reviewID(r)
	if !ok {
		p.notFound(w, r)
		return
	}
	in := &entered{attach: true, number: r.PostFormValue("order"),
		decision: mailflow.Decision{Party: r.PostFormValue("party"), Intent: mailflow.Intent(r.PostFormValue("intent")),
			Reason: r.PostFormValue("reason"), Actor: viewerFrom(r).Subject}}
	o, _, err := p.Flow.AttachReviewed(r.Context(), id, in.number, in.decision)
	if p.reviewRefused(w, r, in, err) {
		return
	}
	p.Log.Info("review: message attached", "inbound", id, "order", o.Number, "party", in.decision.Party, "intent", in.decision.Intent, "status", o.Status)
	http.Redirect(w, r, "/pruefung?erledigt="+strconv.FormatInt(id, 10), http.StatusSeeOther)
}

func (p *Pages) reviewDismiss(w http.ResponseWriter, r *http.Request) {
	id, ok := reviewID(r)
	if !ok {
		p.notFound(w, r)
		return
	}
	in := &entered{dismissal: r.PostFormValue("reason")}
	res, err := p.Flow.DismissReviewed(r.Context(), id, in.dismissal, viewerFrom(r).Subject)
	if p.reviewRefused(w, r, in, err) {
		return
	}
	p.Log.Info("review: message filed without decision", "inbound", id, "order", res.OrderNumber)
	http.Redirect(w, r, "/pruefung?erledigt="+strconv.FormatInt(id, 10), http.StatusSeeOther)
}

// reviewRefused answers a post that changed nothing and reports whether
// it did: the message page again, with the errors or with who was first.
func (p *Pages) reviewRefused(w http.ResponseWriter, r *http.Request, in *entered, err error) bool {
	var verr *mailflow.ValidationError
	var already *mailflow.AlreadyResolvedError
	switch {
	case err == nil:
		return false
	case errors.As(err, &already):
		in.already = true
		p.renderReviewMessage(w, r, http.StatusConflict, in)
	case errors.Is(err, mailflow.ErrNotInReview):
		in.notInQueue = true
		p.renderReviewMessage(w, r, http.StatusConflict, in)
	case errors.As(err, &verr):
		in.verr = verr
		p.renderReviewMessage(w, r, http.StatusUnprocessableEntity, in)
	default:
		p.fail(w, r, err)
	}
	return true
}

// orderReviews is the part of an order's history that the review queue
// wrote: messages attached to it, and dismissed ones it was linked to.
func (p *Pages) orderReviews(ctx context.Context, orderID int64) ([]*resolutionView, error) {
	rs, err := p.Store.OrderReviews(ctx, orderID)
	if err != nil {
		return nil, err
	}
	out := make([]*resolutionView, len(rs))
	for i, r := range rs {
		out[i] = newResolutionView(r)
	}
	return out, nil
}
