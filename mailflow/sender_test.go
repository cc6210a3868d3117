package mailflow_test

import (
	"bytes"
	"context"
	"mailflow/mailflow/compose"
	"mailflow/mailflow/outbound"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"mailflow/internal/exampletest"
	"mailflow/internal/mailtest"
	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// checkDelivered asserts that every outbox row was delivered exactly once,
// byte for byte as stored, with its Message-ID, and returns the rows by
// Message-ID.
func checkDelivered(t *testing.T, e *env, msgs []mailtest.Message) map[string]*mailflow.OutboxMessage {
	t.Helper()
	ctx := context.Background()
	rows, err := e.store.OutboxList(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*mailflow.OutboxMessage{}
	for _, r := range rows {
		byID[r.MessageID] = r
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		id := parseMessage(t, m.Data).messageID(t)
		if seen[id] {
			t.Errorf("Message-ID %s delivered twice", id)
		}
		seen[id] = true
		r, ok := byID[id]
		if !ok {
			t.Errorf("delivered Message-ID %s is no outbox row", id)
			continue
		}
		raw, err := e.store.OutboxRaw(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, m.Data) {
			t.Errorf("row %d: delivered bytes differ from the stored message", r.ID)
		}
		if m.From != r.Sender || !slices.Equal(m.To, r.Recipients) {
			t.Errorf("row %d: envelope %s -> %v, want %s -> %v", r.ID, m.From, m.To, r.Sender, r.Recipients)
		}
		if r.Status != mailflow.OutboxSent {
			t.Errorf("row %d delivered but %s", r.ID, r.Status)
		}
	}
	for _, r := range rows {
		if r.Status == mailflow.OutboxSent && !seen[r.MessageID] {
			t.Errorf("row %d marked sent but never arrived", r.ID)
		}
	}
	return byID
}

// TestSenderDeliversOnceOverReusedConnections: a new row is sent at once
// (the flow wakes the sender; its poll interval is an hour), each exactly
// once, over no more connections than workers.
func TestSenderDeliversOnceOverReusedConnections(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			e.start(t)
			for range 6 {
				e.createOrder(t, "dv")
				e.createOrder(t, "uv")
			}
			const want = 6 + 6*2
			msgs := e.waitMessages(t, want)
			e.waitOutbox(t)
			msgs = e.smtp.Messages()
			if len(msgs) != want {
				t.Fatalf("%d messages arrived, want %d", len(msgs), want)
			}
			checkDelivered(t, e, msgs)
			if n := e.smtp.Sessions(); n > 2 {
				t.Errorf("%d SMTP sessions for 2 workers: connections are not reused", n)
			}
			if got := e.sender.Stats.Sent.Load(); got != want {
				t.Errorf("Stats.Sent = %d, want %d", got, want)
			}
			if e.sender.Stats.Retried.Load() != 0 || e.sender.Stats.Failed.Load() != 0 {
				t.Errorf("retried %d, failed %d", e.sender.Stats.Retried.Load(), e.sender.Stats.Failed.Load())
			}
			if depth, _, err := e.sender.QueueDepth(context.Background()); err != nil || depth != 0 {
				t.Errorf("QueueDepth = %d, %v", depth, err)
			}
			if err := e.sender.Ready(); err != nil {
				t.Errorf("Ready: %v", err)
			}
		})
	}
}

// TestSenderTemporaryFailures: a 4xx reply or a connection dropped in the
// middle of DATA is retried, and the message arrives once.
func TestSenderTemporaryFailures(t *testing.T) {
	tests := []struct {
		name   string
		inject func(*mailtest.SMTPServer)
	}{
		{"421 at MAIL", func(s *mailtest.SMTPServer) { s.Fail(mailtest.StageMail, 421, 1) }},
		{"450 at RCPT", func(s *mailtest.SMTPServer) { s.Fail(mailtest.StageRcpt, 450, 1) }},
		{"451 after DATA", func(s *mailtest.SMTPServer) { s.Fail(mailtest.StageData, 451, 1) }},
		{"connection dropped in DATA", func(s *mailtest.SMTPServer) { s.DropInData(1) }},
		{"three failures in a row", func(s *mailtest.SMTPServer) {
			s.Fail(mailtest.StageMail, 421, 1)
			s.DropInData(1)
			s.Fail(mailtest.StageData, 452, 1)
		}},
	}
	for _, driver := range storagetest.Drivers() {
		for _, tt := range tests {
			t.Run(driver+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t, driver)
				tt.inject(e.smtp)
				e.start(t)
				e.createOrder(t, "dv")
				e.waitMessages(t, 1)
				rows := e.waitOutbox(t)
				if n := e.smtp.Count(); n != 1 {
					t.Fatalf("%d messages arrived, want 1", n)
				}
				byID := checkDelivered(t, e, e.smtp.Messages())
				if len(rows) != 1 {
					t.Fatalf("%d outbox rows", len(rows))
				}
				r := byID[rows[0].MessageID]
				retries := e.sender.Stats.Retried.Load()
				if retries == 0 || int64(r.Attempts) != retries+1 {
					t.Errorf("attempts %d, Stats.Retried %d: want at least one retry, counted", r.Attempts, retries)
				}
				if r.LastError != "" {
					t.Errorf("sent row keeps last_error %q", r.LastError)
				}
			})
		}
	}
}

