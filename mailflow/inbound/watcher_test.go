package inbound_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mailflow/mailflow/inbound"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"mailflow/internal/mailtest"
	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// imapTestServer is what the tests need from the in-process server and
// from Dovecot.
type imapTestServer interface {
	Host() string
	Port() int
	Append(mailbox string, raw []byte) error
	Messages(mailbox string) ([]mailtest.IMAPMessage, error)
	UIDs(mailbox string) ([]uint32, error)
}

// recorder is a Processor that records what it is given and files each
// message where its X-Test-Dest header says (processed by default). fail,
// when set, is asked first and may refuse a message.
type recorder struct {
	mu       sync.Mutex
	attempts []uint32 // every call
	done     []mailflow.FetchedMessage
	fail     func(m mailflow.FetchedMessage) error
}

func (r *recorder) Process(ctx context.Context, m mailflow.FetchedMessage) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts = append(r.attempts, m.UID)
	if r.fail != nil {
		if err := r.fail(m); err != nil {
			return "", err
		}
	}
	r.done = append(r.done, m)
	dest := mailflow.FolderProcessed
	switch {
	case bytes.Contains(m.Raw, []byte("X-Test-Dest: review")) || m.TooLarge:
		dest = mailflow.FolderReview
	case bytes.Contains(m.Raw, []byte("X-Test-Dest: keep")):
		dest = mailflow.FolderKeep
	}
	return dest, nil
}

func (r *recorder) doneUIDs() []uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var uids []uint32
	for _, m := range r.done {
		uids = append(uids, m.UID)
	}
	return uids
}

func (r *recorder) message(uid uint32) (mailflow.FetchedMessage, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.done {
		if m.UID == uid {
			return m, true
		}
	}
	return mailflow.FetchedMessage{}, false
}

func (r *recorder) attemptUIDs() []uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.attempts)
}

// testMessage builds a small RFC 5322 message with CRLF line ends, so that
// it comes back from the server byte for byte.
func testMessage(n int, dest string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Anbieter <bestellungen@anbieter.example>\r\n")
	fmt.Fprintf(&b, "To: bestellungen@example.org\r\n")
	fmt.Fprintf(&b, "Subject: Test %d\r\n", n)
	fmt.Fprintf(&b, "Message-ID: <test-%d@anbieter.example>\r\n", n)
	fmt.Fprintf(&b, "Date: Mon, 2 Nov 2026 10:00:00 +0100\r\n")
	if dest != "" {
		fmt.Fprintf(&b, "X-Test-Dest: %s\r\n", dest)
	}
	fmt.Fprintf(&b, "\r\nNachricht %d.\r\n", n)
	return []byte(b.String())
}

func watcherConfig(t *testing.T, srv imapTestServer, user, pass string) inbound.Config {
	cfg := inbound.Config{
		TLS:      "none",
		Username: user, Password: pass,
		Idle:           true,
		PollInterval:   time.Hour, // anything faster must come from IDLE, Poke or a retry
		CommandTimeout: 10 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if srv != nil {
		cfg.Host, cfg.Port = srv.Host(), srv.Port()
	}
	return cfg
}

// runWatcher runs w until the returned stop is called or the test ends.
// stop checks that Run returned nil.
func runWatcher(t *testing.T, w *inbound.Watcher) (stop func()) {
	t.Helper()
	return mailtest.Run(t, "watcher", w.Run)
}

// forcePass pokes w and waits until a pass completed after the poke.
func forcePass(t *testing.T, w *inbound.Watcher) {
	t.Helper()
	before := w.LastSync()
	w.Poke()
	eventually(t, "a pass after Poke", func() bool { return w.LastSync().After(before) })
}

// eventually polls cond for up to ten seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func uids(t *testing.T, srv imapTestServer, mailbox string) []uint32 {
	t.Helper()
	u, err := srv.UIDs(mailbox)
	if err != nil {
		t.Fatalf("list %s: %v", mailbox, err)
	}
	return u
}

