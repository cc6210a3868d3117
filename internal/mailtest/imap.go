// Package mailtest runs mail servers on loopback for tests and for the
// demo: an in-process IMAP server (go-imap's memory backend) and a real
// Dovecot. Nothing here depends on package testing.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
)

// IMAPServer is an in-process IMAP server on 127.0.0.1 with one user and an
// INBOX, without TLS unless made by NewIMAPServerTLS (plaintext login is
// allowed on loopback). The password
// is also accepted as an XOAUTH2 access token. Its mailboxes live in memory
// and survive Stop and Start, so a test can take the server away and bring
// it back on the same port.
type IMAPServer struct {
	user, pass string
	caps       imap.CapSet
	tlsServer  *tls.Config // nil: plaintext only
	implicit   bool        // TLS from the first byte, else STARTTLS
	tlsClient  *tls.Config
	mem        *imapmemserver.Server
	u          *imapmemserver.User
	addr       string
	users      map[string]*imapmemserver.User // more users: imapusers.go

	idling atomic.Int32

	mu          sync.Mutex
	bodyFetches []uint32
	srv         *imapserver.Server
	conns       map[net.Conn]struct{}
	done        chan struct{} // closed when Serve returns
}

// NewIMAPServer starts a server for user and pass on a free loopback port.
// Without caps it advertises IMAP4rev1 and IMAP4rev2, so IDLE, MOVE and
// UIDPLUS; with caps exactly those, e.g. only imap.CapIMAP4rev1 for a server
// with IDLE but without MOVE and UIDPLUS.
func NewIMAPServer(user, pass string, caps ...imap.Cap) (*IMAPServer, error) {
	return newIMAPServer(&IMAPServer{user: user, pass: pass}, caps)
}

// NewIMAPServerTLS is NewIMAPServer with TLS on a new self-signed
// certificate for 127.0.0.1 and localhost: implicit TLS as on port 993, or
// STARTTLS. ClientTLSConfig returns a client configuration trusting it.
func NewIMAPServerTLS(user, pass string, implicit bool, caps ...imap.Cap) (*IMAPServer, error) {
	server, client, err := imapSelfSigned()
	if err != nil {
		return nil, err
	}
	return newIMAPServer(&IMAPServer{user: user, pass: pass, tlsServer: server, tlsClient: client, implicit: implicit}, caps)
}

func newIMAPServer(s *IMAPServer, caps []imap.Cap) (*IMAPServer, error) {
	if len(caps) == 0 {
		caps = []imap.Cap{imap.CapIMAP4rev1, imap.CapIMAP4rev2}
	}
	s.caps, s.mem = imap.CapSet{}, imapmemserver.New()
	for _, c := range caps {
		s.caps[c] = struct{}{}
	}
	s.u = imapmemserver.NewUser(s.user, s.pass)
	s.mem.AddUser(s.u)
	if err := s.u.Create("INBOX", nil); err != nil {
		return nil, err
	}
	if err := s.listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *IMAPServer) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mailtest: imap listen: %w", err)
	}
	opts := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &imapSession{s: s}, nil, nil
		},
		Caps:         s.caps,
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0), // dropped connections are the point of some tests
	}
	if s.tlsServer != nil && !s.implicit {
		opts.TLSConfig = s.tlsServer // offers STARTTLS
	}
	srv := imapserver.New(opts)
	done := make(chan struct{})
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.srv = srv
	s.conns = map[net.Conn]struct{}{}
	s.done = done
	s.mu.Unlock()
	go func() {
		defer close(done)
		srv.Serve(&imapListener{Listener: ln, s: s})
	}()
	return nil
}

// Addr is the server's host:port.
func (s *IMAPServer) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ClientTLSConfig trusts the server's certificate; nil without TLS.
func (s *IMAPServer) ClientTLSConfig() *tls.Config {
	if s.tlsClient == nil {
		return nil
	}
	return s.tlsClient.Clone()
}

// Port is the server's port.
func (s *IMAPServer) Port() int {
	return s.tcpAddr().Port
}