// TestSenderRetryDueAfterBusyTime: a row waiting for its next attempt
// falls due just after a stream of new orders kept the sender busy (its
// claims found rows, so it did not ask for the next due time). It is
// still sent when due, not at the next poll an hour later.
func TestSenderRetryDueAfterBusyTime(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver, func(c *outbound.Config) {
				c.BackoffBase, c.BackoffMax = 400*time.Millisecond, 400*time.Millisecond
			})
			e.smtp.Fail(mailtest.StageMail, 421, 1)
			e.start(t)
			first := e.createOrder(t, "dv")
			for e.sender.Stats.Retried.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			failed := time.Now()
			// Due 200 to 400 ms after its failure (backoff with jitter);
			// the orders come for 150 ms.
			n := 1
			for time.Since(failed) < 150*time.Millisecond {
				e.createOrder(t, "dv")
				n++
				time.Sleep(10 * time.Millisecond)
			}
			msgs := e.waitMessages(t, n)
			if late := time.Since(failed); late > 2*time.Second {
				t.Errorf("all %d messages arrived %v after the failure; the retry is due after 400 ms at the latest", n, late)
			}
			found := false
			for _, m := range msgs {
				found = found || strings.Contains(string(m.Data), first.Number)
			}
			if !found || len(msgs) != n {
				t.Errorf("%d messages for %d orders, the retried one among them: %v", len(msgs), n, found)
			}
		})
	}
}

