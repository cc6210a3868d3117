package mailflow_test

// Benchmarks of the outbound path. By default the SMTP sink is an
// in-process go-smtp server that discards what it receives; point
// MAILFLOW_BENCH_SMTP at another sink to measure against it, for example
// Postfix's smtp-sink:
//
//	smtp-sink -c -u nobody 127.0.0.1:2525 1000 &
//	MAILFLOW_BENCH_SMTP=127.0.0.1:2525 go test ./mailflow/ -run '^$' -bench . -benchtime 5000x
//
// and compare with smtp-source sending messages of the size the benchmark
// reports (B/msg) to the same sink:
//
//	smtp-source -c -l SIZE -m 5000 -s 4 -f bestellungen@example.org -t test@example.org 127.0.0.1:2525
//
// scripts/bench-outbound.sh runs them all, in rounds.
//
// MAILFLOW_BENCH_DRIVER=postgres uses the database of MAILFLOW_TEST_POSTGRES;
// MAILFLOW_BENCH_CONCURRENCY sets the sender's workers (default 4),
// MAILFLOW_BENCH_CREATORS the clients creating orders (default 4).

import (
	"context"
	"io"
	"log/slog"
	"mailflow/mailflow/outbound"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"mailflow/internal/exampletest"
	"mailflow/internal/mailtest"
	"mailflow/internal/testdb"
	"mailflow/mailflow"
)

type benchEnv struct {
	*env
	host string
	port int
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	driver := os.Getenv("MAILFLOW_BENCH_DRIVER")
	if driver == "" {
		driver = "sqlite"
	}
	e := newEnv(b, driver)
	be := &benchEnv{env: e, host: e.smtp.Host, port: e.smtp.Port}
	if addr := os.Getenv("MAILFLOW_BENCH_SMTP"); addr != "" {
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			b.Fatal(err)
		}
		be.host = h
		be.port, _ = strconv.Atoi(p)
	} else {
		e.smtp.Close()
		e.smtp = mailtest.NewSMTPServer(b, mailtest.Options{Discard: true})
		be.host, be.port = e.smtp.Host, e.smtp.Port
	}
	conc := 4
	if c, err := strconv.Atoi(os.Getenv("MAILFLOW_BENCH_CONCURRENCY")); err == nil && c > 0 {
		conc = c
	}
	s, err := outbound.New(e.store, outbound.Config{
		SMTP:         outbound.SMTPConfig{Host: be.host, Port: be.port, TLS: "none"},
		Concurrency:  conc,
		PollInterval: time.Hour,
		Alerts:       e.composer,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	e.sender = s
	return be
}

func (be *benchEnv) waitSent(b *testing.B, n int64) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for be.sender.Stats.Sent.Load() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d sent", be.sender.Stats.Sent.Load(), n)
		}
		if f := be.sender.Stats.Failed.Load() + be.sender.Stats.Retried.Load(); f > 0 {
			b.Fatalf("%d failures", f)
		}
		time.Sleep(time.Millisecond)
	}
}

func (be *benchEnv) reportSize(b *testing.B) {
	rows, err := be.store.OutboxList(context.Background(), "", 1)
	if err != nil || len(rows) == 0 {
		return
	}
	raw, _ := be.store.OutboxRaw(context.Background(), rows[0].ID)
	b.ReportMetric(float64(len(raw)), "B/msg")
}

