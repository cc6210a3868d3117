package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"mailflow/mailflow"
	"math/rand/v2"
	"net/textproto"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"
)

// Store is what the Sender needs from the store; storage.Store
// implements it.
type Store interface {
	// InTx runs fn in one transaction; the Sender enqueues alerts with it.
	InTx(ctx context.Context, fn func(mailflow.Tx) error) error
	// ClaimOutbox leases up to limit due rows until now+lease.
	ClaimOutbox(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]*mailflow.OutboxMessage, error)
	// MarkSentMany records delivered rows.
	MarkSentMany(ctx context.Context, ids []int64, at time.Time) error
	MarkRetry(ctx context.Context, id int64, next time.Time, reason string) error
	// ReleaseOutbox ends the claims on rows the sender will not send.
	ReleaseOutbox(ctx context.Context, ids []int64) error
	// MarkFailed reports whether this call changed the row, so an alert
	// goes out once.
	MarkFailed(ctx context.Context, id int64, reason string) (bool, error)
	// NextOutboxDue returns when the earliest pending row is due.
	NextOutboxDue(ctx context.Context) (time.Time, bool, error)
	// OutboxStats counts rows per status and the age of the oldest pending one.
	OutboxStats(ctx context.Context, now time.Time) (map[string]int, time.Duration, error)
}

// SMTPConfig is how the Sender reaches its submission server.
type SMTPConfig struct {
	Host string
	// Port; default 587 with starttls, 465 with tls, 25 with none.
	Port int
	// TLS is "starttls" (default, required), "tls" (implicit TLS) or "none".
	TLS string
	// Username and Password log in with the strongest SASL mechanism the
	// server offers; without TLS (a relay on loopback) with PLAIN.
	Username string
	Password string
	// RootCAs verify the server's certificate; nil: the system's.
	RootCAs *x509.CertPool
}

// smtpTimeout bounds the dial and each message's transaction.
const smtpTimeout = 30 * time.Second

// Config configures the outbox Sender.
type Config struct {
	SMTP SMTPConfig
	// Concurrency is the number of workers, each with its own reused
	// connection; default 4.
	Concurrency int
	// Rate limits messages per second over all workers; 0 is unlimited.
	Rate float64
	// Batch is how many rows the sender claims and holds at most; default
	// 32. Rows are claimed when half of them are out.
	Batch int
	// Lease is how long a claimed row is reserved for this sender; a row
	// whose sender died is sent again once its lease ends. Default 5m.
	Lease time.Duration
	// BackoffBase and BackoffMax bound the exponential backoff after a
	// temporary failure; defaults 1m and 1h. Each delay is jittered.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxAge turns a temporary failure of a row older than this into a
	// permanent one; default 120h, Postfix's maximal_queue_lifetime.
	MaxAge time.Duration
	// PollInterval is the longest the sender sleeps without looking at
	// the outbox, for rows enqueued by other processes; default 30s.
	PollInterval time.Duration
	// IdleTimeout closes a worker's connection after this long without a
	// message; default 30s.
	IdleTimeout time.Duration
	// Alerts composes the coordinator alert for a permanent failure; nil
	// sends none.
	Alerts mailflow.Alerter
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time

	// EnvelopeSender, if set, gives the MAIL FROM of a message in place of
	// its stored Sender (a null sender stays null): a per-message bounce
	// address (VERP) that names the outbox row by a secret token. The raw
	// bytes are unchanged, since the envelope is not part of them.
	EnvelopeSender func(*mailflow.OutboxMessage) string
}

// Stats counts what the Sender did since it started.
type Stats struct {
	Sent    atomic.Int64 // delivered rows
	Failed  atomic.Int64 // rows marked failed (permanent failure)
	Retried atomic.Int64 // temporary failures, each rescheduled
	Panics  atomic.Int64 // recovered panics
}