func count(t *testing.T, srv imapTestServer, mailbox string) int { return len(uids(t, srv, mailbox)) }

func mustAppend(t *testing.T, srv imapTestServer, mailbox string, raw []byte) {
	t.Helper()
	if err := srv.Append(mailbox, raw); err != nil {
		t.Fatal(err)
	}
}

func newIMAPServer(t *testing.T, caps ...imap.Cap) *mailtest.IMAPServer {
	t.Helper()
	srv, err := mailtest.NewIMAPServer("bestellungen@example.org", "geheim", caps...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// testCoreFlow is the behaviour every server must show: mail waiting at
// start is processed in UID order and filed; mail arriving during IDLE is
// picked up without waiting for the poll; \Seen is never set; a restarted
// watcher resumes after the stored UID and processes nothing twice.
func testCoreFlow(t *testing.T, store inbound.State, srv imapTestServer, user, pass string, idling func() bool) {
	raws := [][]byte{testMessage(1, ""), testMessage(2, "review"), testMessage(3, "keep")}
	for _, raw := range raws {
		mustAppend(t, srv, "INBOX", raw)
	}
	first := uids(t, srv, "INBOX")
	if len(first) != 3 {
		t.Fatalf("INBOX has %v, want 3 messages", first)
	}

	rec := &recorder{}
	cfg := watcherConfig(t, srv, user, pass)
	w := inbound.New(cfg, store, rec)
	stop := runWatcher(t, w)

	eventually(t, "three messages processed", func() bool { return len(rec.doneUIDs()) == 3 })
	if got := rec.doneUIDs(); !slices.Equal(got, first) {
		t.Errorf("processed %v, want %v in UID order", got, first)
	}
	for i, uid := range first {
		m, _ := rec.message(uid)
		if !bytes.Equal(m.Raw, raws[i]) || m.TooLarge || m.Size != int64(len(raws[i])) {
			t.Errorf("uid %d: got %d bytes (size %d, too large %v), want the %d appended", uid, len(m.Raw), m.Size, m.TooLarge, len(raws[i]))
		}
		if m.Mailbox != "INBOX" || m.UIDValidity == 0 || m.InternalDate.IsZero() {
			t.Errorf("uid %d: mailbox %q, uidvalidity %d, internal date %v", uid, m.Mailbox, m.UIDValidity, m.InternalDate)
		}
	}
	eventually(t, "messages filed", func() bool {
		return count(t, srv, "Processed") == 1 && count(t, srv, "Review") == 1 && count(t, srv, "INBOX") == 1
	})
	for _, mb := range []string{"Processed", "Review", "INBOX"} {
		msgs, err := srv.Messages(mb)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if slices.Contains(m.Flags, imap.FlagSeen) {
				t.Errorf("%s uid %d is marked \\Seen: the watcher must fetch with BODY.PEEK[]", mb, m.UID)
			}
		}
	}
	if inbox := uids(t, srv, "INBOX"); !slices.Equal(inbox, first[2:]) {
		t.Errorf("INBOX has %v, want only the kept %d", inbox, first[2])
	}

	// New mail while idling: the poll interval is an hour.
	if idling != nil {
		eventually(t, "watcher in IDLE", idling)
	}
	mustAppend(t, srv, "INBOX", testMessage(4, ""))
	eventually(t, "message appended during IDLE processed", func() bool { return len(rec.doneUIDs()) == 4 })
	eventually(t, "fourth message filed", func() bool { return count(t, srv, "Processed") == 2 })
	// A further pass finds nothing: "n:*" matches the highest UID present
	// (the kept message) even below n, and must be filtered.
	forcePass(t, w)
	if got := rec.doneUIDs(); len(got) != 4 {
		t.Errorf("processed %v after another pass, want 4 messages once each", got)
	}
	if w.LastSync().IsZero() {
		t.Error("LastSync is zero after passes")
	}
	st := w.Stats()
	if st.Fetched != 4 || st.Processed != 2 || st.Reviewed != 1 || st.Kept != 1 {
		t.Errorf("stats %+v", st)
	}
	stop()

	// Restart: the kept message is still in INBOX below the stored
	// UID and must not come again; only the new one does.
	mustAppend(t, srv, "INBOX", testMessage(5, ""))
	rec2 := &recorder{}
	w2 := inbound.New(cfg, store, rec2)
	runWatcher(t, w2)
	eventually(t, "message appended while stopped processed", func() bool { return len(rec2.doneUIDs()) >= 1 })
	eventually(t, "fifth message filed", func() bool { return count(t, srv, "Processed") == 3 })
	forcePass(t, w2)
	inbox := uids(t, srv, "INBOX")
	got := rec2.doneUIDs()
	if len(got) != 1 || got[0] <= first[2] {
		t.Errorf("after restart processed %v, want only the new message", got)
	}
	if !slices.Equal(inbox, first[2:]) {
		t.Errorf("INBOX has %v, want only the kept %d", inbox, first[2])
	}
	_, last, err := store.IMAPState(context.Background(), "INBOX")
	if err != nil || last != got[0] {
		t.Errorf("stored last UID %d (%v), want %d", last, err, got[0])
	}
}

func TestWatcherCoreFlow(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			srv := newIMAPServer(t)
			testCoreFlow(t, storagetest.Open(t, driver), srv, "bestellungen@example.org", "geheim",
				func() bool { return srv.Idling() > 0 })
		})
	}
}

