package scheduler_test

import (
	"bytes"
	"io"
	"mailflow/mailflow/compose"
	"mime"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset"

	"mailflow/mailflow"
	"mailflow/scheduler"
	"mailflow/templates"
)

const testCoordinator = "koordinierung@example.org"

const testSecret = "scheduler-test-secret-0123456789"

// newComposer is the real Composer with the embedded templates, dated by
// the test's clock.
func newComposer(t testing.TB, now func() time.Time) (*compose.Composer, *mailflow.Tokens) {
	t.Helper()
	tokens, err := mailflow.NewTokens([]string{testSecret})
	if err != nil {
		t.Fatal(err)
	}
	c, err := compose.New(compose.Config{
		From: "DVC Bestellservice <bestellungen@example.org>", Coordinator: testCoordinator,
		Tokens: tokens, Templates: templates.Must(templates.New()), Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, tokens
}

// newTestMailer is the real Mailer over the real Composer.
func newTestMailer(t testing.TB, now func() time.Time) scheduler.Mailer {
	t.Helper()
	c, _ := newComposer(t, now)
	return scheduler.NewMailer(c)
}

// parsed is a composed message taken apart.
type parsed struct {
	header     message.Header
	subject    string
	text, html string
}

// parseMail decodes a raw message: its subject and its text and HTML parts.
func parseMail(t testing.TB, raw []byte) parsed {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse mail: %v", err)
	}
	p := parsed{header: e.Header}
	dec := new(mime.WordDecoder)
	if p.subject, err = dec.DecodeHeader(e.Header.Get("Subject")); err != nil {
		t.Fatal(err)
	}
	err = e.Walk(func(path []int, part *message.Entity, err error) error {
		if err != nil {
			return err
		}
		ct, _, _ := part.Header.ContentType()
		if strings.HasPrefix(ct, "multipart/") {
			return nil
		}
		b, err := io.ReadAll(part.Body)
		if err != nil {
			return err
		}
		switch ct {
		case "text/plain":
			p.text += string(b)
		case "text/html":
			p.html += string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk mail: %v", err)
	}
	p.text = strings.ReplaceAll(p.text, "\r\n", "\n")
	return p
}

// mailText is the subject and the text part of a raw message.
func mailText(t testing.TB, raw []byte) string {
	p := parseMail(t, raw)
	return p.subject + "\n\n" + p.text
}

var billingLineRe = regexp.MustCompile(`(?m)^(?:Bestellung|Order) (\S+), (?:Abrechnungszeitraum|billing period) (\S+):`)

// billingMailLines returns "number/period" of each line of a billing
// reminder.
func billingMailLines(t testing.TB, m sent) []string {
	var out []string
	for _, g := range billingLineRe.FindAllStringSubmatch(m.Text, -1) {
		key := g[2]
		if key == "einmalig" || key == "one-off" {
			key = "once"
		}
		out = append(out, g[1]+"/"+key)
	}
	return out
}
