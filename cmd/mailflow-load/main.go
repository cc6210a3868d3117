// Command mailflow-load drives orders and replies end-to-end through a
// real `mailflow serve` process, a real Dovecot and an in-process SMTP
// sink, and prints throughput, latency percentiles and the daemon's peak
// resident memory (issues 4 and 7; docs/benchmarks.md).
//
//	go run ./cmd/mailflow-load [-n 1000] [-driver sqlite|postgres] [-dsn DSN]
//	    [-bin PATH] [-big K] [-bigsize 10MB] [-mode latency|throughput|both]
//
// Phase A runs the daemon without IMAP, creates the orders over the HTTP
// API with several workers and waits until every notification reached the
// sink. The daemon stops; the tool APPENDs one reply per order to the
// watched INBOX. Phase B starts the daemon again with its IMAP watcher,
// which finds the whole backlog: the time until every reply is recorded
// gives replies per second, and /proc/PID/status VmHWM of this process the
// peak RSS. The latency run then APPENDs replies at a modest rate to the
// running daemon (IDLE) and measures from the APPEND's tagged OK until the
// order's status has changed in the database.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"mailflow/internal/mailtest"
	"mailflow/mailflow"
	"mailflow/storage"
)

type config struct {
	n, latencyN, big, workers, appenders int
	bigSize                              int64
	rate                                 float64
	driver, dsn, bin, mode, logLevel     string
	keep                                 bool
}

func main() {
	var cfg config
	fs := flag.NewFlagSet("mailflow-load", flag.ExitOnError)
	fs.IntVar(&cfg.n, "n", 1000, "orders and replies of the throughput run")
	fs.IntVar(&cfg.latencyN, "latency-n", 300, "replies of the latency run (to orders of their own)")
	fs.Float64Var(&cfg.rate, "rate", 20, "replies per second of the latency run")
	fs.StringVar(&cfg.driver, "driver", "sqlite", "database: sqlite or postgres")
	fs.StringVar(&cfg.dsn, "dsn", os.Getenv("MAILFLOW_TEST_POSTGRES"), "PostgreSQL DSN (a fresh schema is created in it and dropped); default $MAILFLOW_TEST_POSTGRES")
	fs.StringVar(&cfg.bin, "bin", "", "mailflow binary; default: go build ./cmd/mailflow into the run's temp dir")
	fs.IntVar(&cfg.big, "big", 0, "replies of the throughput run that carry a large attachment")
	size := fs.String("bigsize", "10MB", "size of each large attachment before base64 (KB, MB)")
	fs.StringVar(&cfg.mode, "mode", "both", "throughput, latency or both")
	fs.IntVar(&cfg.workers, "workers", 8, "concurrent HTTP clients creating orders")
	fs.IntVar(&cfg.appenders, "appenders", 4, "concurrent IMAP connections appending the backlog")
	fs.StringVar(&cfg.logLevel, "loglevel", "info", "the daemon's log level (its log is in the run's temp dir)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temp dir (config, logs, SQLite file) and the PostgreSQL schema")
	fs.Parse(os.Args[1:])
	var err error
	if cfg.bigSize, err = parseSize(*size); err != nil {
		fmt.Fprintln(os.Stderr, "mailflow-load: -bigsize:", err)
		os.Exit(2)
	}
	if cfg.mode != "throughput" && cfg.mode != "latency" && cfg.mode != "both" {
		fmt.Fprintln(os.Stderr, "mailflow-load: -mode must be throughput, latency or both")
		os.Exit(2)
	}
	if cfg.driver != "sqlite" && cfg.driver != "postgres" {
		fmt.Fprintln(os.Stderr, "mailflow-load: -driver must be sqlite or postgres")
		os.Exit(2)
	}
	if cfg.mode == "latency" {
		cfg.n = 0
	}
	if cfg.mode == "throughput" {
		cfg.latencyN = 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mailflow-load:", err)
		os.Exit(1)
	}
	res.print(os.Stdout)
	if res.failed() {
		os.Exit(1)
	}
}

func parseSize(s string) (int64, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size such as 10MB", s)
	}
	return n * mult, nil
}

