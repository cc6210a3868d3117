package web

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"mailflow/mailflow"
)

// MetricsStore is what /metrics reads from the database at scrape time.
type MetricsStore interface {
	StatusCounts(ctx context.Context) (map[mailflow.Status]int, error)
	OutboxStats(ctx context.Context, now time.Time) (map[string]int, time.Duration, error)
	InboundVerdictCounts(ctx context.Context) (map[string]int, error)
}

// Metric is one number read from a component at scrape time, so the
// components keep plain atomic counters and need no Prometheus import.
type Metric struct {
	Name, Help string
	Counter    bool
	Value      func() float64
}

// NewMetricsHandler returns the /metrics handler: database-derived gauges
// (orders by status, outbox by status and oldest pending age, inbound
// verdicts) plus the given component metrics and the Go runtime's.
func NewMetricsHandler(store MetricsStore, log *slog.Logger, extra ...Metric) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	if err := reg.Register(&dbCollector{store: store, log: log}); err != nil {
		return nil, err
	}
	for _, m := range extra {
		var c prometheus.Collector
		opts := prometheus.Opts{Name: m.Name, Help: m.Help}
		if m.Counter {
			c = prometheus.NewCounterFunc(prometheus.CounterOpts(opts), m.Value)
		} else {
			c = prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts), m.Value)
		}
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: nil}), nil
}

var (
	descOrders       = prometheus.NewDesc("mailflow_orders", "Orders by status.", []string{"status"}, nil)
	descOutbox       = prometheus.NewDesc("mailflow_outbox_messages", "Outbox rows by state (pending is the queue depth).", []string{"state"}, nil)
	descOutboxOldest = prometheus.NewDesc("mailflow_outbox_oldest_pending_seconds", "Age of the oldest pending outbox row.", nil, nil)
	descInbound      = prometheus.NewDesc("mailflow_inbound_messages", "Received messages by verdict.", []string{"verdict"}, nil)
	descScrapeError  = prometheus.NewDesc("mailflow_metrics_db_error", "1 when the database could not be read for this scrape.", nil, nil)
)

type dbCollector struct {
	store MetricsStore
	log   *slog.Logger
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOrders, descOutbox, descOutboxOldest, descInbound, descScrapeError} {
		ch <- d
	}
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	failed := 0.0
	if counts, err := c.store.StatusCounts(ctx); err == nil {
		for _, s := range mailflow.Statuses {
			ch <- prometheus.MustNewConstMetric(descOrders, prometheus.GaugeValue, float64(counts[s]), string(s))
		}
	} else {
		failed = 1
		c.log.Warn("metrics: status counts", "err", err)
	}
	if counts, oldest, err := c.store.OutboxStats(ctx, time.Now()); err == nil {
		for _, s := range []string{mailflow.OutboxPending, mailflow.OutboxSent, mailflow.OutboxFailed} {
			ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(counts[s]), s)
		}
		ch <- prometheus.MustNewConstMetric(descOutboxOldest, prometheus.GaugeValue, oldest.Seconds())
	} else {
		failed = 1
		c.log.Warn("metrics: outbox stats", "err", err)
	}
	if counts, err := c.store.InboundVerdictCounts(ctx); err == nil {
		for v, n := range counts {
			ch <- prometheus.MustNewConstMetric(descInbound, prometheus.GaugeValue, float64(n), v)
		}
	} else {
		failed = 1
		c.log.Warn("metrics: inbound verdicts", "err", err)
	}
	ch <- prometheus.MustNewConstMetric(descScrapeError, prometheus.GaugeValue, failed)
}
