package main

import (
	"context"
	"flag"
	"fmt"
	"mailflow/mailflow/compose"
	"time"

	"mailflow/scheduler"
	"mailflow/storage"
)

// newScheduler wires the scheduler with the real mailer.
func newScheduler(cfg *Config, s *storage.Store, composer *compose.Composer, a *app) *scheduler.Scheduler {
	return scheduler.New(scheduler.Config{
		Location: cfg.location, Billing: cfg.Schedule.Billing, Reminders: cfg.Schedule.Reminders,
		Digest: cfg.Schedule.Digest, RemindAfter: cfg.remindAfter, EscalateAfter: cfg.escalateAfter,
	}, s, scheduler.NewMailer(composer), a.log)
}

// billing runs `billing run [-dry-run] [-at DATE]`: the same job the
// daemon's cron runs, now; the mails go out with the daemon's next pass.
func (a *app) billing(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "run" {
		fmt.Fprintln(a.stderr, "usage: mailflow billing run [-dry-run] [-at DATE]")
		return errUsage
	}
	var dryRun bool
	var at string
	if _, err := a.verbFlags("billing run", args[1:], func(fs *flag.FlagSet) {
		fs.BoolVar(&dryRun, "dry-run", false, "show what would be sent, write nothing")
		fs.StringVar(&at, "at", "", "run as of this date (YYYY-MM-DD, start of the day in schedule.timezone) or RFC 3339 time; default now")
	}, 0, "[-dry-run] [-at DATE]"); err != nil {
		return err
	}
	when := time.Now()
	if at != "" {
		t, err := time.ParseInLocation(time.DateOnly, at, a.cfg.location)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, at); err != nil {
				fmt.Fprintf(a.stderr, "mailflow: -at %q: want YYYY-MM-DD or an RFC 3339 time\n", at)
				return errUsage
			}
		}
		when = t
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	_, composer, err := a.cfg.composer()
	if err != nil {
		return err
	}
	rep, err := newScheduler(a.cfg, s, composer, a).RunBilling(ctx, when, dryRun)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(rep)
	}
	return rep.WriteTable(a.stdout)
}
