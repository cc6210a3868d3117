package main

// Fault tests of issue 7: no lost or doubled work when the SMTP server is
// down, the IMAP connection dies, PostgreSQL restarts, or the daemon is
// killed or stopped. They run the real daemon (in-process, or as its own
// process where it must die) against real servers on loopback: the
// in-process SMTP sink that records every delivery, the in-process IMAP
// server or a real Dovecot, SQLite and a private PostgreSQL cluster.
//
// One load driver serves them all: it creates orders through the API (a
// failed request is retried with the same external_id, as a portal does),
// answers each notification the SMTP sink receives with the replies its
// order's script prescribes, appends them to the IMAP server, waits until
// the daemon has caught up and then checks the database and the sink.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"mailflow/examples"
	"mailflow/mailflow"
	"mailflow/mailflow/mailtest"
	"mailflow/storage"
	"mailflow/storage/storagetest"
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

// orderScript is what happens to one order: its contract model, the
// replies its parties send, and the status it must end in.
type orderScript struct {
	model   string
	replies []scriptReply
	want    mailflow.Status
}

type scriptReply struct {
	party, text string
}

// faultScripts cycle over the orders: ten orders, ten replies, a mix of
// DV and UV, acceptances, rejections, interim answers and silence.
var faultScripts = []orderScript{
	{"DV", []scriptReply{{"provider", "BESTÄTIGT\n\nMit freundlichen Grüßen"}}, mailflow.StatusOrdered},
	{"DV", []scriptReply{{"provider", "ABGELEHNT: Die Kapazität im Rechenzentrum ist erschöpft."}}, mailflow.StatusRejectedProviderDV},
	{"UV", []scriptReply{{"intermediary", "Bestätigt."}, {"provider", "CONFIRMED"}}, mailflow.StatusOrdered},
	{"UV", []scriptReply{{"intermediary", "ABGELEHNT\nDer Kunde ist nicht Mitglied der Genossenschaft."}}, mailflow.StatusRejectedIntermediary},
	{"UV", []scriptReply{{"intermediary", "ANGENOMMEN"}, {"provider", "REJECTED: no capacity in this region"}}, mailflow.StatusRejectedProviderUV},
	{"DV", nil, mailflow.StatusOpen},
	{"UV", nil, mailflow.StatusOpen},
	{"DV", []scriptReply{{"provider", "IN BEARBEITUNG\nWir prüfen die Kapazitäten."}, {"provider", "BESTÄTIGT"}}, mailflow.StatusOrdered},
	{"DV", []scriptReply{{"provider", "IN PRÜFUNG"}}, mailflow.StatusReviewProviderDV},
	{"DV", nil, mailflow.StatusOpen},
}

// notice is a notification the sink received, which its party answers.
type notice struct {
	number, party      string
	replyTo, messageID string
	subject            string
}

// load drives a daemon with n orders and their replies.
type load struct {
	t      *testing.T
	base   string
	box    imapBox
	sinks  *sinkSet
	n      int
	run    string // prefix of external ids and reply Message-IDs
	script func(i int) orderScript
	pad    int           // bytes of quoted text added to each reply
	pace   time.Duration // pause of each creator between two orders
	manual bool          // replies are appended only for released orders

	bodies  map[string][]byte // contract model → order JSON
	created atomic.Int64      // orders the API confirmed
	existed atomic.Int64      // of which it answered "exists already": a retried request had created it
	retries atomic.Int64      // API requests that failed and were repeated
	appends atomic.Int64      // replies appended to the mailbox

	mu       sync.Mutex
	numbers  map[string]int    // order number → index
	cursors  []int             // sink messages looked at, per instance
	notices  map[string]notice // "number/party" → its notification
	answered map[string]bool   // order numbers whose replies are appended
	released map[int]bool      // manual mode: orders that may be answered
	faults   []time.Time       // kills and outages: a duplicate delivery must straddle one
}

func newLoad(t *testing.T, base string, box imapBox, sinks *sinkSet, n int) *load {
	l := &load{t: t, base: base, box: box, sinks: sinks, n: n,
		run:    fmt.Sprintf("f%x", time.Now().UnixNano()&0xffffff),
		script: func(i int) orderScript { return faultScripts[i%len(faultScripts)] },
		bodies: map[string][]byte{}, numbers: map[string]int{}, notices: map[string]notice{},
		answered: map[string]bool{}, released: map[int]bool{}}
	l.bodies["DV"], l.bodies["UV"] = examples.OrderDV(), examples.OrderUV()
	return l
}

