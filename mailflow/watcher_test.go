package mailflow_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"mailflow/mailflow"
	"mailflow/mailflow/mailtest"
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

func watcherConfig(t *testing.T, srv imapTestServer, user, pass string) mailflow.WatcherConfig {
	return mailflow.WatcherConfig{
		Host: srv.Host(), Port: srv.Port(), TLS: "none",
		Username: user, Password: pass,
		Idle:           true,
		PollInterval:   time.Hour, // anything faster must come from IDLE, Poke or a retry
		CommandTimeout: 10 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// runWatcher runs w until the returned stop is called or the test ends.
// stop checks that Run returned nil.
func runWatcher(t *testing.T, w *mailflow.Watcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
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
func testCoreFlow(t *testing.T, store mailflow.WatcherState, srv imapTestServer, user, pass string, idling func() bool) {
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
	w := mailflow.NewWatcher(cfg, store, rec)
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
	w2 := mailflow.NewWatcher(cfg, store, rec2)
	runWatcher(t, w2)
	eventually(t, "message appended while stopped processed", func() bool { return len(rec2.doneUIDs()) >= 1 })
	eventually(t, "fifth message filed", func() bool { return count(t, srv, "Processed") == 3 })
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
			t.Logf("dovecot %s on %s", d.Version, d.Addr())
			testCoreFlow(t, storagetest.Open(t, driver), d, d.User, d.Password, nil)
		})
	}
}
