package scheduler

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"mailflow/mailflow"
)

// JobRetention deletes what is past its retention period.
const JobRetention = "retention"

// Period is a retention period: whole years, counted as the commercial
// and tax codes count them (§ 257 HGB, § 147 AO) from the end of the
// calendar year in which the record was made, or days counted from the
// record itself. The zero Period keeps everything.
type Period struct {
	Years, Days int
}

// ParsePeriod reads "10y", "6y", "90d" or "" (keep forever).
func ParsePeriod(s string) (Period, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Period{}, nil
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n < 1 {
		return Period{}, fmt.Errorf("%q is no period such as \"10y\" or \"90d\"", s)
	}
	switch s[len(s)-1] {
	case 'y':
		return Period{Years: n}, nil
	case 'd':
		return Period{Days: n}, nil
	}
	return Period{}, fmt.Errorf("%q is no period such as \"10y\" or \"90d\"", s)
}

// Cutoff is the earliest time a record made now-or-later is kept: one
// made before it is past its period at now. Years: the start of the
// calendar year Years before now's (in loc), since a record of year Y is
// kept until the end of year Y+Years. Days: now minus Days. Zero for the
// zero Period.
func (p Period) Cutoff(now time.Time, loc *time.Location) time.Time {
	switch {
	case p.Years > 0:
		return time.Date(now.In(loc).Year()-p.Years, time.January, 1, 0, 0, 0, 0, loc)
	case p.Days > 0:
		return now.AddDate(0, 0, -p.Days)
	}
	return time.Time{}
}

// Retention is the [retention] section of the configuration: how long
// final orders, raw mails and records of exported evidence are kept.
type Retention struct {
	Orders, RawMail, Evidence Period
	// Spec is the job's cron spec; "" (or all periods zero) disables it.
	Spec string
}

// spec is the cron spec the job runs on: none while every period keeps
// everything, since the job would have nothing to do.
func (r Retention) spec() string {
	if r.Orders == (Period{}) && r.RawMail == (Period{}) && r.Evidence == (Period{}) {
		return ""
	}
	return r.Spec
}

// RunRetention deletes what is older than its period at now and logs
// the counts (no personal data). It never deletes an order that is not
// final (storage.Store.DeleteExpired).
func (s *Scheduler) RunRetention(ctx context.Context, now time.Time) (mailflow.RetentionReport, error) {
	r := s.cfg.Retention
	release, err := s.lead(ctx, JobRetention)
	if err != nil {
		return mailflow.RetentionReport{}, err
	}
	defer release()
	loc := s.cfg.Location
	rep, err := s.store.DeleteExpired(ctx, mailflow.RetentionCutoffs{Orders: r.Orders.Cutoff(now, loc),
		RawMail: r.RawMail.Cutoff(now, loc), Evidence: r.Evidence.Cutoff(now, loc)})
	if err != nil {
		return rep, fmt.Errorf("scheduler: %s: %w", JobRetention, err)
	}
	s.log.Info("scheduler: retention run", "orders", rep.Orders, "decisions", rep.DecisionsRows,
		"inbound_rows", rep.InboundRows, "outbound_rows", rep.OutboundRows,
		"inbound_raw", rep.InboundRaw, "outbound_raw", rep.OutboundRaw, "evidence_exports", rep.EvidenceLog)
	return rep, nil
}
