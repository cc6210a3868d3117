// Package mailtest runs an SMTP server in-process on loopback that keeps
// what it receives: for tests of the outbox sender, for end-to-end tests
// and for `mailflow demo`, which needs a mail server without a network.
// Faults can be injected per SMTP stage (temporary and permanent replies, a
// connection dropped in the middle of DATA).
//
// The core API (Start, SMTPServer) does not depend on package testing;
// NewSMTPServer is the helper for tests.
package mailtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one message the server accepted.
type Message struct {
	From string   // envelope sender
	To   []string // envelope recipients
	Data []byte   // the message as transmitted, CRLF line ends, dot-stuffing removed
	At   time.Time
}

// Stage is an SMTP command a fault can be injected at.
type Stage string

// Stages that faults can be injected at.
const (
	StageMail Stage = "MAIL"
	StageRcpt Stage = "RCPT"
	StageData Stage = "DATA" // the reply to the message content, after the final dot
)

// Options configure a server.
type Options struct {
	// Addr to listen on; default 127.0.0.1:0 (a free port).
	Addr string
	// Username and Password, when set, are required with AUTH PLAIN.
	Username, Password string
	// Discard keeps only the count of messages, not their content: a sink
	// for benchmarks.
	Discard bool
	// HeaderOnly keeps each message's header section (up to and including
	// the empty line) and drops the body: a sink that still lets a load
	// generator answer thousands of messages without holding them whole.
	// OnMessage still gets the whole message.
	HeaderOnly bool
	// Domain is the server's name in its greeting; default "localhost".
	Domain string
	// TLSConfig, when set, makes the server offer STARTTLS (see TLSCert).
	TLSConfig *tls.Config
	// OnMessage, when set, is called with every message before the server
	// accepts it, e.g. to deliver it into an IMAP mailbox as an MTA would.
	// An error refuses the message with a temporary failure (451), so the
	// client tries again later. With Discard, Data is nil.
	OnMessage func(Message) error
}

type fault struct {
	stage Stage
	code  int // 0: drop the connection (DATA only: after reading part of the message)
	n     int
}

// SMTPServer is a running in-process SMTP server.
type SMTPServer struct {
	// Addr is the listening address, host:port.
	Addr string
	// Host and Port are Addr split, for client configuration.
	Host string
	Port int

	opts Options
	srv  *smtp.Server
	ln   net.Listener
	done chan struct{}

	mu       sync.Mutex
	msgs     []Message
	count    int
	bytes    int64
	sessions int
	conns    map[*smtp.Conn]bool
	faults   []*fault
	delay    time.Duration // before the reply to each message's final dot
	changed  chan struct{} // closed and replaced whenever a message arrives
}

// Start listens and serves until Close.
func Start(opts Options) (*SMTPServer, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Domain == "" {
		opts.Domain = "localhost"
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("mailtest: listen: %w", err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	s := &SMTPServer{Addr: ln.Addr().String(), Host: host, Port: p, opts: opts, ln: ln,
		done: make(chan struct{}), changed: make(chan struct{}), conns: map[*smtp.Conn]bool{}}
	s.srv = smtp.NewServer(smtp.BackendFunc(s.newSession))
	s.srv.Domain = opts.Domain
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	s.srv.MaxMessageBytes = 50 << 20
	s.srv.MaxRecipients = 100
	s.srv.ErrorLog = discardLogger{}
	s.srv.TLSConfig = opts.TLSConfig
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	return s, nil
}

// TB is the part of testing.TB that NewSMTPServer uses.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// NewSMTPServer starts a server on a free loopback port for a test and
// closes it when the test ends.
func NewSMTPServer(t TB, opts ...Options) *SMTPServer {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s, err := Start(o)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Close stops the server and drops open connections.
func (s *SMTPServer) Close() error {
	err := s.srv.Close()
	// Serve may not have registered the listener with the server yet.
	s.ln.Close()
	<-s.done
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Fail makes the next n commands of a stage fail with an SMTP reply code
// (4xx are temporary, 5xx permanent).
func (s *SMTPServer) Fail(stage Stage, code, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{stage: stage, code: code, n: n})
}

// DropInData makes the next n DATA transfers end with the connection
// closed after part of the message has been read: the client sees the
// connection drop in the middle of DATA and nothing is delivered.
func (s *SMTPServer) DropInData(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{stage: StageData, code: 0, n: n})
}

// SetDelay makes the server wait d after each message's content before it
// accepts the message and replies, as a slow relay does; 0 ends it. A
// client then has messages in flight for at least d.
func (s *SMTPServer) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// takeFault returns the next pending fault of a stage and counts it down.
func (s *SMTPServer) takeFault(stage Stage) *fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.stage == stage && f.n > 0 {
			f.n--
			if f.n == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			return &fault{stage: f.stage, code: f.code}
		}
	}
	return nil
}

