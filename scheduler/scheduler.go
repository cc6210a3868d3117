// Package scheduler runs mailflow's cron jobs (docs/design.md §5): the billing run,
// confirmation reminders and the coordinator digest.
//
// Cron only says when to look. Every job derives its work from database
// state and records what it did under a unique key, so a run is idempotent,
// a daemon that was down catches up on its next run, and two daemons on one
// PostgreSQL database never send the same thing twice:
//
//   - billing: billing_periods (order, period) with reminded_at, and
//     billing_orders.due_at;
//   - reminders: confirmation_reminders (order, party, kind, interval);
//   - digest: digest_runs (cron tick).
//
// On top of that a job runs on one daemon at a time (Store.TryLeader), so
// two daemons do not both do the work only to find the other has done it.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"

	"mailflow/mailflow"
)

// Job names, as logs, leader locks and Config use them.
const (
	JobBilling   = "billing"
	JobReminders = "reminders"
	JobDigest    = "digest"
)

// ErrBusy is returned by a run method when the job is running elsewhere: in
// this process or, with PostgreSQL, on another daemon.
var ErrBusy = errors.New("scheduler: job is already running")

// Config is the [schedule] section of the configuration.
type Config struct {
	// Location is the time zone of cron specs and of billing periods
	// (Europe/Berlin).
	Location *time.Location
	// Billing, Reminders and Digest are cron specs in the five-field
	// standard form ("0 6 1 * *") or a descriptor ("@daily"); "" disables
	// the job.
	Billing, Reminders, Digest string
	// RemindAfter is how long a party may stay undecided before it is
	// reminded, and again after each further RemindAfter.
	RemindAfter time.Duration
	// EscalateAfter is how long a party may stay undecided before the
	// coordinator is alerted (once per order and party).
	EscalateAfter time.Duration
	// BatchSize is how many orders one billing transaction handles;
	// default 2000.
	BatchSize int
	// Retention says what the retention job deletes, and when it runs.
	Retention Retention
}

// Validate checks the time zone, the specs and the durations.
func (c Config) Validate() error {
	if c.Location == nil {
		return errors.New("scheduler: no time zone")
	}
	for _, j := range []struct{ name, spec string }{{JobBilling, c.Billing}, {JobReminders, c.Reminders}, {JobDigest, c.Digest}, {JobRetention, c.Retention.Spec}} {
		if j.spec == "" {
			continue
		}
		if _, err := cron.ParseStandard(j.spec); err != nil {
			return fmt.Errorf("scheduler: %s spec %q: %w", j.name, j.spec, err)
		}
	}
	if c.RemindAfter <= 0 || c.EscalateAfter <= 0 {
		return errors.New("scheduler: remind_after and escalate_after must be positive")
	}
	return nil
}

func (c Config) batchSize() int {
	if c.BatchSize <= 0 {
		return 2000
	}
	return c.BatchSize
}

// Store is what the scheduler needs from persistence; storage.Store
// implements it for SQLite and PostgreSQL.
type Store interface {
	// JobTx runs fn in one transaction.
	JobTx(ctx context.Context, fn func(mailflow.JobTx) error) error
	// TryLeader takes the cluster-wide lock of a job without waiting. ok is
	// false when another daemon holds it. release must be called when the
	// job is done.
	TryLeader(ctx context.Context, job string) (release func(), ok bool, err error)

	// Catalog is the current catalog: billing reminders take the
	// sellers' e-invoicing data from it, not from the orders' snapshots,
	// so that an updated account or address applies to the next run.
	Catalog(ctx context.Context) (*mailflow.Catalog, error)
	// OrderBilledPeriods lists the billed periods of one order.
	OrderBilledPeriods(ctx context.Context, number string) ([]mailflow.BilledPeriod, error)
	// DueBilling lists the ids of the orders whose billing is due by
	// now (billing_orders.due_at), in id order.
	DueBilling(ctx context.Context, now time.Time) ([]int64, error)
	// DueBillingOrders reads the orders due by now with ids from lo to
	// hi, by id.
	DueBillingOrders(ctx context.Context, lo, hi int64, now time.Time) ([]mailflow.BillingOrder, error)
	// UnremindedPeriods lists the recorded periods whose reminders are
	// still to be mailed, by order and period.
	UnremindedPeriods(ctx context.Context) ([]mailflow.BilledPeriod, error)
	// CountUnreminded counts the recorded periods whose reminders are
	// still to be mailed.
	CountUnreminded(ctx context.Context) (int, error)

	// UndecidedOrders lists orders that are not final, created at or
	// before createdBefore, with id > afterID, by id, with their history.
	UndecidedOrders(ctx context.Context, createdBefore time.Time, afterID int64, limit int) ([]mailflow.Order, error)

	// StatusCounts counts orders per status.
	StatusCounts(ctx context.Context) (map[mailflow.Status]int, error)
	// CountReview counts received messages waiting for a person.
	CountReview(ctx context.Context) (int, error)
	// CountSuppressedAlerts counts received junk messages since `since`
	// whose coordinator alert was held back by the per-sender throttle.
	CountSuppressedAlerts(ctx context.Context, since time.Time) (int, error)
	// OutboxStats counts outbox rows per status and the age of the oldest
	// pending one.
	OutboxStats(ctx context.Context, now time.Time) (map[string]int, time.Duration, error)
	// OutboxList lists outbox rows of a status, newest first.
	OutboxList(ctx context.Context, status string, limit int) ([]*mailflow.OutboxMessage, error)

	// DeleteExpired deletes what is older than its cutoff, never an
	// order that is not final, and counts what it deleted.
	DeleteExpired(ctx context.Context, c mailflow.RetentionCutoffs) (mailflow.RetentionReport, error)
}

