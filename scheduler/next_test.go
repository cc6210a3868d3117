package scheduler

import (
	"testing"
	"time"
)

// nextPeriodEnd, which sets order_billing.due_at, names exactly the End of the
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
