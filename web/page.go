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
	"math"
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
	ReviewStore // the review queue (review.go)
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
	// Evidence exports the bundle the order page offers for download;
	// nil: the download answers that no signing key is set up.
	Evidence Evidence

	tmpl     map[string]*template.Template
	static   fs.FS
	userSum  [32]byte
	passSum  [32]byte
	sessions *sessionStore
	limiter  *loginLimiter
}

// pageTemplates are the pages, each parsed over base.html.
var pageTemplates = []string{"login.html", "list.html", "detail.html", "error.html", "review.html", "review_message.html"}

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
	base, err := template.New("base.html").Funcs(pageFuncs).ParseFS(assets, "assets/base.html", "assets/review_parts.html")
	if err != nil {
		return nil, fmt.Errorf("web: pages: parse base: %w", err)
	}
	p.tmpl = map[string]*template.Template{}
	for _, name := range pageTemplates {
		t, err := base.Clone()
		if err == nil {
			t, err = t.ParseFS(assets, "assets/"+name)
		}
		if err != nil {
			return nil, fmt.Errorf("web: pages: parse %s: %w", name, err)
		}
		p.tmpl[name] = t
	}
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
	mux.Handle("POST /abmelden", p.authed(p.logout))
	mux.Handle("GET /{$}", p.authed(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/bestellungen", http.StatusSeeOther)
	}))
	mux.Handle("GET /bestellungen", p.authed(p.list))
	mux.Handle("GET /bestellungen/{number}", p.authed(p.detail))
	mux.Handle("POST /bestellungen/{number}/entscheidungen", p.authed(p.decide))
	mux.Handle("GET /bestellungen/{number}/nachweis.zip", p.authed(p.evidenceZip))
	mux.Handle("GET /nachrichten/ausgang/{file}", p.authed(p.outboundEML))
	mux.Handle("GET /nachrichten/eingang/{file}", p.authed(p.inboundEML))
	p.reviewRoutes(mux)
	mux.Handle("/", p.authed(func(w http.ResponseWriter, r *http.Request) {
		p.errorPage(w, r, http.StatusNotFound, "Seite nicht gefunden", "Diese Seite gibt es nicht.")
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
	Title string
	User  string // "" on the login page
	CSRF  string
}

func (p *Pages) layoutFor(r *http.Request, title string) layout {
	l := layout{Title: title}
	if s := sessionFrom(r); s != nil {
		l.User, l.CSRF = s.user, s.csrf
	}
	return l
}

// render executes a page into a buffer first, so a template error answers
// 500 instead of half a page.
func (p *Pages) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := p.tmpl[name].ExecuteTemplate(&buf, "base", data); err != nil {
		p.Log.Error("render page", "page", name, "path", r.URL.Path, "err", err)
		http.Error(w, "Interner Fehler", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type errorView struct {
	layout
	Message string
}

func (p *Pages) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	p.render(w, r, status, "error.html", errorView{layout: p.layoutFor(r, title), Message: msg})
}

// fail maps a domain error to an error page.
func (p *Pages) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, mailflow.ErrNotFound):
		p.errorPage(w, r, http.StatusNotFound, "Nicht gefunden", "Das Gesuchte gibt es nicht (mehr).")
	case errors.Is(err, context.Canceled):
		w.WriteHeader(499)
	default:
		p.Log.Error("status page request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		p.errorPage(w, r, http.StatusInternalServerError, "Interner Fehler", "Die Anfrage ist fehlgeschlagen; der Fehler wurde protokolliert.")
	}
}

// statusView is a status card.
type statusView struct {
	Code   string
	Label  string
	Colour string
	Count  int
	URL    string
	Active bool
}

func newStatusView(s mailflow.Status) statusView {
	return statusView{Code: string(s), Label: s.Label(), Colour: s.Colour()}
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
	Filtered bool
}

func listURL(status, q string, page int) string {
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
		return "/bestellungen"
	}
	return "/bestellungen?" + v.Encode()
}