// Sender delivers the outbox: a dispatcher claims due rows in batches and
// hands them to workers, each of which keeps one SMTP connection open
// and sends the stored raw bytes unchanged, so a resend is byte-identical; delivered rows are
// marked sent in batches too. Temporary failures (4xx, network) are
// retried with exponential backoff and jitter; permanent ones (5xx) mark
// the row failed and alert the coordinator once.
//
// Delivery is at least once: a message whose 250 reply arrived but whose
// row was not yet marked when the process died is sent again, with the
// same Message-ID, after restart.
type Sender struct {
	store  Store
	cfg    Config
	client *gomail.Client // configuration for dialing; each worker has its own connection
	log    *slog.Logger
	wake   chan struct{}
	limit  *limiter

	// Stats are the Sender's counters.
	Stats Stats

	mu      sync.Mutex
	connErr error
	connAt  time.Time
}

// New checks the configuration and returns a Sender; Run starts it.
func New(store Store, cfg Config) (*Sender, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 5 * time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 32
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = time.Minute
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = time.Hour
	}
	if cfg.BackoffMax < cfg.BackoffBase {
		cfg.BackoffMax = cfg.BackoffBase
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 120 * time.Hour
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 30 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client, err := newSMTPClient(cfg.SMTP)
	if err != nil {
		return nil, err
	}
	s := &Sender{store: store, cfg: cfg, client: client, log: cfg.Logger, wake: make(chan struct{}, 1)}
	if cfg.Rate > 0 {
		s.limit = &limiter{interval: time.Duration(float64(time.Second) / cfg.Rate)}
	}
	return s, nil
}

func newSMTPClient(c SMTPConfig) (*gomail.Client, error) {
	if c.Host == "" {
		return nil, errors.New("mailflow: smtp: host is required")
	}
	opts := []gomail.Option{gomail.WithTimeout(smtpTimeout), gomail.WithoutSMTPUTF8()}
	// go-mail's WithTLSConfig replaces its default, ServerName included.
	tlsConf := &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12, RootCAs: c.RootCAs}
	port := c.Port
	switch c.TLS {
	case "", "starttls":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory), gomail.WithTLSConfig(tlsConf))
		if port == 0 {
			port = 587
		}
	case "tls":
		opts = append(opts, gomail.WithSSL(), gomail.WithTLSConfig(tlsConf))
		if port == 0 {
			port = 465
		}
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
		if port == 0 {
			port = 25
		}
	default:
		return nil, fmt.Errorf("mailflow: smtp: tls must be starttls, tls or none, not %q", c.TLS)
	}
	opts = append(opts, gomail.WithPort(port))
	if c.Username != "" {
		// go-mail's discovery never picks a clear-text mechanism without
		// TLS, and refuses PLAIN in clear text to anything but localhost.
		auth := gomail.SMTPAuthAutoDiscover
		if c.TLS == "none" {
			auth = gomail.SMTPAuthPlainNoEnc
		}
		opts = append(opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(c.Username), gomail.WithPassword(c.Password))
	}
	client, err := gomail.NewClient(c.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("mailflow: smtp: %w", err)
	}
	return client, nil
}

// Wake makes the Sender look at the outbox now; it never blocks. Call it
// after committing a transaction that enqueued messages (Flow.OnEnqueue).
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Ready reports the result of the latest connection attempt: nil once a
// connection to the SMTP server succeeded and none failed since, for
// /readyz.
func (s *Sender) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.connAt.IsZero() {
		return nil // nothing sent yet: no evidence either way
	}
	return s.connErr
}

func (s *Sender) setConn(err error) {
	s.mu.Lock()
	s.connErr, s.connAt = err, time.Now()
	s.mu.Unlock()
}

// QueueDepth returns the number of pending rows and the age of the oldest.
func (s *Sender) QueueDepth(ctx context.Context) (int, time.Duration, error) {
	counts, age, err := s.store.OutboxStats(ctx, s.cfg.Now())
	if err != nil {
		return 0, 0, err
	}
	return counts[mailflow.OutboxPending], age, nil
}

