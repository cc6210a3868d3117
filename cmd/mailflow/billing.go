package main

import (
	"context"
	"flag"
	"fmt"
	"mailflow/mailflow/compose"
	"os"
	"path/filepath"
	"time"

	"mailflow/scheduler"
	"mailflow/storage"
)

// newScheduler wires the scheduler with the real mailer.
func newScheduler(cfg *Config, s *storage.Store, composer *compose.Composer, a *app) *scheduler.Scheduler {
	return scheduler.New(scheduler.Config{
		Location: cfg.location, Billing: cfg.Schedule.Billing, Reminders: cfg.Schedule.Reminders,
		Digest: cfg.Schedule.Digest, RemindAfter: cfg.remindAfter, EscalateAfter: cfg.escalateAfter,
		Retention: cfg.retention,
	}, s, scheduler.NewMailer(composer), a.log)
}

// billing runs `billing run [-dry-run] [-at DATE] [-xrechnung DIR]`: the
// same job the daemon's cron runs, now; the mails go out with the daemon's
// next pass. -xrechnung writes the e-invoices a dry run would attach.
func (a *app) billing(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "run" {
		fmt.Fprintln(a.stderr, "usage: mailflow billing run [-dry-run] [-at DATE] [-xrechnung DIR]")
		return errUsage
	}
	var dryRun bool
	var at, xdir string
	if _, err := a.verbFlags("billing run", args[1:], func(fs *flag.FlagSet) {
		fs.BoolVar(&dryRun, "dry-run", false, "show what would be sent, write nothing")
		fs.StringVar(&at, "at", "", "run as of this date (YYYY-MM-DD, start of the day in schedule.timezone) or RFC 3339 time; default now")
		fs.StringVar(&xdir, "xrechnung", "", "with -dry-run: write each XRechnung the run would attach to this directory")
	}, 0, "[-dry-run] [-at DATE] [-xrechnung DIR]"); err != nil {
		return err
	}
	if xdir != "" && !dryRun {
		fmt.Fprintln(a.stderr, "mailflow: -xrechnung needs -dry-run (a real run attaches the invoices to its mails)")
		return errUsage
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
	if xdir != "" {
		if err := writeInvoices(xdir, rep.Invoices); err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "wrote %d XRechnung files to %s\n", len(rep.Invoices), xdir)
	}
	if a.json {
		return a.printJSON(rep)
	}
	return rep.WriteTable(a.stdout)
}

// writeInvoices writes each invoice to dir. Draft numbers repeat between
// sellers, so the file name starts with the seller's role and id.
func writeInvoices(dir string, invs []scheduler.BillingInvoice) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("billing: xrechnung dir: %w", err)
	}
	for _, inv := range invs {
		name := filepath.Join(dir, inv.Role+"-"+inv.Party+"-"+inv.File)
		if err := os.WriteFile(name, inv.XML, 0o644); err != nil {
			return fmt.Errorf("billing: write xrechnung: %w", err)
		}
	}
	return nil
}