func TestWatcherDovecot(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			d := mailtest.DovecotFor(t)
			t.Logf("dovecot %s on %s", d.Version, d.Addr())
			testCoreFlow(t, storagetest.Open(t, driver), d, d.User, d.Password, nil)
		})
	}
}

// forEachDriver runs f with a fresh state store of every configured driver.
func forEachDriver(t *testing.T, f func(t *testing.T, store inbound.State)) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) { f(t, storagetest.Open(t, driver)) })
	}
}

const testUser, testPass = "bestellungen@example.org", "geheim"

// A processor that fails (error or panic) leaves the message where it is,
// stops the pass so later messages wait their turn, and gets the message
// again; after success it is processed exactly once.
func TestWatcherProcessorFailureRetries(t *testing.T) {
	forEachDriver(t, func(t *testing.T, store inbound.State) {
		srv := newIMAPServer(t)
		mustAppend(t, srv, "INBOX", testMessage(1, ""))
		mustAppend(t, srv, "INBOX", testMessage(2, ""))
		var mu sync.Mutex
		allow, failures := false, 0
		rec := &recorder{fail: func(m mailflow.FetchedMessage) error {
			mu.Lock()
			defer mu.Unlock()
			if allow {
				return nil
			}
			failures++
			if failures == 2 {
				panic("processor bug")
			}
			return errors.New("database unavailable")
		}}
		w := inbound.New(watcherConfig(t, srv, testUser, testPass), store, rec)
		runWatcher(t, w)

		eventually(t, "an error and a panic", func() bool { return len(rec.attemptUIDs()) >= 2 })
		if got := rec.attemptUIDs(); slices.Contains(got, 2) {
			t.Errorf("attempts %v: message 2 was tried while message 1 failed", got)
		}
		if got := uids(t, srv, "INBOX"); !slices.Equal(got, []uint32{1, 2}) {
			t.Errorf("INBOX has %v after failures, want both messages", got)
		}
		if n := count(t, srv, "Processed"); n != 0 {
			t.Errorf("Processed has %d messages after failures", n)
		}
		if _, last, err := store.IMAPState(context.Background(), "INBOX"); err == nil && last != 0 {
			t.Errorf("stored last UID %d after failures, want 0", last)
		}
		if st := w.Stats(); st.Panics != 1 || st.Errors < 2 {
			t.Errorf("stats %+v, want one panic and at least two errors", st)
		}

		mu.Lock()
		allow = true
		mu.Unlock()
		w.Poke()
		eventually(t, "both processed", func() bool { return len(rec.doneUIDs()) == 2 })
		eventually(t, "both filed", func() bool { return count(t, srv, "Processed") == 2 })
		forcePass(t, w)
		if got := rec.doneUIDs(); !slices.Equal(got, []uint32{1, 2}) {
			t.Errorf("processed %v, want each message once", got)
		}
		if n := count(t, srv, "INBOX"); n != 0 {
			t.Errorf("INBOX still has %d messages", n)
		}
	})
}

