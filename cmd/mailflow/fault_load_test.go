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
	"net/http"
	"net/mail"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"mailflow/examples"
	"mailflow/internal/mailtest"
	"mailflow/mailflow"
	"mailflow/storage"
)

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

	// The mails each outcome sends (docs/design.md §3) are all there.
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