// TestSenderPermanentFailure: a 5xx marks the row failed and the
// coordinator gets exactly one alert; an alert that fails itself raises none.
func TestSenderPermanentFailure(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver+"/550 at RCPT alerts once", func(t *testing.T) {
			e := newEnv(t, driver)
			e.smtp.Fail(mailtest.StageRcpt, 550, 1)
			e.start(t)
			o := e.createOrder(t, "dv")
			msgs := e.waitMessages(t, 1)
			rows := e.waitOutbox(t)
			msgs = e.smtp.Messages()
			if len(msgs) != 1 || !slices.Equal(msgs[0].To, []string{testCoordinator}) {
				t.Fatalf("arrived %d messages (%v), want one alert to the coordinator", len(msgs), msgs)
			}
			checkDelivered(t, e, msgs)
			var failed, alerts int
			for _, r := range rows {
				switch {
				case r.Kind == mailflow.KindNotification:
					if r.Status != mailflow.OutboxFailed || !strings.Contains(r.LastError, "550") || r.Attempts != 1 {
						t.Errorf("notification row: status %s, attempts %d, last error %q", r.Status, r.Attempts, r.LastError)
					}
					failed++
				case r.Kind == mailflow.KindAlert:
					alerts++
					if r.OrderID != o.ID {
						t.Errorf("alert not linked to the order")
					}
				}
			}
			if failed != 1 || alerts != 1 {
				t.Errorf("%d failed notifications, %d alerts; want 1 and 1", failed, alerts)
			}
			p := parseMessage(t, msgs[0].Data)
			mustContain(t, "alert", p.subject(t), "[Bestellung "+o.Number+"]", "Zustellung fehlgeschlagen")
			mustContain(t, "alert", p.text, "550", "bestellungen@dataport.example", "mailflow outbox retry")
			if e.sender.Stats.Failed.Load() != 1 || e.sender.Stats.Retried.Load() != 0 {
				t.Errorf("Stats failed %d retried %d", e.sender.Stats.Failed.Load(), e.sender.Stats.Retried.Load())
			}
		})
		t.Run(driver+"/554 after DATA", func(t *testing.T) {
			e := newEnv(t, driver)
			e.smtp.Fail(mailtest.StageData, 554, 1)
			e.start(t)
			e.createOrder(t, "dv")
			e.waitMessages(t, 1)
			e.waitOutbox(t)
			if msgs := e.smtp.Messages(); len(msgs) != 1 || msgs[0].To[0] != testCoordinator {
				t.Fatalf("want exactly the alert, got %d messages", len(msgs))
			}
		})
		t.Run(driver+"/one refused recipient fails the whole message", func(t *testing.T) {
			e := newEnv(t, driver, func(c *outbound.Config) { c.Alerts = nil })
			m, err := e.composer.Compose(compose.Mail{Kind: mailflow.KindDigest, Role: mailflow.RoleCoordinator,
				To: []mail.Address{{Address: "a@example.org"}, {Address: "b@example.org"}}, Template: "alert",
				View: compose.MailView{Alert: &compose.AlertView{Subject: "Test", Body: "Text"}}})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.store.InTx(context.Background(), func(tx mailflow.Tx) error { return tx.Enqueue(m) }); err != nil {
				t.Fatal(err)
			}
			e.smtp.Fail(mailtest.StageRcpt, 550, 1) // a@ refused, b@ accepted
			e.start(t)
			waitFor(t, "failure", func() bool { return e.sender.Stats.Failed.Load() == 1 })
			rows := e.waitOutbox(t)
			if len(rows) != 1 || rows[0].Status != mailflow.OutboxFailed {
				t.Errorf("rows %+v", rows)
			}
			if n := e.smtp.Count(); n != 0 {
				t.Errorf("delivered to the remaining recipient")
			}
		})
		t.Run(driver+"/a row without its stored bytes is not sent", func(t *testing.T) {
			e := newEnv(t, driver)
			o := e.createOrder(t, "dv")
			// A damaged database: the notification's bytes are gone.
			if _, err := e.store.DB().Exec(e.store.DB().Rebind(`DELETE FROM outbox_raw WHERE outbox_id IN (SELECT id FROM outbox WHERE order_id = ?)`), o.ID); err != nil {
				t.Fatal(err)
			}
			e.start(t)
			e.waitMessages(t, 1)
			rows := e.waitOutbox(t) // newest first
			if len(rows) != 2 || rows[1].Kind != mailflow.KindNotification || rows[1].Status != mailflow.OutboxFailed ||
				!strings.Contains(rows[1].LastError, "no stored message") || rows[0].Kind != mailflow.KindAlert {
				for _, r := range rows {
					t.Logf("row: %s %s %q", r.Kind, r.Status, r.LastError)
				}
				t.Fatalf("want the notification failed and an alert")
			}
			if msgs := e.smtp.Messages(); len(msgs) != 1 || msgs[0].To[0] != testCoordinator {
				t.Fatalf("want exactly the alert, got %d messages", len(msgs))
			}
		})
		t.Run(driver+"/failed alert raises none", func(t *testing.T) {
			e := newEnv(t, driver)
			e.smtp.Fail(mailtest.StageRcpt, 550, 2) // the notification, then its alert
			e.start(t)
			e.createOrder(t, "dv")
			waitFor(t, "two failures", func() bool { return e.sender.Stats.Failed.Load() == 2 })
			rows := e.waitOutbox(t)
			if len(rows) != 2 {
				t.Fatalf("%d rows, want the notification and one alert", len(rows))
			}
			for _, r := range rows {
				if r.Status != mailflow.OutboxFailed {
					t.Errorf("%s row %s", r.Kind, r.Status)
				}
			}
			if n := e.smtp.Count(); n != 0 {
				t.Errorf("%d messages arrived", n)
			}
		})
	}
}

