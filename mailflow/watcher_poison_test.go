package mailflow_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"mailflow/internal/mailtest"
	"mailflow/mailflow"
	"mailflow/storage"
	"mailflow/storage/storagetest"
)

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
func testPoisonedMessage(t *testing.T, driver string, srv imapTestServer, user, pass string) {
	ctx := context.Background()
	e := newInboxEnv(t, driver)
	e.inbox.Alerter = newComposer(t, nil)
	e.inbox.Log = slog.New(slog.NewTextHandler(t.Output(), nil))
	poisonInbound(t, e.st)

	poisoned := rmail{from: "orders@it.nrw.example", to: e.replyAddr(e.uv, "provider"),
		subject: "AW: " + poisonMarker + " [Bestellung " + e.uv.Number + "]", body: "CONFIRMED\n"}
	good := rmail{from: "bestellungen@dataport.example", to: e.replyAddr(e.dv, "provider"),
		subject: "AW: [Bestellung " + e.dv.Number + "] Neue Bestellung", body: "BESTÄTIGT\n"}
	mustAppend(t, srv, "INBOX", poisoned.raw())
	mustAppend(t, srv, "INBOX", good.raw())
	first := uids(t, srv, "INBOX")

	w := mailflow.NewWatcher(watcherConfig(t, srv, user, pass), e.st, e.inbox)
	runWatcher(t, w)

	waitFor(t, "the good reply behind the poisoned one applied", func() bool {
		o, err := e.st.Order(ctx, e.dv.Number)
		return err == nil && o.Status == mailflow.StatusOrdered
	})
	waitFor(t, "both messages filed", func() bool {
		return count(t, srv, "Review") == 1 && count(t, srv, "Processed") == 1 && count(t, srv, "INBOX") == 0
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
	forcePass(t, w)
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
			testPoisonedMessage(t, driver, newIMAPServer(t), testUser, testPass)
		})
	}
}

func TestWatcherPoisonedMessageDovecot(t *testing.T) {
	if _, err := mailtest.DovecotPath(); err != nil {
		t.Skip(err)
	}
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			d, err := mailtest.StartDovecot(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("dovecot %s log:\n%s", d.Version, d.Log())
				}
				d.Close()
			})
			testPoisonedMessage(t, driver, d, d.User, d.Password)
		})
	}
}

// quarantiner is a recorder that is also a Quarantiner, with a database
// that can be down and a record that can fail.
type quarantiner struct {
	*recorder
	down atomic.Bool
	qerr error

	mu          sync.Mutex
	quarantined []uint32
}

func (q *quarantiner) Transient(ctx context.Context, cause error) string {
	if q.down.Load() {
		return "connection refused"
	}
	return ""
}

func (q *quarantiner) Quarantine(ctx context.Context, m mailflow.FetchedMessage, attempts int, cause error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.quarantined = append(q.quarantined, m.UID)
	return q.qerr
}

func (q *quarantiner) quarantinedUIDs() []uint32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.quarantined)
}

// While the database does not answer, failures are the connection's: the
// message is retried beyond MaxAttempts and never filed for review; once
// the database is back it is processed.
func TestWatcherDatabaseDownIsNotPoison(t *testing.T) {
	forEachDriver(t, func(t *testing.T, store mailflow.WatcherState) {
		srv := newIMAPServer(t)
		mustAppend(t, srv, "INBOX", testMessage(1, ""))
		mustAppend(t, srv, "INBOX", testMessage(2, ""))
		q := &quarantiner{}
		q.recorder = &recorder{fail: func(m mailflow.FetchedMessage) error {
			if q.down.Load() {
				return errors.New("database unavailable")
			}
			return nil
		}}
		q.down.Store(true)
		cfg := watcherConfig(t, srv, testUser, testPass)
		cfg.MaxAttempts = 2
		w := mailflow.NewWatcher(cfg, store, q)
		runWatcher(t, w)

		waitFor(t, "more than MaxAttempts attempts while the database is down", func() bool { return len(q.attemptUIDs()) > 2 })
		if got := q.quarantinedUIDs(); len(got) != 0 {
			t.Errorf("quarantined %v while the database was down", got)
		}
		if n := count(t, srv, "Review"); n != 0 {
			t.Errorf("Review has %d messages while the database was down", n)
		}
		if got := uids(t, srv, "INBOX"); !slices.Equal(got, []uint32{1, 2}) {
			t.Errorf("INBOX has %v, want both messages waiting", got)
		}
		q.down.Store(false)
		w.Poke()
		eventually(t, "both processed", func() bool { return count(t, srv, "Processed") == 2 })
		if st := w.Stats(); st.Unprocessable != 0 || st.Reviewed != 0 {
			t.Errorf("stats %+v, want nothing unprocessable", st)
		}
	})
}

// A message that fails (an error, then panics) while the database answers
// is filed for review after MaxAttempts tries, even when recording it
// fails too; the message behind it is processed.
func TestWatcherQuarantineFails(t *testing.T) {
	forEachDriver(t, func(t *testing.T, store mailflow.WatcherState) {
		srv := newIMAPServer(t)
		mustAppend(t, srv, "INBOX", testMessage(1, ""))
		mustAppend(t, srv, "INBOX", testMessage(2, ""))
		var tries atomic.Int32
		q := &quarantiner{qerr: errors.New("database refused the record")}
		q.recorder = &recorder{fail: func(m mailflow.FetchedMessage) error {
			if m.UID != 1 {
				return nil
			}
			if tries.Add(1) > 1 {
				panic("parser bug")
			}
			return errors.New("no good")
		}}
		cfg := watcherConfig(t, srv, testUser, testPass)
		cfg.MaxAttempts = 4
		w := mailflow.NewWatcher(cfg, store, q)
		runWatcher(t, w)

		eventually(t, "a first attempt", func() bool { return len(q.attemptUIDs()) > 0 }) // the folders exist
		waitFor(t, "message 1 in Review, 2 processed", func() bool {
			return count(t, srv, "Review") == 1 && count(t, srv, "Processed") == 1
		})
		if got := q.attemptUIDs(); !slices.Equal(got, []uint32{1, 1, 1, 1, 2}) {
			t.Errorf("attempts %v, want message 1 four times, then 2", got)
		}
		if got := q.quarantinedUIDs(); !slices.Equal(got, []uint32{1}) {
			t.Errorf("quarantined %v, want message 1", got)
		}
		if st := w.Stats(); st.Unprocessable != 1 || st.Unrecorded != 1 || st.Panics != 3 {
			t.Errorf("stats %+v, want one unprocessable, unrecorded message and three panics", st)
		}
		if got := uids(t, srv, "INBOX"); len(got) != 0 {
			t.Errorf("INBOX still has %v", got)
		}
	})
}