// Messages are downloaded and filed in groups; a processor failure in the
// middle of a group still files the messages before it and stores the
// position just before the failed one, which stays with those after it.
func TestWatcherFailureInsideGroup(t *testing.T) {
	forEachDriver(t, func(t *testing.T, store inbound.State) {
		srv := newIMAPServer(t)
		for n := 1; n <= 5; n++ {
			dest := ""
			if n == 2 {
				dest = "review"
			}
			mustAppend(t, srv, "INBOX", testMessage(n, dest))
		}
		var allow atomic.Bool
		rec := &recorder{fail: func(m mailflow.FetchedMessage) error {
			if m.UID == 4 && !allow.Load() {
				return errors.New("database unavailable")
			}
			return nil
		}}
		w := inbound.New(watcherConfig(t, srv, testUser, testPass), store, rec)
		runWatcher(t, w)

		eventually(t, "message 4 refused", func() bool { return slices.Contains(rec.attemptUIDs(), 4) })
		eventually(t, "1 and 3 filed", func() bool { return count(t, srv, "Processed") == 2 })
		if got := uids(t, srv, "INBOX"); !slices.Equal(got, []uint32{4, 5}) {
			t.Errorf("INBOX has %v, want the failed message and the one after it", got)
		}
		if n := count(t, srv, "Review"); n != 1 {
			t.Errorf("Review has %d messages, want message 2", n)
		}
		if _, last, err := store.IMAPState(context.Background(), "INBOX"); err != nil || last != 3 {
			t.Errorf("stored last UID %d (%v), want 3", last, err)
		}
		allow.Store(true)
		w.Poke()
		eventually(t, "all filed", func() bool { return count(t, srv, "Processed") == 4 })
		if got := rec.doneUIDs(); !slices.Equal(got, []uint32{1, 2, 3, 4, 5}) {
			t.Errorf("processed %v, want each message once in order", got)
		}
	})
}

// A message over MaxSize is not downloaded: the processor gets its size
// and TooLarge, and the message is filed whole where the processor says.
func TestWatcherTooLarge(t *testing.T) {
	forEachDriver(t, func(t *testing.T, store inbound.State) {
		srv := newIMAPServer(t)
		big := append(testMessage(2, ""), bytes.Repeat([]byte("Anhang Anhang Anhang Anhang Anhang\r\n"), 100)...)
		mustAppend(t, srv, "INBOX", testMessage(1, ""))
		mustAppend(t, srv, "INBOX", big)
		mustAppend(t, srv, "INBOX", testMessage(3, ""))
		rec := &recorder{}
		cfg := watcherConfig(t, srv, testUser, testPass)
		cfg.MaxSize = 1024
		w := inbound.New(cfg, store, rec)
		runWatcher(t, w)

		eventually(t, "three processed", func() bool { return len(rec.doneUIDs()) == 3 })
		if got := srv.BodyFetchUIDs(); !slices.Equal(got, []uint32{1, 3}) {
			t.Errorf("bodies fetched for UIDs %v, want 1 and 3 only", got)
		}
		m, _ := rec.message(2)
		if !m.TooLarge || m.Raw != nil || m.Size != int64(len(big)) {
			t.Errorf("large message: too large %v, %d raw bytes, size %d; want true, nil, %d", m.TooLarge, len(m.Raw), m.Size, len(big))
		}
		for _, uid := range []uint32{1, 3} {
			if m, _ := rec.message(uid); m.TooLarge || m.Raw == nil {
				t.Errorf("uid %d: too large %v, raw nil %v", uid, m.TooLarge, m.Raw == nil)
			}
		}
		eventually(t, "large message in Review", func() bool { return count(t, srv, "Review") == 1 })
		review, err := srv.Messages("Review")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(review[0].Raw, big) || slices.Contains(review[0].Flags, imap.FlagSeen) {
			t.Errorf("filed large message: %d bytes, flags %v; want it whole and unseen", len(review[0].Raw), review[0].Flags)
		}
	})
}

