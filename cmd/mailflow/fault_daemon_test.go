package main

// Helpers of the fault tests: the daemon as its own process, and the set of
// SMTP sinks that records every delivery across restarts.

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mailflow/examples"
	"mailflow/internal/mailtest"
)

// keepLog copies a failed test's daemon log out of its temp dir, which
// is removed, and says where it is; the end goes into the test output.
func keepLog(t *testing.T, path string) {
	if !t.Failed() && os.Getenv("MAILFLOW_FAULT_KEEP_LOGS") == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	kept := filepath.Join(os.TempDir(), strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())+"-daemon.log")
	if os.WriteFile(kept, b, 0o644) == nil {
		t.Logf("daemon log kept in %s", kept)
	}
	t.Logf("daemon log (end):\n%s", logTail(path, 6000))
}

// logTail returns the end of a log file for a failure message.
func logTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// startFaultDaemon runs the daemon in this process, logging to a file
// whose end is printed when the test fails.
func startFaultDaemon(t *testing.T, c daemonConfig) *e2e {
	t.Helper()
	cfg, err := loadConfig(c.write(t))
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "daemon.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		logf.Close()
		keepLog(t, logPath)
	})
	return runDaemon(t, cfg, slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

// procUnderLoad runs `mailflow serve` as a process on a SQLite file
// (dbPath) with an in-process SMTP sink and IMAP box, imports the example
// catalog and returns a load of n orders for it.
func procUnderLoad(t *testing.T, n int) (p *daemonProc, l *load, dbPath string) {
	t.Helper()
	bin := buildDaemon(t)
	sink := mailtest.NewSMTPServer(t)
	box, err := mailtest.NewIMAPServer("bestellungen@example.org", "imap-pass")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { box.Close() })
	dbPath = filepath.Join(t.TempDir(), "mailflow.db")
	p = newDaemonProc(t, bin, daemonConfig{driver: "sqlite", dsn: dbPath, smtpPort: sink.Port,
		imapPort: box.Port(), imapUser: "bestellungen@example.org", imapPass: "imap-pass"})
	p.start()
	p.waitHealthy(30 * time.Second)
	(&e2e{t: t, base: p.base}).api("PUT", "/api/v1/catalog", e2eCoord, examples.Catalog(), 200)
	return p, newLoad(t, p.base, box, oneSink(sink), n), dbPath
}

// buildDaemon compiles cmd/mailflow (without the race detector: the
// daemon runs as its own process, the test's side is what -race checks).
func buildDaemon(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "mailflow")
	start := time.Now()
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/mailflow")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built the daemon in %s", time.Since(start).Round(time.Millisecond))
	return bin
}

// daemonProc is `mailflow -config FILE serve` as its own process, which a
// test can kill and start again; all runs append to one log file.
type daemonProc struct {
	t       *testing.T
	bin     string
	config  string
	base    string
	logPath string
	starts  int

	cmd  *exec.Cmd
	done chan struct{}
}

func newDaemonProc(t *testing.T, bin string, c daemonConfig) *daemonProc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.listen = ln.Addr().String()
	ln.Close()
	p := &daemonProc{t: t, bin: bin, config: c.write(t), base: "http://" + c.listen,
		logPath: filepath.Join(t.TempDir(), "daemon.log")}
	t.Cleanup(func() {
		p.kill()
		keepLog(t, p.logPath)
	})
	return p
}

func (p *daemonProc) start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	p.starts++
	fmt.Fprintf(logf, "---- test: start %d at %s\n", p.starts, time.Now().Format(time.StampMilli))
	cmd := exec.Command(p.bin, "-config", p.config, "serve")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start daemon: %v", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

// running reports whether the process has not exited.
func (p *daemonProc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL and waits for it.
func (p *daemonProc) kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// terminate sends SIGTERM and waits up to limit; it returns how long the
// process took and its exit status (-1: killed after the limit).
func (p *daemonProc) terminate(limit time.Duration) (time.Duration, int) {
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(limit):
		p.kill()
		return time.Since(start), -1
	}
	took := time.Since(start)
	code := p.cmd.ProcessState.ExitCode()
	p.cmd = nil
	return took, code
}

// waitHealthy waits until /healthz answers.
func (p *daemonProc) waitHealthy(limit time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := faultHTTP.Get(p.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if !p.running() {
			p.t.Fatalf("daemon exited at start:\n%s", logTail(p.logPath, 4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("daemon not healthy after %s", limit)
}

var faultHTTP = &http.Client{Timeout: 15 * time.Second}

// sinkSet is every SMTP server instance of a test in order, so that a
// server taken down and started again on the same port counts as one sink.
type sinkSet struct {
	mu    sync.Mutex
	sinks []*mailtest.SMTPServer
}

func (s *sinkSet) add(srv *mailtest.SMTPServer) {
	s.mu.Lock()
	s.sinks = append(s.sinks, srv)
	s.mu.Unlock()
}

func (s *sinkSet) current() *mailtest.SMTPServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sinks[len(s.sinks)-1]
}

// Messages returns the deliveries of all instances.
func (s *sinkSet) Messages() []mailtest.Message {
	var out []mailtest.Message
	for _, msgs := range s.each() {
		out = append(out, msgs...)
	}
	return out
}

// each returns the deliveries per instance. A closed instance may still
// record a message whose transfer was complete when it closed.
func (s *sinkSet) each() [][]mailtest.Message {
	s.mu.Lock()
	sinks := slices.Clone(s.sinks)
	s.mu.Unlock()
	out := make([][]mailtest.Message, len(sinks))
	for i, srv := range sinks {
		out[i] = srv.Messages()
	}
	return out
}

func (s *sinkSet) count() int {
	n := 0
	for _, msgs := range s.each() {
		n += len(msgs)
	}
	return n
}

func oneSink(srv *mailtest.SMTPServer) *sinkSet {
	s := &sinkSet{}
	s.add(srv)
	return s
}
