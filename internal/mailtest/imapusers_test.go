package mailtest

import (
	"errors"
	"net/smtp"
	"strings"
	"sync"
	"testing"
)

func TestIMAPSecondUser(t *testing.T) {
	s, err := NewIMAPServer("daemon@example.org", "daemon-pass")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.AddUser("demo", "demo-pass")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUser("demo", "x"); err == nil {
		t.Error("a second AddUser of the same name succeeded")
	}
	if _, err := s.AddUser("daemon@example.org", "x"); err == nil {
		t.Error("AddUser took the first user's name")
	}
	if err := u.Append("INBOX", []byte("Subject: for demo\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Append("INBOX", []byte("Subject: for the daemon\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	// Each user logs in with its own password and sees its own INBOX.
	mine, err := u.Messages("INBOX")
	if err != nil || len(mine) != 1 || !strings.Contains(string(mine[0].Raw), "for demo") {
		t.Fatalf("demo's INBOX: %v %v", mine, err)
	}
	theirs, err := s.Messages("INBOX")
	if err != nil || len(theirs) != 1 || !strings.Contains(string(theirs[0].Raw), "for the daemon") {
		t.Fatalf("daemon's INBOX: %v %v", theirs, err)
	}
	if _, err := imapMessages(s.Addr(), "demo", "daemon-pass", "INBOX"); err == nil {
		t.Error("demo logged in with the first user's password")
	}
	if _, err := imapMessages(s.Addr(), "daemon@example.org", "demo-pass", "INBOX"); err == nil {
		t.Error("the first user logged in with demo's password")
	}
}

func TestSMTPOnMessage(t *testing.T) {
	var mu sync.Mutex
	var got []Message
	refuse := true
	s := NewSMTPServer(t, Options{OnMessage: func(m Message) error {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			refuse = false
			return errors.New("mailbox unavailable")
		}
		got = append(got, m)
		return nil
	}})
	send := func() error {
		return smtp.SendMail(s.Addr, nil, "a@example.org", []string{"b@example.org", "c@example.org"},
			[]byte("Subject: hook\r\n\r\nbody\r\n"))
	}
	// A failing hook refuses the message with a temporary error and keeps nothing.
	err := send()
	if err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("first send: %v, want 451", err)
	}
	if s.Count() != 0 {
		t.Errorf("refused message counted")
	}
	if err := send(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].From != "a@example.org" || len(got[0].To) != 2 || !strings.Contains(string(got[0].Data), "Subject: hook") {
		t.Fatalf("hook saw %+v", got)
	}
	if s.Count() != 1 {
		t.Errorf("count %d, want 1", s.Count())
	}
}
