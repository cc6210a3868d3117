package web

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"mailflow/mailflow"
	"mailflow/mailflow/compose"
)

// Sign-in by email link for providers and intermediaries
// (docs/design.md §7).
const (
	// linkLifetime is how long a sign-in link works.
	linkLifetime = 15 * time.Minute
	// linksPerAddress links per address and linksPerClient requests per
	// client address within linkWindow; counted whether or not the
	// address is known, so the limit tells nothing either.
	linksPerAddress = 5
	linksPerClient  = 20
	linkWindow      = time.Hour
	// maxLinks bounds the links of one mail: an address registered for
	// more organizations than this gets the first ones.
	maxLinks = 10
)

// SigninMailer composes the sign-in mail; *compose.Composer implements
// it. The mail is enqueued in the outbox like every other.
type SigninMailer interface {
	Signin(addr, lang string, v compose.SigninView) (*mailflow.OutboxMessage, error)
}

func (p *Pages) signinEnabled() bool { return p.Mailer != nil && p.PublicURL != "" }

// requestLink answers POST /anmelden/link. The answer is the same page,
// written and flushed before the address is looked up, whether or not it
// is registered: neither its content nor its timing tells. The lookup
// and the mail happen after it, in the same handler, so a shutdown waits
// for them.
func (p *Pages) requestLink(w http.ResponseWriter, r *http.Request) {
	if !p.signinEnabled() {
		p.notFound(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		p.errorKey(w, r, http.StatusBadRequest, "Ungültige Anfrage", "Das Formular konnte nicht gelesen werden.")
		return
	}
	if !sameOrigin(r) {
		p.errorKey(w, r, http.StatusForbidden, "Anfrage abgelehnt", "Die Anfrage kam nicht aus dem Formular dieser Seite.")
		return
	}
	v := p.newLoginView(r, r.PostForm.Get("weiter"))
	addr := strings.ToLower(strings.TrimSpace(r.PostForm.Get("email")))
	v.Email = mailflow.CleanText(addr, 0)
	if !mailflow.ValidEmail(addr) {
		v.LinkError = msg(v.Lang, "Bitte geben Sie eine E-Mail-Adresse ein, etwa name@behoerde.example.")
		p.render(w, r, http.StatusUnprocessableEntity, "login.html", v)
		return
	}
	ctx, client := r.Context(), p.clientKey(r)
	for _, lim := range []struct {
		kind, key string
		n         int
	}{{attemptLinkAddr, addr, linksPerAddress}, {attemptLinkClient, client, linksPerClient}} {
		wait, err := p.blockedFor(ctx, lim.kind, lim.key, lim.n, linkWindow)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		if wait > 0 {
			p.Log.Warn("status page: sign-in links limited", "limit", lim.kind, "client", client)
			v.LinkError = msg(v.Lang, "Für diese Adresse oder von diesem Rechner wurden zu viele Anmeldelinks angefordert.") + " " + tooMany(w, v.Lang, wait)
			p.render(w, r, http.StatusTooManyRequests, "login.html", v)
			return
		}
	}
	now := p.Now()
	for _, a := range [][2]string{{attemptLinkAddr, addr}, {attemptLinkClient, client}} {
		if err := p.Auth.RecordSigninAttempt(ctx, a[0], hashHex(a[1]), now); err != nil {
			p.fail(w, r, err)
			return
		}
	}
	p.renderFlushed(w, r, "signin.html", signinView{layout: p.layoutFor(r, "Anmeldelink angefordert"), Sent: true})
	// The client has its answer; what follows it cannot see.
	if err := p.sendLinks(context.WithoutCancel(ctx), addr, now); err != nil {
		p.Log.Error("status page: sign-in link not sent", "err", err)
	}
}

// renderFlushed renders a page with its length and flushes it, so that
// the client has the whole answer while the handler goes on.
func (p *Pages) renderFlushed(w http.ResponseWriter, r *http.Request, name string, data any) {
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
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	// A client must not send its next request on this connection: that
	// one would wait for the work after the answer and time it.
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// sendLinks mails addr one sign-in link per organization of the catalog
// it may sign in for (Party.MaySignIn), none if there is none.
func (p *Pages) sendLinks(ctx context.Context, addr string, now time.Time) error {
	cat, err := p.Flow.Store.Catalog(ctx)
	if err != nil {
		return err
	}
	var view compose.SigninView
	lang := ""
	for _, g := range []struct {
		role    string
		parties []mailflow.Party
	}{{mailflow.PartyProvider, cat.Providers}, {mailflow.PartyIntermediary, cat.Intermediaries}} {
		for _, party := range g.parties {
			if !party.MaySignIn(addr) || len(view.Links) == maxLinks {
				continue
			}
			token := randomToken(32)
			l := &mailflow.SigninLink{TokenHash: hashHex(token), Role: g.role, Org: party.ID, Email: addr,
				Created: now, Expires: now.Add(linkLifetime)}
			if err := p.Auth.CreateSigninLink(ctx, l); err != nil {
				return err
			}
			view.Links = append(view.Links, compose.SigninLink{Org: party.Name, Role: g.role,
				URL: strings.TrimRight(p.PublicURL, "/") + "/anmelden/link/" + token})
			if lang == "" {
				lang = party.Language
			}
		}
	}
	if len(view.Links) == 0 {
		p.Log.Info("status page: sign-in link asked for an address not registered")
		return nil
	}
	view.Expires, view.Minutes = now.Add(linkLifetime), int(linkLifetime/time.Minute)
	m, err := p.Mailer.Signin(addr, lang, view)
	if err != nil {
		return err
	}
	if err := p.Flow.InTx(ctx, func(tx mailflow.Tx) error { return tx.Enqueue(m) }); err != nil {
		return err
	}
	p.Log.Info("status page: sign-in link mailed", "links", len(view.Links))
	return nil
}

// signinView is the page of the sign-in link: sent, confirm, or invalid.
type signinView struct {
	layout
	Sent    bool   // a link was asked for
	Token   string // the link to confirm
	Org     string // whom it signs in as
	Role    string
	Email   string
	Problem string // why the link does not work
}

// linkProblem says why a link does not sign in, or "" when it does.
func linkProblem(l *mailflow.SigninLink, err error, now time.Time) string {
	switch {
	case errors.Is(err, mailflow.ErrNotFound):
		return "Diesen Anmeldelink gibt es nicht. Bitte prüfen Sie, ob er vollständig aus der E-Mail übernommen wurde, oder fordern Sie einen neuen an."
	case l.Used != nil:
		return "Dieser Anmeldelink wurde bereits benutzt. Jeder Link gilt für eine Anmeldung; bitte fordern Sie einen neuen an."
	case !now.Before(l.Expires):
		return "Dieser Anmeldelink ist abgelaufen: Er gilt 15 Minuten. Bitte fordern Sie einen neuen an."
	}
	return ""
}

// confirmLink answers GET /anmelden/link/{token}: a page with a button
// that signs in by POST. The GET itself changes nothing, because mail
// scanners and link previews fetch links before the person clicks: a
// link used up by its GET would be gone when the person comes.
func (p *Pages) confirmLink(w http.ResponseWriter, r *http.Request) {
	if !p.signinEnabled() {
		p.notFound(w, r)
		return
	}
	token := r.PathValue("token")
	v := signinView{layout: p.layoutFor(r, "Anmelden"), Token: token}
	l, err := p.Auth.SigninLink(r.Context(), hashHex(token))
	if err != nil && !errors.Is(err, mailflow.ErrNotFound) {
		p.fail(w, r, err)
		return
	}
	if v.Problem = msg(v.Lang, linkProblem(l, err, p.Now())); v.Problem != "" {
		status := http.StatusGone
		if l == nil {
			status = http.StatusNotFound
		}
		p.render(w, r, status, "signin.html", v)
		return
	}
	party, err := p.partyOf(r.Context(), l.Role, l.Org)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if party != nil {
		v.Org = party.Name
	}
	v.Role, v.Email = l.Role, l.Email
	p.render(w, r, http.StatusOK, "signin.html", v)
}

// useLink answers POST /anmelden/link/{token}: it uses the link up and
// starts a session for its address and organization, if the catalog
// still lets that address sign in for it.
func (p *Pages) useLink(w http.ResponseWriter, r *http.Request) {
	if !p.signinEnabled() {
		p.notFound(w, r)
		return
	}
	if !sameOrigin(r) {
		p.errorKey(w, r, http.StatusForbidden, "Anfrage abgelehnt", "Die Anmeldung kam nicht aus dem Formular dieser Seite.")
		return
	}
	ctx, now := r.Context(), p.Now()
	token := r.PathValue("token")
	l, err := p.Auth.UseSigninLink(ctx, hashHex(token), now)
	if errors.Is(err, mailflow.ErrNotFound) {
		// Why it failed: unknown, used or expired.
		l, err = p.Auth.SigninLink(ctx, hashHex(token))
		if err != nil && !errors.Is(err, mailflow.ErrNotFound) {
			p.fail(w, r, err)
			return
		}
		status := http.StatusGone
		if l == nil {
			status = http.StatusNotFound
		}
		v := signinView{layout: p.layoutFor(r, "Anmelden")}
		v.Problem = msg(v.Lang, linkProblem(l, err, now))
		if v.Problem == "" { // used between the two statements
			v.Problem = msg(v.Lang, linkProblem(&mailflow.SigninLink{Used: &now}, nil, now))
		}
		p.Log.Warn("status page: sign-in link refused", "client", p.clientKey(r))
		p.render(w, r, status, "signin.html", v)
		return
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	party, err := p.partyOf(ctx, l.Role, l.Org)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if party == nil || !party.MaySignIn(l.Email) {
		p.render(w, r, http.StatusForbidden, "signin.html", signinView{layout: p.layoutFor(r, "Anmelden"),
			Problem: msg(langFrom(r), "Diese Adresse ist im Katalog nicht mehr für die Organisation eingetragen. Bitte wenden Sie sich an die Koordinierungsstelle.")})
		return
	}
	if err := p.startSession(w, r, l.Role, l.Org, l.Email); err != nil {
		p.fail(w, r, err)
		return
	}
	p.Log.Info("status page: signed in by link", "role", l.Role, "org", l.Org)
	http.Redirect(w, r, "/bestellungen", http.StatusSeeOther)
}
