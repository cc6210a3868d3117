package mailtest

import (
	"bytes"
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// IMAPUser is a further user of an IMAPServer, with its own mailboxes: the
// demo gives a person with a mail client a mailbox of its own beside the
// daemon's.
type IMAPUser struct {
	s          *IMAPServer
	u          *imapmemserver.User
	name, pass string
}

// AddUser adds a user with an empty INBOX. The name must not be taken.
func (s *IMAPServer) AddUser(name, pass string) (*IMAPUser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.users[name]; taken || name == s.user {
		return nil, fmt.Errorf("mailtest: imap user %q exists", name)
	}
	u := imapmemserver.NewUser(name, pass)
	if err := u.Create("INBOX", nil); err != nil {
		return nil, fmt.Errorf("mailtest: imap user %q: %w", name, err)
	}
	if s.users == nil {
		s.users = map[string]*imapmemserver.User{}
	}
	s.users[name] = u
	return &IMAPUser{s: s, u: u, name: name, pass: pass}, nil
}

// backendUser returns the backend user a login names; the first user for any
// name not added, whose Login then decides.
func (s *IMAPServer) backendUser(name string) *imapmemserver.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[name]; ok {
		return u
	}
	return s.u
}

// Name is the user's login name.
func (u *IMAPUser) Name() string { return u.name }

// Append adds a message to one of the user's mailboxes directly in the
// backend, as a delivery would: the user's sessions in IDLE see EXISTS.
func (u *IMAPUser) Append(mailbox string, raw []byte) error {
	// A nil *AppendOptions panics in imapmemserver.
	if _, err := u.u.Append(mailbox, bytes.NewReader(raw), &imap.AppendOptions{}); err != nil {
		return fmt.Errorf("mailtest: append to %s of %s: %w", mailbox, u.name, err)
	}
	return nil
}

// Messages lists one of the user's mailboxes in UID order, read through an
// IMAP connection logged in as the user.
func (u *IMAPUser) Messages(mailbox string) ([]IMAPMessage, error) {
	return imapMessages(u.s.Addr(), u.name, u.pass, mailbox)
}