// Mailer composes the scheduler's mails. The real one is NewMailer over
// the compose.Composer.
type Mailer interface {
	// BillingReminder is one mail to the party m.To listing the periods it
	// is to invoice. It is called from several goroutines at once.
	BillingReminder(m BillingMail) (*mailflow.OutboxMessage, error)
	// ConfirmationReminder reminds a party that has not decided an order
	// for undecidedFor, with the reply links of the notification.
	ConfirmationReminder(o *mailflow.Order, party string, undecidedFor time.Duration) (*mailflow.OutboxMessage, error)
	// Escalation alerts the coordinator that a party has not decided for
	// undecidedFor.
	Escalation(o *mailflow.Order, party string, undecidedFor time.Duration) (*mailflow.OutboxMessage, error)
	// Digest is the coordinator's digest.
	Digest(d DigestData) (*mailflow.OutboxMessage, error)
}

// Scheduler runs the jobs on their cron specs and on demand.
type Scheduler struct {
	cfg   Config
	store Store
	mail  Mailer
	log   *slog.Logger

	// Now is the clock; tests replace it before Start.
	Now func() time.Time

	local  map[string]*sync.Mutex // one run of a job per process
	panics atomic.Int64

	statsMu sync.Mutex
	stats   map[string]JobStats

	mu     sync.Mutex
	cron   *cron.Cron
	cancel context.CancelFunc
	bg     sync.WaitGroup // goroutines of Start besides cron's
}

// New returns a scheduler; Start starts its cron jobs, the run methods run
// a job now. log may be nil.
func New(cfg Config, store Store, mailer Mailer, log *slog.Logger) *Scheduler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		cfg: cfg, store: store, mail: mailer, log: log, Now: time.Now,
		local: map[string]*sync.Mutex{JobBilling: {}, JobReminders: {}, JobDigest: {}, JobRetention: {}},
	}
}

func (s *Scheduler) now() time.Time { return s.Now() }

// Panics counts the job runs that panicked and were recovered.
func (s *Scheduler) Panics() int64 { return s.panics.Load() }