// Run sends until ctx ends, then lets the workers finish the messages they
// are sending, hands back the claims on the rows they have not started and
// closes the connections. It returns nil after a shutdown.
func (s *Sender) Run(ctx context.Context) error {
	batch := s.batch()
	jobs := make(chan *mailflow.OutboxMessage, batch) // never fuller than inflight
	sent := make(chan int64, batch)
	freed := make(chan struct{}, 1)
	var inflight atomic.Int64 // claimed rows not yet handled
	release := func() {
		inflight.Add(-1)
		select {
		case freed <- struct{}{}:
		default:
		}
	}
	var marker, workers sync.WaitGroup
	marker.Go(func() { s.markSent(sent) })
	for range s.cfg.Concurrency {
		workers.Go(func() { s.worker(ctx, jobs, sent, release) })
	}
	defer func() {
		close(jobs)
		workers.Wait()
		close(sent)
		marker.Wait()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		// Refill when half a batch is left: rows are claimed (and, below,
		// marked sent) in batches, one transaction for many messages,
		// while the workers always have the next row at hand.
		for inflight.Load() > int64(batch/2) {
			select {
			case <-ctx.Done():
				return nil
			case <-freed:
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		free := batch - int(inflight.Load())
		msgs, err := s.claim(ctx, free)
		inflight.Add(int64(len(msgs)))
		for _, m := range msgs {
			jobs <- m
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Error("outbox: claim", "err", err)
			timer.Reset(min(s.cfg.PollInterval, 5*time.Second))
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
			}
			continue
		}
		if len(msgs) == free {
			continue // there may be more due
		}
		// Everything due is out: sleep until the next row is due, a
		// wake-up, or the poll interval (rows enqueued by other processes).
		d := s.cfg.PollInterval
		if next, ok, err := s.store.NextOutboxDue(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Error("outbox: next due", "err", err)
		} else if ok {
			d = min(d, max(time.Until(next), time.Millisecond))
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// batch is how many rows the sender holds at most: enough to keep every
// worker busy between claims, and with a rate limit few enough that the
// last of them is sent well within its lease.
func (s *Sender) batch() int {
	b := max(s.cfg.Batch, s.cfg.Concurrency)
	if s.cfg.Rate > 0 {
		b = min(b, max(s.cfg.Concurrency, int(s.cfg.Rate*s.cfg.Lease.Seconds()/4)))
	}
	return b
}

// claim leases rows, turning a panic into an error so the loop goes on.
func (s *Sender) claim(ctx context.Context, limit int) (msgs []*mailflow.OutboxMessage, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.Stats.Panics.Add(1)
			s.log.Error("outbox: panic in dispatcher", "err", fmt.Errorf("%v", r), "stack", string(debug.Stack()))
			msgs, err = nil, fmt.Errorf("mailflow: panic: %v", r)
		}
	}()
	return s.store.ClaimOutbox(ctx, s.cfg.Now(), limit, s.cfg.Lease)
}

// markSent records delivered rows: each with those delivered while the
// previous record was written, in one statement.
func (s *Sender) markSent(sent <-chan int64) {
	ids := make([]int64, 0, 256)
	for id := range sent {
		ids = append(ids[:0], id)
	waiting:
		for len(ids) < cap(ids) {
			select {
			case id, ok := <-sent:
				if !ok {
					break waiting
				}
				ids = append(ids, id)
			default:
				break waiting
			}
		}
		s.markSentBatch(ids)
	}
}

func (s *Sender) markSentBatch(ids []int64) {
	defer func() {
		if r := recover(); r != nil {
			s.Stats.Panics.Add(1)
			s.log.Error("outbox: panic marking sent", "err", fmt.Errorf("%v", r), "stack", string(debug.Stack()))
		}
	}()
	// Not tied to Run's context: a delivered message whose row stayed
	// pending would be sent again. Until the rows are marked only their
	// leases keep them from that, and a database restart or failover takes
	// seconds: keep trying while the leases run. Meanwhile the workers
	// wait, since nothing they send could be recorded either.
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Lease)
	defer cancel()
	now := s.cfg.Now()
	failed := false
	err := retry(ctx, func() error {
		err := s.store.MarkSentMany(ctx, ids, now)
		if err != nil && !failed {
			failed = true
			s.log.Warn("outbox: mark sent failed, retrying while the lease runs", "err", err, "rows", len(ids))
		}
		return err
	})
	if err != nil {
		s.log.Error("outbox: mark sent failed; the messages are sent again when their lease ends", "err", err, "rows", len(ids))
	}
}

// worker delivers the rows handed to it over its own connection, which it
// keeps open between messages and closes after IdleTimeout without one.
func (s *Sender) worker(ctx context.Context, jobs <-chan *mailflow.OutboxMessage, sent chan<- int64, release func()) {
	w := &smtpConn{}
	defer w.quit()
	idle := time.NewTimer(s.cfg.IdleTimeout)
	defer idle.Stop()
	for {
		select {
		case m, ok := <-jobs:
			if !ok {
				return
			}
			if ctx.Err() != nil {
				// Shutting down: hand back rows not started rather than
				// keep them until their lease runs out.
				s.releaseClaim(m)
			} else if s.handle(ctx, w, m) {
				sent <- m.ID
			}
			release()
			idle.Reset(s.cfg.IdleTimeout)
		case <-idle.C:
			w.quit()
		}
	}
}

func (s *Sender) releaseClaim(m *mailflow.OutboxMessage) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.store.ReleaseOutbox(ctx, []int64{m.ID}); err != nil {
		s.log.Error("outbox: release claim", "err", err, "outbox_id", m.ID)
	}
}