func (l *load) wantReplies() int {
	n := 0
	for i := range l.n {
		n += len(l.script(i).replies)
	}
	return n
}

func (l *load) wantStatuses() map[mailflow.Status]int {
	m := map[mailflow.Status]int{}
	for i := range l.n {
		m[l.script(i).want]++
	}
	return m
}

func (l *load) fault(at time.Time) {
	l.mu.Lock()
	l.faults = append(l.faults, at)
	l.mu.Unlock()
}

// straddles reports whether a fault happened between two deliveries.
func (l *load) straddles(a, b time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.faults {
		if a.Before(f) && f.Before(b) {
			return true
		}
	}
	return false
}

func (l *load) externalID(i int) string { return fmt.Sprintf("%s-%05d", l.run, i) }

func (l *load) indexOf(externalID string) (int, bool) {
	rest, ok := strings.CutPrefix(externalID, l.run+"-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	return i, err == nil && i >= 0 && i < l.n
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// createAll creates orders from..to-1 with workers concurrent clients.
func (l *load) createAll(ctx context.Context, from, to, workers int) {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				l.create(ctx, i)
				if l.pace > 0 {
					sleepCtx(ctx, l.pace)
				}
			}
		})
	}
	wg.Wait()
}

// create posts order i until the API confirms it, as a portal does: a
// request that failed (daemon down, database down) is sent again with the
// same external_id, which the daemon deduplicates.
func (l *load) create(ctx context.Context, i int) {
	var m map[string]any
	json.Unmarshal(l.bodies[l.script(i).model], &m)
	m["external_id"] = l.externalID(i)
	body, _ := json.Marshal(m)
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "POST", l.base+"/api/v1/orders", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e2ePortal)
		req.Header.Set("Content-Type", "application/json")
		resp, err := faultHTTP.Do(req)
		if err == nil {
			raw, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case rerr != nil:
			case resp.StatusCode == 201 || resp.StatusCode == 200:
				var o struct {
					Number string `json:"number"`
				}
				if json.Unmarshal(raw, &o) == nil && o.Number != "" {
					l.mu.Lock()
					l.numbers[o.Number] = i
					l.mu.Unlock()
					l.created.Add(1)
					if resp.StatusCode == 200 {
						l.existed.Add(1)
					}
					return
				}
			case resp.StatusCode < 500:
				l.t.Errorf("create order %d: %d %s", i, resp.StatusCode, raw)
				return
			}
		}
		l.retries.Add(1)
		sleepCtx(ctx, 50*time.Millisecond)
	}
}

var subjectNumber = regexp.MustCompile(`\[Bestellung (\d{4}-\d{6})\]`)

// collect notes the notifications among the new deliveries; a
// notification delivered twice is answered once.
func (l *load) collect() {
	each := l.sinks.each()
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.cursors) < len(each) {
		l.cursors = append(l.cursors, 0)
	}
	for k, msgs := range each {
		for ; l.cursors[k] < len(msgs); l.cursors[k]++ {
			l.notice(msgs[l.cursors[k]])
		}
	}
}

func (l *load) notice(m mailtest.Message) {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		return
	}
	subj := subject(msg)
	if !strings.Contains(subj, "Neue Bestellung") && !strings.Contains(subj, "New order") {
		return
	}
	num := subjectNumber.FindStringSubmatch(subj)
	if num == nil {
		return
	}
	party := mailflow.PartyProvider
	if slices.Contains(m.To, "auftrag@govdigital.example") {
		party = mailflow.PartyIntermediary
	}
	key := num[1] + "/" + party
	if _, ok := l.notices[key]; !ok {
		l.notices[key] = notice{number: num[1], party: party, replyTo: msg.Header.Get("Reply-To"),
			messageID: msg.Header.Get("Message-ID"), subject: msg.Header.Get("Subject")}
	}
}

