package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"mailflow/mailflow"
	"mailflow/templates"
)

// assets holds the status page's templates and stylesheet, so the binary
// serves the page without files beside it.
//
//go:embed assets
var assets embed.FS

// PageStore is what the status page reads from storage; storage.Store
// implements it.
type PageStore interface {
	// Order returns one order by number with its history.
	Order(ctx context.Context, number string) (*mailflow.Order, error)
	// Orders lists orders newest first.
	Orders(ctx context.Context, f mailflow.OrderFilter) ([]mailflow.Order, error)
	// CountOrders counts the orders a filter selects.
	CountOrders(ctx context.Context, f mailflow.OrderFilter) (int, error)
	// StatusCountsFor returns how many orders are in each status, among
	// those of the filter's party scope.
	StatusCountsFor(ctx context.Context, f mailflow.OrderFilter) (map[mailflow.Status]int, error)
	// CountReview counts received messages waiting for a person.
	CountReview(ctx context.Context) (int, error)
	// OrderMessages returns the outbound messages of an order, oldest first.
	OrderMessages(ctx context.Context, orderID int64) ([]*mailflow.OutboxMessage, error)
	// OutboxMessage returns an outbound message without its bytes.
	OutboxMessage(ctx context.Context, id int64) (*mailflow.OutboxMessage, error)
	// OutboxRaw returns the stored bytes of an outbound message.
	OutboxRaw(ctx context.Context, id int64) ([]byte, error)
	// InboundList lists received messages newest first.
	InboundList(ctx context.Context, review bool, orderID int64, limit int) ([]*mailflow.InboundMessage, error)
	// InboundRaw returns the stored bytes of a received message.
	InboundRaw(ctx context.Context, id int64) ([]byte, error)
	ReviewStore // the review queue (review.go)
}

// pageSize is how many orders one page of the list shows.
const pageSize = 50

// maxFormBody limits form posts: a decision's reason is at most 4000
// characters.
const maxFormBody = 64 << 10

// Pages is the status page "Eingegangene Bestellungen": server-rendered
// HTML behind a sign-in, usable without JavaScript. Coordinators sign in
// with a password and see every order; providers and intermediaries sign
// in by an emailed link and see their own (docs/design.md §7). Make it
// with NewPages.
type Pages struct {
	Flow  *mailflow.Flow
	Store PageStore
	// Auth keeps sessions, sign-in links and rate limits; nil: Store,
	// which must then implement AuthStore (storage.Store does).
	Auth AuthStore
	// Username and Password are one coordinator's credentials, the
	// configuration's [coordinator]; Coordinators are more of them.
	Username, Password string
	Coordinators       []Coordinator
	// PublicURL is the URL under which people reach the page
	// (http.public_url); sign-in links point there. Mailer composes the
	// sign-in mail. Without both there is no sign-in by email: a link
	// built from the request's Host could be steered to another site.
	PublicURL string
	Mailer    SigninMailer
	Log       *slog.Logger
	Now       func() time.Time
	// SecureCookies marks the session cookie Secure; set it when the page
	// is served behind TLS.
	SecureCookies bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client the rate limits count (http.trusted_proxies).
	TrustedProxies []netip.Prefix
	// Evidence exports the bundle the order page offers for download;
	// nil: the download answers that no signing key is set up.
	Evidence Evidence

	tmpl         map[string]map[string]*template.Template // language → page → template
	static       fs.FS
	coordinators []coordinatorLogin
}

// pageTemplates are the pages, each parsed over base.html.
var pageTemplates = []string{"login.html", "signin.html", "list.html", "detail.html", "error.html", "review.html", "review_message.html"}