// Host is the server's IP address.
func (s *IMAPServer) Host() string {
	return s.tcpAddr().IP.String()
}

func (s *IMAPServer) tcpAddr() *net.TCPAddr {
	a, _ := net.ResolveTCPAddr("tcp", s.Addr())
	return a
}

// Append adds a message to a mailbox directly in the backend, as a
// delivery would: sessions in IDLE see EXISTS. It works while the server is
// stopped.
func (s *IMAPServer) Append(mailbox string, raw []byte) error {
	// A nil *AppendOptions panics in imapmemserver.
	_, err := s.u.Append(mailbox, bytes.NewReader(raw), &imap.AppendOptions{})
	if err != nil {
		return fmt.Errorf("mailtest: append to %s: %w", mailbox, err)
	}
	return nil
}

// CreateMailbox creates a mailbox.
func (s *IMAPServer) CreateMailbox(name string) error {
	return s.u.Create(name, nil)
}

// ResetMailbox deletes and re-creates a mailbox, empty and with a new
// UIDVALIDITY, and drops all connections so that clients select it anew.
func (s *IMAPServer) ResetMailbox(name string) error {
	if err := s.u.Delete(name); err != nil {
		return fmt.Errorf("mailtest: delete %s: %w", name, err)
	}
	if err := s.u.Create(name, nil); err != nil {
		return fmt.Errorf("mailtest: create %s: %w", name, err)
	}
	s.DropConnections()
	return nil
}

// UIDValidity returns the UIDVALIDITY of a mailbox.
func (s *IMAPServer) UIDValidity(mailbox string) (uint32, error) {
	d, err := s.u.Status(mailbox, &imap.StatusOptions{UIDValidity: true})
	if err != nil {
		return 0, err
	}
	return d.UIDValidity, nil
}

// Messages lists a mailbox in UID order, read through an IMAP connection.
func (s *IMAPServer) Messages(mailbox string) ([]IMAPMessage, error) {
	return imapMessages(s.Addr(), s.user, s.pass, mailbox)
}

// UIDs lists the UIDs in a mailbox.
func (s *IMAPServer) UIDs(mailbox string) ([]uint32, error) {
	return imapUIDs(s.Addr(), s.user, s.pass, mailbox)
}

// AddFlags adds flags to a message, e.g. \Deleted as another client would.
func (s *IMAPServer) AddFlags(mailbox string, uid uint32, flags ...imap.Flag) error {
	return imapStoreFlags(s.Addr(), s.user, s.pass, mailbox, uid, imap.StoreFlagsAdd, flags)
}

// RemoveFlags removes flags from a message.
func (s *IMAPServer) RemoveFlags(mailbox string, uid uint32, flags ...imap.Flag) error {
	return imapStoreFlags(s.Addr(), s.user, s.pass, mailbox, uid, imap.StoreFlagsDel, flags)
}

// BodyFetchUIDs lists the UIDs whose contents were requested by UID FETCH
// (BODY[…] or BINARY[…]), in order, so a test can prove that a message
// was not downloaded.
func (s *IMAPServer) BodyFetchUIDs() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.bodyFetches)
}

// Idling is the number of sessions in IDLE right now.
func (s *IMAPServer) Idling() int { return int(s.idling.Load()) }

// Connections is the number of open client connections.
func (s *IMAPServer) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// DropConnections closes every client connection from the server side, as
// a server restart or a NAT timeout would. The server keeps listening.
func (s *IMAPServer) DropConnections() {
	s.mu.Lock()
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// Stop closes the listener and every connection; the mailboxes stay.
func (s *IMAPServer) Stop() error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	<-done
	s.DropConnections()
	return err
}

// Start listens again on the address the server had.
func (s *IMAPServer) Start() error {
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return errors.New("mailtest: imap server is running")
	}
	return s.listen(s.Addr())
}

// Close stops the server.
func (s *IMAPServer) Close() error { return s.Stop() }

