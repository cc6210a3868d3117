package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mailflow/mailflow/compose"
	"mailflow/mailflow/evidence"
	"mailflow/mailflow/inbound"
	"mailflow/mailflow/outbound"
	"net"
	"net/http"
	"sync"
	"time"

	"mailflow/mailflow"
	"mailflow/scheduler"
	"mailflow/storage"
	"mailflow/web"
)

// daemon is everything `serve` (and `demo`) runs, wired by hand in order:
// store, composer, flow, sender, inbox, watcher, HTTP. It shuts down in
// reverse order.
type daemon struct {
	cfg      *Config
	log      *slog.Logger
	store    *storage.Store
	tokens   *mailflow.Tokens
	composer *compose.Composer
	flow     *mailflow.Flow
	sender   *outbound.Sender
	inbox    *mailflow.Inbox
	watcher  *inbound.Watcher // nil when no IMAP host is configured
	sched    *scheduler.Scheduler
	evidence *evidence.Exporter // nil: no signing key (PostgreSQL without evidence.key_path)
	http     *http.Server
	listener net.Listener
}

// newDaemon builds the daemon from the configuration.
func newDaemon(ctx context.Context, cfg *Config, log *slog.Logger) (*daemon, error) {
	d := &daemon{cfg: cfg, log: log}
	if err := cfg.checkServe(); err != nil {
		return nil, err
	}
	var err error
	if d.tokens, d.composer, err = cfg.composer(); err != nil {
		return nil, err
	}
	if d.store, err = storage.Open(ctx, cfg.Database.Driver, cfg.Database.DSN); err != nil {
		return nil, err
	}
	d.flow = &mailflow.Flow{Store: d.store, Notifier: d.composer}
	d.sender, err = outbound.New(d.store, outbound.Config{
		SMTP: outbound.SMTPConfig{Host: cfg.SMTP.Host, Port: cfg.SMTP.Port, TLS: cfg.SMTP.TLS,
			Username: cfg.SMTP.Username, Password: cfg.SMTP.Password, RootCAs: cfg.smtpRoots},
		Concurrency: cfg.SMTP.Concurrency, Rate: cfg.SMTP.Rate, BackoffBase: cfg.retryBase, BackoffMax: cfg.retryMax,
		Lease: cfg.lease, Alerts: d.composer, Logger: log,
		EnvelopeSender: cfg.envelopeSender(d.tokens),
	})
	if err != nil {
		d.store.Close()
		return nil, err
	}
	d.flow.OnEnqueue = d.sender.Wake
	d.inbox = &mailflow.Inbox{Flow: d.flow, Store: d.store, Tokens: d.tokens, Alerter: d.composer, Log: log,
		OnEnqueue: d.sender.Wake, Config: mailflow.InboxConfig{
			RequireAuthenticatedSender: cfg.Replies.RequireAuthenticatedSender,
			TrustedAuthServID:          cfg.Replies.TrustedAuthservID,
		}}
	if cfg.IMAP.Host != "" {
		d.watcher = inbound.New(inbound.Config{
			Host: cfg.IMAP.Host, Port: cfg.IMAP.Port, TLS: cfg.IMAP.TLS, Auth: cfg.IMAP.Auth,
			Username: cfg.IMAP.Username, Password: cfg.IMAP.Password,
			Mailbox: cfg.IMAP.Mailbox, ProcessedMailbox: cfg.IMAP.ProcessedMailbox, ReviewMailbox: cfg.IMAP.ReviewMailbox,
			Idle: cfg.IMAP.Idle, PollInterval: cfg.pollInterval, MaxSize: cfg.IMAP.MaxMessageSize, Logger: log,
		}, d.store, d.inbox)
	}
	d.sched = newScheduler(cfg, d.store, d.composer, &app{log: log})
	if d.evidence, err = newExporter(cfg, d.store, d.composer, log); errors.Is(err, errNoEvidenceKey) {
		log.Warn("evidence bundles disabled: set evidence.key_path")
	} else if err != nil {
		d.store.Close()
		return nil, err
	}
	if err := d.buildHTTP(); err != nil {
		d.store.Close()
		return nil, err
	}
	return d, nil
}

