package scheduler_test

import (
	"errors"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/scheduler"
	"mailflow/storage/storagetest"
)

// A period of years runs from the end of the calendar year of the
// record (§ 147 AO, § 257 HGB): a record of 2026 kept six years goes on
// 1 January 2033, not earlier.
func TestRetentionPeriods(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, c := range []struct {
		spec   string
		now    time.Time
		cutoff time.Time
	}{
		{"", time.Date(2033, 3, 1, 0, 0, 0, 0, berlin), time.Time{}},
		{"6y", time.Date(2033, 3, 1, 0, 0, 0, 0, berlin), time.Date(2027, 1, 1, 0, 0, 0, 0, berlin)},
		{"6y", time.Date(2032, 12, 31, 23, 0, 0, 0, berlin), time.Date(2026, 1, 1, 0, 0, 0, 0, berlin)},
		{"90d", time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), time.Date(2026, 9, 6, 0, 0, 0, 0, time.UTC)},
	} {
		p, err := scheduler.ParsePeriod(c.spec)
		if err != nil {
			t.Fatalf("%q: %v", c.spec, err)
		}
		if got := p.Cutoff(c.now, berlin); !got.Equal(c.cutoff) {
			t.Errorf("%q at %s: cutoff %s, want %s", c.spec, c.now, got, c.cutoff)
		}
	}
	for _, bad := range []string{"6", "y", "0y", "-1d", "6 years", "6m"} {
		if _, err := scheduler.ParsePeriod(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The job deletes the final order past its period, and keeps an open
// order and a binding contract that is still billed, of the same age.
func TestRunRetention(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			old := time.Date(2025, 5, 1, 10, 0, 0, 0, e.loc)
			billed := e.bound("order-dv.json", "", old)
			e.setClock(old)
			rejected := e.decide(e.order("order-dv.json", ""), mailflow.PartyProvider, mailflow.IntentReject, old)
			open := e.order("order-dv.json", "")
			// Seven years on: the orders' mails are stamped with the real
			// clock, which must lie before the cutoff too.
			now := time.Date(time.Now().Year()+7, 3, 1, 4, 15, 0, 0, e.loc)
			e.billing(now, false)
			cfg := testConfig(e.loc)
			cfg.Retention = scheduler.Retention{Orders: scheduler.Period{Years: 6}, Spec: "@daily"}
			rep, err := scheduler.New(cfg, e.store, nil, nil).RunRetention(e.ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Orders != 1 {
				t.Errorf("deleted %d orders, want the rejected one", rep.Orders)
			}
			if _, err := e.store.Order(e.ctx, rejected.Number); !errors.Is(err, mailflow.ErrNotFound) {
				t.Errorf("the order rejected in 2025 is still there: %v", err)
			}
			for _, o := range []*mailflow.Order{billed, open} {
				if _, err := e.store.Order(e.ctx, o.Number); err != nil {
					t.Errorf("order %s (%s) of 2025 is gone: %v", o.Number, o.Status, err)
				}
			}
		})
	}
}