// runner holds what one load run set up.
type runner struct {
	cfg       config
	id        string // distinguishes this run's external ids and Message-IDs
	dir       string
	bin       string
	log       io.Writer
	dovecot   *mailtest.Dovecot
	sink      *mailtest.SMTPServer
	daemonDSN string
	store     *storage.Store // the tool's own view of the daemon's database
	http      *http.Client
	res       *results
}

func run(ctx context.Context, cfg config, log io.Writer) (*results, error) {
	var b [4]byte
	rand.Read(b[:])
	r := &runner{cfg: cfg, id: hex.EncodeToString(b[:]), log: log,
		http: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.workers}},
		res:  &results{cfg: cfg, verdicts: map[string]int{}, wantVerdicts: map[string]int{}}}
	var err error
	if r.dir, err = os.MkdirTemp("", "mailflow-load-"); err != nil {
		return nil, err
	}
	if cfg.keep {
		fmt.Fprintf(log, "temp dir %s is kept\n", r.dir)
	} else {
		defer os.RemoveAll(r.dir)
	}
	if r.bin = cfg.bin; r.bin == "" {
		r.logf("building ./cmd/mailflow")
		if r.bin, err = buildDaemon(ctx, r.dir); err != nil {
			return nil, err
		}
	}
	if r.dovecot, err = mailtest.StartDovecot(filepath.Join(r.dir, "dovecot")); err != nil {
		return nil, err
	}
	defer r.dovecot.Close()
	r.res.dovecot = r.dovecot.Version
	if r.sink, err = mailtest.Start(mailtest.Options{HeaderOnly: true}); err != nil {
		return nil, err
	}
	defer r.sink.Close()
	cleanup, err := r.database(ctx)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	err = r.phases(ctx)
	return r.res, err
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// database prepares the daemon's database: a SQLite file in the temp dir,
// or a new schema in the PostgreSQL database (search_path in the DSN, as
// storage/storagetest does).
func (r *runner) database(ctx context.Context) (cleanup func(), err error) {
	if r.cfg.driver == "sqlite" {
		r.daemonDSN = filepath.Join(r.dir, "mailflow.db")
		return func() {}, nil
	}
	if r.cfg.dsn == "" {
		return nil, errors.New("-driver postgres needs -dsn or MAILFLOW_TEST_POSTGRES")
	}
	schema := "load_" + r.id
	admin, err := sqlx.Open("postgres", r.cfg.dsn)
	if err != nil {
		return nil, err
	}
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		admin.Close()
		return nil, fmt.Errorf("create schema: %w", err)
	}
	sep := "?"
	if strings.Contains(r.cfg.dsn, "?") {
		sep = "&"
	}
	r.daemonDSN = r.cfg.dsn + sep + "search_path=" + schema
	return func() {
		if r.cfg.keep {
			r.logf("PostgreSQL schema %s is kept", schema)
		} else {
			admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		}
		admin.Close()
	}, nil
}

func (r *runner) phases(ctx context.Context) error {
	total := r.cfg.n + r.cfg.latencyN
	// Phase A: orders and notifications, no IMAP.
	d, err := r.startDaemon(ctx, "phase-a", false)
	if err != nil {
		return err
	}
	cat, err := os.ReadFile(catalogPath())
	if err != nil {
		d.stop()
		return fmt.Errorf("catalog: %w (run from the module root)", err)
	}
	if code, body, err := d.api(ctx, r.http, "PUT", "/api/v1/catalog", coordToken, cat); err != nil || code != 200 {
		d.stop()
		return fmt.Errorf("catalog import: %d %s %v", code, body, err)
	}
	orders, err := r.createOrders(ctx, d, total)
	if err != nil {
		d.stop()
		return err
	}
	if err := d.stop(); err != nil {
		return fmt.Errorf("phase A daemon: %w\n%s", err, tail(d.log))
	}
	if r.store, err = storage.Open(ctx, r.cfg.driver, r.daemonDSN); err != nil {
		return err
	}
	defer r.store.Close()

	var b *daemonProc
	if r.cfg.n > 0 {
		if b, err = r.throughput(ctx, orders[:r.cfg.n]); err != nil {
			if b != nil {
				b.stop()
			}
			return err
		}
	}
	if r.cfg.latencyN > 0 {
		if b == nil {
			if b, err = r.startDaemon(ctx, "phase-b", true); err != nil {
				return err
			}
		}
		if err := r.latency(ctx, orders[r.cfg.n:]); err != nil {
			b.stop()
			return err
		}
	}
	if err := b.stop(); err != nil {
		return fmt.Errorf("phase B daemon: %w\n%s", err, tail(b.log))
	}
	return r.verify(ctx, orders)
}

