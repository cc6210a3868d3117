// Package web serves mailflow's HTTP interface: the JSON API under
// /api/v1, health endpoints and the status page.
package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"mailflow/mailflow"
)

// Roles of bearer tokens.
const (
	RolePortal      = "portal"
	RoleCoordinator = "coordinator"
)

// Token is one configured bearer token.
type Token struct {
	Name  string
	Role  string
	Token string
}

// Store is what the HTTP layer reads besides the Flow.
type Store interface {
	mailflow.Store
	CountOrders(ctx context.Context, f mailflow.OrderFilter) (int, error)
	// OrderByExternalID returns one order by the portal's id with its
	// history.
	OrderByExternalID(ctx context.Context, externalID string) (*mailflow.Order, error)
	OrderMessages(ctx context.Context, orderID int64) ([]*mailflow.OutboxMessage, error)
	Ping(ctx context.Context) error
}

// Server is the HTTP handler of the daemon.
type Server struct {
	Flow   *mailflow.Flow
	Store  Store
	Tokens []Token
	Log    *slog.Logger
	// Ready adds checks to /readyz besides the database (IMAP sync age).
	Ready func(ctx context.Context) error
	// Extra lets the caller mount more handlers (metrics, status page).
	Extra map[string]http.Handler
	// Invoices makes an order's e-invoices (scheduler.Scheduler); nil
	// leaves GET /api/v1/orders/{number}/invoices unrouted.
	Invoices Invoicer
	// Evidence exports evidence bundles (evidence.Exporter); nil leaves
	// GET /api/v1/orders/{number}/evidence unrouted.
	Evidence Evidence

	tokenSums [][32]byte
}

// maxBody limits request bodies: an order is a few KB, a catalog with
// full terms texts some MB.
const (
	maxOrderBody   = 1 << 20
	maxCatalogBody = 16 << 20
)

// maxQuery is the longest search text of the order list (q=), in
// characters: longer is no search a person types, and LIKE over it only
// costs the database.
const maxQuery = 200

// Handler returns the routed handler.
func (s *Server) Handler() http.Handler {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	s.tokenSums = make([][32]byte, len(s.Tokens))
	for i, t := range s.Tokens {
		s.tokenSums[i] = sha256.Sum256([]byte(t.Token))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("PUT /api/v1/catalog", s.auth(s.putCatalog, RoleCoordinator))
	mux.Handle("POST /api/v1/orders", s.auth(s.createOrder, RolePortal))
	mux.Handle("GET /api/v1/orders", s.auth(s.listOrders, RoleCoordinator))
	mux.Handle("GET /api/v1/orders/{number}", s.auth(s.getOrder, RoleCoordinator, RolePortal))
	mux.Handle("POST /api/v1/orders/{number}/decisions", s.auth(s.decide, RoleCoordinator))
	if s.Invoices != nil {
		mux.Handle("GET /api/v1/orders/{number}/invoices", s.auth(s.listInvoices, RoleCoordinator, RolePortal))
		mux.Handle("GET /api/v1/orders/{number}/invoices/{period}/{role}", s.auth(s.getInvoice, RoleCoordinator, RolePortal))
	}
	if s.Evidence != nil {
		mux.Handle("GET /api/v1/orders/{number}/evidence", s.auth(s.getEvidence, RoleCoordinator, RolePortal))
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, "Not Found", "no such API endpoint: "+r.Method+" "+r.URL.Path, nil)
	})
	for pattern, h := range s.Extra {
		mux.Handle(pattern, h)
	}
	return s.logRequests(mux)
}

type ctxKey struct{}

// caller returns the token that authenticated the request.
func caller(r *http.Request) Token {
	t, _ := r.Context().Value(ctxKey{}).(Token)
	return t
}