// handle delivers one row and records the outcome. A panic is logged and
// counted; the row's lease then runs out and it is sent again.
func (s *Sender) handle(ctx context.Context, w *smtpConn, m *mailflow.OutboxMessage) (delivered bool) {
	defer func() {
		if r := recover(); r != nil {
			s.Stats.Panics.Add(1)
			s.log.Error("outbox: panic in worker", "err", fmt.Errorf("%v", r), "outbox_id", m.ID, "stack", string(debug.Stack()))
			w.close()
		}
	}()
	if s.limit != nil {
		s.limit.wait(ctx)
		if ctx.Err() != nil {
			s.releaseClaim(m)
			return false
		}
	}
	// The outcome is recorded even during shutdown: a delivered message
	// whose row stayed pending would be sent twice.
	dbctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := s.deliver(dbctx, w, m)
	if err == nil {
		s.Stats.Sent.Add(1)
		s.log.Debug("outbox: sent", "outbox_id", m.ID, "kind", m.Kind, "order", m.OrderNumber)
		return true // markSent records it
	}
	now := s.cfg.Now()
	log := s.log.With("outbox_id", m.ID, "kind", m.Kind, "order", m.OrderNumber)
	var de *deliveryError
	errors.As(err, &de)
	reason := err.Error()
	permanent := de != nil && de.permanent()
	if !permanent && now.Sub(m.CreatedAt) > s.cfg.MaxAge && !m.CreatedAt.IsZero() {
		permanent = true
		reason = fmt.Sprintf("gave up after %s: %s", s.cfg.MaxAge, reason)
	}
	if !permanent {
		next := now.Add(s.backoff(m.Attempts))
		if err := s.store.MarkRetry(dbctx, m.ID, next, reason); err != nil {
			log.Error("outbox: mark retry", "err", err)
		}
		s.Stats.Retried.Add(1)
		log.Warn("outbox: temporary failure", "err", de.summary(), "attempt", m.Attempts+1, "next", next)
		s.Wake() // the dispatcher may sleep past the new due time
		return false
	}
	changed, merr := s.store.MarkFailed(dbctx, m.ID, reason)
	if merr != nil {
		log.Error("outbox: mark failed", "err", merr)
		return false
	}
	s.Stats.Failed.Add(1)
	log.Error("outbox: permanent failure", "err", de.summary())
	if changed && m.Kind != mailflow.KindAlert && s.cfg.Alerts != nil {
		// An undeliverable alert raises none: that would loop.
		s.alertFailed(dbctx, m, reason)
	}
	return false
}