// When the mailbox is re-created (new UIDVALIDITY), the stored UID means
// nothing: the watcher starts from the beginning and the new message with
// a UID below the stored one is processed.
func TestWatcherUIDValidityChange(t *testing.T) {
	forEachDriver(t, func(t *testing.T, store inbound.State) {
		srv := newIMAPServer(t)
		mustAppend(t, srv, "INBOX", testMessage(1, ""))
		mustAppend(t, srv, "INBOX", testMessage(2, ""))
		rec := &recorder{}
		w := inbound.New(watcherConfig(t, srv, testUser, testPass), store, rec)
		runWatcher(t, w)
		eventually(t, "two processed", func() bool { return len(rec.doneUIDs()) == 2 })
		old, _ := srv.UIDValidity("INBOX")

		if err := srv.ResetMailbox("INBOX"); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, srv, "INBOX", testMessage(3, ""))
		eventually(t, "message in the new mailbox processed", func() bool { return len(rec.doneUIDs()) == 3 })
		m := rec.done[2]
		uv, _ := srv.UIDValidity("INBOX")
		if m.UID != 1 || m.UIDValidity != uv || uv == old {
			t.Errorf("got uid %d uidvalidity %d; want uid 1 of the new uidvalidity %d (old %d)", m.UID, m.UIDValidity, uv, old)
		}
		eventually(t, "state saved", func() bool {
			suv, last, err := store.IMAPState(context.Background(), "INBOX")
			return err == nil && suv == uv && last == 1
		})
	})
}

// Without MOVE and UIDPLUS the message is copied and flagged \Deleted, and
// EXPUNGE runs only when no other message is marked \Deleted: a message
// another client marked must survive.
func TestWatcherWithoutMoveAndUIDPlus(t *testing.T) {
	forEachDriver(t, func(t *testing.T, store inbound.State) {
		srv := newIMAPServer(t, imap.CapIMAP4rev1) // IDLE, but no MOVE, no UIDPLUS
		mustAppend(t, srv, "INBOX", testMessage(1, "keep"))
		mustAppend(t, srv, "INBOX", testMessage(2, ""))
		rec := &recorder{}
		w := inbound.New(watcherConfig(t, srv, testUser, testPass), store, rec)
		runWatcher(t, w)
		eventually(t, "two processed", func() bool { return len(rec.doneUIDs()) == 2 })
		eventually(t, "message 2 moved", func() bool {
			return slices.Equal(uids(t, srv, "INBOX"), []uint32{1}) && count(t, srv, "Processed") == 1
		})

		// Another client marks the kept message deleted but does not expunge.
		if err := srv.AddFlags("INBOX", 1, imap.FlagDeleted); err != nil {
			t.Fatal(err)
		}
		before := w.LastSync()
		mustAppend(t, srv, "INBOX", testMessage(3, ""))
		eventually(t, "message 3 processed", func() bool { return len(rec.doneUIDs()) == 3 && w.LastSync().After(before) })
		if n := count(t, srv, "Processed"); n != 2 {
			t.Errorf("Processed has %d messages, want 2", n)
		}
		inbox, err := srv.Messages("INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if len(inbox) != 2 || inbox[0].UID != 1 || inbox[1].UID != 3 || !slices.Contains(inbox[1].Flags, imap.FlagDeleted) {
			t.Fatalf("INBOX %+v: want the foreign-deleted 1 untouched and our copied 3 flagged \\Deleted", inbox)
		}

		// The other client changes its mind: now our copy can go.
		if err := srv.RemoveFlags("INBOX", 1, imap.FlagDeleted); err != nil {
			t.Fatal(err)
		}
		w.Poke()
		eventually(t, "our flagged message expunged", func() bool { return slices.Equal(uids(t, srv, "INBOX"), []uint32{1}) })
		if got := rec.doneUIDs(); !slices.Equal(got, []uint32{1, 2, 3}) {
			t.Errorf("processed %v, want each once", got)
		}
	})
}