// NewPages checks the configuration and parses every template, so a broken
// template stops start-up rather than the first request.
func NewPages(cfg Pages) (*Pages, error) {
	p := &cfg
	if p.Flow == nil || p.Store == nil {
		return nil, errors.New("web: pages: Flow and Store are required")
	}
	if (p.Username == "") != (p.Password == "") {
		return nil, errors.New("web: pages: username and password are required together")
	}
	cs := p.Coordinators
	if p.Username != "" {
		cs = append([]Coordinator{{Username: p.Username, Password: p.Password}}, cs...)
	}
	var err error
	if p.coordinators, err = prepareCoordinators(cs); err != nil {
		return nil, err
	}
	if p.Auth == nil {
		a, ok := p.Store.(AuthStore)
		if !ok {
			return nil, errors.New("web: pages: Auth is required (Store does not keep sessions)")
		}
		p.Auth = a
	}
	if p.PublicURL != "" {
		u, err := url.Parse(p.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("web: pages: public URL %q is not an http(s) URL", p.PublicURL)
		}
	}
	if len(p.coordinators) == 0 && !p.signinEnabled() {
		return nil, errors.New("web: pages: nobody could sign in: give a coordinator's username and password, or a public URL and a mailer for sign-in links")
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	p.tmpl = map[string]map[string]*template.Template{}
	for _, lang := range []string{langDE, langEN} {
		p.tmpl[lang] = map[string]*template.Template{}
		for _, name := range pageTemplates {
			t, err := template.New("base.html").Funcs(pageFuncs(lang)).ParseFS(assets, "assets/base.html", "assets/review_parts.html", "assets/"+name)
			if err != nil {
				return nil, fmt.Errorf("web: pages: parse %s: %w", name, err)
			}
			p.tmpl[lang][name] = t
		}
	}
	p.static, err = fs.Sub(assets, "assets")
	if err != nil {
		return nil, fmt.Errorf("web: pages: %w", err)
	}
	return p, nil
}

// Handler routes the status page. Mount it at "/" (for example through
// Server.Extra); every route except the login form and the stylesheet
// requires a session.
func (p *Pages) Handler() http.Handler {
	if p.tmpl == nil {
		panic("web: Pages used without NewPages")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/style.css", p.stylesheet)
	mux.HandleFunc("GET /anmelden", p.loginForm)
	mux.HandleFunc("POST /anmelden", p.login)
	mux.HandleFunc("GET /sprache/{lang}", p.setLanguage)
	mux.HandleFunc("POST /anmelden/link", p.requestLink)
	mux.HandleFunc("GET /anmelden/link/{token}", p.confirmLink)
	mux.HandleFunc("POST /anmelden/link/{token}", p.useLink)
	mux.Handle("POST /abmelden", p.authed(p.logout))
	mux.Handle("POST /abmelden/ueberall", p.authed(p.logoutEverywhere))
	mux.Handle("GET /{$}", p.authed(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/bestellungen", http.StatusSeeOther)
	}))
	mux.Handle("GET /bestellungen", p.authed(p.list))
	mux.Handle("GET /bestellungen.csv", p.authed(p.listCSV))
	mux.Handle("GET /bestellungen/{number}", p.authed(p.detail))
	mux.Handle("POST /bestellungen/{number}/entscheidungen", p.authed(p.decide))
	mux.Handle("GET /bestellungen/{number}/nachweis.zip", p.authed(p.evidenceZip))
	mux.Handle("GET /nachrichten/ausgang/{file}", p.authed(p.outboundEML))
	mux.Handle("GET /nachrichten/eingang/{file}", p.authed(p.inboundEML))
	p.reviewRoutes(mux)
	mux.Handle("/", p.authed(func(w http.ResponseWriter, r *http.Request) {
		p.errorKey(w, r, http.StatusNotFound, "Seite nicht gefunden", "Diese Seite gibt es nicht.")
	}))
	return securityHeaders(mux)
}

// securityHeaders keeps the page out of frames, forbids scripts and
// foreign resources, and keeps order data out of caches and referrers.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Content-Type-Options", "nosniff")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

func (p *Pages) stylesheet(w http.ResponseWriter, r *http.Request) {
	b, err := fs.ReadFile(p.static, "style.css")
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=3600")
	w.Write(b)
}

// layout is what base.html needs on every page.
type layout struct {
	Title  string
	User   string // "" on the login page
	CSRF   string
	Lang   string // "de" or "en"
	Switch switchLink
	// Coordinator: the signed-in person is a coordinator (the review
	// queue and hand-recorded decisions are theirs).
	Coordinator bool
}

// layoutFor starts a page's data; title is a phrase of the page's table
// (i18n.go), given in German.
func (p *Pages) layoutFor(r *http.Request, title string, args ...any) layout {
	lang := langFrom(r)
	l := layout{Title: msgf(lang, title, args...), Lang: lang, Switch: languageSwitch(r, lang)}
	if v := viewerFrom(r); v != nil {
		l.User, l.CSRF, l.Coordinator = v.label(lang), v.CSRF, v.coordinator()
	}
	return l
}

// render executes a page into a buffer first, so a template error answers
// 500 instead of half a page. The language is the request's.
func (p *Pages) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	lang := langFrom(r)
	if err := p.tmpl[lang][name].ExecuteTemplate(&buf, "base", data); err != nil {
		p.Log.Error("render page", "page", name, "path", r.URL.Path, "err", err)
		http.Error(w, msg(lang, "Interner Fehler"), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Language", lang)
	w.Header().Add("Vary", "Accept-Language, Cookie")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type errorView struct {
	layout
	Message string
}

// errorPage shows an error with a title and message already in the
// request's language.
func (p *Pages) errorPage(w http.ResponseWriter, r *http.Request, status int, title, message string) {
	l := p.layoutFor(r, "")
	l.Title = title
	p.render(w, r, status, "error.html", errorView{layout: l, Message: message})
}

// errorKey shows an error whose title and message are phrases of the
// page's table, given in German.
func (p *Pages) errorKey(w http.ResponseWriter, r *http.Request, status int, title, message string, args ...any) {
	lang := langFrom(r)
	p.errorPage(w, r, status, msg(lang, title), msgf(lang, message, args...))
}

// fail maps a domain error to an error page.
func (p *Pages) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, mailflow.ErrNotFound):
		p.errorKey(w, r, http.StatusNotFound, "Nicht gefunden", "Das Gesuchte gibt es nicht (mehr).")
	case errors.Is(err, context.Canceled):
		w.WriteHeader(499)
	default:
		p.Log.Error("status page request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		p.errorKey(w, r, http.StatusInternalServerError, "Interner Fehler", "Die Anfrage ist fehlgeschlagen; der Fehler wurde protokolliert.")
	}
}

// statusView is a status card: label, family colour, icon and the
// status's explanation as its title.
type statusView struct {
	Code        string
	Label       string
	Explanation string
	Family      string
	Shape       string
	Count       int
	URL         string
	Active      bool
}

// familyShapes gives each status family its icon (base.html "icon"), so
// that colour is never the only carrier: a dashed ring for open, a half
// filled circle for working, a magnifier for review, a tick for ordered
// and a cross for rejected.
var familyShapes = map[string]string{
	mailflow.FamilyOpen:     "ring",
	mailflow.FamilyWorking:  "half",
	mailflow.FamilyReview:   "lens",
	mailflow.FamilyOrdered:  "check",
	mailflow.FamilyRejected: "cross",
}

func newStatusView(lang string, s mailflow.Status) statusView {
	return statusView{Code: string(s), Label: label(lang, templates.LabelStatus, string(s)),
		Explanation: templates.Label(lang, templates.LabelStatusExplanation, string(s)),
		Family:      s.Family(), Shape: familyShapes[s.Family()]}
}

type listRow struct {
	Number    string
	OrderedAt time.Time
	Customer  string
	Provider  string
	Service   string
	Model     string
	Status    statusView
	Conflict  bool
}

type listView struct {
	layout
	Summary  []statusView
	Total    int
	Review   int
	Status   string
	Query    string
	Rows     []listRow
	Matched  int
	Page     int
	Pages    int
	PrevURL  string
	NextURL  string
	CSVURL   string
	Filtered bool
}

func listURL(status, q string, page int) string {
	return filterURL("/bestellungen", status, q, page)
}

// filterURL is path with the list's filter as its query.
func filterURL(path, status, q string, page int) string {
	v := url.Values{}
	if status != "" {
		v.Set("status", status)
	}
	if q != "" {
		v.Set("q", q)
	}
	if page > 1 {
		v.Set("seite", strconv.Itoa(page))
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// listFilter reads the list's filter (status, q) from the query and
// narrows it to the orders the viewer may see, as the list and its CSV
// export share it. A search term that is too long answers 422 and
// returns ok false.
func (p *Pages) listFilter(w http.ResponseWriter, r *http.Request) (f mailflow.OrderFilter, ok bool) {
	q := r.URL.Query()
	if s := mailflow.Status(q.Get("status")); s.Valid() {
		f.Status = s
	}
	// A query string may hold any bytes; PostgreSQL refuses invalid UTF-8
	// as a parameter.
	f.Query = mailflow.CleanText(strings.TrimSpace(q.Get("q")), 0)
	if n := utf8.RuneCountInString(f.Query); n > maxQuery {
		p.errorKey(w, r, http.StatusUnprocessableEntity, "Suchbegriff zu lang",
			"Der Suchbegriff (q) darf höchstens %d Zeichen lang sein, nicht %d.", maxQuery, n)
		return f, false
	}
	return viewerFrom(r).scope(f), true
}

func (p *Pages) list(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, ok := p.listFilter(w, r)
	if !ok {
		return
	}
	v := listView{layout: p.layoutFor(r, "Eingegangene Bestellungen"), Status: string(f.Status), Query: f.Query}
	lang := v.Lang
	v.Filtered = v.Status != "" || v.Query != ""
	viewer := viewerFrom(r)
	counts, err := p.Store.StatusCountsFor(ctx, viewer.scope(mailflow.OrderFilter{}))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	for _, s := range mailflow.Statuses {
		sv := newStatusView(lang, s)
		sv.Count = counts[s]
		sv.URL = listURL(string(s), "", 0)
		sv.Active = v.Status == string(s)
		v.Summary = append(v.Summary, sv)
		v.Total += sv.Count
	}
	if viewer.coordinator() {
		if v.Review, err = p.Store.CountReview(ctx); err != nil {
			p.fail(w, r, err)
			return
		}
	}
	if v.Matched, err = p.Store.CountOrders(ctx, f); err != nil {
		p.fail(w, r, err)
		return
	}
	v.Pages = max(1, (v.Matched+pageSize-1)/pageSize)
	v.Page, _ = strconv.Atoi(r.URL.Query().Get("seite"))
	v.Page = min(max(v.Page, 1), v.Pages)
	f.Limit, f.Offset = pageSize, (v.Page-1)*pageSize
	orders, err := p.Store.Orders(ctx, f)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	for _, o := range orders {
		v.Rows = append(v.Rows, listRow{Number: o.Number, OrderedAt: o.OrderedAt, Customer: o.Snapshot.Customer.Name,
			Provider: o.Snapshot.Provider.Name, Service: o.Snapshot.Service.Name, Model: o.ContractModel,
			Status: newStatusView(lang, o.Status), Conflict: o.Conflict})
	}
	if v.Page > 1 {
		v.PrevURL = listURL(v.Status, v.Query, v.Page-1)
	}
	if v.Page < v.Pages {
		v.NextURL = listURL(v.Status, v.Query, v.Page+1)
	}
	v.CSVURL = filterURL("/bestellungen.csv", v.Status, v.Query, 0)
	p.render(w, r, http.StatusOK, "list.html", v)
}

type option struct {
	Value, Label string
	Selected     bool
}

// fieldError is a validation message for one form control.
type fieldError struct {
	Field, Label, Message string
}

// decisionForm is the manual decision form with what was entered and the
// messages of a failed validation.
type decisionForm struct {
	Parties []option
	Intents []option
	Reason  string
	Errors  []fieldError
	ByField map[string]string
}

type timelineRow struct {
	mailflow.Decision
	InboundID int64 // the received message that carried it, 0 if none
}

type detailView struct {
	layout
	Order        *mailflow.Order
	Status       statusView
	RejectReason string // the reason of the rejection that closed the order
	Deadline     *time.Time
	Timeline     []timelineRow
	Conversation []conversationEntry
	Form         decisionForm
	Saved        bool
	Reviews      []*resolutionView // messages attached or dismissed from the review queue
}

// visibleOrder loads the order of the request's {number} if the viewer
// may see it; otherwise it answers 404, the same as for a number that
// does not exist, and returns nil.
func (p *Pages) visibleOrder(w http.ResponseWriter, r *http.Request) *mailflow.Order {
	o, err := p.Store.Order(r.Context(), r.PathValue("number"))
	if err == nil && !viewerFrom(r).canSee(o) {
		err = mailflow.ErrNotFound
	}
	if err != nil {
		p.fail(w, r, err)
		return nil
	}
	return o
}

func (p *Pages) detail(w http.ResponseWriter, r *http.Request) {
	if o := p.visibleOrder(w, r); o != nil {
		p.renderDetail(w, r, http.StatusOK, o, mailflow.Decision{}, nil)
	}
}

func (p *Pages) renderDetail(w http.ResponseWriter, r *http.Request, status int, o *mailflow.Order, entered mailflow.Decision, verr *mailflow.ValidationError) {
	ctx := r.Context()
	v := detailView{layout: p.layoutFor(r, "Bestellung %s", o.Number), Order: o,
		Deadline: o.ProvisioningDeadline(), Saved: r.URL.Query().Get("erfasst") == "1" && verr == nil}
	lang := v.Lang
	v.Status = newStatusView(lang, o.Status)
	v.RejectReason = rejectReason(o)
	viewer := viewerFrom(r)
	outbound, err := p.Store.OrderMessages(ctx, o.ID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	// A provider or intermediary sees only its own correspondence.
	var outs []*mailflow.OutboxMessage
	for _, m := range outbound {
		if viewer.seesMessage(m.Party) {
			outs = append(outs, m)
		}
	}
	inbound, err := p.Store.InboundList(ctx, false, o.ID, 1000)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	var ins []*mailflow.InboundMessage
	for _, m := range inbound {
		if viewer.seesMessage(m.Party) {
			ins = append(ins, m)
		}
	}
	if v.Conversation, err = p.conversation(ctx, lang, outs, ins); err != nil {
		p.fail(w, r, err)
		return
	}
	// The review queue is the coordinators' (docs/design.md §7).
	if viewer.coordinator() {
		if v.Reviews, err = p.orderReviews(ctx, o.ID); err != nil {
			p.fail(w, r, err)
			return
		}
	}
	byMessageID := map[string]int64{}
	for _, m := range ins {
		byMessageID[m.MessageID] = m.ID
	}
	for _, d := range o.History {
		row := timelineRow{Decision: d}
		if d.MessageID != "" {
			row.InboundID = byMessageID[d.MessageID]
		}
		v.Timeline = append(v.Timeline, row)
	}
	v.Form = newDecisionForm(lang, o, viewer.decidesFor(o), !viewer.coordinator(), entered, verr)
	p.render(w, r, status, "detail.html", v)
}

// rejectReason is the reason of the rejection that made the order's
// status, "" unless it is rejected.
func rejectReason(o *mailflow.Order) string {
	if o.Status.Family() != mailflow.FamilyRejected {
		return ""
	}
	for _, d := range o.History {
		if d.Intent == mailflow.IntentReject && d.Effect == mailflow.EffectApplied {
			return d.Reason
		}
	}
	return ""
}

// newDecisionForm offers the parties the viewer may decide for: a
// coordinator each party of the order, a provider or intermediary only
// itself, preselected (own).
func newDecisionForm(lang string, o *mailflow.Order, parties []string, own bool, entered mailflow.Decision, verr *mailflow.ValidationError) decisionForm {
	f := decisionForm{Reason: entered.Reason, ByField: map[string]string{}}
	for _, party := range parties {
		f.Parties = append(f.Parties, option{Value: party, Label: label(lang, templates.LabelParty, party), Selected: entered.Party == party || own})
	}
	for _, i := range []mailflow.Intent{mailflow.IntentAccept, mailflow.IntentReview, mailflow.IntentWorking, mailflow.IntentReject} {
		f.Intents = append(f.Intents, option{Value: string(i), Label: label(lang, templates.LabelIntent, string(i)), Selected: entered.Intent == i})
	}
	if verr != nil {
		for _, name := range []string{"party", "intent", "reason"} {
			for _, fe := range verr.Errors {
				if fe.Field == name && f.ByField[name] == "" {
					m := fieldMessage(lang, fe)
					f.ByField[name] = m
					f.Errors = append(f.Errors, fieldError{Field: name, Label: msg(lang, formLabels[name]), Message: m})
				}
			}
		}
		for _, fe := range verr.Errors {
			if _, known := formLabels[fe.Field]; !known {
				f.Errors = append(f.Errors, fieldError{Field: fe.Field, Label: fe.Field, Message: fieldMessage(lang, fe)})
			}
		}
	}
	return f
}

// formLabels are the decision form's control labels, named in messages.
var formLabels = map[string]string{"party": "Partei", "intent": "Erklärung", "reason": "Grund"}

// fieldMessage says in lang what ValidateDecision found wrong with a
// field; the domain's own messages are English, for the API.
func fieldMessage(lang string, fe mailflow.FieldError) string {
	m := fe.Message
	de := "Die Angabe ist ungültig."
	switch fe.Field {
	case "party":
		switch {
		case strings.Contains(m, "has no intermediary"):
			de = "Eine Bestellung im Direktvertrag (DV) hat keinen Intermediär."
		case strings.HasPrefix(m, "is required"):
			de = "Bitte wählen Sie die Partei, für die Sie die Erklärung erfassen."
		default:
			de = "Bitte wählen Sie Anbieter oder Intermediär."
		}
	case "intent":
		de = "Bitte wählen Sie eine Erklärung: Angenommen, In Prüfung, In Bearbeitung oder Abgelehnt."
	case "reason":
		switch {
		case strings.Contains(m, "required for reject"):
			de = "Für eine Ablehnung ist ein Grund erforderlich."
		case strings.Contains(m, "at most"):
			de = "Der Grund darf höchstens 4000 Zeichen lang sein."
		case strings.Contains(m, "without NUL"):
			de = "Der Grund enthält Zeichen, die kein Text sind."
		}
	}
	if lang == langEN && de == "Die Angabe ist ungültig." {
		return m // the domain's English message says more
	}
	return msg(lang, de)
}

// decide records a decision from the page. A coordinator records one by
// hand for either party (source manual, actor the user name). A provider
// or intermediary records its own declaration (source page, actor the
// signed-in address), which has the effects and mails of the same answer
// by email; a decision for another party is refused with 403 and changes
// nothing.
func (p *Pages) decide(w http.ResponseWriter, r *http.Request) {
	o := p.visibleOrder(w, r)
	if o == nil {
		return
	}
	number, viewer := o.Number, viewerFrom(r)
	d := mailflow.Decision{Party: r.PostFormValue("party"), Intent: mailflow.Intent(r.PostFormValue("intent")),
		Reason: r.PostFormValue("reason"), Source: mailflow.SourceManual, Actor: viewer.Subject}
	if !viewer.coordinator() {
		if d.Party != viewer.Role {
			p.Log.Warn("status page: decision for another party refused", "order", number, "role", viewer.Role, "party", mailflow.CleanText(d.Party, 40))
			p.errorKey(w, r, http.StatusForbidden, "Nicht erlaubt",
				"Sie können nur die Erklärung Ihrer eigenen Organisation erfassen.")
			return
		}
		d.Source = mailflow.SourcePage
	}
	o, err := p.Flow.Decide(r.Context(), number, d)
	var verr *mailflow.ValidationError
	if errors.As(err, &verr) {
		o, err := p.Store.Order(r.Context(), number)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		p.renderDetail(w, r, http.StatusUnprocessableEntity, o, d, verr)
		return
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.Log.Info("decision recorded", "order", o.Number, "party", d.Party, "intent", d.Intent, "source", d.Source, "status", o.Status)
	http.Redirect(w, r, "/bestellungen/"+url.PathEscape(o.Number)+"?erfasst=1#verlauf", http.StatusSeeOther)
}

// emlID parses "{id}.eml".
func emlID(file string) (int64, bool) {
	s, ok := strings.CutSuffix(file, ".eml")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}

func (p *Pages) outboundEML(w http.ResponseWriter, r *http.Request) {
	p.serveEML(w, r, "ausgang", func(ctx context.Context, id int64) (string, string, error) {
		m, err := p.Store.OutboxMessage(ctx, id)
		if err != nil {
			return "", "", err
		}
		if m.Kind == mailflow.KindSignin {
			return "", "", mailflow.ErrNotFound // a credential, not evidence
		}
		return m.OrderNumber, m.Party, nil
	}, p.Store.OutboxRaw)
}

func (p *Pages) inboundEML(w http.ResponseWriter, r *http.Request) {
	p.serveEML(w, r, "eingang", func(ctx context.Context, id int64) (string, string, error) {
		m, _, err := p.Store.InboundMessage(ctx, id)
		if err != nil {
			return "", "", err
		}
		return m.OrderNumber, m.Party, nil
	}, p.Store.InboundRaw)
}

// messageVisible reports whether the viewer may download a message of an
// order (number, "" for none) sent to or received from party: a
// coordinator any; a provider or intermediary only its own
// correspondence on an order it can see.
func (p *Pages) messageVisible(ctx context.Context, v *viewer, number, party string) (bool, error) {
	if v.coordinator() {
		return true, nil
	}
	if number == "" || !v.seesMessage(party) {
		return false, nil
	}
	o, err := p.Store.Order(ctx, number)
	if err != nil {
		return false, err
	}
	return v.canSee(o), nil
}

// serveEML sends a stored message byte for byte as an attachment: it is
// evidence, so it is neither parsed nor re-encoded. meta names the
// message's order and party, for messageVisible.
func (p *Pages) serveEML(w http.ResponseWriter, r *http.Request, prefix string,
	meta func(context.Context, int64) (number, party string, err error), load func(context.Context, int64) ([]byte, error)) {
	id, ok := emlID(r.PathValue("file"))
	if !ok {
		p.errorKey(w, r, http.StatusNotFound, "Nicht gefunden", "Diese Nachricht gibt es nicht.")
		return
	}
	number, party, err := meta(r.Context(), id)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if ok, err := p.messageVisible(r.Context(), viewerFrom(r), number, party); err != nil || !ok {
		if err == nil {
			err = mailflow.ErrNotFound
		}
		p.fail(w, r, err)
		return
	}
	raw, err := load(r.Context(), id)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if raw == nil {
		p.errorKey(w, r, http.StatusNotFound, "Nicht gespeichert", "Die Nachricht war zu groß und wurde nicht gespeichert.")
		return
	}
	w.Header().Set("Content-Type", "message/rfc822")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%d.eml"`, prefix, id))
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	w.Write(raw)
}