// answer appends the replies to every order whose notifications have all
// been noticed and whose number is known (and, in manual mode, which is
// released), in the order of its script: the mailbox hands them to the
// daemon in that order, so a UV provider's rejection cannot overtake the
// intermediary's acceptance and turn it into a conflict.
func (l *load) answer(ctx context.Context) {
	l.collect()
	type job struct {
		i       int
		notices map[string]notice
	}
	var jobs []job
	l.mu.Lock()
	for number, i := range l.numbers {
		if l.answered[number] || l.manual && !l.released[i] {
			continue
		}
		j := job{i, map[string]notice{}}
		for _, r := range l.script(i).replies {
			if n, ok := l.notices[number+"/"+r.party]; ok {
				j.notices[r.party] = n
			}
		}
		if len(j.notices) < len(parties(l.script(i))) {
			continue
		}
		l.answered[number] = true
		jobs = append(jobs, j)
	}
	l.mu.Unlock()
	slices.SortFunc(jobs, func(a, b job) int { return a.i - b.i })
	for _, j := range jobs {
		for seq, r := range l.script(j.i).replies {
			l.appendReply(ctx, l.reply(j.i, seq, j.notices[r.party], r))
		}
	}
}

// parties are the parties that answer in a script.
func parties(sc orderScript) map[string]bool {
	m := map[string]bool{}
	for _, r := range sc.replies {
		m[r.party] = true
	}
	return m
}

// release lets manual mode answer order i.
func (l *load) release(i int) {
	l.mu.Lock()
	l.released[i] = true
	l.mu.Unlock()
}

