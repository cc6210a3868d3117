package main

// The IMAP fault test: a proxy between daemon and IMAP server cuts the
// connection mid-download and during IDLE.

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailflow/internal/mailtest"
	"mailflow/mailflow"
)

type imapProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[*proxyConn]bool
	skip  int // bodies to let through before the armed cut
	armed int // cuts to make

	cuts, drops, bodies atomic.Int64
}

type proxyConn struct {
	client, server net.Conn
	idle           atomic.Bool
	once           sync.Once
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		c.client.Close()
		c.server.Close()
	})
}

func startIMAPProxy(t *testing.T, target string) *imapProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &imapProxy{ln: ln, target: target, conns: map[*proxyConn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.dropAll()
	})
	return p
}

func (p *imapProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *imapProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxyConn{client: c, server: s}
		p.mu.Lock()
		p.conns[pc] = true
		p.mu.Unlock()
		go p.up(pc)
		go p.down(pc)
	}
}

func (p *imapProxy) forget(pc *proxyConn) {
	pc.close()
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// cutBody arms one cut: after skip more message bodies, the next one is
// cut off after a part of it.
func (p *imapProxy) cutBody(skip int) {
	p.mu.Lock()
	p.skip, p.armed = skip, 1
	p.mu.Unlock()
}

func (p *imapProxy) takeCut() bool {
	p.bodies.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.armed == 0:
		return false
	case p.skip > 0:
		p.skip--
		return false
	}
	p.armed--
	return true
}

// idle counts connections whose client has issued IDLE.
func (p *imapProxy) idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for pc := range p.conns {
		if pc.idle.Load() {
			n++
		}
	}
	return n
}

// dropAll kills every connection.
func (p *imapProxy) dropAll() {
	p.mu.Lock()
	conns := slices.Collect(maps.Keys(p.conns))
	p.mu.Unlock()
	for _, pc := range conns {
		pc.close()
		p.drops.Add(1)
	}
}

var (
	markIdle = []byte(" IDLE\r\n") // RFC 2177: "tag IDLE", ended by "DONE"
	markDone = []byte("DONE\r\n")
	markBody = []byte("BODY[] {") // the literal of a BODY.PEEK[] fetch (RFC 9051 §7.5.2)
)

