package inbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mailflow/mailflow"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// Processor decides what happens to one fetched message. It is called with
// the raw bytes (nil when the message is larger than MaxSize: then Size is
// set, TooLarge is true and the message was not downloaded) and must have
// committed its verdict durably before returning: the watcher moves the
// message and forgets it afterwards. dest is where to move the message:
// mailflow.FolderProcessed, mailflow.FolderReview, or mailflow.FolderKeep to leave it in place.
//
// The watcher may hand the same message over again (after a crash between
// commit and move, or after a UIDVALIDITY change); the processor
// deduplicates, by Message-ID or a hash of the raw message.
type Processor interface {
	Process(ctx context.Context, m mailflow.FetchedMessage) (dest string, err error)
}

// Quarantiner is implemented by a Processor that can set aside a message
// it keeps failing on, so that one bad message never holds up the messages
// behind it (docs/design.md §4, "Authenticate"). After MaxAttempts failures of the
// same message that Transient blamed on the message, the watcher calls
// Quarantine and files the message for review. A transient failure (the
// database is down, a lock) is not counted: such messages wait.
//
// Without this interface the watcher cannot tell the two apart and retries
// a failed message until it succeeds.
type Quarantiner interface {
	// Transient returns why cause may pass by itself (what processing
	// depends on does not answer, or refused for a reason other than this
	// message), or "" when the failure is the message's own.
	Transient(ctx context.Context, cause error) string
	// Quarantine records durably, without the message fields that may
	// have caused the failure, that m was not processed after attempts
	// tries because of cause, and alerts a person. The watcher files the
	// message for review even when it fails.
	Quarantine(ctx context.Context, m mailflow.FetchedMessage, attempts int, cause error) error
}

// Config configures a Watcher. Zero values take the defaults named
// on each field.
type Config struct {
	Host string
	Port int    // default 993 with TLS "tls", else 143
	TLS  string // "tls" (default, implicit TLS), "starttls" or "none"
	// TLSConfig is optional, e.g. for tests with self-signed certificates.
	// ServerName defaults to Host.
	TLSConfig *tls.Config
	Auth      string // "password" (default) or "xoauth2"
	Username  string
	// Password is the password, or the OAuth2 access token for "xoauth2"
	// unless OAuth2Token is set.
	Password string
	// OAuth2Token, when set, is asked for a fresh access token at every
	// login with "xoauth2" (tokens of Microsoft 365 live about an hour).
	OAuth2Token func(ctx context.Context) (string, error)

	Mailbox          string // watched mailbox, default "INBOX"
	ProcessedMailbox string // default "Processed"; created when absent
	ReviewMailbox    string // default "Review"; created when absent

	Idle         bool          // use IDLE when the server offers it
	PollInterval time.Duration // full pass at least this often, default 2m
	// IdleRefresh re-issues IDLE, default 9m, at most 10m: servers and
	// middleboxes drop idle connections silently (RFC 9051 §6.3.13 allows
	// a 30 min autologout; NAT gateways forget sooner).
	IdleRefresh    time.Duration
	MaxSize        int64         // larger messages are not downloaded, default 25 MiB
	CommandTimeout time.Duration // a server silent this long is dropped, default 60s
	// MaxAttempts is how often a message may fail for no passing reason
	// before it is quarantined (see Quarantiner). Default 3.
	MaxAttempts int
	Logger      *slog.Logger
}

// State persists UIDVALIDITY and the last processed UID per mailbox,
// and the time of the last successful pass.
type State interface {
	// IMAPState returns ErrNotFound when nothing is stored for the mailbox.
	IMAPState(ctx context.Context, mailbox string) (uidValidity, lastUID uint32, err error)
	// SaveIMAPState stores the position; a zero syncedAt keeps the stored
	// time of the last pass.
	SaveIMAPState(ctx context.Context, mailbox string, uidValidity, lastUID uint32, syncedAt time.Time) error
}

// Stats counts what a Watcher did since it was created.
type Stats struct {
	Fetched      uint64 // messages handed to the Processor
	Processed    uint64 // moved to the processed folder
	Reviewed     uint64 // moved to the review folder
	Kept         uint64 // left in place (mailflow.FolderKeep)
	Reconnects   uint64 // connections opened after the first
	IdleRestarts uint64 // IDLE re-issued by the refresh timer
	Errors       uint64 // failed connections and passes, processor errors, panics
	Panics       uint64 // recovered panics (also counted in Errors)
	// Unprocessable counts messages filed for review after MaxAttempts
	// failures (also counted in Reviewed).
	Unprocessable uint64
	// Unrecorded counts those of them whose Quarantine failed: they are in
	// the review folder, but no person was told.
	Unrecorded uint64
}

