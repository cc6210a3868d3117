package scheduler

import (
	"mailflow/mailflow"
	"testing"
	"time"
)

// nextPeriodEnd, which sets billing_orders.due_at, names exactly the End of the
// period DuePeriods bills next: a run at that instant bills it, a run a
// second earlier does not.
func TestNextPeriodEnd(t *testing.T) {
	loc := berlin(t)
	for _, interval := range []string{"monthly", "quarterly", "yearly", "once"} {
		for b := at(loc, 2025, 12, 20, 0, 0); b.Before(at(loc, 2029, 1, 10, 0, 0)); b = b.AddDate(0, 0, 7) {
			binding := b.Add(13*time.Hour + 17*time.Minute)
			all, err := DuePeriods(binding, interval, 100000, 19, loc, time.Time{}, at(loc, 2031, 1, 1, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			from := time.Time{}
			for i, p := range all {
				end, ok, err := nextPeriodEnd(binding, interval, loc, from)
				if err != nil || !ok || !end.Equal(p.End) {
					t.Fatalf("%s %v from %v: next end %v %v %v, want %v", interval, binding, from, end, ok, err, p.End)
				}
				early, _ := DuePeriods(binding, interval, 100000, 19, loc, from, end.Add(-time.Second))
				due, _ := DuePeriods(binding, interval, 100000, 19, loc, from, end)
				if len(early) != 0 || len(due) != 1 || due[0].Key != all[i].Key {
					t.Fatalf("%s %v from %v: a second early %v, at the end %v", interval, binding, from, keys(early), keys(due))
				}
				from = p.End
			}
			if interval == "once" {
				if _, ok, err := nextPeriodEnd(binding, interval, loc, from); ok || err != nil {
					t.Errorf("once %v: a next period after billing (%v)", binding, err)
				}
			}
		}
	}
	if _, _, err := nextPeriodEnd(at(loc, 2026, 1, 1, 0, 0), "weekly", loc, time.Time{}); err == nil {
		t.Error("unknown interval accepted")
	}
}

// plan, run after run at irregular times (a daemon down for weeks or
// months included), bills exactly the periods DuePeriods returns for the
// whole time, each once, from nothing but the order's due date.
func TestPlanBillsEachPeriodOnce(t *testing.T) {
	loc := berlin(t)
	s := &Scheduler{cfg: Config{Location: loc}}
	for _, interval := range []string{"monthly", "quarterly", "yearly", "once"} {
		for b := at(loc, 2025, 12, 20, 0, 0); b.Before(at(loc, 2027, 3, 1, 0, 0)); b = b.AddDate(0, 0, 11) {
			binding := b.Add(9*time.Hour + 41*time.Minute)
			o := mailflow.BillingOrder{BindingAt: binding, DueAt: binding, Interval: interval, AmountCents: 1000, VATPercent: 19}
			var got []mailflow.Period
			run := binding.Add(-time.Hour)
			end := at(loc, 2030, 1, 1, 0, 0)
			for step := 0; run.Before(end); step++ {
				run = run.Add(time.Duration(1+step%5*17) * 24 * time.Hour)
				if o.DueAt.After(run) {
					continue // not due: a run would not look at it
				}
				bill, err := s.plan(&o, run)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, bill.Periods...)
				if bill.DueAt == nil {
					break
				}
				o.DueAt = *bill.DueAt
			}
			want, err := DuePeriods(binding, interval, 1000, 19, loc, time.Time{}, run)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s bound %v: %d periods billed, want %d", interval, binding, len(got), len(want))
			}
			for i := range want {
				if got[i].Key != want[i].Key || !got[i].Start.Equal(want[i].Start) || got[i].NetCents != want[i].NetCents {
					t.Errorf("%s bound %v: period %d %+v, want %+v", interval, binding, i, got[i], want[i])
				}
			}
		}
	}
}