func (d *daemon) buildHTTP() error {
	srv := &web.Server{Flow: d.flow, Store: d.store, Log: d.log, Ready: d.ready, Extra: map[string]http.Handler{}, Invoices: d.sched}
	var exp web.Evidence // stays a nil interface without a key
	if d.evidence != nil {
		exp, srv.Evidence = d.evidence, d.evidence
	}
	for _, t := range d.cfg.HTTP.Tokens {
		srv.Tokens = append(srv.Tokens, web.Token{Name: t.Name, Role: t.Role, Token: t.Token})
	}
	metrics, err := web.NewMetricsHandler(d.store, d.log, d.metrics()...)
	if err != nil {
		return err
	}
	srv.Extra["GET /metrics"] = metrics
	// The status page: coordinators sign in with a password, providers
	// and intermediaries by a link mailed to them, which needs the URL
	// people reach the page under.
	coordinators := d.cfg.pageCoordinators()
	if len(coordinators) > 0 || d.cfg.HTTP.PublicURL != "" {
		if d.cfg.HTTP.PublicURL == "" {
			d.log.Warn("status page: no sign-in by email link: http.public_url is not set")
		}
		pages, err := web.NewPages(web.Pages{Flow: d.flow, Store: d.store, Coordinators: coordinators,
			PublicURL: d.cfg.HTTP.PublicURL, Mailer: d.composer, Log: d.log, SecureCookies: d.cfg.secureCookies,
			TrustedProxies: d.cfg.proxies, Evidence: exp})
		if err != nil {
			return err
		}
		srv.Extra["/"] = pages.Handler()
	} else {
		d.log.Warn("status page disabled: neither a coordinator password nor http.public_url is set")
		srv.Extra["/"] = web.NoPagesHandler()
	}
	d.http = &http.Server{
		Addr:              d.cfg.HTTP.Listen,
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	return nil
}

// metrics are the component counters for /metrics.
func (d *daemon) metrics() []web.Metric {
	ms := []web.Metric{
		{Name: "mailflow_outbox_sent_total", Help: "Outbound messages delivered.", Counter: true, Value: func() float64 { return float64(d.sender.Stats.Sent.Load()) }},
		{Name: "mailflow_outbox_failed_total", Help: "Outbound messages failed permanently.", Counter: true, Value: func() float64 { return float64(d.sender.Stats.Failed.Load()) }},
		{Name: "mailflow_outbox_retried_total", Help: "Temporary delivery failures, each retried later.", Counter: true, Value: func() float64 { return float64(d.sender.Stats.Retried.Load()) }},
		{Name: "mailflow_panics_recovered_total", Help: "Panics recovered in workers.", Counter: true, Value: func() float64 {
			n := d.sender.Stats.Panics.Load()
			if d.watcher != nil {
				n += int64(d.watcher.Stats().Panics)
			}
			n += d.sched.Panics()
			return float64(n)
		}},
	}
	for _, job := range []string{scheduler.JobBilling, scheduler.JobReminders, scheduler.JobDigest, scheduler.JobRetention} {
		ms = append(ms,
			web.Metric{Name: "mailflow_job_" + job + "_runs_total", Help: "Cron runs of the " + job + " job.", Counter: true,
				Value: func() float64 { return float64(d.sched.Stats(job).Runs) }},
			web.Metric{Name: "mailflow_job_" + job + "_failures_total", Help: "Failed runs of the " + job + " job.", Counter: true,
				Value: func() float64 { return float64(d.sched.Stats(job).Failures) }},
			web.Metric{Name: "mailflow_job_" + job + "_seconds_total", Help: "Time spent in runs of the " + job + " job.", Counter: true,
				Value: func() float64 { return d.sched.Stats(job).TotalDuration.Seconds() }},
			web.Metric{Name: "mailflow_job_" + job + "_last_duration_seconds", Help: "Duration of the last run of the " + job + " job.",
				Value: func() float64 { return d.sched.Stats(job).LastDuration.Seconds() }},
		)
	}
	if d.watcher != nil {
		ms = append(ms,
			web.Metric{Name: "mailflow_imap_last_sync_timestamp_seconds", Help: "Unix time of the last successful IMAP sync.", Value: func() float64 {
				if t := d.watcher.LastSync(); !t.IsZero() {
					return float64(t.Unix())
				}
				return 0
			}},
			web.Metric{Name: "mailflow_imap_reconnects_total", Help: "IMAP reconnects.", Counter: true, Value: func() float64 { return float64(d.watcher.Stats().Reconnects) }},
			web.Metric{Name: "mailflow_imap_idle_restarts_total", Help: "IDLE commands re-issued.", Counter: true, Value: func() float64 { return float64(d.watcher.Stats().IdleRestarts) }},
			web.Metric{Name: "mailflow_imap_fetched_total", Help: "Messages fetched from IMAP.", Counter: true, Value: func() float64 { return float64(d.watcher.Stats().Fetched) }},
			web.Metric{Name: "mailflow_imap_unprocessable_total", Help: "Messages filed for review after failing repeatedly while the database answered.", Counter: true, Value: func() float64 { return float64(d.watcher.Stats().Unprocessable) }},
			web.Metric{Name: "mailflow_imap_unprocessable_unrecorded_total", Help: "Unprocessable messages filed for review without a record or alert (recording failed too).", Counter: true, Value: func() float64 { return float64(d.watcher.Stats().Unrecorded) }},
		)
	}
	return ms
}

// ready fails when the last IMAP sync is older than three poll intervals.
func (d *daemon) ready(ctx context.Context) error {
	if d.watcher == nil {
		return nil
	}
	last := d.watcher.LastSync()
	if last.IsZero() {
		return errors.New("no IMAP sync yet")
	}
	if age := time.Since(last); age > 3*d.cfg.pollInterval {
		return fmt.Errorf("last IMAP sync %s ago", age.Round(time.Second))
	}
	return nil
}

// listen binds the HTTP address; split from run so the demo can print
// the URL of a ":0" listener.
func (d *daemon) listen() error {
	ln, err := net.Listen("tcp", d.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	d.listener = ln
	return nil
}

// run starts every component and blocks until ctx ends; then it stops
// taking work (HTTP first), lets the sender and watcher finish what is in
// flight, and closes the database, all within a bounded time.
func (d *daemon) run(ctx context.Context) error {
	if d.listener == nil {
		if err := d.listen(); err != nil {
			return err
		}
	}
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	var wg sync.WaitGroup
	start := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					d.log.Error("component panicked", "component", name, "err", p)
				}
			}()
			if err := fn(workCtx); err != nil && !errors.Is(err, context.Canceled) {
				d.log.Error("component stopped", "component", name, "err", err)
			}
		}()
	}
	if err := d.sched.Start(workCtx); err != nil {
		d.store.Close()
		return err
	}
	start("sender", d.sender.Run)
	if d.watcher != nil {
		start("watcher", d.watcher.Run)
	}
	httpErr := make(chan error, 1)
	go func() { httpErr <- d.http.Serve(d.listener) }()
	d.log.Info("mailflow serving", "listen", d.listener.Addr().String(), "db", d.store.Driver(), "imap", d.watcher != nil)

	var err error
	select {
	case err = <-httpErr:
	case <-ctx.Done():
	}
	d.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if e := d.http.Shutdown(sctx); e != nil && !errors.Is(e, http.ErrServerClosed) {
		d.log.Warn("http shutdown", "err", e)
	}
	d.sched.Stop()
	stopWork()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		d.log.Warn("components did not stop in time")
	}
	d.store.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// serve runs the daemon until SIGINT/SIGTERM.
func (a *app) serve(ctx context.Context) error {
	d, err := newDaemon(ctx, a.cfg, a.log)
	if err != nil {
		return err
	}
	return d.run(ctx)
}