func (l *load) appendReply(ctx context.Context, raw []byte) {
	for attempt := 0; ; attempt++ {
		err := l.box.Append("INBOX", raw)
		if err == nil {
			l.appends.Add(1)
			return
		}
		if attempt == 20 || ctx.Err() != nil {
			l.t.Errorf("append a reply: %v", err)
			return
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// replyLoop answers notifications until every reply is out or ctx ends.
func (l *load) replyLoop(ctx context.Context) {
	want := int64(l.wantReplies())
	for ctx.Err() == nil && l.appends.Load() < want {
		l.answer(ctx)
		sleepCtx(ctx, 30*time.Millisecond)
	}
}

// sender is the address a party of order i answers from: one of its own
// per order, so that the loop guard (20 mails per sender and hour) and
// the answer throttle do not mix orders up.
func (l *load) sender(i int, party string) string {
	switch {
	case party == mailflow.PartyIntermediary:
		return fmt.Sprintf("i%d@govdigital.example", i)
	case l.script(i).model == "UV":
		return fmt.Sprintf("p%d@it.nrw.example", i)
	}
	return fmt.Sprintf("p%d@dataport.example", i)
}

func (l *load) replyID(i, seq int, party string) string {
	return fmt.Sprintf("%s-%05d-%s-%d@client.example", l.run, i, party, seq)
}

// reply is a party's answer as a mail client writes it: to the
// notification's Reply-To, with In-Reply-To, the keyword on the first
// line and quoted text that contains both keywords (which must not count).
func (l *load) reply(i, seq int, n notice, r scriptReply) []byte {
	var quote strings.Builder
	for quote.Len() < l.pad {
		quote.WriteString("> Zitierte Bestellung; zählt nicht: BESTÄTIGT oder ABGELEHNT, bitte antworten Sie bald.\r\n")
	}
	return []byte(fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: AW: %s\r\nDate: %s\r\nMessage-ID: <%s>\r\n"+
		"In-Reply-To: %s\r\nReferences: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n\r\nAm 20.11.2026 um 10:00 schrieb DVC Bestellservice:\r\n"+
		"> Bitte antworten Sie mit BESTÄTIGT oder ABGELEHNT.\r\n%s",
		l.sender(i, n.party), n.replyTo, n.subject, time.Now().Format(time.RFC1123Z), l.replyID(i, seq, n.party),
		n.messageID, n.messageID, strings.ReplaceAll(r.text, "\n", "\r\n"), quote.String()))
}

// scrape reads the daemon's /metrics into name{labels} → value.
func scrape(base string) (map[string]float64, error) {
	resp, err := faultHTTP.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// settled reports whether the daemon has done the work so far: every
// created order whose script has replies answered, every reply received
// and filed, no mail pending. why says what is missing.
func (l *load) settled() (ok bool, why string) {
	l.mu.Lock()
	unanswered := 0
	for number, i := range l.numbers {
		if len(l.script(i).replies) > 0 && !l.answered[number] {
			unanswered++
		}
	}
	l.mu.Unlock()
	if unanswered > 0 {
		return false, fmt.Sprintf("%d orders not answered yet", unanswered)
	}
	m, err := scrape(l.base)
	if err != nil {
		return false, err.Error()
	}
	if m["mailflow_metrics_db_error"] != 0 {
		return false, "database not readable"
	}
	if p := m[`mailflow_outbox_messages{state="pending"}`]; p > 0 {
		return false, fmt.Sprintf("%v outbox messages pending", p)
	}
	var inbound float64
	for k, v := range m {
		if strings.HasPrefix(k, "mailflow_inbound_messages{") {
			inbound += v
		}
	}
	if a := l.appends.Load(); inbound != float64(a) {
		return false, fmt.Sprintf("%v of %d replies received", inbound, a)
	}
	uids, err := l.box.UIDs("INBOX")
	if err != nil {
		return false, err.Error()
	}
	if len(uids) > 0 {
		return false, fmt.Sprintf("%d messages in INBOX", len(uids))
	}
	return true, ""
}

// caughtUp reports whether the daemon has done all the work: every order
// created and in its final status, every reply received and filed, no
// mail pending. why says what is missing.
func (l *load) caughtUp() (ok bool, why string) {
	if c := l.created.Load(); c < int64(l.n) {
		return false, fmt.Sprintf("%d of %d orders created", c, l.n)
	}
	if ok, why := l.settled(); !ok {
		return false, why
	}
	m, err := scrape(l.base)
	if err != nil {
		return false, err.Error()
	}
	for st, n := range l.wantStatuses() {
		if got := m[`mailflow_orders{status="`+string(st)+`"}`]; got != float64(n) {
			return false, fmt.Sprintf("%v orders %s, want %d", got, st, n)
		}
	}
	return true, ""
}

// waitSettled waits for settled and returns how long that took.
func (l *load) waitSettled(limit time.Duration) time.Duration {
	l.t.Helper()
	start := time.Now()
	for {
		ok, why := l.settled()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			l.t.Fatalf("the daemon did not settle within %s: %s", limit, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// number returns the number of order i once the API has told it.
func (l *load) number(i int) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for number, idx := range l.numbers {
		if idx == i {
			return number, true
		}
	}
	return "", false
}

// waitCaughtUp waits for caughtUp and returns how long that took.
func (l *load) waitCaughtUp(limit time.Duration) time.Duration {
	l.t.Helper()
	start := time.Now()
	deadline := start.Add(limit)
	for {
		ok, why := l.caughtUp()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("the daemon did not catch up within %s: %s", limit, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// faultFigures are what a fault test reports.
type faultFigures struct {
	orders, replies, decisions int
	outbox, deliveries         int // outbox rows, deliveries the sink recorded
	duplicates                 int // deliveries beyond the first, each straddling a fault
	losses                     int // outbox row and recipient the sink never got
	processed                  int // messages in the processed folder
}

func (f faultFigures) String() string {
	return fmt.Sprintf("%d orders, %d replies (%d decisions), %d outbound messages, %d deliveries, %d duplicates, %d losses",
		f.orders, f.replies, f.decisions, f.outbox, f.deliveries, f.duplicates, f.losses)
}

// verify checks the database (of the stopped daemon) and the sink: each
// order once and in its script's final status, one decision per reply and
// none applied twice, every outbound message sent and delivered to each
// recipient, a second delivery only across a fault and byte-identical,
// nothing delivered that the outbox does not hold, the mails each outcome
// sends all there, and every reply filed.
func (l *load) verify(db *sqlx.DB) faultFigures {
	t := l.t
	t.Helper()
	var f faultFigures
	errs := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 20 {
			t.Errorf(format, args...)
		}
	}
	var orders []struct {
		ID         int64  `db:"id"`
		Number     string `db:"number"`
		ExternalID string `db:"external_id"`
		Status     string `db:"status"`
	}
	if err := db.Select(&orders, `SELECT id, number, external_id, status FROM orders`); err != nil {
		t.Fatal(err)
	}
	f.orders = len(orders)
	index := map[int64]int{}
	seen := map[int]bool{}
	for _, o := range orders {
		i, ok := l.indexOf(o.ExternalID)
		switch {
		case !ok:
			fail("unexpected order %s (%s)", o.Number, o.ExternalID)
			continue
		case seen[i]:
			fail("order %d stored twice", i)
		}
		seen[i], index[o.ID] = true, i
		if want := l.script(i).want; o.Status != string(want) {
			fail("order %s (%s, script %d): status %s, want %s", o.Number, o.ExternalID, i%len(faultScripts), o.Status, want)
		}
	}
	if len(orders) != l.n {
		fail("%d orders stored, want %d", len(orders), l.n)
	}

	// One decision per reply; none recorded twice.
	want := map[string]bool{}
	for i := range l.n {
		for seq, r := range l.script(i).replies {
			want[l.replyID(i, seq, r.party)] = true
		}
	}
	f.replies = len(want)
	var decisions []struct {
		OrderID   int64  `db:"order_id"`
		Party     string `db:"party"`
		MessageID string `db:"message_id"`
	}
	if err := db.Select(&decisions, `SELECT order_id, party, message_id FROM decisions`); err != nil {
		t.Fatal(err)
	}
	f.decisions = len(decisions)
	applied := map[string]int{}
	for _, d := range decisions {
		id := strings.Trim(d.MessageID, "<>")
		key := fmt.Sprintf("%d/%s/%s", d.OrderID, d.Party, id)
		if applied[key]++; applied[key] == 2 {
			fail("decision %s applied twice", key)
		}
		if !want[id] {
			fail("decision from unexpected message %q", id)
		}
		delete(want, id)
	}
	for id := range want {
		fail("reply %s led to no decision", id)
	}
	var verdicts []struct {
		Verdict string `db:"verdict"`
		N       int    `db:"n"`
	}
	if err := db.Select(&verdicts, `SELECT verdict, COUNT(*) AS n FROM inbound GROUP BY verdict`); err != nil {
		t.Fatal(err)
	}
	for _, v := range verdicts {
		if v.Verdict != mailflow.VerdictApplied || v.N != f.replies {
			fail("inbound: %d messages with verdict %q, want %d applied", v.N, v.Verdict, f.replies)
		}
	}

	// Every outbound message sent and delivered, resends byte-identical.
	type key struct{ id, rcpt string }
	got := map[key][]mailtest.Message{}
	for _, m := range l.sinks.Messages() {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			fail("unreadable delivery: %v", err)
			continue
		}
		id := strings.Trim(msg.Header.Get("Message-ID"), "<> ")
		for _, r := range m.To {
			got[key{id, strings.ToLower(r)}] = append(got[key{id, strings.ToLower(r)}], m)
		}
	}
	var rows []struct {
		ID         int64  `db:"id"`
		OrderID    *int64 `db:"order_id"`
		Kind       string `db:"kind"`
		Recipients string `db:"recipients"`
		MessageID  string `db:"message_id"`
		Raw        []byte `db:"raw"`
		Status     string `db:"status"`
	}
	if err := db.Select(&rows, `SELECT o.id, o.order_id, o.kind, o.recipients, o.message_id, r.raw, o.status
		FROM outbox o JOIN outbox_raw r ON r.outbox_id = o.id ORDER BY o.id`); err != nil {
		t.Fatal(err)
	}
	f.outbox = len(rows)
	known := map[key]bool{}
	kinds := map[int64]map[string]int{}
	for _, r := range rows {
		if r.OrderID != nil {
			if kinds[*r.OrderID] == nil {
				kinds[*r.OrderID] = map[string]int{}
			}
			kinds[*r.OrderID][r.Kind]++
		}
		if r.Status != mailflow.OutboxSent {
			fail("outbox %d (%s) is %s, want sent", r.ID, r.Kind, r.Status)
		}
		var rcpts []string
		json.Unmarshal([]byte(r.Recipients), &rcpts)
		for _, rc := range rcpts {
			k := key{r.MessageID, strings.ToLower(rc)}
			known[k] = true
			copies := got[k]
			f.deliveries += len(copies)
			if len(copies) == 0 {
				f.losses++
				fail("outbox %d (%s) never reached %s", r.ID, r.Kind, rc)
				continue
			}
			for n, c := range copies {
				if !bytes.Equal(c.Data, r.Raw) {
					fail("outbox %d (%s): delivery %d to %s differs from the stored bytes", r.ID, r.Kind, n+1, rc)
				}
				if n > 0 {
					f.duplicates++
					if !l.straddles(copies[n-1].At, c.At) {
						fail("outbox %d (%s) delivered to %s again at %s (first %s) with no fault in between: a duplicate in the normal path",
							r.ID, r.Kind, rc, c.At.Format(time.StampMilli), copies[n-1].At.Format(time.StampMilli))
					}
				}
			}
		}
	}
	for k, copies := range got {
		if !known[k] {
			fail("%d deliveries of %s to %s that the outbox does not hold", len(copies), k.id, k.rcpt)
		}
	}

	// The mails each outcome sends (DESIGN §3) are all there.
	for id, i := range index {
		sc := l.script(i)
		parties := 1
		if sc.model == "UV" {
			parties = 2
		}
		wantKinds := map[string]int{mailflow.KindNotification: parties}
		switch {
		case sc.want == mailflow.StatusOrdered:
			wantKinds[mailflow.KindConfirmation] = parties + 2 // the parties, the customer, the coordinator
		case sc.want.Terminal():
			wantKinds[mailflow.KindRejection] = parties + 1 // the other parties, the customer, the coordinator
		}
		for kind, n := range wantKinds {
			if kinds[id][kind] != n {
				fail("order %s: %d %s mails, want %d", l.externalID(i), kinds[id][kind], kind, n)
			}
		}
	}

	// Every reply filed away, none left.
	if uids, err := l.box.UIDs("INBOX"); err != nil || len(uids) != 0 {
		fail("INBOX: %d messages left (%v)", len(uids), err)
	}
	if uids, err := l.box.UIDs("Review"); err != nil || len(uids) != 0 {
		fail("Review: %d messages (%v)", len(uids), err)
	}
	uids, err := l.box.UIDs("Processed")
	if err != nil {
		fail("Processed: %v", err)
	}
	f.processed = len(uids)
	if f.processed != f.replies {
		fail("Processed holds %d messages, want %d", f.processed, f.replies)
	}
	if errs > 20 {
		t.Errorf("… and %d more errors", errs-20)
	}
	return f
}

// openStore opens the database of a stopped daemon for verify.
func openStore(t *testing.T, driver, dsn string) *sqlx.DB {
	t.Helper()
	s, err := storage.Open(context.Background(), driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.DB()
}

// envInt reads a positive integer from the environment, else def.
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a number", name, v)
	}
	return n
}

// TestFaultKill kills the daemon (its own process, SQLite in WAL mode)
// with SIGKILL at random moments while it works through orders and
// replies, and starts it again at once. Afterwards every order must be in
// its script's status, every outbound message delivered under one
// Message-ID, a second delivery only of a message in flight at a kill and
// then byte-identical, and no decision applied twice.
//
// MAILFLOW_FAULT_ORDERS (default 1000; the orders bring as many replies),
// MAILFLOW_FAULT_KILLS (default 20) and MAILFLOW_FAULT_SEED (default: the
// clock, logged) change the run.
func TestFaultKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a daemon twenty times under load")
	}
	n := envInt(t, "MAILFLOW_FAULT_ORDERS", 1000)
	kills := envInt(t, "MAILFLOW_FAULT_KILLS", 20)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MAILFLOW_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MAILFLOW_FAULT_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with MAILFLOW_FAULT_SEED=%d), %d orders, %d kills", seed, seed, n, kills)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	p, l, dbPath := procUnderLoad(t, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() { l.createAll(ctx, 0, n, 4) })
	wg.Go(func() { l.replyLoop(ctx) })

	// Kill at random intervals, restart at once.
	underLoad := 0
	for k := 1; k <= kills; k++ {
		time.Sleep(time.Duration(300+rng.IntN(1700)) * time.Millisecond)
		busy, why := l.caughtUp()
		p.kill()
		// A message in flight went out before this moment, its resend
		// after it.
		at := time.Now()
		l.fault(at)
		p.start()
		if !busy {
			underLoad++
		}
		t.Logf("kill %2d at %5.1fs: %d/%d orders, %d replies appended, %d delivered; %s",
			k, at.Sub(start).Seconds(), l.created.Load(), n, l.appends.Load(), l.sinks.count(), why)
	}
	took := l.waitCaughtUp(3 * time.Minute)
	total := time.Since(start)
	cancel()
	wg.Wait()
	if d, code := p.terminate(20 * time.Second); code != 0 {
		t.Errorf("daemon exit status %d after SIGTERM (%s)", code, d)
	}
	db := openStore(t, "sqlite", dbPath)
	var integrity string
	if err := db.Get(&integrity, `PRAGMA integrity_check`); err != nil || integrity != "ok" {
		t.Errorf("SQLite integrity check after %d kills: %q %v", kills, integrity, err)
	}
	f := l.verify(db)
	// A kill leaves unrecorded at most the deliveries in flight (one per
	// SMTP connection, smtp.concurrency = 4) and those delivered but not
	// yet marked sent: the statement marking them (what arrived while the
	// last one ran: up to a batch of 32 and the workers' 4) and the next
	// batch waiting for it.
	if perKill := 2*32 + 2*4 + 1; f.duplicates > perKill*kills {
		t.Errorf("%d duplicates for %d kills: more than the %d deliveries a kill can leave unrecorded", f.duplicates, kills, perKill)
	}
	t.Logf("kill test: %s; %d kills (%d under load), %d daemon starts, %d API requests repeated (%d answered \"exists\"); done %.1fs after start, %.1fs after the last kill",
		f, kills, underLoad, p.starts, l.retries.Load(), l.existed.Load(), total.Seconds(), took.Seconds())
}

// waitUntil polls cond until it holds or limit passes.
func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestFaultGracefulShutdown stops `mailflow serve` with SIGTERM three
// times while it works: each time it must exit with status 0 within 20 s,
// and after the restarts every order must end right with nothing lost and
// nothing sent twice, since a graceful stop finishes and records the
// deliveries it has started.
func TestFaultGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon as a process under load")
	}
	const stops = 3
	p, l, dbPath := procUnderLoad(t, 300)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() { l.createAll(ctx, 0, l.n, 4) })
	wg.Go(func() { l.replyLoop(ctx) })
	var longest time.Duration
	for k := 1; k <= stops; k++ {
		// Somewhere in the k-th quarter of the orders, so that work is in
		// flight however fast the machine.
		at := int64(k*l.n/(stops+1) + rand.IntN(l.n/(stops+1)/2))
		waitUntil(t, "orders to be created", time.Minute, func() bool { return l.created.Load() >= at })
		busy, why := l.caughtUp()
		took, code := p.terminate(20 * time.Second)
		longest = max(longest, took)
		t.Logf("SIGTERM %d at %4.1fs (%s): exit status %d after %s", k, time.Since(start).Seconds(), why, code, took.Round(time.Millisecond))
		if busy {
			t.Errorf("SIGTERM %d: the daemon had no work in flight", k)
		}
		if code != 0 {
			t.Fatalf("SIGTERM %d: exit status %d after %s, want 0 within 20 s", k, code, took)
		}
		// What the sender had taken from the outbox it finished: nothing
		// waits for its lease to run out after the restart.
		var claimed int
		db := openStore(t, "sqlite", dbPath)
		if err := db.Get(&claimed, `SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND claimed_until IS NOT NULL`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if claimed > 0 {
			t.Errorf("SIGTERM %d: %d outbox rows left claimed", k, claimed)
		}
		p.start()
	}
	l.waitCaughtUp(2 * time.Minute)
	cancel()
	wg.Wait()
	took, code := p.terminate(20 * time.Second)
	if code != 0 {
		t.Errorf("final SIGTERM: exit status %d after %s", code, took)
	}
	f := l.verify(openStore(t, "sqlite", dbPath))
	t.Logf("graceful shutdown test: %s; %d SIGTERMs under load, longest stop %s, %d API requests repeated",
		f, stops, longest.Round(time.Millisecond), l.retries.Load())
}