// Watcher watches one IMAP mailbox and hands every new message to a
// Processor, then files it away (docs/design.md §4, "IMAP").
type Watcher struct {
	cfg   Config
	state State
	proc  Processor
	log   *slog.Logger

	// exists is signalled by the client's unilateral-data handler, which
	// runs in the client's reader goroutine and must never issue a
	// command; poke by Poke. Both hold at most one pending wake-up.
	exists chan struct{}
	poke   chan struct{}

	lastSync atomic.Int64 // unix nanoseconds; 0: never

	fetched, processed, reviewed, kept     atomic.Uint64
	reconnects, idleRestarts, errs, panics atomic.Uint64
	unprocessable, unrecorded              atomic.Uint64

	// Only touched by the goroutine running Run.
	uidValidity uint32
	lastUID     uint32
	// flagged holds UIDs copied away and marked \Deleted but not yet
	// expunged, on servers without MOVE and UIDPLUS (see expungeOwn).
	flagged imap.UIDSet
	// failures counts the failed attempts per message that a Quarantiner
	// blamed on the message. It lives in memory: a restart gives a bad
	// message MaxAttempts more tries, which costs seconds, while a table
	// would need a schema change and a database write in the very moment
	// the database may be what fails. A pass stops at the first failed
	// message, so the map holds few entries; they go when the message is
	// processed or quarantined.
	failures map[msgKey]int
}

// msgKey names one message for good: a UID is only unique together with
// its mailbox's UIDVALIDITY (RFC 9051 §2.3.1.1).
type msgKey struct {
	mailbox     string
	uidValidity uint32
	uid         uint32
}

// Defaults of Config.
const (
	defaultPollInterval   = 2 * time.Minute
	defaultIdleRefresh    = 9 * time.Minute
	maxIdleRefresh        = 10 * time.Minute
	defaultMaxSize        = 25 << 20
	defaultCommandTimeout = 60 * time.Second
	defaultMaxAttempts    = 3
	maxBackoff            = time.Minute
	fetchBatch            = 200 // UIDs per metadata FETCH
)

// New returns a watcher; Run starts it.
func New(cfg Config, state State, p Processor) *Watcher {
	if cfg.TLS == "" {
		cfg.TLS = "tls"
	}
	if cfg.Port == 0 {
		cfg.Port = 143
		if cfg.TLS == "tls" {
			cfg.Port = 993
		}
	}
	if cfg.Auth == "" {
		cfg.Auth = "password"
	}
	if cfg.Mailbox == "" {
		cfg.Mailbox = "INBOX"
	}
	if cfg.ProcessedMailbox == "" {
		cfg.ProcessedMailbox = "Processed"
	}
	if cfg.ReviewMailbox == "" {
		cfg.ReviewMailbox = "Review"
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = defaultPollInterval
	}
	if cfg.IdleRefresh <= 0 {
		cfg.IdleRefresh = defaultIdleRefresh
	}
	cfg.IdleRefresh = min(cfg.IdleRefresh, maxIdleRefresh)
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = defaultMaxSize
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = defaultCommandTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = defaultMaxAttempts
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{
		cfg:      cfg,
		state:    state,
		proc:     p,
		log:      log.With("mailbox", cfg.Mailbox),
		exists:   make(chan struct{}, 1),
		poke:     make(chan struct{}, 1),
		failures: map[msgKey]int{},
	}
}

// LastSync is when the last pass over the mailbox completed; the zero time
// before the first. A pass runs at least every PollInterval, also with
// IDLE, so /readyz can compare its age with twice the poll interval.
func (w *Watcher) LastSync() time.Time {
	n := w.lastSync.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Stats returns the counters.
func (w *Watcher) Stats() Stats {
	return Stats{
		Fetched:      w.fetched.Load(),
		Processed:    w.processed.Load(),
		Reviewed:     w.reviewed.Load(),
		Kept:         w.kept.Load(),
		Reconnects:   w.reconnects.Load(),
		IdleRestarts: w.idleRestarts.Load(),
		Errors:       w.errs.Load(),
		Panics:       w.panics.Load(),

		Unprocessable: w.unprocessable.Load(),
		Unrecorded:    w.unrecorded.Load(),
	}
}

// Poke asks for a pass now. It never blocks; pokes while one is pending
// are merged.
func (w *Watcher) Poke() { signal(w.poke) }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run watches the mailbox until ctx ends, then returns nil. Connection,
// server and processor errors are logged and retried, with exponential
// backoff and jitter up to a minute between connections; only an invalid
// configuration is returned as an error. Run a Watcher once at a time.
func (w *Watcher) Run(ctx context.Context) error {
	if err := w.check(); err != nil {
		return err
	}
	failures := 0
	for first := true; ; first = false {
		if !first {
			w.reconnects.Add(1)
		}
		healthy, err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		w.errs.Add(1)
		if healthy {
			failures = 0
		}
		d := backoff(failures)
		failures++
		level := slog.LevelWarn
		if failures > 3 { // not a blip: wrong password, server gone
			level = slog.LevelError
		}
		w.log.Log(ctx, level, "imap: connection failed, reconnecting", "err", err, "in", d.Round(time.Millisecond), "failures", failures)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-w.poke: // an operator asking for a pass need not wait out the backoff
			t.Stop()
		}
	}
}