func catalogPath() string {
	if p := os.Getenv("MAILFLOW_LOAD_CATALOG"); p != "" {
		return p
	}
	return "examples/catalog.json"
}

// createOrders posts total orders with cfg.workers clients and waits until
// every notification reached the sink.
func (r *runner) createOrders(ctx context.Context, d *daemonProc, total int) ([]*order, error) {
	r.logf("creating %d orders with %d workers", total, r.cfg.workers)
	orders := make([]*order, total)
	wantNotes := 0
	for i := range orders {
		_, uv := orderRequest(r.id, i)
		orders[i] = &order{uv: uv, notes: map[string]notification{}}
		wantNotes += 1
		if uv {
			wantNotes++
		}
	}
	start := time.Now()
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range r.cfg.workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= total || ctx.Err() != nil {
					return
				}
				body, _ := orderRequest(r.id, i)
				code, resp, err := d.api(ctx, r.http, "POST", "/api/v1/orders", portalToken, body)
				if err == nil && code != http.StatusCreated {
					err = fmt.Errorf("POST /api/v1/orders: %d %s", code, resp)
				}
				var out struct{ Number string }
				if err == nil {
					err = json.Unmarshal(resp, &out)
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					next.Store(int64(total))
					return
				}
				orders[i].number = out.Number
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	created := time.Since(start)
	r.res.orders, r.res.ordersPerSec = total, float64(total)/created.Seconds()
	r.logf("%d orders in %s (%.0f/s); waiting for %d notifications", total, created.Round(time.Millisecond), r.res.ordersPerSec, wantNotes)

	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	msgs, err := r.sink.Wait(wctx, wantNotes)
	if err != nil {
		return nil, err
	}
	notified := time.Since(start)
	r.res.notifications = len(msgs)
	r.res.notesPerSec = float64(len(msgs)) / notified.Seconds()
	r.logf("%d notifications after %s (%.0f/s)", len(msgs), notified.Round(time.Millisecond), r.res.notesPerSec)
	byNumber := make(map[string]*order, total)
	for _, o := range orders {
		byNumber[o.number] = o
	}
	if r.res.duplicateNotes, err = collectNotifications(msgs, byNumber); err != nil {
		return nil, err
	}
	for _, o := range orders {
		if _, ok := o.notes[replyParty(o)]; !ok {
			return nil, fmt.Errorf("order %s: no notification to the %s", o.number, replyParty(o))
		}
	}
	r.sink.Reset()
	return orders, nil
}

// replyParty answers: the provider of a DV order, the intermediary of a
// UV order, so that every reply changes the status of an open order.
func replyParty(o *order) string {
	if o.uv {
		return "intermediary"
	}
	return "provider"
}