func (s *Sender) alertFailed(ctx context.Context, m *mailflow.OutboxMessage, reason string) {
	var b strings.Builder
	fmt.Fprintf(&b, "Eine Nachricht konnte nicht zugestellt werden; sie wird nicht erneut versandt.\n\n")
	fmt.Fprintf(&b, "Art:         %s\n", m.Kind)
	if m.Party != "" {
		fmt.Fprintf(&b, "An:          %s (%s)\n", strings.Join(m.Recipients, ", "), m.Party)
	} else {
		fmt.Fprintf(&b, "An:          %s\n", strings.Join(m.Recipients, ", "))
	}
	fmt.Fprintf(&b, "Betreff:     %s\n", m.Subject)
	fmt.Fprintf(&b, "Message-ID:  <%s>\n", m.MessageID)
	fmt.Fprintf(&b, "Outbox-Nr.:  %d\n", m.ID)
	fmt.Fprintf(&b, "Versuche:    %d\n", m.Attempts+1)
	fmt.Fprintf(&b, "Fehler:      %s\n\n", reason)
	fmt.Fprintf(&b, "Nach einer Korrektur (etwa der Adresse im Katalog) lässt sich die Nachricht mit\n`mailflow outbox retry %d` erneut senden.\n", m.ID)
	alert, err := s.cfg.Alerts.Alert("Zustellung fehlgeschlagen", b.String(), m.OrderID, m.OrderNumber)
	if err == nil {
		err = s.store.InTx(ctx, func(tx mailflow.Tx) error { return tx.Enqueue(alert) })
	}
	if err != nil {
		s.log.Error("outbox: enqueue failure alert", "err", err, "outbox_id", m.ID)
		return
	}
	s.Wake()
}