func (w *Watcher) check() error {
	switch w.cfg.TLS {
	case "tls", "starttls", "none":
	default:
		return fmt.Errorf("mailflow: imap: tls must be \"tls\", \"starttls\" or \"none\", not %q", w.cfg.TLS)
	}
	switch w.cfg.Auth {
	case "password", "xoauth2":
	default:
		return fmt.Errorf("mailflow: imap: auth must be \"password\" or \"xoauth2\", not %q", w.cfg.Auth)
	}
	if w.cfg.Host == "" {
		return errors.New("mailflow: imap: host is empty")
	}
	if w.state == nil || w.proc == nil {
		return errors.New("mailflow: imap: watcher needs a state store and a processor")
	}
	return nil
}

// backoff is the wait before connection attempt n+1: 1s, 2s, 4s … capped at
// maxBackoff, each drawn from its upper half so that several daemons do not
// reconnect in step.
func backoff(n int) time.Duration {
	d := maxBackoff
	if n < 6 {
		d = min(time.Second<<n, maxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}

// retryError stops a pass on a failure that is no fault of the connection
// (the processor or the state store failed, a message did not come back):
// the session goes on and the pass is retried later.
type retryError struct{ err error }

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// session runs one connection: log in, prepare the folders, select the
// mailbox, then alternate passes and waits until an error. healthy reports
// that at least one pass completed, which resets the reconnect backoff.
func (w *Watcher) session(ctx context.Context) (healthy bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			w.panics.Add(1)
			err = fmt.Errorf("mailflow: imap: panic: %v", v)
			w.log.Error("imap: panic in watcher", "err", err, "stack", string(debug.Stack()))
		}
	}()
	c, err := w.connect(ctx)
	if err != nil {
		return false, err
	}
	defer c.Close()
	// go-imap has no contexts: closing the connection unblocks any command.
	defer context.AfterFunc(ctx, func() { c.Close() })()

	if err := w.login(ctx, c); err != nil {
		return false, err
	}
	stop := w.guard(c, "CAPABILITY")
	caps := c.Caps()
	stop()
	if caps == nil {
		return false, errors.New("mailflow: imap: no capabilities after login")
	}
	if err := w.ensureFolders(c); err != nil {
		return false, err
	}
	if err := w.selectMailbox(ctx, c); err != nil {
		return false, err
	}
	idle := w.cfg.Idle && caps.Has(imap.CapIdle)
	w.log.Info("imap: connected", "host", w.cfg.Host, "idle", idle,
		"move", caps.Has(imap.CapMove), "uidplus", caps.Has(imap.CapUIDPlus), "last_uid", w.lastUID)

	retries := 0
	for {
		next := time.Now().Add(w.cfg.PollInterval)
		err := w.pass(ctx, c)
		var re *retryError
		switch {
		case ctx.Err() != nil:
			return healthy, ctx.Err()
		case errors.As(err, &re):
			w.errs.Add(1)
			d := min(backoff(retries), w.cfg.PollInterval)
			retries++
			w.log.Error("imap: pass failed, the message stays for the next one", "err", re.err, "retry_in", d.Round(time.Millisecond))
			next = time.Now().Add(d)
		case err != nil:
			return healthy, err
		default:
			healthy, retries = true, 0
		}
		if err := w.wait(ctx, c, idle, next); err != nil {
			return healthy, err
		}
	}
}

// guard closes c unless the returned stop is called within the command
// timeout: go-imap waits for a response forever, and a server that stops
// answering (or a connection dropped by a middlebox) must not stall us.
func (w *Watcher) guard(c interface{ Close() error }, what string) (stop func() bool) {
	t := time.AfterFunc(w.cfg.CommandTimeout, func() {
		w.log.Warn("imap: server did not answer, closing connection", "command", what, "timeout", w.cfg.CommandTimeout)
		c.Close()
	})
	return t.Stop
}

// connect dials and reads the greeting. The TCP and TLS set-up is ours, so
// that a silent server is guarded here too (DialStartTLS would wait for the
// STARTTLS response forever).
func (w *Watcher) connect(ctx context.Context) (*imapclient.Client, error) {
	addr := net.JoinHostPort(w.cfg.Host, strconv.Itoa(w.cfg.Port))
	opts := &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil { // EXISTS (RFC 9051 §7.4.1)
					signal(w.exists)
				}
			},
		},
	}
	var tlsConfig *tls.Config
	if w.cfg.TLS != "none" {
		tlsConfig = &tls.Config{}
		if w.cfg.TLSConfig != nil {
			tlsConfig = w.cfg.TLSConfig.Clone()
		}
		if tlsConfig.ServerName == "" {
			tlsConfig.ServerName = w.cfg.Host
		}
		if tlsConfig.NextProtos == nil {
			tlsConfig.NextProtos = []string{"imap"}
		}
		opts.TLSConfig = tlsConfig
	}
	dialer := &net.Dialer{Timeout: w.cfg.CommandTimeout}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mailflow: imap: dial %s: %w", addr, err)
	}
	stop := w.guard(conn, "greeting")
	defer stop()
	var c *imapclient.Client
	switch w.cfg.TLS {
	case "tls":
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("mailflow: imap: tls handshake with %s: %w", addr, err)
		}
		c = imapclient.New(tc, opts)
	case "starttls":
		c, err = imapclient.NewStartTLS(conn, opts)
		if err != nil {
			return nil, fmt.Errorf("mailflow: imap: starttls with %s: %w", addr, err)
		}
	default:
		c = imapclient.New(conn, opts)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("mailflow: imap: greeting from %s: %w", addr, err)
	}
	return c, nil
}