// throughput appends one reply per order to the INBOX while no daemon
// watches it, then starts the phase B daemon and times the backlog.
func (r *runner) throughput(ctx context.Context, orders []*order) (*daemonProc, error) {
	var att []byte
	if r.cfg.big > 0 {
		att = bigAttachment(r.cfg.bigSize)
	}
	every := 0
	if r.cfg.big > 0 {
		every = max(1, len(orders)/r.cfg.big)
	}
	r.logf("appending %d replies (%d with a %d MiB attachment) over %d IMAP connections", len(orders), r.cfg.big, r.cfg.bigSize>>20, r.cfg.appenders)
	start := time.Now()
	var next atomic.Int64
	var bigs atomic.Int64
	var appendErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range r.cfg.appenders {
		a, err := newAppender(r.dovecot.Addr(), r.dovecot.User, r.dovecot.Password, "INBOX")
		if err != nil {
			return nil, err
		}
		wg.Go(func() {
			defer a.close()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(orders) || ctx.Err() != nil {
					return
				}
				o := orders[i]
				kind := kindOf(i, false)
				var attach []byte
				if every > 0 && i%every == every/2 && bigs.Add(1) <= int64(r.cfg.big) {
					attach = att
				}
				raw, _ := buildReply(r.id, i, o, replyParty(o), kind, attach)
				if err := a.append(raw); err != nil {
					once.Do(func() { appendErr = err })
					next.Store(int64(len(orders)))
					return
				}
			}
		})
	}
	wg.Wait()
	if appendErr != nil {
		return nil, appendErr
	}
	for i, o := range orders {
		k := kindOf(i, false)
		r.res.wantVerdicts[k.verdict]++
		o.want = expectedStatus(o.uv, k.name)
	}
	r.res.replies = len(orders)
	r.res.bigReplies = int(min(bigs.Load(), int64(r.cfg.big)))
	r.res.appendPerSec = float64(len(orders)) / time.Since(start).Seconds()
	r.logf("appended in %s (%.0f/s); starting the daemon with IMAP", time.Since(start).Round(time.Millisecond), r.res.appendPerSec)

	t0 := time.Now()
	d, err := r.startDaemon(ctx, "phase-b", true)
	if err != nil {
		return nil, err
	}
	r.res.startup = time.Since(t0)
	var first time.Time
	last, lastProgress := 0, time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-d.exited:
			return nil, fmt.Errorf("phase B daemon exited: %v\n%s", d.err, tail(d.log))
		case <-tick.C:
		}
		done, err := r.processed(ctx)
		if err != nil {
			return d, err
		}
		if done > 0 && first.IsZero() {
			first = time.Now()
		}
		if done > last {
			last, lastProgress = done, time.Now()
		}
		if done >= len(orders) {
			break
		}
		if time.Since(lastProgress) > 2*time.Minute {
			return d, fmt.Errorf("no progress for 2 minutes at %d of %d replies\n%s", done, len(orders), tail(d.log))
		}
	}
	elapsed := time.Since(t0)
	r.res.backlog = elapsed
	r.res.repliesPerSec = float64(len(orders)) / elapsed.Seconds()
	r.res.steadyPerSec = float64(len(orders)) / time.Since(first).Seconds()
	r.logf("%d replies recorded %s after the daemon started (%.0f/s)", len(orders), elapsed.Round(time.Millisecond), r.res.repliesPerSec)
	if err := r.drainOutbox(ctx); err != nil {
		return d, err
	}
	if r.res.peakRSS, err = d.peakRSS(); err != nil {
		return d, err
	}
	if r.res.daemonCPU, err = d.cpu(); err != nil {
		return d, err
	}
	return d, nil
}