type imapListener struct {
	net.Listener
	s *IMAPServer
}

func (l *imapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &imapConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	l.s.conns[tc] = struct{}{}
	l.s.mu.Unlock()
	if l.s.tlsServer != nil && l.s.implicit {
		// imapserver recognises TLS by the *tls.Conn type.
		return tls.Server(tc, l.s.tlsServer), nil
	}
	return tc, nil
}

type imapConn struct {
	net.Conn
	s    *IMAPServer
	once sync.Once
}

func (c *imapConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// imapSession is the memory backend's session with our login, XOAUTH2 and
// an IDLE counter.
type imapSession struct {
	*imapmemserver.UserSession // nil until login
	s                          *IMAPServer
}

var (
	_ imapserver.SessionIMAP4rev2 = (*imapSession)(nil)
	_ imapserver.SessionSASL      = (*imapSession)(nil)
)

func (sess *imapSession) Login(username, password string) error {
	u := sess.s.backendUser(username)
	if err := u.Login(username, password); err != nil {
		return err
	}
	sess.UserSession = imapmemserver.NewUserSession(u)
	return nil
}

func (sess *imapSession) Close() error {
	if sess.UserSession == nil {
		return nil
	}
	return sess.UserSession.Close()
}

// Idle reports mailbox changes until the client ends IDLE. It polls the
// session's update queue instead of calling imapmemserver's Idle, which
// only wakes up on updates queued after it started: a message appended
// between the client's last command and IDLE would wait for the next
// change, where a real server reports it at once (RFC 9051 §6.3.13).
func (sess *imapSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	sess.s.idling.Add(1)
	defer sess.s.idling.Add(-1)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := sess.UserSession.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
	}
}

func (sess *imapSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	if uids, ok := numSet.(imap.UIDSet); ok && (len(options.BodySection) > 0 || len(options.BinarySection) > 0) {
		nums, _ := uids.Nums() // static sets only; the watcher names each UID
		sess.s.mu.Lock()
		for _, n := range nums {
			sess.s.bodyFetches = append(sess.s.bodyFetches, uint32(n))
		}
		sess.s.mu.Unlock()
	}
	return sess.UserSession.Fetch(w, numSet, options)
}

func (sess *imapSession) AuthenticateMechanisms() []string {
	return []string{sasl.Plain, "XOAUTH2"}
}

func (sess *imapSession) Authenticate(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return imapserver.ErrAuthFailed
			}
			return sess.Login(username, password)
		}), nil
	case "XOAUTH2":
		return &imapXOAUTH2Server{login: sess.Login}, nil
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
}

// imapXOAUTH2Server checks "user=U\x01auth=Bearer TOKEN\x01\x01" with the
// token as the password.
type imapXOAUTH2Server struct {
	login func(user, pass string) error
}

func (x *imapXOAUTH2Server) Next(resp []byte) ([]byte, bool, error) {
	if resp == nil {
		return []byte{}, false, nil // ask for the initial response
	}
	var user, token string
	for _, f := range strings.Split(string(resp), "\x01") {
		switch {
		case strings.HasPrefix(f, "user="):
			user = f[len("user="):]
		case strings.HasPrefix(f, "auth=Bearer "):
			token = f[len("auth=Bearer "):]
		}
	}
	if user == "" || token == "" {
		return nil, false, imapserver.ErrAuthFailed
	}
	if err := x.login(user, token); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}

// IMAPMessage is one message as a test sees it.
type IMAPMessage struct {
	UID   uint32
	Flags []imap.Flag
	Raw   []byte
}

// imapCommandTimeout bounds every helper connection.
const imapCommandTimeout = 10 * time.Second

// imapAdmin logs in to addr; the caller closes the client. The helpers
// open a connection per call: simple, and independent of server restarts.
func imapAdmin(addr, user, pass string) (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{Dialer: &net.Dialer{Timeout: imapCommandTimeout}})
	if err != nil {
		return nil, fmt.Errorf("mailtest: dial %s: %w", addr, err)
	}
	t := time.AfterFunc(imapCommandTimeout, func() { c.Close() })
	defer t.Stop()
	if err := c.Login(user, pass).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("mailtest: login: %w", err)
	}
	return c, nil
}