// login authenticates with LOGIN (or AUTHENTICATE PLAIN where LOGIN is
// disabled) or with XOAUTH2. Credentials never reach the log.
func (w *Watcher) login(ctx context.Context, c *imapclient.Client) error {
	stop := w.guard(c, "login")
	defer stop()
	var err error
	switch w.cfg.Auth {
	case "xoauth2":
		token := w.cfg.Password
		if w.cfg.OAuth2Token != nil {
			if token, err = w.cfg.OAuth2Token(ctx); err != nil {
				return fmt.Errorf("mailflow: imap: get oauth2 token: %w", err)
			}
		}
		err = c.Authenticate(&xoauth2Client{user: w.cfg.Username, token: token})
	default:
		if c.Caps().Has(imap.CapLoginDisabled) {
			err = c.Authenticate(sasl.NewPlainClient("", w.cfg.Username, w.cfg.Password))
		} else {
			err = c.Login(w.cfg.Username, w.cfg.Password).Wait()
		}
	}
	if err != nil {
		return fmt.Errorf("mailflow: imap: login as %s: %w", w.cfg.Username, err)
	}
	return nil
}

// xoauth2Client is the SASL XOAUTH2 mechanism of Google and Microsoft,
// which go-sasl lacks (it has OAUTHBEARER, RFC 7628, which Microsoft 365
// does not offer for IMAP).
type xoauth2Client struct{ user, token string }

func (a *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

// Next answers the error challenge (a JSON status) with an empty response,
// after which the server fails the command.
func (a *xoauth2Client) Next(challenge []byte) ([]byte, error) { return []byte{}, nil }

// ensureFolders creates the processed and review folders when absent.
func (w *Watcher) ensureFolders(c *imapclient.Client) error {
	for _, name := range []string{w.cfg.ProcessedMailbox, w.cfg.ReviewMailbox} {
		stop := w.guard(c, "LIST")
		list, err := c.List("", name, nil).Collect()
		stop()
		if err != nil {
			return fmt.Errorf("mailflow: imap: list %s: %w", name, err)
		}
		if slices.ContainsFunc(list, func(d *imap.ListData) bool { return d.Mailbox == name }) {
			continue
		}
		stop = w.guard(c, "CREATE")
		err = c.Create(name, nil).Wait()
		stop()
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists {
			continue
		}
		if err != nil {
			return fmt.Errorf("mailflow: imap: create %s: %w", name, err)
		}
		w.log.Info("imap: created folder", "folder", name)
		// Clients often show subscribed folders only; the coordinator
		// must see the review folder.
		stop = w.guard(c, "SUBSCRIBE")
		if err := c.Subscribe(name).Wait(); err != nil {
			w.log.Warn("imap: subscribe failed", "folder", name, "err", err)
		}
		stop()
	}
	return nil
}

// selectMailbox selects the watched mailbox and checks its UIDVALIDITY
// against the stored one (RFC 9051 §2.3.1.1): when it changed, the UIDs
// mean other messages and the mailbox is read again from the start.
func (w *Watcher) selectMailbox(ctx context.Context, c *imapclient.Client) error {
	stop := w.guard(c, "SELECT")
	data, err := c.Select(w.cfg.Mailbox, nil).Wait()
	stop()
	if err != nil {
		return fmt.Errorf("mailflow: imap: select: %w", err)
	}
	uv, last, err := w.state.IMAPState(ctx, w.cfg.Mailbox)
	switch {
	case errors.Is(err, mailflow.ErrNotFound):
		uv, last = data.UIDValidity, 0
	case err != nil:
		return fmt.Errorf("mailflow: imap: load state: %w", err)
	case uv != data.UIDValidity:
		w.log.Warn("imap: UIDVALIDITY changed, reading the mailbox again from the start (duplicates are dropped by Message-ID)",
			"stored", uv, "server", data.UIDValidity, "last_uid", last)
		uv, last = data.UIDValidity, 0
		if err := w.state.SaveIMAPState(ctx, w.cfg.Mailbox, uv, last, time.Time{}); err != nil {
			return fmt.Errorf("mailflow: imap: save state: %w", err)
		}
	}
	if uv != w.uidValidity {
		w.flagged = nil
		clear(w.failures)
	}
	w.uidValidity, w.lastUID = uv, last
	return nil
}

// pass hands every message above the last processed UID to the processor,
// in UID order, one at a time; bodies are downloaded in small groups (see
// handleBatch), so memory stays bounded by max(groupBytes, MaxSize).
func (w *Watcher) pass(ctx context.Context, c *imapclient.Client) error {
	// Wake-ups until now are served by this pass; later ones cause another.
	select {
	case <-w.exists:
	default:
	}
	select {
	case <-w.poke:
	default:
	}
	if w.lastUID == math.MaxUint32 {
		return errors.New("mailflow: imap: UIDs exhausted; the server must change UIDVALIDITY")
	}
	var set imap.UIDSet
	set.AddRange(imap.UID(w.lastUID+1), 0) // lastUID+1:*
	stop := w.guard(c, "UID SEARCH")
	data, err := c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{set}}, nil).Wait()
	stop()
	if err != nil {
		return fmt.Errorf("mailflow: imap: search: %w", err)
	}
	// "n:*" also matches the highest UID when it is below n (RFC 9051
	// §6.4.8), so filter.
	var uids []imap.UID
	for _, uid := range data.AllUIDs() {
		if uint32(uid) > w.lastUID {
			uids = append(uids, uid)
		}
	}
	slices.Sort(uids)
	for len(uids) > 0 {
		batch := uids[:min(len(uids), fetchBatch)]
		uids = uids[len(batch):]
		if err := w.handleBatch(ctx, c, batch); err != nil {
			return err
		}
	}
	if err := w.expungeOwn(c); err != nil {
		return err
	}
	now := time.Now()
	if err := w.state.SaveIMAPState(ctx, w.cfg.Mailbox, w.uidValidity, w.lastUID, now); err != nil {
		return &retryError{fmt.Errorf("mailflow: imap: save state: %w", err)}
	}
	w.lastSync.Store(now.UnixNano())
	return nil
}