// backoff is the delay before attempt attempts+1: exponential from
// BackoffBase, capped at BackoffMax, with equal jitter so rows that failed
// together do not retry together.
func (s *Sender) backoff(attempts int) time.Duration {
	d := s.cfg.BackoffMax
	if attempts < 30 {
		if e := s.cfg.BackoffBase << attempts; e > 0 && e < d {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}

// deliveryError is a failed delivery: where it failed and the server's
// reply code, 0 for network and TLS errors.
type deliveryError struct {
	stage string // address, message, dial, MAIL, RCPT, DATA, data, end of data
	code  int
	err   error
	perm  bool // a local permanent failure: the row cannot be sent as it is
}

func (e *deliveryError) Error() string {
	return fmt.Sprintf("smtp %s: %v", e.stage, e.err)
}

func (e *deliveryError) Unwrap() error { return e.err }

// permanent reports a 5xx reply to the message itself. Failures to connect
// or log in are never the message's fault: they are retried.
func (e *deliveryError) permanent() bool {
	return e.perm || (e.stage != "dial" && e.code >= 500 && e.code < 600)
}

// summary names the failure without the server's text, which may quote
// the recipient's address (no personal data in logs).
func (e *deliveryError) summary() string {
	if e == nil {
		return ""
	}
	if e.code != 0 {
		return fmt.Sprintf("smtp %s: reply %d", e.stage, e.code)
	}
	if e.stage == "dial" || e.stage == "address" || e.stage == "message" {
		return e.Error()
	}
	return fmt.Sprintf("smtp %s: connection error", e.stage)
}

func replyCode(err error) int {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return tp.Code
	}
	return 0
}

// envelopeAddr reports whether a fits between the angle brackets of MAIL
// or RCPT; "" is the null reverse-path (RFC 5321 §4.5.5) when null allows it.
func envelopeAddr(a string, null bool) bool {
	if a == "" {
		return null
	}
	return strings.Contains(a, "@") && !strings.ContainsAny(a, "<>\r\n \t")
}

// smtpConn is one worker's connection.
type smtpConn struct {
	c *gosmtp.Client
}

func (w *smtpConn) close() {
	if w.c != nil {
		w.c.Close()
		w.c = nil
	}
}

// quit ends the session politely (RFC 5321 §4.1.1.10) and closes.
func (w *smtpConn) quit() {
	if w.c != nil {
		w.c.UpdateDeadline(2 * time.Second)
		if err := w.c.Quit(); err != nil {
			w.c.Close()
		}
		w.c = nil
	}
}

// deliver sends m's raw bytes over the worker's connection, dialing when
// there is none. go-mail's Client dials (TLS, EHLO, AUTH) and its
// smtp.Client runs the transaction; Client.Send is not used because it
// writes a Msg anew, while the outbox sends the bytes it stored, so that
// a resend is byte-identical. No RSET follows a delivered message; after
// a refused command RSET readies the connection for the next one.
func (s *Sender) deliver(ctx context.Context, w *smtpConn, m *mailflow.OutboxMessage) error {
	// The envelope sender (RFC 5321 §4.1.1.2), where bounces go: with VERP
	// its own address per message.
	from := m.Sender
	if s.cfg.EnvelopeSender != nil && from != "" {
		from = s.cfg.EnvelopeSender(m)
	}
	if !envelopeAddr(from, true) || len(m.Recipients) == 0 || slices.ContainsFunc(m.Recipients, func(r string) bool { return !envelopeAddr(r, false) }) {
		return &deliveryError{stage: "address", err: errors.New("invalid envelope sender or recipients"), perm: true}
	}
	if len(m.Raw) == 0 {
		return &deliveryError{stage: "message", err: errors.New("no stored message bytes"), perm: true}
	}
	for try := 0; ; try++ {
		reused := w.c != nil
		if w.c == nil {
			c, err := s.client.DialToSMTPClientWithContext(ctx)
			s.setConn(err)
			if err != nil {
				return &deliveryError{stage: "dial", code: replyCode(err), err: err}
			}
			w.c = c
		}
		stage, err := transact(w.c, from, m)
		if err == nil {
			return nil
		}
		code := replyCode(err)
		if code == 0 || code == 421 || stage == "data" {
			// Network error, server closing (RFC 5321 §3.8), or a DATA
			// transfer cut short: the connection is unusable.
			w.close()
		} else if w.c.Reset() != nil {
			w.close()
		}
		if reused && try == 0 && code == 0 && stage == "MAIL" {
			// A kept connection the server dropped while idle: nothing
			// was sent, redial once at once.
			continue
		}
		return &deliveryError{stage: stage, code: code, err: err}
	}
}

// transact runs one mail transaction (RFC 5321 §3.3) for m's bytes on c:
// MAIL, RCPT for each recipient, DATA with the message, dot-stuffed by
// the client (§4.5.2). One refused recipient ends it before DATA, so a
// message reaches all its recipients or none.
func transact(c *gosmtp.Client, from string, m *mailflow.OutboxMessage) (string, error) {
	if err := c.UpdateDeadline(smtpTimeout); err != nil {
		return "MAIL", err
	}
	if err := c.Mail("<" + from + ">"); err != nil {
		return "MAIL", err
	}
	for _, r := range m.Recipients {
		if err := c.Rcpt("<" + r + ">"); err != nil {
			return "RCPT", err
		}
	}
	wc, err := c.Data()
	if err != nil {
		return "DATA", err
	}
	if _, err := wc.Write(m.Raw); err != nil {
		return "data", err
	}
	if err := wc.Close(); err != nil {
		// The reply to the final dot (RFC 5321 §4.1.1.4); a network error
		// here leaves it open whether the server took the message, and
		// the row is sent again: at least once, with the same Message-ID.
		return "end of data", err
	}
	return "", nil
}

// retry runs fn until it succeeds or ctx ends, waiting 100 ms, then
// twice as long each time up to 1 s: for database writes whose loss would
// send a message twice.
func retry(ctx context.Context, fn func() error) error {
	wait := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// limiter spaces sends at least interval apart over all workers.
type limiter struct {
	mu       sync.Mutex
	next     time.Time
	interval time.Duration
}

func (l *limiter) wait(ctx context.Context) {
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	at := l.next
	l.next = l.next.Add(l.interval)
	l.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
