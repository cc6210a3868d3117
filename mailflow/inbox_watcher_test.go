package mailflow_test

// The Inbox behind a real IMAP watcher: a message the database refuses
// every time is set aside and never holds up the replies behind it.

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mailflow/internal/mailtest"
	"mailflow/mailflow"
	"mailflow/mailflow/inbound"
	"mailflow/storage"
	"mailflow/storage/storagetest"
)

// imapServer is what these tests need from the in-process server and from
// Dovecot.
type imapServer interface {
	Host() string
	Port() int
	Append(mailbox string, raw []byte) error
	UIDs(mailbox string) ([]uint32, error)
	Messages(mailbox string) ([]mailtest.IMAPMessage, error)
}

// startWatcher runs a watcher of srv's INBOX for p until the test ends.
func startWatcher(t *testing.T, srv imapServer, user, pass string, st inbound.State, p inbound.Processor) *inbound.Watcher {
	t.Helper()
	w := inbound.New(inbound.Config{
		Host: srv.Host(), Port: srv.Port(), TLS: "none",
		Username: user, Password: pass,
		Idle: true, PollInterval: time.Hour, CommandTimeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, st, p)
	mailtest.Run(t, "watcher", w.Run)
	return w
}

func mailboxUIDs(t *testing.T, srv imapServer, mailbox string) []uint32 {
	t.Helper()
	u, err := srv.UIDs(mailbox)
	if err != nil {
		t.Fatalf("list %s: %v", mailbox, err)
	}
	return u
}

// poisonMarker in a subject makes the database refuse the message.
const poisonMarker = "POISON-7f3a"

// poisonInbound installs a trigger that aborts every insert into inbound
// whose subject holds poisonMarker: a real, deterministic failure of the
// store for that message and no other.
func poisonInbound(t *testing.T, st *storage.Store) {
	t.Helper()
	stmts := []string{`CREATE TRIGGER poison BEFORE INSERT ON inbound WHEN NEW.subject LIKE '%` + poisonMarker + `%'
		BEGIN SELECT RAISE(ABORT, 'poisoned message refused by trigger'); END`}
	if st.Driver() == "postgres" {
		stmts = []string{
			`CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF NEW.subject LIKE '%` + poisonMarker + `%' THEN
					RAISE EXCEPTION 'poisoned message refused by trigger';
				END IF;
				RETURN NEW;
			END $$`,
			`CREATE TRIGGER poison BEFORE INSERT ON inbound FOR EACH ROW EXECUTE FUNCTION poison()`,
		}
	}
	for _, q := range stmts {
		if _, err := st.DB().Exec(q); err != nil {
			t.Fatalf("install poison trigger: %v", err)
		}
	}
}

// testPoisonedMessage: a message the database refuses every time, followed
// by a good reply. The good reply changes its order; the poisoned one is
// tried MaxAttempts times, then filed for review with a row naming the
// error and an alert to the coordinator; the watcher's passes complete, so
// /readyz (which looks at the last sync) stays healthy.
func testPoisonedMessage(t *testing.T, driver string, srv imapServer, user, pass string) {
	ctx := context.Background()
	e := newInboxEnv(t, driver)
	e.inbox.Alerter = newComposer(t, nil)
	e.inbox.Log = slog.New(slog.NewTextHandler(t.Output(), nil))
	poisonInbound(t, e.st)

	poisoned := rmail{from: "orders@it.nrw.example", to: e.replyAddr(e.uv, "provider"),
		subject: "AW: " + poisonMarker + " [Bestellung " + e.uv.Number + "]", body: "CONFIRMED\n"}
	good := rmail{from: "bestellungen@dataport.example", to: e.replyAddr(e.dv, "provider"),
		subject: "AW: [Bestellung " + e.dv.Number + "] Neue Bestellung", body: "BESTÄTIGT\n"}
	for _, raw := range [][]byte{poisoned.raw(), good.raw()} {
		if err := srv.Append("INBOX", raw); err != nil {
			t.Fatal(err)
		}
	}
	first := mailboxUIDs(t, srv, "INBOX")

	w := startWatcher(t, srv, user, pass, e.st, e.inbox)

	waitFor(t, "the good reply behind the poisoned one applied", func() bool {
		o, err := e.st.Order(ctx, e.dv.Number)
		return err == nil && o.Status == mailflow.StatusOrdered
	})
	waitFor(t, "both messages filed", func() bool {
		return len(mailboxUIDs(t, srv, "Review")) == 1 && len(mailboxUIDs(t, srv, "Processed")) == 1 && len(mailboxUIDs(t, srv, "INBOX")) == 0
	})
	review, err := srv.Messages("Review")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(review[0].Raw, []byte(poisonMarker)) {
		t.Errorf("the review folder holds %.80q, want the poisoned message", review[0].Raw)
	}

	list, err := e.st.InboundList(ctx, true, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("%d inbound rows for review, want the poisoned message's", len(list))
	}
	if r := list[0]; r.Verdict != mailflow.VerdictUnprocessable || !r.NeedsReview || r.UID != first[0] || r.Mailbox != "INBOX" ||
		!strings.Contains(r.Reason, "poisoned message refused by trigger") || !strings.Contains(r.Reason, "3 attempts") {
		t.Errorf("review row %+v, want unprocessable for uid %d with the trigger's error", r, first[0])
	}

	out, err := e.st.OutboxList(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, m := range out {
		if m.Kind == mailflow.KindAlert && strings.Contains(m.Subject, "Nachricht nicht verarbeitet") {
			alerts++
			raw, err := e.st.OutboxRaw(ctx, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			if p := parseMessage(t, raw); !strings.Contains(p.text, "poisoned message refused by trigger") || !strings.Contains(p.text, poisonMarker) {
				t.Errorf("alert text does not name the error and the subject:\n%s", p.text)
			}
		}
	}
	if alerts != 1 {
		t.Errorf("%d alerts about the unprocessable message, want 1", alerts)
	}
	if uv, _ := e.st.Order(ctx, e.uv.Number); len(uv.History) != 0 {
		t.Errorf("the poisoned reply changed order %s: %+v", uv.Number, uv.History)
	}

	// Ready: passes complete (the daemon's /readyz compares LastSync with
	// the poll interval), and nothing waits.
	before := w.LastSync()
	w.Poke()
	waitFor(t, "a pass after Poke", func() bool { return w.LastSync().After(before) })
	st := w.Stats()
	if st.Unprocessable != 1 || st.Unrecorded != 0 || st.Reviewed != 1 || st.Processed != 1 {
		t.Errorf("stats %+v, want one unprocessable message reviewed and one processed", st)
	}
	if _, last, err := e.st.IMAPState(ctx, "INBOX"); err != nil || last != first[1] {
		t.Errorf("stored last UID %d (%v), want %d", last, err, first[1])
	}
}

func TestWatcherPoisonedMessage(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			srv, err := mailtest.NewIMAPServer("bestellungen@example.org", "geheim")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			testPoisonedMessage(t, driver, srv, "bestellungen@example.org", "geheim")
		})
	}
}

func TestWatcherPoisonedMessageDovecot(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			d := mailtest.DovecotFor(t)
			testPoisonedMessage(t, driver, d, d.User, d.Password)
		})
	}
}