// BenchmarkNotifications measures the whole outbound path: b.N DV orders
// created through the flow (validation, snapshot, number, composition,
// outbox row, commit) by four concurrent clients while the sender delivers
// the notifications to the sink.
func BenchmarkNotifications(b *testing.B) {
	be := newBenchEnv(b)
	be.start(b)
	reqs := make([]*mailflow.OrderRequest, b.N)
	for i := range reqs {
		reqs[i] = orderRequest(b, "dv")
	}
	b.ResetTimer()
	start, cpu, db := time.Now(), testdb.ProcessCPU(), dbCPU()
	var wg sync.WaitGroup
	next := make(chan *mailflow.OrderRequest)
	creators := 4
	if c, err := strconv.Atoi(os.Getenv("MAILFLOW_BENCH_CREATORS")); err == nil && c > 0 {
		creators = c
	}
	for range creators {
		wg.Go(func() {
			for req := range next {
				if _, _, err := be.flow.CreateOrder(context.Background(), req); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for _, r := range reqs {
		next <- r
	}
	close(next)
	wg.Wait()
	be.waitSent(b, int64(b.N))
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "notifications/s")
	reportCPU(b, cpu, db)
	be.reportSize(b)
}

// dbCPU is the PostgreSQL server's CPU time so far (testdb.PostgresCPU),
// 0 with SQLite, which runs inside the test process; reported beside
// the process's CPU time so that the two databases compare.
func dbCPU() time.Duration {
	if os.Getenv("MAILFLOW_BENCH_DRIVER") != "postgres" {
		return 0
	}
	return testdb.PostgresCPU()
}

// reportCPU reports the CPU time per notification of this process and,
// with PostgreSQL, of the database server.
func reportCPU(b *testing.B, cpu, db time.Duration) {
	b.ReportMetric(float64((testdb.ProcessCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/notification")
	if os.Getenv("MAILFLOW_BENCH_DRIVER") == "postgres" {
		b.ReportMetric(float64((dbCPU()-db).Microseconds())/float64(b.N), "db-cpu-µs/notification")
	}
}

// BenchmarkSender measures delivery alone: b.N notifications already in
// the outbox, sent by the sender; the figure to compare with smtp-source.
func BenchmarkSender(b *testing.B) {
	be := newBenchEnv(b)
	for range b.N {
		if _, _, err := be.flow.CreateOrder(context.Background(), orderRequest(b, "dv")); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start, cpu, db := time.Now(), testdb.ProcessCPU(), dbCPU()
	be.start(b)
	be.waitSent(b, int64(b.N))
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "notifications/s")
	reportCPU(b, cpu, db)
	be.reportSize(b)
}

// BenchmarkSenderSMTP measures the SMTP side of the sender alone: b.N
// copies of one notification from an outbox in memory, so no database
// work; the protocol part of BenchmarkSender, to set beside smtp-source.
func BenchmarkSenderSMTP(b *testing.B) {
	c := newComposer(b, nil)
	req := orderRequest(b, "dv")
	snap, err := mailflow.BuildSnapshot(req, exampletest.Catalog(b))
	if err != nil {
		b.Fatal(err)
	}
	o := &mailflow.Order{ID: 1, Number: "2026-000001", OrderedAt: *req.OrderedAt, ContractModel: "DV", Snapshot: snap}
	ms, err := c.OrderCreated(o)
	if err != nil {
		b.Fatal(err)
	}
	st := &memOutbox{}
	for i := range b.N {
		m := *ms[0]
		m.ID = int64(i + 1)
		st.rows = append(st.rows, &m)
	}
	host, port := "", 0
	if addr := os.Getenv("MAILFLOW_BENCH_SMTP"); addr != "" {
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			b.Fatal(err)
		}
		host = h
		port, _ = strconv.Atoi(p)
	} else {
		srv := mailtest.NewSMTPServer(b, mailtest.Options{Discard: true})
		host, port = srv.Host, srv.Port
	}
	conc := 4
	if v, err := strconv.Atoi(os.Getenv("MAILFLOW_BENCH_CONCURRENCY")); err == nil && v > 0 {
		conc = v
	}
	s, err := outbound.New(st, outbound.Config{SMTP: outbound.SMTPConfig{Host: host, Port: port, TLS: "none"},
		Concurrency: conc, PollInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.ResetTimer()
	start, cpu, db := time.Now(), testdb.ProcessCPU(), dbCPU()
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	for s.Stats.Sent.Load() < int64(b.N) {
		if s.Stats.Retried.Load()+s.Stats.Failed.Load() > 0 {
			b.Fatal("delivery failures")
		}
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/el.Seconds(), "notifications/s")
	reportCPU(b, cpu, db)
	b.ReportMetric(float64(len(ms[0].Raw)), "B/msg")
}

// memOutbox is an outbox in memory that hands out its rows once.
type memOutbox struct {
	mu   sync.Mutex
	rows []*mailflow.OutboxMessage
	next int
}

func (s *memOutbox) InTx(context.Context, func(mailflow.Tx) error) error { return nil }

func (s *memOutbox) ClaimOutbox(_ context.Context, _ time.Time, limit int, _ time.Duration) ([]*mailflow.OutboxMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	end := min(s.next+limit, len(s.rows))
	out := s.rows[s.next:end]
	s.next = end
	return out, nil
}

func (s *memOutbox) MarkSentMany(context.Context, []int64, time.Time) error    { return nil }
func (s *memOutbox) MarkRetry(context.Context, int64, time.Time, string) error { return nil }
func (s *memOutbox) ReleaseOutbox(context.Context, []int64) error              { return nil }
func (s *memOutbox) MarkFailed(context.Context, int64, string) (bool, error)   { return true, nil }
func (s *memOutbox) NextOutboxDue(context.Context) (time.Time, bool, error) {
	return time.Time{}, false, nil
}
func (s *memOutbox) OutboxStats(context.Context, time.Time) (map[string]int, time.Duration, error) {
	return nil, 0, nil
}

// BenchmarkCompose measures building one notification (templates,
// MIME, attachments) without database or network.
func BenchmarkCompose(b *testing.B) {
	c := newComposer(b, nil)
	cat := exampletest.Catalog(b)
	req := orderRequest(b, "dv")
	snap, err := mailflow.BuildSnapshot(req, cat)
	if err != nil {
		b.Fatal(err)
	}
	o := &mailflow.Order{ID: 1, Number: "2026-000001", OrderedAt: *req.OrderedAt, ContractModel: "DV", Snapshot: snap}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.OrderCreated(o); err != nil {
			b.Fatal(err)
		}
	}
}