type msgMeta struct {
	size int64
	date time.Time
}

func (w *Watcher) handleBatch(ctx context.Context, c *imapclient.Client, batch []imap.UID) error {
	// Sizes first: a message over MaxSize is never downloaded.
	stop := w.guard(c, "UID FETCH")
	bufs, err := c.Fetch(imap.UIDSetNum(batch...), &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true}).Collect()
	stop()
	if err != nil {
		return fmt.Errorf("mailflow: imap: fetch sizes: %w", err)
	}
	meta := make(map[imap.UID]msgMeta, len(bufs))
	for _, b := range bufs {
		meta[b.UID] = msgMeta{size: b.RFC822Size, date: b.InternalDate}
	}
	// Groups of consecutive messages are downloaded with one FETCH and
	// filed with one MOVE per folder: against a remote server each round
	// trip costs more than processing a message. A group holds at most
	// groupMessages messages and groupBytes of bodies (or one message up
	// to MaxSize), so memory stays bounded.
	for len(batch) > 0 {
		n, bytes := 0, int64(0)
		for ; n < len(batch) && n < groupMessages; n++ {
			md, ok := meta[batch[n]]
			if !ok {
				break
			}
			size := md.size
			if size > w.cfg.MaxSize {
				size = 0 // not downloaded
			}
			if n > 0 && bytes+size > groupBytes {
				break
			}
			bytes += size
		}
		if n == 0 {
			// Most likely moved or expunged by someone else since the
			// search, and then the next search will not list it. Skipping
			// it here instead would lose it for good if the server merely
			// answered oddly, since later UIDs advance the position.
			return &retryError{fmt.Errorf("uid %d: no size in the FETCH response", batch[0])}
		}
		if err := w.handleGroup(ctx, c, batch[:n], meta); err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
}

// Bounds of the messages downloaded and filed together.
const (
	groupMessages = 50
	groupBytes    = 4 << 20
)

