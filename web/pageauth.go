package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"mailflow/mailflow"
	"mailflow/templates"
)

// Sessions and login limits (docs/design.md §7).
const (
	sessionCookie = "mailflow_session"
	// sessionIdle ends a session that no request used for this long;
	// sessionLifetime ends every session, however busy.
	sessionIdle     = 2 * time.Hour
	sessionLifetime = 12 * time.Hour
	// sessionTouch: a request writes the session's last use only when
	// the one recorded is older, so reading pages costs no write each.
	sessionTouch = time.Minute
	// loginFailures failed password logins from one client address within
	// loginWindow block further attempts until the oldest ages out.
	loginFailures = 10
	loginWindow   = 15 * time.Minute
)

// Kinds of counted sign-in attempt (AuthStore.RecordSigninAttempt).
const (
	attemptPassword   = "password-client"
	attemptLinkAddr   = "link-address"
	attemptLinkClient = "link-client"
)

// AuthStore keeps the page's sessions, sign-in links and rate limits in
// the database, so that a restart or another daemon on the same database
// keeps them; storage.Store implements it. Ids, tokens and keys reach it
// only as hex SHA-256 sums.
type AuthStore interface {
	CreateSession(ctx context.Context, s *mailflow.Session) error
	// Session returns a session live at now, else mailflow.ErrNotFound.
	Session(ctx context.Context, idHash string, now time.Time) (*mailflow.Session, error)
	TouchSession(ctx context.Context, idHash string, now, idleUntil time.Time) error
	DeleteSession(ctx context.Context, idHash string) error
	// DeleteSessionsOf ends every session of one person.
	DeleteSessionsOf(ctx context.Context, role, org, subject string) (int, error)
	CreateSigninLink(ctx context.Context, l *mailflow.SigninLink) error
	// SigninLink looks at a link without using it.
	SigninLink(ctx context.Context, tokenHash string) (*mailflow.SigninLink, error)
	// UseSigninLink uses an unused, unexpired link once, else ErrNotFound.
	UseSigninLink(ctx context.Context, tokenHash string, now time.Time) (*mailflow.SigninLink, error)
	CountSigninAttempts(ctx context.Context, kind, keyHash string, since time.Time) (int, error)
	// OldestSigninAttempt returns the n-th newest attempt since a time,
	// zero when there are fewer.
	OldestSigninAttempt(ctx context.Context, kind, keyHash string, since time.Time, n int) (time.Time, error)
	RecordSigninAttempt(ctx context.Context, kind, keyHash string, at time.Time) error
	ClearSigninAttempts(ctx context.Context, kind, keyHash string) error
	// PageLanguage returns a person's stored choice of language, "" if none.
	PageLanguage(ctx context.Context, role, org, subject string) (string, error)
	SetPageLanguage(ctx context.Context, role, org, subject, lang string, at time.Time) error
}

// Coordinator is one coordinator's password login to the page. Give the
// password in plain text or as a bcrypt hash ("$2a$…", "$2b$…"), not both.
type Coordinator struct {
	Username     string
	Password     string
	PasswordHash string
}

// coordinatorLogin is a Coordinator prepared for constant-time checks.
type coordinatorLogin struct {
	name    string
	userSum [32]byte
	passSum [32]byte // when hash is nil
	hash    []byte   // bcrypt
}

// dummyHash is checked when no coordinator has the given user name, so
// that the answer takes as long as for a known one with a bcrypt hash.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no coordinator has this name"), bcrypt.DefaultCost)

func prepareCoordinators(cs []Coordinator) ([]coordinatorLogin, error) {
	var out []coordinatorLogin
	seen := map[string]bool{}
	for i, c := range cs {
		switch {
		case c.Username == "":
			return nil, fmt.Errorf("web: pages: coordinator %d has no user name", i+1)
		case seen[c.Username]:
			return nil, fmt.Errorf("web: pages: coordinator %q is given twice", c.Username)
		case (c.Password == "") == (c.PasswordHash == ""):
			return nil, fmt.Errorf("web: pages: coordinator %q needs a password or a password hash (one of them)", c.Username)
		}
		seen[c.Username] = true
		l := coordinatorLogin{name: c.Username, userSum: sha256.Sum256([]byte(c.Username)), passSum: sha256.Sum256([]byte(c.Password))}
		if c.PasswordHash != "" {
			if _, err := bcrypt.Cost([]byte(c.PasswordHash)); err != nil {
				return nil, fmt.Errorf("web: pages: coordinator %q: password hash is not a bcrypt hash: %w", c.Username, err)
			}
			l.hash = []byte(c.PasswordHash)
		}
		out = append(out, l)
	}
	return out, nil
}

