package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"time"
)

// results are the figures of one run.
type results struct {
	cfg     config
	dovecot string

	orders, notifications, duplicateNotes int
	ordersPerSec, notesPerSec             float64

	replies, bigReplies         int
	appendPerSec                float64
	startup, backlog            time.Duration
	repliesPerSec, steadyPerSec float64
	peakRSS                     int64
	daemonCPU                   time.Duration // of phase B until the outbox drained, start-up included
	outboxFailed                int

	latencies   []time.Duration
	latencyLost int
	// The latency split at the server's EXISTS push, where it came first.
	pushDelays, daemonShares []time.Duration

	verdicts, wantVerdicts         map[string]int
	wrongStatus                    int
	inInbox, inProcessed, inReview int
}

// lost counts replies that never got a verdict.
func (r *results) lost() int {
	got := 0
	for v, n := range r.verdicts {
		if v != "duplicate" {
			got += n
		}
	}
	return max(0, r.replies-got) + r.latencyLost
}

// failed reports a run whose outcome is wrong, not merely slow.
func (r *results) failed() bool {
	if r.lost() > 0 || r.verdicts["duplicate"] > 0 || r.duplicateNotes > 0 || r.wrongStatus > 0 || r.outboxFailed > 0 {
		return true
	}
	for v, n := range r.wantVerdicts {
		if r.verdicts[v] != n {
			return true
		}
	}
	return r.inInbox != 0 || r.inReview != 0
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// Nearest rank.
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func (r *results) print(w io.Writer) {
	fmt.Fprintf(w, "\nmailflow-load: driver %s, dovecot %s, mode %s\n", r.cfg.driver, r.dovecot, r.cfg.mode)
	row := func(k, format string, args ...any) { fmt.Fprintf(w, "  %-28s %s\n", k, fmt.Sprintf(format, args...)) }
	row("orders", "%d created, %.0f orders/s (%d HTTP workers)", r.orders, r.ordersPerSec, r.cfg.workers)
	row("notifications", "%d delivered, %.0f notifications/s (from the first POST)", r.notifications, r.notesPerSec)
	if r.cfg.n > 0 {
		row("throughput replies", "%d (%d with a %d MiB attachment), appended at %.0f/s", r.cfg.n, r.bigReplies, r.cfg.bigSize>>20, r.appendPerSec)
		row("replies processed", "%.0f replies/s (%s from daemon start incl. %s start-up; %.0f/s from the first)",
			r.repliesPerSec, r.backlog.Round(time.Millisecond), r.startup.Round(time.Millisecond), r.steadyPerSec)
		row("daemon CPU", "%.1f ms per reply incl. its answers (%.1f s for %d; capacity %.0f replies/s per core)",
			float64(r.daemonCPU.Microseconds())/1000/float64(r.cfg.n), r.daemonCPU.Seconds(), r.cfg.n, float64(r.cfg.n)/r.daemonCPU.Seconds())
		row("peak RSS of the daemon", "%.1f MB (VmHWM, phase B)", float64(r.peakRSS)/1e6)
	}
	if l := r.latencies; len(l) > 0 {
		row("latency APPEND→status", "n=%d at %.0f/s: %s", len(l), r.cfg.rate, dist(l))
		if len(r.pushDelays) > 0 {
			row("  of which server push", "APPEND→EXISTS (IDLE): %s", dist(r.pushDelays))
			row("  of which daemon", "EXISTS→status: %s", dist(r.daemonShares))
		}
	}
	var names []string
	for v := range r.verdicts {
		names = append(names, v)
	}
	for v := range r.wantVerdicts {
		if _, ok := r.verdicts[v]; !ok {
			names = append(names, v)
		}
	}
	sort.Strings(names)
	for _, v := range names {
		row("verdict "+v, "%d (expected %d)", r.verdicts[v], r.wantVerdicts[v])
	}
	row("duplicates", "%d replies, %d notifications", r.verdicts["duplicate"], r.duplicateNotes)
	row("lost", "%d", r.lost())
	row("wrong order status", "%d", r.wrongStatus)
	row("outbox failed", "%d", r.outboxFailed)
	row("mailboxes", "INBOX %d, Processed %d, Review %d", r.inInbox, r.inProcessed, r.inReview)
	if r.failed() {
		fmt.Fprintln(w, "  RESULT: FAILED (see above)")
	} else {
		fmt.Fprintln(w, "  RESULT: ok")
	}
}

// dist formats percentiles of durations.
func dist(d []time.Duration) string {
	l := slices.Clone(d)
	slices.Sort(l)
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, max %s", ms(percentile(l, 0.50)), ms(percentile(l, 0.90)), ms(percentile(l, 0.99)), ms(l[len(l)-1]))
}