// A connection dropped during IDLE, and a server away for a while, cost
// nothing: the watcher reconnects and processes what arrived meanwhile.
func TestWatcherReconnects(t *testing.T) {
	forEachDriver(t, func(t *testing.T, store inbound.State) {
		srv := newIMAPServer(t)
		mustAppend(t, srv, "INBOX", testMessage(1, ""))
		rec := &recorder{}
		w := inbound.New(watcherConfig(t, srv, testUser, testPass), store, rec)
		runWatcher(t, w)
		eventually(t, "first processed and idling", func() bool { return len(rec.doneUIDs()) == 1 && srv.Idling() == 1 })

		srv.DropConnections()
		mustAppend(t, srv, "INBOX", testMessage(2, ""))
		eventually(t, "processed after the drop", func() bool { return len(rec.doneUIDs()) == 2 })
		if st := w.Stats(); st.Reconnects < 1 {
			t.Errorf("stats %+v, want a reconnect", st)
		}

		eventually(t, "idling again", func() bool { return srv.Idling() == 1 })
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, srv, "INBOX", testMessage(3, "")) // delivered while IMAP is down
		eventually(t, "failed reconnects", func() bool { return w.Stats().Reconnects >= 3 })
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		w.Poke() // skip the backoff
		eventually(t, "processed after the restart", func() bool { return len(rec.doneUIDs()) == 3 })
		if got := rec.doneUIDs(); !slices.Equal(got, []uint32{1, 2, 3}) {
			t.Errorf("processed %v, want each once", got)
		}
		eventually(t, "all filed", func() bool { return count(t, srv, "Processed") == 3 && count(t, srv, "INBOX") == 0 })
	})
}

// Without IDLE the watcher polls.
func TestWatcherPolls(t *testing.T) {
	forEachDriver(t, func(t *testing.T, store inbound.State) {
		srv := newIMAPServer(t)
		rec := &recorder{}
		cfg := watcherConfig(t, srv, testUser, testPass)
		cfg.Idle = false
		cfg.PollInterval = 200 * time.Millisecond
		w := inbound.New(cfg, store, rec)
		runWatcher(t, w)
		eventually(t, "first pass", func() bool { return !w.LastSync().IsZero() })
		mustAppend(t, srv, "INBOX", testMessage(1, ""))
		eventually(t, "processed by polling", func() bool { return len(rec.doneUIDs()) == 1 })
		if n := srv.Idling(); n != 0 {
			t.Errorf("%d sessions in IDLE with Idle off", n)
		}
	})
}

// IDLE is re-issued on the refresh timer and keeps working.
func TestWatcherIdleRefresh(t *testing.T) {
	forEachDriver(t, func(t *testing.T, store inbound.State) {
		srv := newIMAPServer(t)
		rec := &recorder{}
		cfg := watcherConfig(t, srv, testUser, testPass)
		cfg.IdleRefresh = 50 * time.Millisecond
		w := inbound.New(cfg, store, rec)
		runWatcher(t, w)
		eventually(t, "IDLE re-issued", func() bool { return w.Stats().IdleRestarts >= 3 })
		mustAppend(t, srv, "INBOX", testMessage(1, ""))
		eventually(t, "processed", func() bool { return len(rec.doneUIDs()) == 1 })
		if st := w.Stats(); st.Reconnects != 0 || st.Errors != 0 {
			t.Errorf("stats %+v: refreshing IDLE must not cost the connection", st)
		}
	})
}