// handleGroup downloads a group of messages, hands them to the processor
// one at a time in UID order, then files them and advances the stored
// position. When the processor fails, the messages before the failed one
// are still filed and the position stops before it.
func (w *Watcher) handleGroup(ctx context.Context, c *imapclient.Client, group []imap.UID, meta map[imap.UID]msgMeta) error {
	var want []imap.UID
	for _, uid := range group {
		if meta[uid].size <= w.cfg.MaxSize {
			want = append(want, uid)
		}
	}
	var bodies map[imap.UID][]byte
	if len(want) > 0 {
		var err error
		if bodies, err = w.fetchBodies(c, want); err != nil {
			return err
		}
	}
	f := &filing{dests: map[string]*imap.UIDSet{}, count: map[string]int{}}
	for _, uid := range group {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m, ok := w.message(uid, meta[uid], bodies)
		if !ok {
			if err := w.file(ctx, c, f); err != nil {
				return err
			}
			return &retryError{fmt.Errorf("uid %d: no body in the FETCH response", uid)}
		}
		w.fetched.Add(1)
		dest, err := w.process(ctx, m)
		if err != nil && w.giveUp(ctx, m, err) {
			dest, err = mailflow.FolderReview, nil
		} else if err == nil && len(w.failures) > 0 {
			delete(w.failures, msgKey{m.Mailbox, m.UIDValidity, m.UID})
		}
		if len(m.Raw) > groupBytes {
			// Collect a large message now rather than when the heap has
			// doubled, which may be after the next large message is
			// downloaded (docs/benchmarks.md, memory run).
			m.Raw = nil
			runtime.GC()
		}
		if err != nil {
			if ferr := w.file(ctx, c, f); ferr != nil {
				return ferr
			}
			return &retryError{fmt.Errorf("uid %d: %w", uid, err)}
		}
		f.add(uid, dest, w.folder(uid, &dest))
		w.log.Debug("imap: message processed", "uid", uid, "dest", dest)
	}
	return w.file(ctx, c, f)
}

// message is the fetched message of uid; ok is false when its body is
// missing from the FETCH response. bodies gives up its reference, so the
// collector may have the bytes once they are processed.
func (w *Watcher) message(uid imap.UID, md msgMeta, bodies map[imap.UID][]byte) (m mailflow.FetchedMessage, ok bool) {
	m = mailflow.FetchedMessage{
		Mailbox:      w.cfg.Mailbox,
		UIDValidity:  w.uidValidity,
		UID:          uint32(uid),
		Size:         md.size,
		InternalDate: md.date,
		TooLarge:     md.size > w.cfg.MaxSize,
	}
	if !m.TooLarge {
		raw, found := bodies[uid]
		if !found {
			return m, false
		}
		delete(bodies, uid)
		if raw == nil {
			m.TooLarge = true // RFC822.SIZE understated it
		}
		m.Raw = raw
	}
	if m.TooLarge {
		w.log.Warn("imap: message too large, not downloaded", "uid", uid, "size", m.Size, "max", w.cfg.MaxSize)
	}
	return m, true
}

// folder is the mailbox a processed message goes to ("" to leave it); an
// unknown destination is corrected to review.
func (w *Watcher) folder(uid imap.UID, dest *string) string {
	switch *dest {
	case mailflow.FolderKeep:
		return ""
	case mailflow.FolderProcessed:
		return w.cfg.ProcessedMailbox
	case mailflow.FolderReview:
		return w.cfg.ReviewMailbox
	}
	w.log.Error("imap: processor returned an unknown destination, filing for review", "uid", uid, "dest", *dest)
	*dest = mailflow.FolderReview
	return w.cfg.ReviewMailbox
}

// filing collects where the processed messages of a group go, so that
// each folder takes one MOVE.
type filing struct {
	dests map[string]*imap.UIDSet // folder → UIDs
	order []string                // folders in first-use order
	count map[string]int          // per destination, for the stats
	done  uint32                  // highest UID handed over successfully
}

func (f *filing) add(uid imap.UID, dest, folder string) {
	if folder != "" {
		if f.dests[folder] == nil {
			f.dests[folder] = &imap.UIDSet{}
			f.order = append(f.order, folder)
		}
		f.dests[folder].AddNum(uid)
	}
	f.count[dest]++
	f.done = uint32(uid)
}

// file moves what f collected and stores the last UID handed over.
func (w *Watcher) file(ctx context.Context, c *imapclient.Client, f *filing) error {
	for _, folder := range f.order {
		if err := w.move(c, *f.dests[folder], folder); err != nil {
			return err
		}
	}
	w.processed.Add(uint64(f.count[mailflow.FolderProcessed]))
	w.reviewed.Add(uint64(f.count[mailflow.FolderReview]))
	w.kept.Add(uint64(f.count[mailflow.FolderKeep]))
	f.order, f.count = nil, map[string]int{}
	clear(f.dests)
	if f.done == 0 {
		return nil
	}
	w.lastUID = f.done
	if err := w.state.SaveIMAPState(ctx, w.cfg.Mailbox, w.uidValidity, w.lastUID, time.Time{}); err != nil {
		// Filed but not recorded: next time the messages are either
		// gone from the mailbox or deduplicated by the processor.
		return &retryError{fmt.Errorf("mailflow: imap: save state: %w", err)}
	}
	return nil
}

// process calls the processor, turning a panic into an error.
func (w *Watcher) process(ctx context.Context, m mailflow.FetchedMessage) (dest string, err error) {
	defer func() {
		if v := recover(); v != nil {
			w.panics.Add(1)
			err = fmt.Errorf("processor panic: %v", v)
			w.log.Error("imap: panic in processor", "err", err, "uid", m.UID, "stack", string(debug.Stack()))
		}
	}()
	return w.proc.Process(ctx, m)
}