func (p *Pages) list(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	v := listView{layout: p.layoutFor(r, "Eingegangene Bestellungen"), Query: strings.TrimSpace(q.Get("q"))}
	if s := mailflow.Status(q.Get("status")); s.Valid() {
		v.Status = string(s)
	}
	// A query string may hold any bytes; PostgreSQL refuses invalid UTF-8
	// as a parameter.
	v.Query = mailflow.CleanText(v.Query, 0)
	if n := utf8.RuneCountInString(v.Query); n > maxQuery {
		p.errorPage(w, r, http.StatusUnprocessableEntity, "Suchbegriff zu lang",
			fmt.Sprintf("Der Suchbegriff (q) darf höchstens %d Zeichen lang sein, nicht %d.", maxQuery, n))
		return
	}
	v.Filtered = v.Status != "" || v.Query != ""
	counts, err := p.Store.StatusCounts(ctx)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	for _, s := range mailflow.Statuses {
		sv := newStatusView(s)
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
	f := mailflow.OrderFilter{Status: mailflow.Status(v.Status), Query: v.Query}
	if v.Matched, err = p.Store.CountOrders(ctx, f); err != nil {
		p.fail(w, r, err)
		return
	}
	v.Pages = max(1, (v.Matched+pageSize-1)/pageSize)
	v.Page, _ = strconv.Atoi(q.Get("seite"))
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
			Status: newStatusView(o.Status), Conflict: o.Conflict})
	}
	if v.Page > 1 {
		v.PrevURL = listURL(v.Status, v.Query, v.Page-1)
	}
	if v.Page < v.Pages {
		v.NextURL = listURL(v.Status, v.Query, v.Page+1)
	}
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
	Order    *mailflow.Order
	Status   statusView
	Deadline *time.Time
	Timeline []timelineRow
	Outbound []*mailflow.OutboxMessage
	Inbound  []*mailflow.InboundMessage
	Form     decisionForm
	Saved    bool
	Reviews  []*resolutionView // messages attached or dismissed from the review queue
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
	v := detailView{layout: p.layoutFor(r, "Bestellung "+o.Number), Order: o, Status: newStatusView(o.Status),
		Deadline: o.ProvisioningDeadline(), Saved: r.URL.Query().Get("erfasst") == "1" && verr == nil}
	var err error
	if v.Outbound, err = p.Store.OrderMessages(ctx, o.ID); err != nil {
		p.fail(w, r, err)
		return
	}
	if v.Inbound, err = p.Store.InboundList(ctx, false, o.ID, 1000); err != nil {
		p.fail(w, r, err)
		return
	}
	if v.Reviews, err = p.orderReviews(ctx, o.ID); err != nil {
		p.fail(w, r, err)
		return
	}
	byMessageID := map[string]int64{}
	for _, m := range v.Inbound {
		byMessageID[m.MessageID] = m.ID
	}
	for _, d := range o.History {
		row := timelineRow{Decision: d}
		if d.MessageID != "" {
			row.InboundID = byMessageID[d.MessageID]
		}
		v.Timeline = append(v.Timeline, row)
	}
	v.Form = newDecisionForm(o, entered, verr)
	p.render(w, r, status, "detail.html", v)
}

func newDecisionForm(o *mailflow.Order, entered mailflow.Decision, verr *mailflow.ValidationError) decisionForm {
	f := decisionForm{Reason: entered.Reason, ByField: map[string]string{}}
	for _, party := range o.Parties() {
		f.Parties = append(f.Parties, option{Value: party, Label: partyLabel(party), Selected: entered.Party == party})
	}
	for _, i := range []mailflow.Intent{mailflow.IntentAccept, mailflow.IntentReview, mailflow.IntentWorking, mailflow.IntentReject} {
		f.Intents = append(f.Intents, option{Value: string(i), Label: intentLabel(i), Selected: entered.Intent == i})
	}
	if verr != nil {
		for _, name := range []string{"party", "intent", "reason"} {
			for _, fe := range verr.Errors {
				if fe.Field == name && f.ByField[name] == "" {
					msg := germanFieldMessage(fe)
					f.ByField[name] = msg
					f.Errors = append(f.Errors, fieldError{Field: name, Label: formLabels[name], Message: msg})
				}
			}
		}
		for _, fe := range verr.Errors {
			if _, known := formLabels[fe.Field]; !known {
				f.Errors = append(f.Errors, fieldError{Field: fe.Field, Label: fe.Field, Message: fe.Message})
			}
		}
	}
	return f
}

// formLabels are the decision form's control labels, named in messages.
var formLabels = map[string]string{"party": "Partei", "intent": "Erklärung", "reason": "Grund"}