func imapMessages(addr, user, pass, mailbox string) ([]IMAPMessage, error) {
	c, err := imapAdmin(addr, user, pass)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	t := time.AfterFunc(imapCommandTimeout, func() { c.Close() })
	defer t.Stop()
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("mailtest: examine %s: %w", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	var all imap.SeqSet
	all.AddRange(1, 0) // 1:*
	bufs, err := c.Fetch(all, &imap.FetchOptions{
		UID: true, Flags: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		return nil, fmt.Errorf("mailtest: fetch %s: %w", mailbox, err)
	}
	msgs := make([]IMAPMessage, 0, len(bufs))
	for _, b := range bufs {
		m := IMAPMessage{UID: uint32(b.UID), Flags: b.Flags}
		if len(b.BodySection) > 0 {
			m.Raw = b.BodySection[0].Bytes
		}
		msgs = append(msgs, m)
	}
	slices.SortFunc(msgs, func(a, b IMAPMessage) int { return int(a.UID) - int(b.UID) })
	c.Logout().Wait()
	return msgs, nil
}

func imapUIDs(addr, user, pass, mailbox string) ([]uint32, error) {
	msgs, err := imapMessages(addr, user, pass, mailbox)
	if err != nil {
		return nil, err
	}
	uids := make([]uint32, len(msgs))
	for i, m := range msgs {
		uids[i] = m.UID
	}
	return uids, nil
}

func imapStoreFlags(addr, user, pass, mailbox string, uid uint32, op imap.StoreFlagsOp, flags []imap.Flag) error {
	c, err := imapAdmin(addr, user, pass)
	if err != nil {
		return err
	}
	defer c.Close()
	t := time.AfterFunc(imapCommandTimeout, func() { c.Close() })
	defer t.Stop()
	if _, err := c.Select(mailbox, nil).Wait(); err != nil {
		return fmt.Errorf("mailtest: select %s: %w", mailbox, err)
	}
	err = c.Store(imap.UIDSetNum(imap.UID(uid)), &imap.StoreFlags{Op: op, Silent: true, Flags: flags}, nil).Close()
	if err != nil {
		return fmt.Errorf("mailtest: store flags: %w", err)
	}
	c.Logout().Wait()
	return nil
}

func imapAppend(addr, user, pass, mailbox string, raw []byte) error {
	c, err := imapAdmin(addr, user, pass)
	if err != nil {
		return err
	}
	defer c.Close()
	t := time.AfterFunc(imapCommandTimeout, func() { c.Close() })
	defer t.Stop()
	cmd := c.Append(mailbox, int64(len(raw)), nil)
	if _, err := cmd.Write(raw); err != nil {
		cmd.Close()
		return fmt.Errorf("mailtest: append to %s: %w", mailbox, err)
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("mailtest: append to %s: %w", mailbox, err)
	}
	if _, err := cmd.Wait(); err != nil {
		return fmt.Errorf("mailtest: append to %s: %w", mailbox, err)
	}
	c.Logout().Wait()
	return nil
}

func imapCreate(addr, user, pass, mailbox string) error {
	c, err := imapAdmin(addr, user, pass)
	if err != nil {
		return err
	}
	defer c.Close()
	t := time.AfterFunc(imapCommandTimeout, func() { c.Close() })
	defer t.Stop()
	if err := c.Create(mailbox, nil).Wait(); err != nil {
		return fmt.Errorf("mailtest: create %s: %w", mailbox, err)
	}
	c.Logout().Wait()
	return nil
}

// imapSelfSigned makes a certificate for 127.0.0.1 and localhost, and a
// client configuration that trusts exactly it.
func imapSelfSigned() (server, client *tls.Config, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mailtest IMAP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	return server, &tls.Config{RootCAs: pool}, nil
}