// auth checks the bearer token in constant time against every configured
// token (comparing SHA-256 sums, so neither length nor prefix leaks) and
// the token's role.
func (s *Server) auth(h http.HandlerFunc, roles ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || got == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mailflow"`)
			problem(w, http.StatusUnauthorized, "Unauthorized", "a bearer token is required", nil)
			return
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		match := -1
		for i := range s.tokenSums {
			if subtle.ConstantTimeCompare(sum[:], s.tokenSums[i][:]) == 1 {
				match = i
			}
		}
		if match < 0 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mailflow", error="invalid_token"`)
			problem(w, http.StatusUnauthorized, "Unauthorized", "the bearer token is not valid", nil)
			return
		}
		tok := s.Tokens[match]
		allowed := false
		for _, role := range roles {
			allowed = allowed || tok.Role == role
		}
		if !allowed {
			problem(w, http.StatusForbidden, "Forbidden", fmt.Sprintf("role %q may not do this", tok.Role), nil)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, tok)))
	})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		problem(w, http.StatusServiceUnavailable, "Not Ready", "database unreachable", nil)
		return
	}
	if s.Ready != nil {
		if err := s.Ready(ctx); err != nil {
			problem(w, http.StatusServiceUnavailable, "Not Ready", err.Error(), nil)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ready\n")
}

func (s *Server) putCatalog(w http.ResponseWriter, r *http.Request) {
	var cat mailflow.Catalog
	if !decode(w, r, maxCatalogBody, &cat) {
		return
	}
	if err := mailflow.ValidateCatalog(&cat); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.Store.ImportCatalog(r.Context(), &cat); err != nil {
		s.fail(w, r, err)
		return
	}
	// warnings name what keeps a party from issuing e-invoices: the
	// catalog is imported, its reminders go out without XRechnung.
	writeJSON(w, http.StatusOK, map[string]any{
		"providers": len(cat.Providers), "intermediaries": len(cat.Intermediaries),
		"terms": len(cat.Terms), "services": len(cat.Services), "warnings": mailflow.CatalogWarnings(&cat),
	})
}

func (s *Server) createOrder(w http.ResponseWriter, r *http.Request) {
	var req mailflow.OrderRequest
	if !decode(w, r, maxOrderBody, &req) {
		return
	}
	o, created, err := s.Flow.CreateOrderBy(r.Context(), &req, caller(r).Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.Log.Info("order created", "order", o.Number, "model", o.ContractModel)
		w.Header().Set("Location", "/api/v1/orders/"+o.Number)
	}
	s.writeOrder(w, r, status, o)
}

func (s *Server) listOrders(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// A query string may hold any bytes; PostgreSQL refuses invalid UTF-8
	// as a parameter.
	f := mailflow.OrderFilter{Status: mailflow.Status(q.Get("status")), Query: mailflow.CleanText(q.Get("q"), 0)}
	if f.Status != "" && !f.Status.Valid() {
		problem(w, http.StatusUnprocessableEntity, "Invalid Query", "unknown status", []mailflow.FieldError{{Field: "status", Message: "unknown status code " + strconv.Quote(string(f.Status))}})
		return
	}
	if n := utf8.RuneCountInString(f.Query); n > maxQuery {
		problem(w, http.StatusUnprocessableEntity, "Invalid Query", "q is too long",
			[]mailflow.FieldError{{Field: "q", Message: fmt.Sprintf("must be at most %d characters, not %d", maxQuery, n)}})
		return
	}
	var err error
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > 1000 {
			problem(w, http.StatusUnprocessableEntity, "Invalid Query", "bad limit", []mailflow.FieldError{{Field: "limit", Message: "must be 1–1000"}})
			return
		}
	}
	if v := q.Get("offset"); v != "" {
		if f.Offset, err = strconv.Atoi(v); err != nil || f.Offset < 0 {
			problem(w, http.StatusUnprocessableEntity, "Invalid Query", "bad offset", []mailflow.FieldError{{Field: "offset", Message: "must be a non-negative integer"}})
			return
		}
	}
	orders, err := s.Store.Orders(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	total, err := s.Store.CountOrders(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Total  int             `json:"total"`
		Orders []OrderResponse `json:"orders"`
	}{Total: total, Orders: make([]OrderResponse, 0, len(orders))}
	for i := range orders {
		out.Orders = append(out.Orders, NewOrderResponse(&orders[i], nil))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) {
	o, err := s.visibleOrder(r.Context(), r.PathValue("number"), caller(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeOrder(w, r, http.StatusOK, o)
}

// visibleOrder finds the order ref names, by number or else by
// external_id, as far as tok may read it. A coordinator reads every
// order. A portal token reads the orders it created, and those it names
// by external_id that no other token created (orders from the CLI or from
// before creators were recorded); any other order is "not found" to it,
// so a portal cannot even learn which numbers exist.
func (s *Server) visibleOrder(ctx context.Context, ref string, tok Token) (*mailflow.Order, error) {
	o, err := s.Store.Order(ctx, ref)
	switch {
	case err == nil && (tok.Role == RoleCoordinator || o.CreatedBy == tok.Name):
		return o, nil
	case err != nil && !errors.Is(err, mailflow.ErrNotFound):
		return nil, err
	}
	o, err = s.Store.OrderByExternalID(ctx, ref)
	if err != nil {
		return nil, err
	}
	if tok.Role == RoleCoordinator || o.CreatedBy == "" || o.CreatedBy == tok.Name {
		return o, nil
	}
	return nil, fmt.Errorf("web: order %s: created by another token: %w", o.Number, mailflow.ErrNotFound)
}

// decisionRequest is the body of POST /api/v1/orders/{number}/decisions.
type decisionRequest struct {
	Party  string `json:"party"`
	Intent string `json:"intent"`
	Reason string `json:"reason"`
}

func (s *Server) decide(w http.ResponseWriter, r *http.Request) {
	var req decisionRequest
	if !decode(w, r, maxOrderBody, &req) {
		return
	}
	d := mailflow.Decision{Party: req.Party, Intent: mailflow.Intent(req.Intent), Reason: req.Reason,
		Source: mailflow.SourceManual, Actor: caller(r).Name}
	o, err := s.Flow.Decide(r.Context(), r.PathValue("number"), d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.Log.Info("decision recorded", "order", o.Number, "party", req.Party, "intent", req.Intent, "source", "manual", "status", o.Status)
	s.writeOrder(w, r, http.StatusOK, o)
}

// writeOrder answers with an order in the view of the caller's role:
// the portal's (PortalOrderResponse) or the coordinator's, which adds
// the snapshot, the outbound messages and who created the order.
func (s *Server) writeOrder(w http.ResponseWriter, r *http.Request, status int, o *mailflow.Order) {
	if caller(r).Role != RoleCoordinator {
		writeJSON(w, status, PortalOrderResponse(o))
		return
	}
	msgs, err := s.Store.OrderMessages(r.Context(), o.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, status, NewOrderResponse(o, msgs))
}

// TermsRef identifies the terms an order binds.
type TermsRef struct {
	Title      string         `json:"title,omitempty"`
	Version    string         `json:"version"`
	ValidFrom  mailflow.Date  `json:"valid_from"`
	ValidUntil *mailflow.Date `json:"valid_until"`
	SHA256     string         `json:"sha256"`
}

// MessageRef summarises one outbound message of an order.
type MessageRef struct {
	ID         int64      `json:"id"`
	Kind       string     `json:"kind"`
	Party      string     `json:"party,omitempty"`
	Recipients []string   `json:"recipients"`
	MessageID  string     `json:"message_id"`
	Subject    string     `json:"subject"`
	Status     string     `json:"status"`
	Attempts   int        `json:"attempts"`
	LastError  string     `json:"last_error,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	SentAt     *time.Time `json:"sent_at,omitempty"`
}

// OrderResponse is an order as the API returns it.
type OrderResponse struct {
	Number        string              `json:"number"`
	ExternalID    string              `json:"external_id"`
	ContractModel string              `json:"contract_model"`
	OrderedAt     time.Time           `json:"ordered_at"`
	CreatedAt     time.Time           `json:"created_at"`
	Status        mailflow.Status     `json:"status"`
	StatusLabel   string              `json:"status_label"`
	StatusColour  string              `json:"status_colour"`
	BindingAt     *time.Time          `json:"binding_at"`
	Conflict      bool                `json:"conflict"`
	Terms         TermsRef            `json:"terms"`
	Conditions    TermsRef            `json:"conditions"`
	Snapshot      *mailflow.Snapshot  `json:"snapshot,omitempty"`
	History       []mailflow.Decision `json:"history"`
	Messages      []MessageRef        `json:"messages,omitempty"`
	CreatedBy     string              `json:"created_by,omitempty"`
}

func termsRef(t mailflow.Terms) TermsRef {
	return TermsRef{Title: t.Title, Version: t.Version, ValidFrom: t.ValidFrom, ValidUntil: t.ValidUntil, SHA256: t.SHA256}
}

// NewOrderResponse builds the API view of an order; msgs may be nil.
func NewOrderResponse(o *mailflow.Order, msgs []*mailflow.OutboxMessage) OrderResponse {
	resp := OrderResponse{
		Number: o.Number, ExternalID: o.ExternalID, ContractModel: o.ContractModel,
		OrderedAt: o.OrderedAt, CreatedAt: o.CreatedAt, Status: o.Status, StatusLabel: o.Status.Label(),
		StatusColour: o.Status.Colour(), BindingAt: o.BindingAt, Conflict: o.Conflict,
		Terms: termsRef(o.Snapshot.Terms), Conditions: termsRef(o.Snapshot.Conditions),
		History: o.History, CreatedBy: o.CreatedBy,
	}
	if resp.History == nil {
		resp.History = []mailflow.Decision{}
	}
	if msgs != nil {
		snap := o.Snapshot
		resp.Snapshot = &snap
		for _, m := range msgs {
			resp.Messages = append(resp.Messages, MessageRef{ID: m.ID, Kind: m.Kind, Party: m.Party, Recipients: m.Recipients,
				MessageID: m.MessageID, Subject: m.Subject, Status: m.Status, Attempts: m.Attempts, LastError: m.LastError,
				CreatedAt: m.CreatedAt, SentAt: m.SentAt})
		}
	}
	return resp
}

// PortalOrderResponse is the portal's view of an order: what it needs to
// follow its order (number, status, binding time, the terms' versions
// and hashes, each decision's party, intent, reason, source, effect and
// time), without the snapshot, the outbound messages, Message-IDs (which
// carry reply tokens), the actors of manual decisions and the creator.
// docs/api.md lists the fields per role.
func PortalOrderResponse(o *mailflow.Order) OrderResponse {
	resp := NewOrderResponse(o, nil)
	resp.Snapshot, resp.Messages, resp.CreatedBy = nil, nil, ""
	resp.History = make([]mailflow.Decision, len(o.History))
	for i, d := range o.History {
		d.MessageID, d.Actor = "", ""
		resp.History[i] = d
	}
	return resp
}

// decode reads a JSON body into v, answering 400/413/422 itself.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON value")
	}
	if err == nil {
		return true
	}
	var maxErr *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var timeErr *time.ParseError
	switch {
	case errors.As(err, &maxErr):
		problem(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large", fmt.Sprintf("the body exceeds %d bytes", limit), nil)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(root)"
		}
		problem(w, http.StatusUnprocessableEntity, "Invalid Fields", "a field has the wrong type",
			[]mailflow.FieldError{{Field: field, Message: "must be of type " + typeErr.Type.String() + ", not " + typeErr.Value}})
	case errors.As(err, &timeErr):
		problem(w, http.StatusUnprocessableEntity, "Invalid Fields", "a time is not RFC 3339",
			[]mailflow.FieldError{{Field: "ordered_at", Message: "must be an RFC 3339 time such as 2026-11-20T10:00:00+01:00"}})
	default:
		problem(w, http.StatusBadRequest, "Malformed JSON", err.Error(), nil)
	}
	return false
}

// fail maps domain errors to problem responses.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var verr *mailflow.ValidationError
	var dup *mailflow.DuplicateError
	switch {
	case errors.As(err, &verr):
		problem(w, http.StatusUnprocessableEntity, "Invalid Fields", verr.Error(), verr.Errors)
	case errors.As(err, &dup):
		problem(w, http.StatusConflict, "Conflict", dup.Error(), dup.Errors)
	case errors.Is(err, mailflow.ErrNotFound):
		problem(w, http.StatusNotFound, "Not Found", "nothing found at "+r.URL.Path, nil)
	case errors.Is(err, mailflow.ErrNoInvoice):
		problem(w, http.StatusConflict, "Conflict", err.Error(), nil)
	case errors.Is(err, mailflow.ErrConflict):
		problem(w, http.StatusConflict, "Conflict", "the request conflicts with the stored state", nil)
	case errors.Is(err, context.Canceled):
		problem(w, 499, "Client Closed Request", "", nil)
	default:
		s.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		problem(w, http.StatusInternalServerError, "Internal Server Error", "the error was logged", nil)
	}
}

// Problem is an RFC 9457 problem detail.
type Problem struct {
	Type   string                `json:"type"`
	Title  string                `json:"title"`
	Status int                   `json:"status"`
	Detail string                `json:"detail,omitempty"`
	Errors []mailflow.FieldError `json:"errors,omitempty"`
}

func problem(w http.ResponseWriter, status int, title, detail string, fields []mailflow.FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(Problem{Type: "about:blank", Title: title, Status: status, Detail: detail, Errors: fields})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// logRequests logs each request without query strings or bodies, which
// may carry personal data.
func (s *Server) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				s.Log.Error("panic in handler", "path", r.URL.Path, "err", p)
				problem(w, http.StatusInternalServerError, "Internal Server Error", "", nil)
			}
		}()
		h.ServeHTTP(rec, r)
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics" {
			return
		}
		s.Log.Info("http", "method", r.Method, "path", r.URL.Path, "status", rec.status, "dur", time.Since(start).Round(time.Microsecond))
	})
}

// Invoicer makes the e-invoices of an order's billed periods.
type Invoicer interface {
	OrderInvoices(ctx context.Context, number string) ([]mailflow.OrderInvoice, error)
}

// invoiceEntry is one element of GET /api/v1/orders/{number}/invoices.
type invoiceEntry struct {
	Period         string `json:"period"`
	Role           string `json:"role"`
	Seller         string `json:"seller"`
	Buyer          string `json:"buyer"`
	BuyerReference string `json:"buyer_reference"`
	URL            string `json:"url"`
}

// orderInvoices are the e-invoices of an order the caller may read.
func (s *Server) orderInvoices(r *http.Request) (*mailflow.Order, []mailflow.OrderInvoice, error) {
	o, err := s.visibleOrder(r.Context(), r.PathValue("number"), caller(r))
	if err != nil {
		return nil, nil, err
	}
	invs, err := s.Invoices.OrderInvoices(r.Context(), o.Number)
	return o, invs, err
}

// listInvoices lists an order's e-invoices, one per billed period and
// seller, each with the URL of its XML; an order not billed yet has none.
func (s *Server) listInvoices(w http.ResponseWriter, r *http.Request) {
	o, invs, err := s.orderInvoices(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]invoiceEntry, 0, len(invs))
	for _, inv := range invs {
		out = append(out, invoiceEntry{Period: inv.Period, Role: inv.Role, Seller: inv.Seller, Buyer: inv.Buyer,
			BuyerReference: inv.BuyerReference,
			URL:            "/api/v1/orders/" + url.PathEscape(o.Number) + "/invoices/" + url.PathEscape(inv.Period) + "/" + inv.Role})
	}
	writeJSON(w, http.StatusOK, out)
}

// getInvoice serves one e-invoice's XML.
func (s *Server) getInvoice(w http.ResponseWriter, r *http.Request) {
	_, invs, err := s.orderInvoices(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, inv := range invs {
		if inv.Period == r.PathValue("period") && inv.Role == r.PathValue("role") {
			w.Header().Set("Content-Type", "application/xml")
			w.Write(inv.XML) //nolint:errcheck // the client went away
			return
		}
	}
	s.fail(w, r, mailflow.ErrNotFound)
}
