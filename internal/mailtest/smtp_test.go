package mailtest

import (
	"context"
	"net/smtp"
	"testing"
	"time"
)

// A HeaderOnly server keeps each message's header section and counts the
// whole message.
func TestSMTPHeaderOnly(t *testing.T) {
	s := NewSMTPServer(t, Options{HeaderOnly: true})
	msg := "From: a@example.org\r\nSubject: Test\r\n\r\nKörper, der nicht behalten wird.\r\n"
	if err := smtp.SendMail(s.Addr, nil, "a@example.org", []string{"b@example.org"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := s.Wait(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := "From: a@example.org\r\nSubject: Test\r\n\r\n"; string(got[0].Data) != want {
		t.Errorf("kept %q, want %q", got[0].Data, want)
	}
	if s.Bytes() != int64(len(msg)) {
		t.Errorf("counted %d bytes, want %d", s.Bytes(), len(msg))
	}
}