// restartSMTP starts a server on the address of a closed one.
func restartSMTP(t *testing.T, addr string) *mailtest.SMTPServer {
	t.Helper()
	for try := 0; ; try++ {
		srv, err := mailtest.Start(mailtest.Options{Addr: addr})
		if err == nil {
			t.Cleanup(func() { srv.Close() })
			return srv
		}
		if try == 50 {
			t.Fatalf("SMTP server back on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFaultSMTPOutage takes the SMTP server away twice: once while the
// daemon is idle (orders created meanwhile queue up) and once in the
// middle of deliveries. Every notification must be delivered once the
// server is back, each Message-ID once; only a message whose transfer the
// outage cut short may arrive twice, byte-identical.
func TestFaultSMTPOutage(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			first := mailtest.NewSMTPServer(t)
			sinks := oneSink(first)
			box, err := mailtest.NewIMAPServer("bestellungen@example.org", "imap-pass")
			if err != nil {
				t.Fatal(err)
			}
			defer box.Close()
			drv, dsn := storagetest.DSN(t, driver)
			e := startFaultDaemon(t, daemonConfig{driver: drv, dsn: dsn, smtpPort: first.Port,
				imapPort: box.Port(), imapUser: "bestellungen@example.org", imapPass: "imap-pass"})
			l := newLoad(t, e.base, box, sinks, 90)
			var wg sync.WaitGroup
			defer wg.Wait()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			wg.Go(func() { l.replyLoop(ctx) })

			// Up: a first third goes through.
			phase := time.Now()
			l.createAll(ctx, 0, 30, 2)
			l.waitSettled(time.Minute)
			t.Logf("up: 30 orders done in %s", time.Since(phase).Round(time.Millisecond))
			if n := e.d.sender.Stats.Retried.Load(); n != 0 {
				t.Errorf("%d retries with the server up", n)
			}

			// Down while idle: new orders queue up and are retried.
			first.Close()
			l.fault(time.Now())
			before := sinks.count()
			l.createAll(ctx, 30, 60, 2)
			waitUntil(t, "retries of the queued notifications", 20*time.Second, func() bool {
				return e.d.sender.Stats.Retried.Load() >= 60
			})
			time.Sleep(2 * time.Second) // several rounds of backoff
			retried := e.d.sender.Stats.Retried.Load()
			t.Logf("down while idle: 30 orders queued, %d retries", retried)
			second := restartSMTP(t, first.Addr)
			sinks.add(second)
			upAt := time.Now()
			waitUntil(t, "the queued notifications", time.Minute, func() bool { return second.Count() >= 30 })
			recovery := time.Since(upAt)
			if sinks.count() == before {
				t.Fatal("nothing delivered after the outage")
			}
			l.waitSettled(time.Minute)

			// Down in the middle of deliveries.
			phase = time.Now()
			wg.Go(func() {
				l.pace = 20 * time.Millisecond
				l.createAll(ctx, 60, l.n, 2)
			})
			c0 := second.Count()
			waitUntil(t, "deliveries of the last third", 20*time.Second, func() bool { return second.Count() > c0+10 })
			second.Close()
			l.fault(time.Now())
			time.Sleep(1500 * time.Millisecond)
			sinks.add(restartSMTP(t, first.Addr))
			l.waitCaughtUp(2 * time.Minute)
			t.Logf("down in the middle: 30 orders done in %s", time.Since(phase).Round(time.Millisecond))
			cancel()
			wg.Wait()
			e.stop()
			f := l.verify(openStore(t, drv, dsn))
			t.Logf("SMTP outage test (%s): %s; %d temporary failures retried, all queued notifications delivered %s after the server came back",
				driver, f, retried, recovery.Round(time.Millisecond))
		})
	}
}

// imapProxy forwards IMAP connections to a server and kills them on
// request: in the middle of a message download (after part of a BODY[]
// literal), or while the client idles. It works the same in front of the
// in-process server and Dovecot.
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
		if _, err := mailtest.DovecotPath(); err != nil {
			t.Skip("no Dovecot here (CI installs dovecot-imapd): ", err)
		}
		dc, err := mailtest.StartDovecot(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer dc.Close()
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