// Messages returns the accepted messages in order of arrival.
func (s *SMTPServer) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.msgs))
	copy(out, s.msgs)
	return out
}

// Count returns how many messages were accepted, also with Discard.
func (s *SMTPServer) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Bytes returns the total size of the accepted messages.
func (s *SMTPServer) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Sessions returns how many SMTP connections were opened, to see that a
// client reuses its connections.
func (s *SMTPServer) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Reset forgets the accepted messages and pending faults.
func (s *SMTPServer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs, s.count, s.bytes, s.faults = nil, 0, 0, nil
}

// Wait blocks until at least n messages have been accepted, ctx ends
// (error), and returns the messages.
func (s *SMTPServer) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		count, ch := s.count, s.changed
		s.mu.Unlock()
		if count >= n {
			return s.Messages(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return s.Messages(), fmt.Errorf("mailtest: %d of %d messages arrived: %w", count, n, ctx.Err())
		}
	}
}

// DropConnections closes every open connection without a reply, as a
// server does that drops idle clients.
func (s *SMTPServer) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Conn().Close()
	}
}

func (s *SMTPServer) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.sessions++
	s.conns[c] = true
	s.mu.Unlock()
	return &session{s: s, c: c}, nil
}

type session struct {
	s      *SMTPServer
	c      *smtp.Conn
	authed bool
	from   string
	to     []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != ss.s.opts.Username || password != ss.s.opts.Password {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) fault(stage Stage) error {
	f := ss.s.takeFault(stage)
	if f == nil {
		return nil
	}
	return &smtp.SMTPError{Code: f.code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: fmt.Sprintf("injected %s fault", stage)}
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.Username != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	if err := ss.fault(StageMail); err != nil {
		return err
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.fault(StageRcpt); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	f := ss.s.takeFault(StageData)
	if f != nil && f.code == 0 {
		// Read a little of the message, then drop the connection.
		io.CopyN(io.Discard, r, 512)
		ss.c.Conn().Close()
		return errors.New("mailtest: connection dropped in DATA")
	}
	var buf bytes.Buffer
	var n int64
	var err error
	if ss.s.opts.Discard {
		n, err = io.Copy(io.Discard, r)
	} else {
		n, err = buf.ReadFrom(r)
	}
	if err != nil {
		return err
	}
	if f != nil {
		return &smtp.SMTPError{Code: f.code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "injected DATA fault"}
	}
	s := ss.s
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	msg := Message{From: ss.from, To: append([]string(nil), ss.to...), At: time.Now()}
	if !s.opts.Discard {
		msg.Data = buf.Bytes()
	}
	if s.opts.OnMessage != nil {
		if err := s.opts.OnMessage(msg); err != nil {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "delivery failed, try again later"}
		}
	}
	if s.opts.HeaderOnly {
		if i := bytes.Index(msg.Data, []byte("\r\n\r\n")); i >= 0 {
			msg.Data = bytes.Clone(msg.Data[:i+4])
		}
	}
	s.mu.Lock()
	s.count++
	s.bytes += n
	if !s.opts.Discard {
		s.msgs = append(s.msgs, msg)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return nil
}

func (ss *session) Reset() {
	ss.from, ss.to = "", nil
}

func (ss *session) Logout() error {
	ss.s.mu.Lock()
	delete(ss.s.conns, ss.c)
	ss.s.mu.Unlock()
	return nil
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}
