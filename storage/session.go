package storage

import (
	"context"
	"fmt"
	"time"

	"mailflow/mailflow"
)

// The status page's sessions, sign-in links and sign-in rate limits live
// in the database, so that a restart or a second daemon behind a load
// balancer keeps them (docs/design.md §7). Only SHA-256 sums of session
// ids, link tokens and rate-limit keys are stored.

type sessionRow struct {
	IDHash    string    `db:"id_hash"`
	Role      string    `db:"role"`
	Org       string    `db:"org"`
	Subject   string    `db:"subject"`
	CSRF      string    `db:"csrf"`
	Created   time.Time `db:"created_at"`
	LastSeen  time.Time `db:"last_seen_at"`
	IdleUntil time.Time `db:"idle_until"`
	Expires   time.Time `db:"expires_at"`
}

const sessionColumns = `id_hash, role, org, subject, csrf, created_at, last_seen_at, idle_until, expires_at`

// CreateSession stores a new session. It also deletes the sessions that
// have ended, so the table holds no more than the live ones and those of
// the last moments.
func (s *Store) CreateSession(ctx context.Context, ss *mailflow.Session) error {
	if _, err := s.exec(ctx, `DELETE FROM page_sessions WHERE expires_at <= ? OR idle_until <= ?`, utc(ss.Created), utc(ss.Created)); err != nil {
		return fmt.Errorf("storage: delete ended sessions: %w", err)
	}
	_, err := s.exec(ctx, `INSERT INTO page_sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ss.IDHash, ss.Role, ss.Org, ss.Subject, ss.CSRF, utc(ss.Created), utc(ss.LastSeen), utc(ss.IdleUntil), utc(ss.Expires))
	if err != nil {
		return fmt.Errorf("storage: create session: %w", mapErr(err))
	}
	return nil
}

// Session returns the session whose id hashes to idHash if it is live at
// now (before both its idle and its absolute end), else ErrNotFound.
func (s *Store) Session(ctx context.Context, idHash string, now time.Time) (*mailflow.Session, error) {
	var r sessionRow
	err := s.get(ctx, &r, `SELECT `+sessionColumns+` FROM page_sessions WHERE id_hash = ? AND expires_at > ? AND idle_until > ?`,
		idHash, utc(now), utc(now))
	if err != nil {
		return nil, fmt.Errorf("storage: session: %w", mapErr(err))
	}
	return &mailflow.Session{IDHash: r.IDHash, Role: r.Role, Org: r.Org, Subject: r.Subject, CSRF: r.CSRF,
		Created: r.Created.UTC(), LastSeen: r.LastSeen.UTC(), IdleUntil: r.IdleUntil.UTC(), Expires: r.Expires.UTC()}, nil
}

// TouchSession records that the session was used at now and keeps it
// idle-alive until idleUntil (never past its absolute end).
func (s *Store) TouchSession(ctx context.Context, idHash string, now, idleUntil time.Time) error {
	if _, err := s.exec(ctx, `UPDATE page_sessions SET last_seen_at = ?, idle_until = ? WHERE id_hash = ?`,
		utc(now), utc(idleUntil), idHash); err != nil {
		return fmt.Errorf("storage: touch session: %w", err)
	}
	return nil
}

// DeleteSession ends one session.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	if _, err := s.exec(ctx, `DELETE FROM page_sessions WHERE id_hash = ?`, idHash); err != nil {
		return fmt.Errorf("storage: delete session: %w", err)
	}
	return nil
}

// DeleteSessionsOf ends every session of one person (role, organization
// and address or user name), on every device: "log out everywhere". It
// returns how many ended.
func (s *Store) DeleteSessionsOf(ctx context.Context, role, org, subject string) (int, error) {
	res, err := s.exec(ctx, `DELETE FROM page_sessions WHERE subject = ? AND role = ? AND org = ?`, subject, role, org)
	if err != nil {
		return 0, fmt.Errorf("storage: delete sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// CreateSigninLink stores a sign-in link that was (or is about to be)
// mailed, and deletes links that expired more than a day ago.
func (s *Store) CreateSigninLink(ctx context.Context, l *mailflow.SigninLink) error {
	if _, err := s.exec(ctx, `DELETE FROM signin_links WHERE expires_at < ?`, utc(l.Created.Add(-24*time.Hour))); err != nil {
		return fmt.Errorf("storage: delete old sign-in links: %w", err)
	}
	_, err := s.exec(ctx, `INSERT INTO signin_links (token_hash, role, org, email, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		l.TokenHash, l.Role, l.Org, l.Email, utc(l.Created), utc(l.Expires))
	if err != nil {
		return fmt.Errorf("storage: create sign-in link: %w", mapErr(err))
	}
	return nil
}

type signinLinkRow struct {
	TokenHash string     `db:"token_hash"`
	Role      string     `db:"role"`
	Org       string     `db:"org"`
	Email     string     `db:"email"`
	Created   time.Time  `db:"created_at"`
	Expires   time.Time  `db:"expires_at"`
	Used      *time.Time `db:"used_at"`
}

func (r signinLinkRow) link() *mailflow.SigninLink {
	return &mailflow.SigninLink{TokenHash: r.TokenHash, Role: r.Role, Org: r.Org, Email: r.Email,
		Created: r.Created.UTC(), Expires: r.Expires.UTC(), Used: utcPtr(r.Used)}
}

const signinLinkColumns = `token_hash, role, org, email, created_at, expires_at, used_at`

// SigninLink returns a sign-in link by the hash of its token, used or
// not, or ErrNotFound. It changes nothing: a mail scanner that fetches
// the link must not use it up.
func (s *Store) SigninLink(ctx context.Context, tokenHash string) (*mailflow.SigninLink, error) {
	var r signinLinkRow
	if err := s.get(ctx, &r, `SELECT `+signinLinkColumns+` FROM signin_links WHERE token_hash = ?`, tokenHash); err != nil {
		return nil, fmt.Errorf("storage: sign-in link: %w", mapErr(err))
	}
	return r.link(), nil
}

// UseSigninLink marks a link used at now and returns it, if it is unused
// and has not expired; else ErrNotFound. One statement, so of two
// concurrent uses (in one daemon or two) exactly one succeeds.
func (s *Store) UseSigninLink(ctx context.Context, tokenHash string, now time.Time) (*mailflow.SigninLink, error) {
	var r signinLinkRow
	err := s.inTx(ctx, func(tx *Tx) error {
		return tx.get(&r, `UPDATE signin_links SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?
			RETURNING `+signinLinkColumns, utc(now), tokenHash, utc(now))
	})
	if err != nil {
		return nil, fmt.Errorf("storage: use sign-in link: %w", mapErr(err))
	}
	return r.link(), nil
}

// CountSigninAttempts counts the attempts of a kind and key (a hash)
// since a time.
func (s *Store) CountSigninAttempts(ctx context.Context, kind, keyHash string, since time.Time) (int, error) {
	var n int
	if err := s.get(ctx, &n, `SELECT COUNT(*) FROM signin_attempts WHERE kind = ? AND key_hash = ? AND at > ?`,
		kind, keyHash, utc(since)); err != nil {
		return 0, fmt.Errorf("storage: count sign-in attempts: %w", err)
	}
	return n, nil
}

// OldestSigninAttempt returns the time of the n-th newest attempt of a
// kind and key since a time (n from 1), for how long a blocked client
// must wait; the zero time when there are fewer.
func (s *Store) OldestSigninAttempt(ctx context.Context, kind, keyHash string, since time.Time, n int) (time.Time, error) {
	var at []time.Time
	if err := s.sel(ctx, &at, `SELECT at FROM signin_attempts WHERE kind = ? AND key_hash = ? AND at > ? ORDER BY at DESC LIMIT ?`,
		kind, keyHash, utc(since), n); err != nil {
		return time.Time{}, fmt.Errorf("storage: sign-in attempts: %w", err)
	}
	if len(at) < n {
		return time.Time{}, nil
	}
	return at[n-1].UTC(), nil
}

// RecordSigninAttempt counts one attempt, and deletes attempts older than
// a day: no limit looks further back.
func (s *Store) RecordSigninAttempt(ctx context.Context, kind, keyHash string, at time.Time) error {
	if _, err := s.exec(ctx, `DELETE FROM signin_attempts WHERE at < ?`, utc(at.Add(-24*time.Hour))); err != nil {
		return fmt.Errorf("storage: delete old sign-in attempts: %w", err)
	}
	if _, err := s.exec(ctx, `INSERT INTO signin_attempts (kind, key_hash, at) VALUES (?, ?, ?)`, kind, keyHash, utc(at)); err != nil {
		return fmt.Errorf("storage: record sign-in attempt: %w", err)
	}
	return nil
}

// ClearSigninAttempts forgets the attempts of a kind and key: a
// successful password login clears its client's failures.
func (s *Store) ClearSigninAttempts(ctx context.Context, kind, keyHash string) error {
	if _, err := s.exec(ctx, `DELETE FROM signin_attempts WHERE kind = ? AND key_hash = ?`, kind, keyHash); err != nil {
		return fmt.Errorf("storage: clear sign-in attempts: %w", err)
	}
	return nil
}

// PageLanguage returns the language a person (role, organization and
// address or user name) last chose on the status page, or "" if none.
func (s *Store) PageLanguage(ctx context.Context, role, org, subject string) (string, error) {
	var langs []string
	if err := s.sel(ctx, &langs, `SELECT lang FROM page_preferences WHERE role = ? AND org = ? AND subject = ?`,
		role, org, subject); err != nil {
		return "", fmt.Errorf("storage: page language: %w", err)
	}
	if len(langs) == 0 {
		return "", nil
	}
	return langs[0], nil
}

// SetPageLanguage keeps a person's choice of language for the status
// page, replacing an earlier one.
func (s *Store) SetPageLanguage(ctx context.Context, role, org, subject, lang string, at time.Time) error {
	if _, err := s.exec(ctx, `INSERT INTO page_preferences (role, org, subject, lang, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (role, org, subject) DO UPDATE SET lang = excluded.lang, updated_at = excluded.updated_at`,
		role, org, subject, lang, utc(at)); err != nil {
		return fmt.Errorf("storage: set page language: %w", err)
	}
	return nil
}