// up copies client → server and notes IDLE.
func (p *imapProxy) up(pc *proxyConn) {
	defer p.forget(pc)
	buf := make([]byte, 32<<10)
	for {
		n, err := pc.client.Read(buf)
		if n > 0 {
			if bytes.Contains(buf[:n], markIdle) {
				pc.idle.Store(true)
			}
			if bytes.Contains(buf[:n], markDone) {
				pc.idle.Store(false)
			}
			if _, err := pc.server.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// down copies server → client and makes the armed cut: 200 bytes past
// the start of a body literal the connection dies.
func (p *imapProxy) down(pc *proxyConn) {
	defer p.forget(pc)
	buf := make([]byte, 32<<10)
	var tail []byte // the last bytes of the previous read, for a marker split across reads
	cutAt := -1     // bytes still to forward before the cut
	for {
		n, err := pc.server.Read(buf)
		chunk := buf[:n]
		if n > 0 && cutAt < 0 {
			joined := append(tail, chunk...)
			if i := bytes.Index(joined, markBody); i >= 0 && p.takeCut() {
				cutAt = i + len(markBody) - len(tail) + 200
			}
			tail = append([]byte(nil), joined[max(0, len(joined)-len(markBody)+1):]...)
		}
		if cutAt >= 0 {
			k := min(cutAt, n)
			pc.client.Write(chunk[:k])
			if cutAt -= k; cutAt == 0 {
				p.cuts.Add(1)
				return
			}
		} else if n > 0 {
			if _, err := pc.client.Write(chunk); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestFaultIMAPDrop kills the daemon's IMAP connection five times in the
// middle of a message download and five times during IDLE, against the
// in-process server and a real Dovecot. Every reply must be processed
// once: the cut message is fetched again after the reconnect, a reply
// that arrives while the connection is down is picked up, and IDLE works
// again afterwards (the poll interval is an hour, so only IDLE brings a
// new message in).
func TestFaultIMAPDrop(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		srv, err := mailtest.NewIMAPServer("bestellungen@example.org", "imap-pass")
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		imapDropTest(t, srv, "bestellungen@example.org", "imap-pass")
	})
	t.Run("dovecot", func(t *testing.T) {
		dc := mailtest.DovecotFor(t)
		imapDropTest(t, dc, dc.User, dc.Password)
	})
}

func imapDropTest(t *testing.T, box imapBox, user, pass string) {
	const rounds = 5
	sink := mailtest.NewSMTPServer(t)
	proxy := startIMAPProxy(t, net.JoinHostPort(box.Host(), strconv.Itoa(box.Port())))
	dsn := filepath.Join(t.TempDir(), "mailflow.db")
	e := startFaultDaemon(t, daemonConfig{driver: "sqlite", dsn: dsn, smtpPort: sink.Port,
		imapPort: proxy.port(), imapUser: user, imapPass: pass})
	l := newLoad(t, e.base, box, oneSink(sink), 4*rounds)
	l.script = func(int) orderScript { return faultScripts[0] } // DV, accepted
	l.manual, l.pad = true, 32<<10
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wg.Go(func() { l.createAll(ctx, 0, l.n, 2) })
	wg.Go(func() { l.replyLoop(ctx) })
	ordered := func(i int) func() bool {
		return func() bool {
			number, ok := l.number(i)
			return ok && e.status(number) == string(mailflow.StatusOrdered)
		}
	}
	waitUntil(t, "the watcher in IDLE", 20*time.Second, func() bool { return proxy.idle() > 0 })

	// In the middle of a download: of two replies, the second is cut
	// off after part of its body.
	for r := range rounds {
		i := 2 * r
		proxy.cutBody(1)
		l.release(i)
		l.release(i + 1)
		waitUntil(t, fmt.Sprintf("orders %d and %d after a cut download", i, i+1), time.Minute,
			func() bool { return ordered(i)() && ordered(i+1)() })
		if c := proxy.cuts.Load(); c != int64(r+1) {
			t.Fatalf("round %d: %d downloads cut, want %d", r, c, r+1)
		}
	}
	// During IDLE: a reply that arrives while the connection is down is
	// picked up after the reconnect; one that arrives afterwards comes in
	// through IDLE.
	var idleLatency time.Duration
	for r := range rounds {
		i := 2*rounds + 2*r
		waitUntil(t, "the watcher in IDLE", 20*time.Second, func() bool { return proxy.idle() > 0 })
		time.Sleep(100 * time.Millisecond)
		proxy.dropAll()
		l.release(i)
		waitUntil(t, fmt.Sprintf("order %d after a drop in IDLE", i), time.Minute, ordered(i))
		waitUntil(t, "the watcher in IDLE again", 20*time.Second, func() bool { return proxy.idle() > 0 })
		l.release(i + 1)
		idleLatency = max(idleLatency, waitUntil(t, fmt.Sprintf("order %d through IDLE", i+1), 20*time.Second, ordered(i+1)))
	}
	l.waitCaughtUp(2 * time.Minute)
	st := e.d.watcher.Stats()
	cancel()
	wg.Wait()
	e.stop()
	f := l.verify(openStore(t, "sqlite", dsn))
	if st.Reconnects < 2*rounds {
		t.Errorf("%d reconnects, want at least %d", st.Reconnects, 2*rounds)
	}
	if b := proxy.bodies.Load(); b < int64(f.replies+rounds) {
		t.Errorf("%d downloads for %d replies and %d cuts: the cut ones were not fetched again", b, f.replies, rounds)
	}
	t.Logf("IMAP drop test: %s; %d downloads cut, %d connections dropped during IDLE, %d reconnects, %d downloads for %d replies, slowest reply through IDLE after a reconnect %s",
		f, proxy.cuts.Load(), rounds, st.Reconnects, proxy.bodies.Load(), f.replies, idleLatency.Round(time.Millisecond))
}

// privatePostgres is a throwaway PostgreSQL cluster of the test's own,
// on a free port, so that restarting it disturbs no other test. As root
// (CI) its binaries run as the postgres user, since initdb and postgres
// refuse to run as root.