// TestSenderRestart: rows left pending by a process that stopped, and rows
// a crashed process had claimed, are sent after a restart, byte-identical
// to what was composed before it.
func TestSenderRestart(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			ctx := context.Background()

			// First life: the server refuses everything for a while, so
			// rows stay pending with attempts; then the process stops.
			e.smtp.Fail(mailtest.StageMail, 421, 1000)
			stop := e.start(t)
			e.createOrder(t, "dv")
			e.createOrder(t, "uv")
			waitFor(t, "retries", func() bool { return e.sender.Stats.Retried.Load() >= 3 })
			stop()
			if n := e.smtp.Count(); n != 0 {
				t.Fatalf("%d messages arrived while the server refused", n)
			}

			// Two more rows; then a process that died claimed two rows:
			// one lease has run out already, one runs a little longer.
			e.flow.OnEnqueue = nil
			e.createOrder(t, "dv")
			e.createOrder(t, "dv")
			expired, err := e.store.ClaimOutbox(ctx, time.Now(), 1, time.Millisecond)
			if err != nil || len(expired) != 1 {
				t.Fatalf("claim: %v, %v", expired, err)
			}
			inFlight, err := e.store.ClaimOutbox(ctx, time.Now(), 1, 300*time.Millisecond)
			if err != nil || len(inFlight) != 1 {
				t.Fatalf("claim: %v, %v", inFlight, err)
			}
			inFlight = append(inFlight, expired...)
			before, _ := e.store.OutboxList(ctx, "", 100)
			stored := map[string][]byte{}
			for _, r := range before {
				raw, _ := e.store.OutboxRaw(ctx, r.ID)
				stored[r.MessageID] = raw
			}

			// Second life: a new sender on the same database.
			e.smtp.Reset()
			s, err := outbound.New(e.store, outbound.Config{
				SMTP:         outbound.SMTPConfig{Host: e.smtp.Host, Port: e.smtp.Port, TLS: "none"},
				Concurrency:  2,
				BackoffBase:  10 * time.Millisecond,
				BackoffMax:   50 * time.Millisecond,
				PollInterval: time.Hour,
				Alerts:       e.composer,
			})
			if err != nil {
				t.Fatal(err)
			}
			e.sender = s
			e.start(t)
			const want = 1 + 2 + 1 + 1 // the first life's DV and UV, the two later DV
			msgs := e.waitMessages(t, want)
			e.waitOutbox(t)
			msgs = e.smtp.Messages()
			if len(msgs) != want {
				t.Fatalf("%d messages after restart, want %d", len(msgs), want)
			}
			checkDelivered(t, e, msgs)
			for _, m := range msgs {
				id := parseMessage(t, m.Data).messageID(t)
				if !bytes.Equal(stored[id], m.Data) {
					t.Errorf("%s: sent bytes differ from those stored before the restart", id)
				}
			}
			for _, r := range inFlight {
				if !slices.ContainsFunc(msgs, func(m mailtest.Message) bool {
					return parseMessage(t, m.Data).messageID(t) == r.MessageID
				}) {
					t.Errorf("row %d claimed by the dead process was not sent", r.ID)
				}
			}
		})
	}
}

// TestSenderShutdownReleasesClaims: at shutdown the rows a sender claimed
// but did not start are handed back, so after a restart they go out at
// once, not when their lease ends.
func TestSenderShutdownReleasesClaims(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, driver, func(c *outbound.Config) { c.Rate = 2; c.Concurrency = 1 })
			for range 6 {
				e.createOrder(t, "dv")
			}
			stop := e.start(t)
			e.waitMessages(t, 1)
			stop()
			sent := e.smtp.Count()
			if sent >= 6 {
				t.Fatalf("all %d sent before the shutdown; the test needs some left", sent)
			}
			next, ok, err := e.store.NextOutboxDue(ctx)
			if err != nil || !ok || next.After(time.Now()) {
				t.Fatalf("after shutdown the next row is due at %v (%v, %v), want now: claims not released", next, ok, err)
			}
			s, err := outbound.New(e.store, outbound.Config{
				SMTP: outbound.SMTPConfig{Host: e.smtp.Host, Port: e.smtp.Port, TLS: "none"}, PollInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			e.sender = s
			e.start(t)
			e.waitMessages(t, 6)
			e.waitOutbox(t)
			checkDelivered(t, e, e.smtp.Messages())
		})
	}
}

// TestSenderRedialsDroppedConnection: a kept connection that the server
// dropped while idle is redialled at once, without counting a retry.
func TestSenderRedialsDroppedConnection(t *testing.T) {
	e := newEnv(t, storagetest.Drivers()[0], func(c *outbound.Config) { c.Concurrency = 1 })
	e.start(t)
	e.createOrder(t, "dv")
	e.waitMessages(t, 1)
	e.waitOutbox(t)
	e.smtp.DropConnections()
	e.createOrder(t, "dv")
	e.waitMessages(t, 2)
	e.waitOutbox(t)
	if r := e.sender.Stats.Retried.Load(); r != 0 {
		t.Errorf("Stats.Retried = %d, want 0: a dropped idle connection is not the message's failure", r)
	}
	if n := e.smtp.Sessions(); n != 2 {
		t.Errorf("%d sessions, want 2 (one redial)", n)
	}
	checkDelivered(t, e, e.smtp.Messages())
}

