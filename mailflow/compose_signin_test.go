package mailflow_test

import (
	"bytes"
	"io"
	"net/mail"
	"strings"
	"testing"
	"time"

	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset"

	"mailflow/mailflow"
	"mailflow/mailflow/compose"
)

// TestSigninMail renders the sign-in mail in both languages through the
// composer and checks what the recipient relies on: every link whole in
// the text and the HTML part, the validity, no reply token (it answers
// no order) and the auto-generated marking.
func TestSigninMail(t *testing.T) {
	at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	c := newComposer(t, func() time.Time { return at })
	links := []compose.SigninLink{
		{Org: "Dataport AöR", Role: mailflow.PartyProvider, URL: "https://bestellungen.example.org/anmelden/link/AAAA-bbbb_1"},
		{Org: "govdigital eG", Role: mailflow.PartyIntermediary, URL: "https://bestellungen.example.org/anmelden/link/CCCC-dddd_2"},
	}
	for lang, want := range map[string][]string{
		"de": {"Anmeldelink", "Dataport AöR (Anbieter)", "govdigital eG (Intermediär)", "gilt 15 Minuten", "25.11.2026"},
		"en": {"sign-in link", "Dataport AöR (provider)", "govdigital eG (intermediary)", "valid for 15 minutes"},
	} {
		m, err := c.Signin("erika@dataport.example", lang, compose.SigninView{Links: links, Minutes: 15, Expires: at.Add(15 * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if m.Kind != mailflow.KindSignin || m.OrderID != 0 || len(m.Recipients) != 1 || m.Recipients[0] != "erika@dataport.example" {
			t.Errorf("%s: kind %q order %d recipients %v", lang, m.Kind, m.OrderID, m.Recipients)
		}
		h, err := mail.ReadMessage(bytes.NewReader(m.Raw))
		if err != nil {
			t.Fatal(err)
		}
		if h.Header.Get("Reply-To") != "" || h.Header.Get("Auto-Submitted") != "auto-generated" {
			t.Errorf("%s: Reply-To %q Auto-Submitted %q", lang, h.Header.Get("Reply-To"), h.Header.Get("Auto-Submitted"))
		}
		text, html := mailParts(t, m.Raw)
		for _, l := range links {
			if !strings.Contains(text, l.URL) || !strings.Contains(html, `href="`+l.URL+`"`) {
				t.Errorf("%s: link %s missing whole in a part", lang, l.URL)
			}
		}
		for _, w := range want {
			if !strings.Contains(m.Subject+"\n"+text, w) {
				t.Errorf("%s: %q missing in subject or text:\n%s\n%s", lang, w, m.Subject, text)
			}
		}
	}
}

// mailParts returns the decoded text/plain and text/html parts of a mail.
func mailParts(t *testing.T, raw []byte) (text, html string) {
	t.Helper()
	e, err := gomessage.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	err = e.Walk(func(_ []int, p *gomessage.Entity, err error) error {
		if err != nil {
			return err
		}
		ct, _, _ := p.Header.ContentType()
		switch ct {
		case "text/plain":
			b, _ := io.ReadAll(p.Body)
			text = string(b)
		case "text/html":
			b, _ := io.ReadAll(p.Body)
			html = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return text, html
}