// giveUp counts a failure of m and reports whether m is to be filed for
// review: after MaxAttempts failures that were not transient. Then the
// processor records the message as unprocessable; if even that fails the
// message is still filed, so the inbox keeps flowing, and the loss is
// logged and counted.
func (w *Watcher) giveUp(ctx context.Context, m mailflow.FetchedMessage, cause error) bool {
	q, ok := w.proc.(Quarantiner)
	if !ok || ctx.Err() != nil {
		return false
	}
	if why := w.transient(ctx, q, cause); why != "" {
		w.log.Warn("imap: processing failed for a passing reason; the message waits", "uid", m.UID, "why", why)
		return false
	}
	key := msgKey{m.Mailbox, m.UIDValidity, m.UID}
	w.failures[key]++
	n := w.failures[key]
	if n < w.cfg.MaxAttempts {
		return false
	}
	delete(w.failures, key)
	w.unprocessable.Add(1)
	w.log.Error("imap: message failed repeatedly, not for a passing reason; filing it for review",
		"uid", m.UID, "attempts", n, "err", cause)
	if err := w.quarantine(ctx, q, m, n, cause); err != nil {
		w.unrecorded.Add(1)
		w.log.Error("imap: could not record the unprocessable message; filing it for review unrecorded",
			"uid", m.UID, "err", err)
	}
	return true
}

// transient and quarantine call the Quarantiner, turning a panic into an
// error like process does; a panic in Transient counts as passing, so
// that a bug there files nothing away.
func (w *Watcher) transient(ctx context.Context, q Quarantiner, cause error) (why string) {
	defer func() {
		if v := recover(); v != nil {
			w.panics.Add(1)
			why = fmt.Sprintf("panic in Transient: %v", v)
			w.log.Error("imap: panic in processor", "err", why, "stack", string(debug.Stack()))
		}
	}()
	return q.Transient(ctx, cause)
}

func (w *Watcher) quarantine(ctx context.Context, q Quarantiner, m mailflow.FetchedMessage, attempts int, cause error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			w.panics.Add(1)
			err = fmt.Errorf("mailflow: imap: quarantine: panic: %v", v)
		}
	}()
	return q.Quarantine(ctx, m, attempts, cause)
}

// fetchBodies downloads messages with BODY.PEEK[], which leaves \Seen
// alone (RFC 9051 §6.4.5): nothing looks read before it is stored. Each
// literal is streamed into a buffer of its announced size, at most
// MaxSize; a larger literal is drained and its UID maps to nil. A UID the
// server no longer has is absent from the map.
//
// A literal that cannot be read to its end means the connection broke in
// the middle of a download. Then the connection is closed and the command
// left undrained: go-imap's reader goroutine goes on decoding as soon as a
// literal read fails, and draining the command (FetchCommand.Close reads
// the rest of the literal) would read the connection from two goroutines
// at once. The session ends; what was not filed is fetched again after
// the reconnect.
func (w *Watcher) fetchBodies(c *imapclient.Client, uids []imap.UID) (map[imap.UID][]byte, error) {
	// The guard restarts on every read, so a slow but steady download of
	// a large message is not cut off; a stalled one is.
	t := time.AfterFunc(w.cfg.CommandTimeout, func() {
		w.log.Warn("imap: server stalled during fetch, closing connection", "uids", len(uids))
		c.Close()
	})
	defer t.Stop()
	cmd := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	broken := false
	defer func() {
		if !broken {
			cmd.Close()
		}
	}()
	out := make(map[imap.UID][]byte, len(uids))
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		// The UID may come before or after the body (RFC 9051 §7.5.2).
		var uid imap.UID
		var raw []byte
		found := false
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = item.UID
			case imapclient.FetchItemDataBodySection:
				if item.Literal == nil {
					continue
				}
				found = true
				r := &progressReader{r: item.Literal, t: t, d: w.cfg.CommandTimeout}
				var err error
				if size := item.Literal.Size(); size <= w.cfg.MaxSize {
					raw = make([]byte, size)
					_, err = io.ReadFull(r, raw)
				} else {
					_, err = io.Copy(io.Discard, r)
				}
				if err != nil {
					broken = true
					c.Close()
					return nil, fmt.Errorf("mailflow: imap: fetch %d messages: connection broken during a download: %w", len(uids), err)
				}
			}
		}
		if found && uid != 0 {
			out[uid] = raw
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, fmt.Errorf("mailflow: imap: fetch %d messages: %w", len(uids), err)
	}
	return out, nil
}

type progressReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.t.Reset(p.d)
	}
	return n, err
}