// XOAUTH2 login with a token from OAuth2Token; a wrong token is retried,
// not fatal.
func TestWatcherXOAUTH2(t *testing.T) {
	forEachDriver(t, func(t *testing.T, store inbound.State) {
		srv := newIMAPServer(t)
		mustAppend(t, srv, "INBOX", testMessage(1, ""))

		bad := watcherConfig(t, srv, testUser, "")
		bad.Auth = "xoauth2"
		bad.Password = "expired-token"
		badRec := &recorder{}
		wb := inbound.New(bad, store, badRec)
		stopBad := runWatcher(t, wb)
		eventually(t, "login refused", func() bool { return wb.Stats().Errors >= 1 })
		stopBad()
		if n := len(badRec.doneUIDs()); n != 0 {
			t.Errorf("processed %d messages with a wrong token", n)
		}

		cfg := watcherConfig(t, srv, testUser, "")
		cfg.Auth = "xoauth2"
		cfg.OAuth2Token = func(ctx context.Context) (string, error) { return testPass, nil }
		rec := &recorder{}
		runWatcher(t, inbound.New(cfg, store, rec))
		eventually(t, "processed", func() bool { return len(rec.doneUIDs()) == 1 })
	})
}

// A server that greets and then never answers is dropped after
// CommandTimeout and tried again, instead of blocking the watcher forever.
func TestWatcherSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			c.Write([]byte("* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n"))
			go io.Copy(io.Discard, c) // swallow commands, answer nothing
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	cfg := watcherConfig(t, nil, testUser, testPass)
	cfg.Host, cfg.Port = addr.IP.String(), addr.Port
	cfg.CommandTimeout = 200 * time.Millisecond
	w := inbound.New(cfg, storagetest.Open(t, "sqlite"), &recorder{})
	runWatcher(t, w)
	eventually(t, "reconnects after timeouts", func() bool { return w.Stats().Reconnects >= 2 })
	mu.Lock()
	n := len(conns)
	mu.Unlock()
	if n < 2 {
		t.Errorf("%d connections, want new ones after each timeout", n)
	}
}

// Implicit TLS and STARTTLS connect with the configured trust, and a
// certificate that is not trusted is refused.
func TestWatcherTLS(t *testing.T) {
	for _, mode := range []string{"tls", "starttls"} {
		t.Run(mode, func(t *testing.T) {
			srv, err := mailtest.NewIMAPServerTLS(testUser, testPass, mode == "tls")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			mustAppend(t, srv, "INBOX", testMessage(1, ""))
			store := storagetest.Open(t, "sqlite")

			untrusted := watcherConfig(t, srv, testUser, testPass)
			untrusted.TLS = mode
			badRec := &recorder{}
			wb := inbound.New(untrusted, store, badRec)
			stopBad := runWatcher(t, wb)
			eventually(t, "untrusted certificate refused", func() bool { return wb.Stats().Errors >= 1 })
			stopBad()
			if n := len(badRec.doneUIDs()); n != 0 {
				t.Errorf("processed %d messages over an untrusted connection", n)
			}

			cfg := watcherConfig(t, srv, testUser, testPass)
			cfg.TLS = mode
			cfg.TLSConfig = srv.ClientTLSConfig()
			rec := &recorder{}
			runWatcher(t, inbound.New(cfg, store, rec))
			eventually(t, "processed over TLS", func() bool { return len(rec.doneUIDs()) == 1 })
		})
	}
}