// checkPassword returns the coordinator whose user name and password were
// given, or "". Every user name is compared, in constant time, and a
// password is always checked (against a dummy bcrypt hash when the name
// is unknown and hashes are in use), so neither which field was wrong nor
// whether a name exists shows in the answer's time.
func (p *Pages) checkPassword(user, pass string) string {
	u := sha256.Sum256([]byte(user))
	pw := sha256.Sum256([]byte(pass))
	match := -1
	anyHash := false
	for i, c := range p.coordinators {
		if subtle.ConstantTimeCompare(u[:], c.userSum[:]) == 1 {
			match = i
		}
		anyHash = anyHash || c.hash != nil
	}
	if match < 0 {
		if anyHash {
			bcrypt.CompareHashAndPassword(dummyHash, []byte(pass))
		} else {
			subtle.ConstantTimeCompare(pw[:], u[:])
		}
		return ""
	}
	c := p.coordinators[match]
	if c.hash != nil {
		if bcrypt.CompareHashAndPassword(c.hash, []byte(pass)) != nil {
			return ""
		}
		return c.name
	}
	if subtle.ConstantTimeCompare(pw[:], c.passSum[:]) != 1 {
		return ""
	}
	return c.name
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashHex is the hex SHA-256 the database keeps of session ids, link
// tokens and rate-limit keys: a copy of the database holds no usable
// session or link, nor the addresses and clients that asked for links.
func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// clientKey is the client address the rate limits count per: the
// connection's peer, or, when the peer is a trusted reverse proxy, the
// nearest address in X-Forwarded-For that is not one. Behind a proxy
// every connection comes from the proxy, so without this one client
// could use up the limits of all.
func (p *Pages) clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !p.trusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if !p.trusted(hop) {
			return hop
		}
		host = hop
	}
	return host
}