// TestSenderRate: the rate limit spaces messages out (a lower bound only).
func TestSenderRate(t *testing.T) {
	e := newEnv(t, storagetest.Drivers()[0], func(c *outbound.Config) { c.Rate = 20 })
	for range 6 {
		e.createOrder(t, "dv")
	}
	start := time.Now()
	e.start(t)
	e.waitMessages(t, 6)
	if d := time.Since(start); d < 5*50*time.Millisecond {
		t.Errorf("6 messages at 20/s took %v, want at least 250ms", d)
	}
}

// TestSenderSTARTTLSAndAuth sends over STARTTLS with AUTH PLAIN; a wrong
// password is a temporary failure and shows in Ready.
func TestSenderSTARTTLSAndAuth(t *testing.T) {
	serverTLS, roots, err := mailtest.TLSCert()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		password string
		ok       bool
	}{{"right password", "geheim", true}, {"wrong password", "falsch", false}} {
		t.Run(tt.name, func(t *testing.T) {
			store := storagetest.Open(t, storagetest.Drivers()[0])
			cat := exampletest.Catalog(t)
			if err := store.ImportCatalog(context.Background(), cat); err != nil {
				t.Fatal(err)
			}
			srv := mailtest.NewSMTPServer(t, mailtest.Options{Username: "mailflow", Password: "geheim", TLSConfig: serverTLS})
			e := &env{store: store, cat: cat, tokens: newTokens(t), composer: newComposer(t, nil), smtp: srv}
			e.flow = &mailflow.Flow{Store: store, Notifier: e.composer}
			e.sender, err = outbound.New(store, outbound.Config{
				SMTP: outbound.SMTPConfig{Host: srv.Host, Port: srv.Port, TLS: "starttls", Username: "mailflow", Password: tt.password,
					RootCAs: roots},
				BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond, PollInterval: time.Hour,
			})
			if err != nil {
				t.Fatal(err)
			}
			e.start(t)
			e.createOrder(t, "dv")
			if tt.ok {
				e.waitMessages(t, 1)
				e.waitOutbox(t)
				checkDelivered(t, e, srv.Messages())
				if err := e.sender.Ready(); err != nil {
					t.Errorf("Ready: %v", err)
				}
				return
			}
			waitFor(t, "retries after failed login", func() bool { return e.sender.Stats.Retried.Load() >= 2 })
			if e.sender.Ready() == nil {
				t.Error("Ready reports no error after failed logins")
			}
			if e.sender.Stats.Failed.Load() != 0 {
				t.Error("a failed login marked the message failed")
			}
		})
	}
}

// TestSenderPlainAuthWithoutTLS: on a loopback relay without TLS the
// sender logs in with AUTH PLAIN (go-mail's discovery never picks a
// clear-text mechanism without TLS).
func TestSenderPlainAuthWithoutTLS(t *testing.T) {
	e := newEnv(t, storagetest.Drivers()[0])
	srv := mailtest.NewSMTPServer(t, mailtest.Options{Username: "mailflow", Password: "geheim"})
	s, err := outbound.New(e.store, outbound.Config{
		SMTP:         outbound.SMTPConfig{Host: srv.Host, Port: srv.Port, TLS: "none", Username: "mailflow", Password: "geheim"},
		PollInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.sender, e.smtp = s, srv
	e.start(t)
	e.createOrder(t, "dv")
	e.waitMessages(t, 1)
	e.waitOutbox(t)
	checkDelivered(t, e, srv.Messages())
}

// TestSenderDotLines: lines that begin with a dot, and a line that is one,
// arrive as stored (RFC 5321 §4.5.2 transparency).
func TestSenderDotLines(t *testing.T) {
	e := newEnv(t, "sqlite")
	m, err := e.composer.Compose(compose.Mail{Kind: mailflow.KindDigest, Role: mailflow.RoleCoordinator,
		To: []mail.Address{{Address: testCoordinator}}, Template: "alert",
		View: compose.MailView{Alert: &compose.AlertView{Subject: "Test", Body: "Text"}}})
	if err != nil {
		t.Fatal(err)
	}
	m.Raw = []byte("Message-ID: <" + m.MessageID + ">\r\nFrom: " + m.Sender + "\r\nTo: " + testCoordinator +
		"\r\nSubject: Punkte\r\n\r\n.erste Zeile\r\n.\r\n..\r\nmitten . drin\r\n...\r\n")
	if err := e.store.InTx(context.Background(), func(tx mailflow.Tx) error { return tx.Enqueue(m) }); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	e.waitMessages(t, 1)
	e.waitOutbox(t)
	checkDelivered(t, e, e.smtp.Messages())
}
