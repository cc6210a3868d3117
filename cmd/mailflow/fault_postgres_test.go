package main

// The PostgreSQL fault test: a private cluster restarted under load.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mailflow/internal/mailtest"
)

type privatePostgres struct {
	t    *testing.T
	bin  string // directory of initdb, pg_ctl
	dir  string // data, socket and log
	port int
	cred *syscall.Credential // nil: run as ourselves
}

// postgresBinDir finds the PostgreSQL server binaries: $MAILFLOW_TEST_PG_BIN,
// or the newest /usr/lib/postgresql/*/bin (Debian).
func postgresBinDir() (string, error) {
	if d := os.Getenv("MAILFLOW_TEST_PG_BIN"); d != "" {
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	best, bestVersion := "", -1.0
	for _, m := range matches {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(m))), 64)
		if err == nil && v > bestVersion {
			best, bestVersion = filepath.Dir(m), v
		}
	}
	if best == "" {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", fmt.Errorf("no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or PATH; set MAILFLOW_TEST_PG_BIN")
	}
	return best, nil
}

func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bin, err := postgresBinDir()
	if err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "mfpg") // short: the socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	p := &privatePostgres{t: t, bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		u, err := userLookup("postgres", "nobody")
		if err != nil {
			os.RemoveAll(dir)
			t.Skip("running as root and no postgres or nobody user to run PostgreSQL as: ", err)
		}
		p.cred = u
		if err := os.Chown(dir, int(u.Uid), int(u.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		p.pgctl("stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	if out, err := p.run("initdb", "-D", p.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p.start()
	return p
}

func userLookup(names ...string) (*syscall.Credential, error) {
	var lastErr error
	for _, name := range names {
		out, err := exec.Command("id", "-u", name).Output()
		if err != nil {
			lastErr = err
			continue
		}
		gout, err := exec.Command("id", "-g", name).Output()
		if err != nil {
			lastErr = err
			continue
		}
		uid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		gid, _ := strconv.Atoi(strings.TrimSpace(string(gout)))
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, lastErr
}

func (p *privatePostgres) data() string { return filepath.Join(p.dir, "data") }

// DSN is the cluster's postgres database.
func (p *privatePostgres) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

func (p *privatePostgres) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	return cmd.CombinedOutput()
}

func (p *privatePostgres) pgctl(args ...string) ([]byte, error) {
	return p.run("pg_ctl", append([]string{"-D", p.data(), "-w", "-t", "60"}, args...)...)
}

func (p *privatePostgres) start() {
	p.t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off -c max_connections=60", p.port, p.dir)
	if out, err := p.pgctl("-l", filepath.Join(p.dir, "postgres.log"), "-o", opts, "start"); err != nil {
		p.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, logTail(filepath.Join(p.dir, "postgres.log"), 3000))
	}
}

// stop stops the server: "fast" ends the sessions, "immediate" is a crash
// (recovery from the WAL at the next start).
func (p *privatePostgres) stop(mode string) {
	p.t.Helper()
	if out, err := p.pgctl("stop", "-m", mode); err != nil {
		p.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// TestFaultPostgresRestart restarts the daemon's PostgreSQL three times
// under load (a crash and two shutdowns, down for 1 s to 6 s). The daemon
// must recover by itself: every order in its final status, every reply
// applied once, every message delivered once.
func TestFaultPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a PostgreSQL cluster under load")
	}
	pg := startPrivatePostgres(t)
	sink := mailtest.NewSMTPServer(t)
	box, err := mailtest.NewIMAPServer("bestellungen@example.org", "imap-pass")
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	// The lease must outlast the outages (10 s in all): a delivered
	// message is recorded as sent once the database is back.
	e := startFaultDaemon(t, daemonConfig{driver: "postgres", dsn: pg.DSN(), smtpPort: sink.Port,
		imapPort: box.Port(), imapUser: "bestellungen@example.org", imapPass: "imap-pass", lease: "1m"})
	l := newLoad(t, e.base, box, oneSink(sink), 300)
	l.pace = 40 * time.Millisecond
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	wg.Go(func() { l.createAll(ctx, 0, l.n, 2) })
	wg.Go(func() { l.replyLoop(ctx) })
	restarts := []struct {
		mode string
		down time.Duration
	}{{"immediate", time.Second}, {"fast", 3 * time.Second}, {"immediate", 6 * time.Second}}
	var down [][2]time.Time
	for k, r := range restarts {
		time.Sleep(1500 * time.Millisecond)
		busy, why := l.caughtUp()
		// A slow relay: messages are in flight when the database goes,
		// and their outcome can only be recorded once it is back.
		sink.SetDelay(time.Second)
		time.Sleep(300 * time.Millisecond)
		pg.stop(r.mode)
		stoppedAt := time.Now()
		time.Sleep(r.down)
		sink.SetDelay(0)
		pg.start()
		down = append(down, [2]time.Time{stoppedAt, time.Now()})
		t.Logf("restart %d at %4.1fs (%s stop, down %s): %s", k+1, time.Since(start).Seconds(), r.mode, r.down, why)
		if busy {
			t.Errorf("restart %d: no load", k+1)
		}
	}
	upAt := time.Now()
	l.waitCaughtUp(2 * time.Minute)
	recovered := time.Since(upAt)
	resp, err := faultHTTP.Get(e.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/readyz %d after the restarts", resp.StatusCode)
	}
	cancel()
	wg.Wait()
	// The load has stopped: let the last answers leave before the stop.
	l.waitSettled(time.Minute)
	e.stop()
	f := l.verify(openStore(t, "postgres", pg.DSN()))
	// Deliveries completed while the database was down could only be
	// recorded as sent once it was back; verify found none sent twice.
	inFlight := 0
	for _, m := range sink.Messages() {
		for _, w := range down {
			if m.At.After(w[0]) && m.At.Before(w[1]) {
				inFlight++
			}
		}
	}
	if inFlight == 0 {
		t.Error("no delivery completed while the database was down: the test did not exercise recording a send after a restart")
	}
	t.Logf("PostgreSQL restart test: %s; %d restarts under load, %d deliveries completed while the database was down, %d API requests repeated, caught up %.1fs after the last restart",
		f, len(restarts), inFlight, l.retries.Load(), recovered.Seconds())
}