// trusted reports whether addr is one of the TrustedProxies.
func (p *Pages) trusted(addr string) bool {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	for _, pr := range p.TrustedProxies {
		if pr.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

// viewer is the signed-in person of a request and what it may see: a
// coordinator everything; a provider the orders placed with it (DV and
// UV); an intermediary the UV orders it is party to. Every per-order
// handler asks canSee, and lists go through scope, so the check lives
// here and nowhere else.
type viewer struct {
	Role    string // mailflow.RoleCoordinator, PartyProvider or PartyIntermediary
	Org     string // the party's catalog id; "" for a coordinator
	OrgName string
	Subject string // the signed-in address, or the coordinator's user name
	CSRF    string
	idHash  string
}

func (v *viewer) coordinator() bool { return v.Role == mailflow.RoleCoordinator }

// canSee reports whether the viewer may see an order at all.
func (v *viewer) canSee(o *mailflow.Order) bool {
	switch v.Role {
	case mailflow.RoleCoordinator:
		return true
	case mailflow.PartyProvider:
		return o.Snapshot.Provider.ID == v.Org
	case mailflow.PartyIntermediary:
		return o.ContractModel == mailflow.ModelUV && o.Snapshot.Intermediary != nil && o.Snapshot.Intermediary.ID == v.Org
	}
	return false
}

// seesMessage reports whether the viewer may see a mail of an order it
// can see, by the party the mail was sent to or came from: a party sees
// its own correspondence, not the other party's, the customer's or the
// coordinator's alerts.
func (v *viewer) seesMessage(party string) bool {
	return v.coordinator() || party == v.Role
}

// scope narrows a list filter to the viewer's orders; the store applies
// it in SQL, so counts and pages are the viewer's too.
func (v *viewer) scope(f mailflow.OrderFilter) mailflow.OrderFilter {
	if !v.coordinator() {
		f.Party, f.PartyID = v.Role, v.Org
	}
	return f
}

// decidesFor returns the parties the viewer may record a decision for
// on an order it can see.
func (v *viewer) decidesFor(o *mailflow.Order) []string {
	if v.coordinator() {
		return o.Parties()
	}
	return []string{v.Role}
}

// label is how the page names the signed-in person, in lang.
func (v *viewer) label(lang string) string {
	if v.coordinator() {
		return v.Subject
	}
	return v.Subject + " (" + v.OrgName + ", " + label(lang, templates.LabelParty, v.Role) + ")"
}

type viewerKey struct{}

func viewerFrom(r *http.Request) *viewer {
	v, _ := r.Context().Value(viewerKey{}).(*viewer)
	return v
}

// session returns the viewer of the request's session cookie, or nil.
// Sessions outlive restarts, so each request checks that the person may
// still sign in: a coordinator's session ends once the configuration no
// longer has the user name, a party's once the catalog no longer lets
// its address sign in for its organization.
func (p *Pages) session(r *http.Request) (*viewer, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	ctx, now := r.Context(), p.Now()
	h := hashHex(c.Value)
	s, err := p.Auth.Session(ctx, h, now)
	if errors.Is(err, mailflow.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v := &viewer{Role: s.Role, Org: s.Org, Subject: s.Subject, CSRF: s.CSRF, idHash: h}
	if v.coordinator() && !slices.ContainsFunc(p.coordinators, func(c coordinatorLogin) bool { return c.name == s.Subject }) {
		p.Log.Info("status page: session ended, its coordinator is no longer configured")
		return nil, p.Auth.DeleteSession(ctx, h)
	}
	if !v.coordinator() {
		party, err := p.partyOf(ctx, s.Role, s.Org)
		if err != nil {
			return nil, err
		}
		if party == nil || !party.MaySignIn(s.Subject) {
			p.Log.Info("status page: session ended, the catalog no longer lets its address sign in", "role", s.Role, "org", s.Org)
			return nil, p.Auth.DeleteSession(ctx, h)
		}
		v.OrgName = party.Name
	}
	if now.Sub(s.LastSeen) >= sessionTouch {
		idle := now.Add(sessionIdle)
		if idle.After(s.Expires) {
			idle = s.Expires
		}
		if err := p.Auth.TouchSession(ctx, h, now, idle); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// partyOf returns a provider or intermediary of the current catalog, nil
// if it has none with that id.
func (p *Pages) partyOf(ctx context.Context, role, id string) (*mailflow.Party, error) {
	cat, err := p.Flow.Store.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	list := cat.Providers
	if role == mailflow.PartyIntermediary {
		list = cat.Intermediaries
	} else if role != mailflow.PartyProvider {
		return nil, nil
	}
	for i := range list {
		if list[i].ID == id {
			return &list[i], nil
		}
	}
	return nil, nil
}

// startSession creates a session with a new id and sets its cookie. An
// old session of the browser ends first: a new id on every sign-in, so
// no session fixation.
func (p *Pages) startSession(w http.ResponseWriter, r *http.Request, role, org, subject string) error {
	ctx, now := r.Context(), p.Now()
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		if err := p.Auth.DeleteSession(ctx, hashHex(c.Value)); err != nil {
			return err
		}
	}
	id := randomToken(32)
	s := &mailflow.Session{IDHash: hashHex(id), Role: role, Org: org, Subject: subject, CSRF: randomToken(32),
		Created: now, LastSeen: now, IdleUntil: now.Add(sessionIdle), Expires: now.Add(sessionLifetime)}
	if err := p.Auth.CreateSession(ctx, s); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true,
		Secure: p.SecureCookies, SameSite: http.SameSiteStrictMode})
	// The person's own choice of language, made in another browser or an
	// earlier session, wins over this browser's cookie from now on.
	lang, err := p.Auth.PageLanguage(ctx, role, org, subject)
	if err != nil {
		return err
	}
	if lang == langDE || lang == langEN {
		p.setLangCookie(w, lang)
	}
	return nil
}

func (p *Pages) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: p.SecureCookies, SameSite: http.SameSiteStrictMode})
}

// authed lets a request through only with a live session; a POST must
// also carry the session's CSRF token and, when the browser names one, a
// same-host Origin or Referer.
func (p *Pages) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := p.session(r)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		if v == nil {
			target := "/anmelden"
			if r.Method == http.MethodGet && r.URL.Path != "/" {
				target += "?weiter=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), viewerKey{}, v))
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
			if err := r.ParseForm(); err != nil {
				p.errorKey(w, r, http.StatusBadRequest, "Ungültige Anfrage", "Das Formular konnte nicht gelesen werden.")
				return
			}
			got := r.PostForm.Get("csrf")
			if !sameOrigin(r) || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(v.CSRF)) != 1 {
				p.Log.Warn("status page: CSRF check failed", "path", r.URL.Path)
				p.errorKey(w, r, http.StatusForbidden, "Anfrage abgelehnt",
					"Die Anfrage kam nicht aus einem Formular dieser Seite (CSRF-Schutz). Bitte laden Sie die Seite neu und versuchen Sie es noch einmal.")
				return
			}
		}
		h(w, r)
	})
}

// sameOrigin checks the Origin header, or else the Referer, against the
// request's host; a request with neither passes (the CSRF token decides).
// Behind a reverse proxy that rewrites Host, X-Forwarded-Host counts too:
// a cross-site form cannot set that header, so accepting it costs nothing.
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
		if src == "" {
			return true
		}
	}
	u, err := url.Parse(src)
	if err != nil || u.Host == "" {
		return false // includes Origin: null
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	fwd, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ",")
	fwd = strings.TrimSpace(fwd)
	return fwd != "" && strings.EqualFold(u.Host, fwd)
}