// Start schedules the configured jobs in the configured time zone. A job
// never overlaps itself (SkipIfStillRunning), a panic is recovered and
// logged, and each run is logged with what it did. The jobs stop when ctx
// ends or Stop is called.
func (s *Scheduler) Start(ctx context.Context) error {
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cron != nil {
		return errors.New("scheduler: already started")
	}
	l := cronLogger{s.log}
	// Recover must be the inner wrapper: SkipIfStillRunning returns its
	// token only when the job returns, so a panic escaping into it would
	// skip the job forever (docs/libraries.md).
	c := cron.New(cron.WithLocation(s.cfg.Location), cron.WithLogger(l),
		cron.WithChain(cron.SkipIfStillRunning(l), cron.Recover(l)))
	jctx, cancel := context.WithCancel(ctx)
	jobs := []struct {
		name, spec string
		run        func(context.Context, time.Time) error
	}{
		{JobBilling, s.cfg.Billing, func(ctx context.Context, at time.Time) error {
			_, err := s.RunBilling(ctx, at, false)
			return err
		}},
		{JobReminders, s.cfg.Reminders, func(ctx context.Context, at time.Time) error {
			_, err := s.RunReminders(ctx, at)
			return err
		}},
		{JobDigest, s.cfg.Digest, func(ctx context.Context, at time.Time) error {
			_, err := s.RunDigest(ctx, at)
			return err
		}},
		{JobRetention, s.cfg.Retention.spec(), func(ctx context.Context, at time.Time) error {
			_, err := s.RunRetention(ctx, at)
			return err
		}},
	}
	for _, j := range jobs {
		if j.spec == "" {
			continue
		}
		if _, err := c.AddFunc(j.spec, func() { s.tick(jctx, j.name, j.run) }); err != nil {
			cancel()
			return fmt.Errorf("scheduler: %s spec %q: %w", j.name, j.spec, err)
		}
		s.log.Info("scheduler: job scheduled", "job", j.name, "spec", j.spec, "tz", s.cfg.Location.String())
	}
	c.Start()
	s.cron, s.cancel = c, cancel
	if s.cfg.Billing != "" {
		// Mail what a billing run that stopped early (a crash, a
		// shutdown) left queued, rather than wait for the next run.
		s.bg.Go(func() { s.tick(jctx, JobBilling, s.resumeBilling) })
	}
	return nil
}

// Stop stops scheduling, cancels running jobs (they stop between batches;
// what they committed stays) and waits for them to return.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	c, cancel := s.cron, s.cancel
	s.cron, s.cancel = nil, nil
	s.mu.Unlock()
	if c == nil {
		return
	}
	cancel()
	<-c.Stop().Done()
	s.bg.Wait()
}

// tick runs one cron-triggered job. Its own recover counts the panic; the
// cron chain's Recover stays as the last line of defence.
func (s *Scheduler) tick(ctx context.Context, job string, run func(context.Context, time.Time) error) {
	defer func() {
		if r := recover(); r != nil {
			s.panics.Add(1)
			s.log.Error("scheduler: job panicked", "job", job, "err", fmt.Errorf("panic: %v", r), "stack", string(debug.Stack()))
		}
	}()
	start := time.Now()
	err := run(ctx, s.now())
	s.record(job, time.Since(start), err)
	switch {
	case errors.Is(err, ErrBusy):
		s.log.Info("scheduler: job skipped, running elsewhere", "job", job)
	case err != nil && ctx.Err() != nil:
		s.log.Info("scheduler: job interrupted by shutdown", "job", job, "err", err)
	case err != nil:
		s.log.Error("scheduler: job failed", "job", job, "err", err)
	}
}

// JobStats is what the scheduler did with one job since start, for /metrics.
type JobStats struct {
	Runs, Failures int64
	LastDuration   time.Duration
	TotalDuration  time.Duration
}

func (s *Scheduler) record(job string, d time.Duration, err error) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	if s.stats == nil {
		s.stats = map[string]JobStats{}
	}
	st := s.stats[job]
	st.Runs++
	if err != nil && !errors.Is(err, ErrBusy) {
		st.Failures++
	}
	st.LastDuration = d
	st.TotalDuration += d
	s.stats[job] = st
}

// Stats returns the counters of a job (billing, reminders, digest).
func (s *Scheduler) Stats(job string) JobStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats[job]
}

// lead takes the job's lock in this process and, through the store, in
// the cluster. The returned function releases both.
func (s *Scheduler) lead(ctx context.Context, job string) (func(), error) {
	mu := s.local[job]
	if !mu.TryLock() {
		return nil, ErrBusy
	}
	release, ok, err := s.store.TryLeader(ctx, job)
	if err != nil || !ok {
		mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("scheduler: %s: leader lock: %w", job, err)
		}
		return nil, ErrBusy
	}
	return func() {
		release()
		mu.Unlock()
	}, nil
}

// cronLogger sends robfig/cron's log lines to slog: its chatter at debug,
// a skipped tick at info, errors (recovered panics) at error.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) {
	if msg == "skip" {
		l.log.Info("scheduler: tick skipped, previous run still running")
		return
	}
	l.log.Debug("cron: "+msg, kv...)
}

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append([]any{"err", err}, kv...)...)
}
