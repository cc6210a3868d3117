package mailflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mailflow/mailflow/compose"
	"mailflow/mailflow/outbound"
	"mime"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-message"
	gmail "github.com/emersion/go-message/mail"

	"mailflow/internal/exampletest"
	"mailflow/internal/mailtest"
	"mailflow/mailflow"
	"mailflow/storage"
	"mailflow/storage/storagetest"
	"mailflow/templates"
)

const (
	testFrom        = "DVC Bestellservice <bestellungen@example.org>"
	testReply       = "bestellungen@example.org"
	testCoordinator = "koordinierung@example.org"
	testSecret      = "test-secret-0123456789abcdef"
)

var externalSeq atomic.Int64

// orderRequest reads examples/order-<model>.json with a fresh external id.
func orderRequest(t testing.TB, model string) *mailflow.OrderRequest {
	t.Helper()
	b, err := os.ReadFile("../examples/order-" + model + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var req mailflow.OrderRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	req.ExternalID = fmt.Sprintf("%s-%d", req.ExternalID, externalSeq.Add(1))
	return &req
}

func newTokens(t testing.TB) *mailflow.Tokens {
	t.Helper()
	tok, err := mailflow.NewTokens([]string{testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newComposer(t testing.TB, now func() time.Time) *compose.Composer {
	t.Helper()
	set, err := templates.New()
	if err != nil {
		t.Fatal(err)
	}
	c, err := compose.New(compose.Config{
		From: testFrom, ReplyAddress: testReply, Coordinator: testCoordinator,
		Tokens: newTokens(t), Templates: set, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// env is a store with the example catalog, a flow with the real composer,
// an in-process SMTP server and a sender configured for it (not running).
type env struct {
	store    *storage.Store
	flow     *mailflow.Flow
	composer *compose.Composer
	smtp     *mailtest.SMTPServer
	sender   *outbound.Sender
	cat      *mailflow.Catalog
	tokens   *mailflow.Tokens
}

type envOption func(*outbound.Config)

func newEnv(t testing.TB, driver string, opts ...envOption) *env {
	t.Helper()
	store := storagetest.Open(t, driver)
	cat := exampletest.Catalog(t)
	if err := store.ImportCatalog(context.Background(), cat); err != nil {
		t.Fatal(err)
	}
	e := &env{store: store, cat: cat, tokens: newTokens(t)}
	e.composer = newComposer(t, nil)
	e.smtp = mailtest.NewSMTPServer(t)
	e.flow = &mailflow.Flow{Store: store, Notifier: e.composer}
	cfg := outbound.Config{
		SMTP:        outbound.SMTPConfig{Host: e.smtp.Host, Port: e.smtp.Port, TLS: "none"},
		Concurrency: 2,
		BackoffBase: 10 * time.Millisecond,
		BackoffMax:  50 * time.Millisecond,
		// A poll interval far beyond any test: delivery must come from
		// the wake-up and the due-time timer.
		PollInterval: time.Hour,
		Alerts:       e.composer,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := outbound.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.sender = s
	return e
}

// start runs the sender until the test ends (or the returned stop).
func (e *env) start(t testing.TB) (stop func()) {
	t.Helper()
	e.flow.OnEnqueue = e.sender.Wake
	return mailtest.Run(t, "sender", e.sender.Run)
}

func (e *env) createOrder(t testing.TB, model string) *mailflow.Order {
	t.Helper()
	o, created, err := e.flow.CreateOrder(context.Background(), orderRequest(t, model))
	if err != nil || !created {
		t.Fatalf("create %s order: created=%v err=%v", model, created, err)
	}
	return o
}

// waitMessages waits up to 20 s for n messages at the SMTP server.
func (e *env) waitMessages(t testing.TB, n int) []mailtest.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msgs, err := e.smtp.Wait(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// waitOutbox polls until no row is pending, up to 20 s, and returns all rows.
func (e *env) waitOutbox(t testing.TB) []*mailflow.OutboxMessage {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows, err := e.store.OutboxList(context.Background(), "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		pending := 0
		for _, r := range rows {
			if r.Status == mailflow.OutboxPending {
				pending++
			}
		}
		if pending == 0 {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d outbox rows still pending", pending)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor polls cond until it holds, up to 20 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// parsed is a received message taken apart.
type parsed struct {
	raw         []byte
	header      gmail.Header
	structure   []string // content types, depth-first
	text, html  string
	attachments map[string][]byte
	attTypes    map[string]string
}

func parseMessage(t testing.TB, raw []byte) *parsed {
	t.Helper()
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse message: %v", err)
	}
	p := &parsed{raw: raw, header: gmail.Header{Header: ent.Header}, attachments: map[string][]byte{}, attTypes: map[string]string{}}
	err = ent.Walk(func(path []int, e *message.Entity, err error) error {
		if err != nil {
			return err
		}
		ct, params, _ := e.Header.ContentType()
		p.structure = append(p.structure, ct)
		if strings.HasPrefix(ct, "multipart/") {
			return nil
		}
		body, err := io.ReadAll(e.Body)
		if err != nil {
			return err
		}
		disp, dparams, _ := e.Header.ContentDisposition()
		switch {
		case disp == "attachment":
			p.attachments[dparams["filename"]] = body
			p.attTypes[dparams["filename"]] = ct + "; charset=" + params["charset"]
		case ct == "text/plain":
			p.text = string(body)
		case ct == "text/html":
			p.html = string(body)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk message: %v", err)
	}
	return p
}

func (p *parsed) get(key string) string {
	return p.header.Get(key)
}

func (p *parsed) subject(t testing.TB) string {
	t.Helper()
	s, err := p.header.Subject()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (p *parsed) messageID(t testing.TB) string {
	t.Helper()
	id, err := p.header.MessageID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// headerKeys lists the top-level header field names as they appear.
func headerKeys(raw []byte) []string {
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	var keys []string
	for _, line := range strings.Split(string(head), "\r\n") {
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		k, _, _ := strings.Cut(line, ":")
		keys = append(keys, k)
	}
	return keys
}

func decodeWord(s string) string {
	d, err := new(mime.WordDecoder).DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

func mustContain(t testing.TB, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q", what, sub)
		}
	}
}