// move files messages in one command. With MOVE (RFC 6851) it is one
// command. Without MOVE but with UIDPLUS, go-imap's fallback COPY + STORE
// \Deleted + UID EXPUNGE touches only these messages. Without either, a
// plain EXPUNGE would also remove every message someone else marked
// \Deleted (a coordinator's client may keep deleted mail visible until it
// expunges), so the messages are copied and flagged here and expunged
// later by expungeOwn.
func (w *Watcher) move(c *imapclient.Client, set imap.UIDSet, folder string) error {
	caps := c.Caps()
	stop := w.guard(c, "UID MOVE")
	defer stop()
	if caps.Has(imap.CapMove) || caps.Has(imap.CapUIDPlus) {
		if _, err := c.Move(set, folder).Wait(); err != nil {
			return fmt.Errorf("mailflow: imap: move uid %s to %s: %w", set, folder, err)
		}
		return nil
	}
	if _, err := c.Copy(set, folder).Wait(); err != nil {
		return fmt.Errorf("mailflow: imap: copy uid %s to %s: %w", set, folder, err)
	}
	store := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil)
	if err := store.Close(); err != nil {
		return fmt.Errorf("mailflow: imap: flag uid %s deleted: %w", set, err)
	}
	w.flagged = append(w.flagged, set...)
	return nil
}

// expungeOwn removes the messages move copied and flagged, on servers
// without MOVE and UIDPLUS, but only when no other message in the mailbox
// is marked \Deleted: EXPUNGE there cannot be limited to our UIDs. While a
// foreign \Deleted message exists ours stay, flagged, and are expunged by a
// later pass. A message flagged by another client between our SEARCH and
// EXPUNGE would be expunged with ours; that client had asked for its
// deletion already, so only its undo is lost. After a restart the set is
// empty and leftover flagged copies wait for someone's expunge.
func (w *Watcher) expungeOwn(c *imapclient.Client) error {
	if len(w.flagged) == 0 {
		return nil
	}
	stop := w.guard(c, "UID SEARCH DELETED")
	data, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagDeleted}}, nil).Wait()
	stop()
	if err != nil {
		return fmt.Errorf("mailflow: imap: search deleted: %w", err)
	}
	deleted := data.AllUIDs()
	var ours imap.UIDSet
	foreign := 0
	for _, uid := range deleted {
		if w.flagged.Contains(uid) {
			ours.AddNum(uid)
		} else {
			foreign++
		}
	}
	w.flagged = ours // forget what is gone or was undeleted
	if foreign > 0 {
		w.log.Info("imap: other messages are marked deleted; leaving ours flagged until they are gone",
			"ours", len(deleted)-foreign, "foreign", foreign)
		return nil
	}
	if len(ours) == 0 {
		return nil
	}
	stop = w.guard(c, "EXPUNGE")
	err = c.Expunge().Close()
	stop()
	if err != nil {
		return fmt.Errorf("mailflow: imap: expunge: %w", err)
	}
	w.flagged = nil
	return nil
}

// wait returns when the next pass is due: on EXISTS (with IDLE), Poke, or
// the poll timer. With IDLE the command is re-issued every IdleRefresh.
func (w *Watcher) wait(ctx context.Context, c *imapclient.Client, idle bool, next time.Time) error {
	poll := time.NewTimer(time.Until(next))
	defer poll.Stop()
	if !idle {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Closed():
			return errors.New("mailflow: imap: connection closed")
		case <-w.poke:
		case <-w.exists:
		case <-poll.C:
		}
		return nil
	}
	for {
		// NOOP first: a message that arrived after the pass's last command
		// is reported with its response. Servers need not report updates
		// queued before IDLE began (go-imap's server does not), so without
		// it such a message would wait for the poll timer.
		stop := w.guard(c, "NOOP")
		err := c.Noop().Wait()
		stop()
		if err != nil {
			return fmt.Errorf("mailflow: imap: noop: %w", err)
		}
		select {
		case <-w.exists: // arrived with the last responses of the pass
			return nil
		case <-w.poke:
			return nil
		default:
		}
		stop = w.guard(c, "IDLE")
		cmd, err := c.Idle() // RFC 2177; RFC 9051 §6.3.13
		stop()
		if err != nil {
			return fmt.Errorf("mailflow: imap: idle: %w", err)
		}
		refresh := time.NewTimer(w.cfg.IdleRefresh)
		restart := false
		select {
		case <-ctx.Done():
			refresh.Stop()
			return ctx.Err() // the deferred Close ends the session
		case <-c.Closed():
			refresh.Stop()
			cmd.Close()
			return errors.New("mailflow: imap: connection closed during IDLE")
		case <-w.exists:
		case <-w.poke:
		case <-poll.C:
		case <-refresh.C:
			restart = true
		}
		refresh.Stop()
		// DONE, then wait for the tagged OK: a dead connection shows here.
		stop = w.guard(c, "DONE")
		err = cmd.Close()
		if err == nil {
			err = cmd.Wait()
		}
		stop()
		if err != nil {
			return fmt.Errorf("mailflow: imap: end idle: %w", err)
		}
		if !restart {
			return nil
		}
		w.idleRestarts.Add(1)
		w.log.Debug("imap: re-issuing IDLE")
	}
}