// germanFieldMessage translates ValidateDecision's messages.
func germanFieldMessage(fe mailflow.FieldError) string {
	m := fe.Message
	switch fe.Field {
	case "party":
		switch {
		case strings.Contains(m, "has no intermediary"):
			return "Eine Bestellung im Direktvertrag (DV) hat keinen Intermediär."
		case strings.HasPrefix(m, "is required"):
			return "Bitte wählen Sie die Partei, für die Sie die Erklärung erfassen."
		default:
			return "Bitte wählen Sie Anbieter oder Intermediär."
		}
	case "intent":
		return "Bitte wählen Sie eine Erklärung: Angenommen, In Prüfung, In Bearbeitung oder Abgelehnt."
	case "reason":
		switch {
		case strings.Contains(m, "required for reject"):
			return "Für eine Ablehnung ist ein Grund erforderlich."
		case strings.Contains(m, "at most"):
			return "Der Grund darf höchstens 4000 Zeichen lang sein."
		case strings.Contains(m, "without NUL"):
			return "Der Grund enthält Zeichen, die kein Text sind."
		}
	}
	return m
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
		p.errorPage(w, r, http.StatusNotFound, "Nicht gefunden", "Diese Nachricht gibt es nicht.")
		return
	}
	raw, err := load(r.Context(), id)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if raw == nil {
		p.errorPage(w, r, http.StatusNotFound, "Nicht gespeichert", "Die Nachricht war zu groß und wurde nicht gespeichert.")
		return
	}
	w.Header().Set("Content-Type", "message/rfc822")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%d.eml"`, prefix, id))
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	w.Write(raw)
}

// berlin is the time zone the page shows times in.
var berlin = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return time.UTC // cmd/mailflow embeds time/tzdata, so only bare tests get here
	}
	return loc
}()

var pageFuncs = template.FuncMap{
	"zeit": func(t any) string {
		switch t := t.(type) {
		case time.Time:
			return t.In(berlin).Format("02.01.2006 15:04")
		case *time.Time:
			if t != nil {
				return t.In(berlin).Format("02.01.2006 15:04")
			}
		}
		return "–"
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"datum": func(d any) string {
		switch d := d.(type) {
		case mailflow.Date:
			return d.Format("02.01.2006")
		case *mailflow.Date:
			if d != nil {
				return d.Format("02.01.2006")
			}
		}
		return "unbefristet"
	},
	"betrag": func(cents int64, currency string) string { return templates.Money("de", cents, currency) },
	"prozent": func(f float64) string {
		return strings.ReplaceAll(strconv.FormatFloat(f, 'f', -1, 64), ".", ",") + " %"
	},
	"intervall":     intervalLabel,
	"partei":        partyLabel,
	"erklaerung":    intentLabel,
	"quelle":        sourceLabel,
	"wirkung":       effectLabel,
	"art":           kindLabel,
	"versandstatus": outboxStatusLabel,
	"ergebnis":      verdictLabel,
	"modell":        modelLabel,
	"wert":          propertyValue,
	"join":          strings.Join,
	"deref":         func(t *time.Time) time.Time { return *t },
	"terms": func(s mailflow.Snapshot) []termsDoc {
		return []termsDoc{{"AGB", s.Terms}, {"Leistungsbedingungen", s.Conditions}}
	},
}

// termsDoc is one of the contract texts an order binds.
type termsDoc struct {
	Kind  string
	Terms mailflow.Terms
}

func propertyValue(v any) string {
	switch v := v.(type) {
	case bool:
		if v {
			return "ja"
		}
		return "nein"
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			return strconv.FormatInt(int64(v), 10)
		}
		return strings.ReplaceAll(strconv.FormatFloat(v, 'f', -1, 64), ".", ",")
	case nil:
		return "–"
	}
	return fmt.Sprint(v)
}

func intervalLabel(s string) string { return templates.Label("de", templates.LabelInterval, s) }
func partyLabel(s string) string    { return templates.Label("de", templates.LabelParty, s) }
func intentLabel(i mailflow.Intent) string {
	return templates.Label("de", templates.LabelIntent, string(i))
}
func sourceLabel(s string) string       { return templates.Label("de", templates.LabelSource, s) }
func effectLabel(s string) string       { return templates.Label("de", templates.LabelEffect, s) }
func kindLabel(s string) string         { return templates.Label("de", templates.LabelKind, s) }
func outboxStatusLabel(s string) string { return templates.Label("de", templates.LabelOutboxStatus, s) }
func verdictLabel(s string) string      { return templates.Label("de", templates.LabelVerdict, s) }
func modelLabel(s string) string        { return templates.Label("de", templates.LabelModel, s) }
