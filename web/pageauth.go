package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Session and login limits.
const (
	sessionCookie   = "mailflow_session"
	sessionLifetime = 12 * time.Hour
	// loginFailures failed logins from one client address within
	// loginWindow block further attempts until the oldest ages out.
	loginFailures = 10
	loginWindow   = 15 * time.Minute
)

// session is one logged-in coordinator.
type session struct {
	user    string
	csrf    string
	expires time.Time
}

// sessionStore keeps sessions in memory: a restart logs everyone out,
// which is acceptable for a handful of coordinators.
type sessionStore struct {
	mu sync.Mutex
	m  map[string]*session
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (st *sessionStore) create(user string, now time.Time) (string, *session) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for id, s := range st.m {
		if !now.Before(s.expires) {
			delete(st.m, id)
		}
	}
	id := randomToken(32)
	s := &session{user: user, csrf: randomToken(32), expires: now.Add(sessionLifetime)}
	st.m[id] = s
	return id, s
}

func (st *sessionStore) get(id string, now time.Time) *session {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.m[id]
	if s == nil {
		return nil
	}
	if !now.Before(s.expires) {
		delete(st.m, id)
		return nil
	}
	return s
}

func (st *sessionStore) delete(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.m, id)
}

// loginLimiter slows down password guessing: a few failures per client
// address and window, then 429 until the window has passed.
type loginLimiter struct {
	mu    sync.Mutex
	fails map[string][]time.Time
}

// recent returns key's failures within the window, pruning older ones.
func (l *loginLimiter) recent(key string, now time.Time) []time.Time {
	ts := l.fails[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= loginWindow {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, key)
	} else {
		l.fails[key] = ts
	}
	return ts
}

// blocked reports how long key must wait before the next attempt.
func (l *loginLimiter) blocked(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.recent(key, now)
	if len(ts) < loginFailures {
		return 0
	}
	return ts[len(ts)-loginFailures].Add(loginWindow).Sub(now)
}

func (l *loginLimiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) > 10000 {
		for k := range l.fails {
			l.recent(k, now)
		}
	}
	l.fails[key] = append(l.recent(key, now), now)
}

func (l *loginLimiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}

func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type sessionKey struct{}

func sessionFrom(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

// authed lets a request through only with a live session; a POST must
// also carry the session's CSRF token and, when the browser names one, a
// same-host Origin or Referer.
func (p *Pages) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s *session
		if c, err := r.Cookie(sessionCookie); err == nil {
			s = p.sessions.get(c.Value, p.Now())
		}
		if s == nil {
			target := "/anmelden"
			if r.Method == http.MethodGet && r.URL.Path != "/" {
				target += "?weiter=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, s))
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
			if err := r.ParseForm(); err != nil {
				p.errorPage(w, r, http.StatusBadRequest, "Ungültige Anfrage", "Das Formular konnte nicht gelesen werden.")
				return
			}
			got := r.PostForm.Get("csrf")
			if !sameOrigin(r) || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
				p.Log.Warn("status page: CSRF check failed", "path", r.URL.Path)
				p.errorPage(w, r, http.StatusForbidden, "Anfrage abgelehnt",
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
}

func (p *Pages) loginForm(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil && p.sessions.get(c.Value, p.Now()) != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("weiter")), http.StatusSeeOther)
		return
	}
	p.render(w, r, http.StatusOK, "login.html", loginView{layout: p.layoutFor(r, "Anmelden"), Next: safeNext(r.URL.Query().Get("weiter"))})
}

func (p *Pages) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, r, http.StatusBadRequest, "Ungültige Anfrage", "Das Formular konnte nicht gelesen werden.")
		return
	}
	v := loginView{layout: p.layoutFor(r, "Anmelden"), Next: safeNext(r.PostForm.Get("weiter")), Username: r.PostForm.Get("username")}
	if !sameOrigin(r) {
		p.errorPage(w, r, http.StatusForbidden, "Anfrage abgelehnt", "Die Anmeldung kam nicht aus dem Formular dieser Seite.")
		return
	}
	now, key := p.Now(), clientKey(r)
	if wait := p.limiter.blocked(key, now); wait > 0 {
		minutes := int(wait.Minutes()) + 1
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		v.Error = fmt.Sprintf("Zu viele fehlgeschlagene Anmeldeversuche. Bitte versuchen Sie es in %d Minuten noch einmal.", minutes)
		p.render(w, r, http.StatusTooManyRequests, "login.html", v)
		return
	}
	// Compare SHA-256 sums in constant time, both always, so neither
	// which field was wrong nor the length of the secrets leaks.
	u := sha256.Sum256([]byte(r.PostForm.Get("username")))
	pw := sha256.Sum256([]byte(r.PostForm.Get("password")))
	ok := subtle.ConstantTimeCompare(u[:], p.userSum[:]) & subtle.ConstantTimeCompare(pw[:], p.passSum[:])
	if ok != 1 {
		p.limiter.fail(key, now)
		p.Log.Warn("status page: login failed", "client", key)
		v.Error = "Benutzername oder Passwort ist falsch."
		p.render(w, r, http.StatusUnauthorized, "login.html", v)
		return
	}
	p.limiter.reset(key)
	if c, err := r.Cookie(sessionCookie); err == nil {
		p.sessions.delete(c.Value) // a new id on every login: no session fixation
	}
	id, _ := p.sessions.create(p.Username, now)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true,
		Secure: p.SecureCookies, SameSite: http.SameSiteStrictMode})
	p.Log.Info("status page: login", "client", key)
	http.Redirect(w, r, v.Next, http.StatusSeeOther)
}

func (p *Pages) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		p.sessions.delete(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: p.SecureCookies, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/anmelden", http.StatusSeeOther)
}