// safeNext returns a local path to continue at after login, refusing
// anything that would leave the site.
func safeNext(s string) string {
	if s == "" || !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\\r\n") {
		return "/bestellungen"
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/bestellungen"
	}
	return s
}

type loginView struct {
	layout
	Next     string
	Username string
	Error    string
	// Signin: the form for a sign-in link is offered; Email and
	// LinkError are what was entered there and what was wrong with it.
	Signin    bool
	Password  bool // the coordinators' password form is offered
	Email     string
	LinkError string
}

func (p *Pages) newLoginView(r *http.Request, next string) loginView {
	return loginView{layout: p.layoutFor(r, "Anmelden"), Next: safeNext(next),
		Signin: p.signinEnabled(), Password: len(p.coordinators) > 0}
}

func (p *Pages) loginForm(w http.ResponseWriter, r *http.Request) {
	v, err := p.session(r)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if v != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("weiter")), http.StatusSeeOther)
		return
	}
	p.render(w, r, http.StatusOK, "login.html", p.newLoginView(r, r.URL.Query().Get("weiter")))
}

// blockedFor reports how long a key must wait before its next attempt of
// a kind: limit attempts within window are allowed.
func (p *Pages) blockedFor(ctx context.Context, kind, key string, limit int, window time.Duration) (time.Duration, error) {
	now := p.Now()
	oldest, err := p.Auth.OldestSigninAttempt(ctx, kind, hashHex(key), now.Add(-window), limit)
	if err != nil || oldest.IsZero() {
		return 0, err
	}
	return oldest.Add(window).Sub(now), nil
}

// tooMany answers 429 with how long to wait.
func tooMany(w http.ResponseWriter, lang string, wait time.Duration) string {
	w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
	return msgf(lang, "Bitte versuchen Sie es in %d Minuten noch einmal.", int(wait.Minutes())+1)
}

func (p *Pages) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		p.errorKey(w, r, http.StatusBadRequest, "Ungültige Anfrage", "Das Formular konnte nicht gelesen werden.")
		return
	}
	v := p.newLoginView(r, r.PostForm.Get("weiter"))
	v.Username = r.PostForm.Get("username")
	if !sameOrigin(r) {
		p.errorKey(w, r, http.StatusForbidden, "Anfrage abgelehnt", "Die Anmeldung kam nicht aus dem Formular dieser Seite.")
		return
	}
	ctx, key := r.Context(), p.clientKey(r)
	wait, err := p.blockedFor(ctx, attemptPassword, key, loginFailures, loginWindow)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if wait > 0 {
		v.Error = msg(v.Lang, "Zu viele fehlgeschlagene Anmeldeversuche.") + " " + tooMany(w, v.Lang, wait)
		p.render(w, r, http.StatusTooManyRequests, "login.html", v)
		return
	}
	name := p.checkPassword(r.PostForm.Get("username"), r.PostForm.Get("password"))
	if name == "" {
		if err := p.Auth.RecordSigninAttempt(ctx, attemptPassword, hashHex(key), p.Now()); err != nil {
			p.fail(w, r, err)
			return
		}
		p.Log.Warn("status page: login failed", "client", key)
		v.Error = msg(v.Lang, "Benutzername oder Passwort ist falsch.")
		p.render(w, r, http.StatusUnauthorized, "login.html", v)
		return
	}
	if err := p.Auth.ClearSigninAttempts(ctx, attemptPassword, hashHex(key)); err != nil {
		p.fail(w, r, err)
		return
	}
	if err := p.startSession(w, r, mailflow.RoleCoordinator, "", name); err != nil {
		p.fail(w, r, err)
		return
	}
	p.Log.Info("status page: login")
	http.Redirect(w, r, v.Next, http.StatusSeeOther)
}

// logout ends this browser's session.
func (p *Pages) logout(w http.ResponseWriter, r *http.Request) {
	if err := p.Auth.DeleteSession(r.Context(), viewerFrom(r).idHash); err != nil {
		p.fail(w, r, err)
		return
	}
	p.clearCookie(w)
	http.Redirect(w, r, "/anmelden", http.StatusSeeOther)
}

// logoutEverywhere ends every session of the signed-in person, on every
// device and daemon: for a lost laptop or a link that went astray.
func (p *Pages) logoutEverywhere(w http.ResponseWriter, r *http.Request) {
	v := viewerFrom(r)
	n, err := p.Auth.DeleteSessionsOf(r.Context(), v.Role, v.Org, v.Subject)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.Log.Info("status page: logged out everywhere", "role", v.Role, "sessions", n)
	p.clearCookie(w)
	http.Redirect(w, r, "/anmelden", http.StatusSeeOther)
}
