package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
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
	// StatusCounts returns how many orders are in each status.
	StatusCounts(ctx context.Context) (map[mailflow.Status]int, error)
	// CountReview counts received messages waiting for a person.
	CountReview(ctx context.Context) (int, error)
	// OrderMessages returns the outbound messages of an order, oldest first.
	OrderMessages(ctx context.Context, orderID int64) ([]*mailflow.OutboxMessage, error)
	// OutboxRaw returns the stored bytes of an outbound message.
	OutboxRaw(ctx context.Context, id int64) ([]byte, error)
	// InboundList lists received messages newest first.
	InboundList(ctx context.Context, review bool, orderID int64, limit int) ([]*mailflow.InboundMessage, error)
	// InboundRaw returns the stored bytes of a received message.
	InboundRaw(ctx context.Context, id int64) ([]byte, error)
}

// pageSize is how many orders one page of the list shows.
const pageSize = 50

// maxFormBody limits form posts: a decision's reason is at most 4000
// characters.
const maxFormBody = 64 << 10

// Pages is the coordinators' status page "Eingegangene Bestellungen":
// server-rendered HTML behind a login, usable without JavaScript. Make it
// with NewPages.
type Pages struct {
	Flow  *mailflow.Flow
	Store PageStore
	// Username and Password are the coordinators' configured credentials.
	Username, Password string
	Log                *slog.Logger
	Now                func() time.Time
	// SecureCookies marks the session cookie Secure; set it when the page
	// is served behind TLS.
	SecureCookies bool

	tmpl     map[string]map[string]*template.Template // language → page → template
	static   fs.FS
	userSum  [32]byte
	passSum  [32]byte
	sessions *sessionStore
	limiter  *loginLimiter
}

// pageTemplates are the pages, each parsed over base.html.
var pageTemplates = []string{"login.html", "list.html", "detail.html", "error.html"}

// NewPages checks the configuration and parses every template, so a broken
// template stops start-up rather than the first request.
func NewPages(cfg Pages) (*Pages, error) {
	p := &cfg
	if p.Flow == nil || p.Store == nil {
		return nil, errors.New("web: pages: Flow and Store are required")
	}
	if p.Username == "" || p.Password == "" {
		return nil, errors.New("web: pages: username and password are required")
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
			t, err := template.New("base.html").Funcs(pageFuncs(lang)).ParseFS(assets, "assets/base.html", "assets/"+name)
			if err != nil {
				return nil, fmt.Errorf("web: pages: parse %s: %w", name, err)
			}
			p.tmpl[lang][name] = t
		}
	}
	var err error
	p.static, err = fs.Sub(assets, "assets")
	if err != nil {
		return nil, fmt.Errorf("web: pages: %w", err)
	}
	p.userSum = sha256.Sum256([]byte(p.Username))
	p.passSum = sha256.Sum256([]byte(p.Password))
	p.sessions = &sessionStore{m: map[string]*session{}}
	p.limiter = &loginLimiter{fails: map[string][]time.Time{}}
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
	mux.Handle("POST /abmelden", p.authed(p.logout))
	mux.Handle("GET /{$}", p.authed(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/bestellungen", http.StatusSeeOther)
	}))
	mux.Handle("GET /bestellungen", p.authed(p.list))
	mux.Handle("GET /bestellungen.csv", p.authed(p.listCSV))
	mux.Handle("GET /bestellungen/{number}", p.authed(p.detail))
	mux.Handle("POST /bestellungen/{number}/entscheidungen", p.authed(p.decide))
	mux.Handle("GET /nachrichten/ausgang/{file}", p.authed(p.outboundEML))
	mux.Handle("GET /nachrichten/eingang/{file}", p.authed(p.inboundEML))
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
}

// layoutFor starts a page's data; title is a phrase of the page's table
// (i18n.go), given in German.
func (p *Pages) layoutFor(r *http.Request, title string, args ...any) layout {
	lang := langFrom(r)
	l := layout{Title: msgf(lang, title, args...), Lang: lang, Switch: languageSwitch(r, lang)}
	if s := sessionFrom(r); s != nil {
		l.User, l.CSRF = s.user, s.csrf
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

// listFilter reads the list's filter (status, q) from the query, as the
// list and its CSV export share it. A search term that is too long
// answers 422 and returns ok false.
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
	return f, true
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
	counts, err := p.Store.StatusCounts(ctx)
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
	if v.Review, err = p.Store.CountReview(ctx); err != nil {
		p.fail(w, r, err)
		return
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
}

func (p *Pages) detail(w http.ResponseWriter, r *http.Request) {
	o, err := p.Store.Order(r.Context(), r.PathValue("number"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.renderDetail(w, r, http.StatusOK, o, mailflow.Decision{}, nil)
}

func (p *Pages) renderDetail(w http.ResponseWriter, r *http.Request, status int, o *mailflow.Order, entered mailflow.Decision, verr *mailflow.ValidationError) {
	ctx := r.Context()
	v := detailView{layout: p.layoutFor(r, "Bestellung %s", o.Number), Order: o,
		Deadline: o.ProvisioningDeadline(), Saved: r.URL.Query().Get("erfasst") == "1" && verr == nil}
	lang := v.Lang
	v.Status = newStatusView(lang, o.Status)
	v.RejectReason = rejectReason(o)
	outbound, err := p.Store.OrderMessages(ctx, o.ID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	inbound, err := p.Store.InboundList(ctx, false, o.ID, 1000)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if v.Conversation, err = p.conversation(ctx, lang, outbound, inbound); err != nil {
		p.fail(w, r, err)
		return
	}
	byMessageID := map[string]int64{}
	for _, m := range inbound {
		byMessageID[m.MessageID] = m.ID
	}
	for _, d := range o.History {
		row := timelineRow{Decision: d}
		if d.MessageID != "" {
			row.InboundID = byMessageID[d.MessageID]
		}
		v.Timeline = append(v.Timeline, row)
	}
	v.Form = newDecisionForm(lang, o, entered, verr)
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

func newDecisionForm(lang string, o *mailflow.Order, entered mailflow.Decision, verr *mailflow.ValidationError) decisionForm {
	f := decisionForm{Reason: entered.Reason, ByField: map[string]string{}}
	for _, party := range o.Parties() {
		f.Parties = append(f.Parties, option{Value: party, Label: label(lang, templates.LabelParty, party), Selected: entered.Party == party})
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

func (p *Pages) decide(w http.ResponseWriter, r *http.Request) {
	number := r.PathValue("number")
	s := sessionFrom(r)
	d := mailflow.Decision{Party: r.PostFormValue("party"), Intent: mailflow.Intent(r.PostFormValue("intent")),
		Reason: r.PostFormValue("reason"), Source: mailflow.SourceManual, Actor: s.user}
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
	p.Log.Info("decision recorded", "order", o.Number, "party", d.Party, "intent", d.Intent, "source", "manual", "status", o.Status)
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
	p.serveEML(w, r, "ausgang", p.Store.OutboxRaw)
}

func (p *Pages) inboundEML(w http.ResponseWriter, r *http.Request) {
	p.serveEML(w, r, "eingang", p.Store.InboundRaw)
}

// serveEML sends a stored message byte for byte as an attachment: it is
// evidence, so it is neither parsed nor re-encoded.
func (p *Pages) serveEML(w http.ResponseWriter, r *http.Request, prefix string, load func(context.Context, int64) ([]byte, error)) {
	id, ok := emlID(r.PathValue("file"))
	if !ok {
		p.errorKey(w, r, http.StatusNotFound, "Nicht gefunden", "Diese Nachricht gibt es nicht.")
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