// processed counts received messages with a verdict.
func (r *runner) processed(ctx context.Context) (int, error) {
	counts, err := r.store.InboundVerdictCounts(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for v, c := range counts {
		if v != storage.VerdictProcessing {
			n += c
		}
	}
	return n, nil
}

// drainOutbox waits until the answers the replies caused were delivered.
func (r *runner) drainOutbox(ctx context.Context) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		counts, _, err := r.store.OutboxStats(ctx, time.Now())
		if err != nil {
			return err
		}
		if counts[mailflow.OutboxPending] == 0 {
			r.res.outboxFailed = counts[mailflow.OutboxFailed]
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("outbox: %d messages still pending after 5 minutes", counts[mailflow.OutboxPending])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// latency appends replies at cfg.rate, one at a time, to the running
// daemon and measures from each APPEND's tagged OK until the order's
// status in the database is no longer "open". A second IMAP connection
// IDLEs on the INBOX as the daemon does and notes when the server reports
// new mail (EXISTS): the time until then is the server's push delay,
// the rest the daemon's share.
func (r *runner) latency(ctx context.Context, orders []*order) error {
	r.logf("latency: %d replies at %.0f/s", len(orders), r.cfg.rate)
	obs, err := newObserver(r.dovecot.Addr(), r.dovecot.User, r.dovecot.Password)
	if err != nil {
		return err
	}
	defer obs.close()
	a, err := newAppender(r.dovecot.Addr(), r.dovecot.User, r.dovecot.Password, "INBOX")
	if err != nil {
		return err
	}
	defer a.close()
	appended := make([]time.Time, len(orders))
	changed := make([]time.Time, len(orders)) // zero: lost
	queue := make(chan int, len(orders))
	pollDone := make(chan error, 1)
	go func() {
		// Poll the oldest open order every millisecond (the daemon
		// commits the decision and the new status in one transaction);
		// the watcher takes messages in UID order, so a later order has
		// not changed before it: one query per tick, however many wait.
		var open []int
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		closed := false
		for !closed || len(open) > 0 {
			select {
			case i, ok := <-queue:
				if !ok {
					closed = true
					queue = nil
				} else {
					open = append(open, i)
				}
				continue
			case <-tick.C:
			case <-ctx.Done():
				pollDone <- ctx.Err()
				return
			}
			for len(open) > 0 {
				i := open[0]
				o, err := r.store.Order(ctx, orders[i].number)
				if err != nil {
					pollDone <- err
					return
				}
				if string(o.Status) != "open" {
					changed[i] = time.Now()
				} else if time.Since(appended[i]) < 30*time.Second {
					break
				}
				open = open[1:]
			}
		}
		pollDone <- nil
	}()
	interval := time.Duration(float64(time.Second) / r.cfg.rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i, o := range orders {
		kind := kindOf(i, true)
		r.res.wantVerdicts[kind.verdict]++
		o.want = expectedStatus(o.uv, kind.name)
		raw, _ := buildReply(r.id, r.cfg.n+i, o, replyParty(o), kind, nil)
		if err := a.append(raw); err != nil {
			close(queue)
			<-pollDone
			return err
		}
		appended[i] = time.Now()
		queue <- i
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	close(queue)
	if err := <-pollDone; err != nil {
		return err
	}
	pushes := obs.times()
	for i := range orders {
		if changed[i].IsZero() {
			r.res.latencyLost++
			continue
		}
		r.res.latencies = append(r.res.latencies, changed[i].Sub(appended[i]))
		// The first EXISTS after the APPEND completed reports it.
		k, _ := slices.BinarySearchFunc(pushes, appended[i], func(t, target time.Time) int { return t.Compare(target) })
		if k < len(pushes) && !pushes[k].After(changed[i]) {
			r.res.pushDelays = append(r.res.pushDelays, pushes[k].Sub(appended[i]))
			r.res.daemonShares = append(r.res.daemonShares, changed[i].Sub(pushes[k]))
		}
	}
	r.res.replies += len(orders)
	return r.drainOutbox(ctx)
}

// verify compares every order's status and the verdict counts with what
// the replies must have caused, and the mailboxes with what the watcher
// must have filed.
func (r *runner) verify(ctx context.Context, orders []*order) error {
	byNumber := make(map[string]*order, len(orders))
	for _, o := range orders {
		byNumber[o.number] = o
	}
	for offset := 0; ; offset += 1000 {
		page, err := r.store.Orders(ctx, mailflow.OrderFilter{Limit: 1000, Offset: offset})
		if err != nil {
			return err
		}
		for _, o := range page {
			if want := byNumber[o.Number]; want != nil && want.want != "" && string(o.Status) != want.want {
				r.res.wrongStatus++
				if r.res.wrongStatus <= 5 {
					r.logf("order %s: status %s, want %s", o.Number, o.Status, want.want)
				}
			}
		}
		if len(page) < 1000 {
			break
		}
	}
	counts, err := r.store.InboundVerdictCounts(ctx)
	if err != nil {
		return err
	}
	r.res.verdicts = counts
	boxes, err := mailboxCounts(r.dovecot.Addr(), r.dovecot.User, r.dovecot.Password, "INBOX", "Processed", "Review")
	if err != nil {
		return err
	}
	r.res.inInbox, r.res.inProcessed, r.res.inReview = boxes[0], boxes[1], boxes[2]
	return nil
}
