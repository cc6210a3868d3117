package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/scheduler"
	"mailflow/storage"
	"mailflow/storage/storagetest"
)

// noLeader is a store whose leader lock always succeeds, so that two
// schedulers really run the same job at the same time and only the
// database's unique keys and row locks keep them apart.
type noLeader struct{ *storage.Store }

func (noLeader) TryLeader(context.Context, string) (func(), bool, error) { return func() {}, true, nil }

// cluster is two daemons on one database.
type cluster struct {
	a, b *env
}

func newCluster(t *testing.T, driver string, lock bool) *cluster {
	t.Helper()
	drv, dsn := storagetest.DSN(t, driver)
	open := func() *storage.Store {
		s, err := storage.Open(context.Background(), drv, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	c := &cluster{a: newEnvOn(t, open(), true), b: newEnvOn(t, open(), false)}
	for _, e := range []*env{c.a, c.b} {
		cfg := testConfig(e.loc)
		cfg.BatchSize = 3 // many transactions to interleave
		var st scheduler.Store = e.store
		if !lock {
			st = noLeader{e.store}
		}
		e.sched = scheduler.New(cfg, st, newTestMailer(t, e.now), nil)
		e.sched.Now = e.now
	}
	return c
}

// Two schedulers on one database, run at the same moments, with and
// without the leader lock: every period of every order is reminded exactly
// once, in exactly one mail per reminded party.
func TestTwoSchedulersBillEachPeriodOnce(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		for _, lock := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/leader-lock=%v", driver, lock), func(t *testing.T) {
				c := newCluster(t, driver, lock)
				e := c.a
				type bound struct {
					o     *mailflow.Order
					price mailflow.Price
				}
				var orders []bound
				prices := []string{"basis-monat", "basis-jahr", "einrichtung"}
				for i := 0; i < 24; i++ {
					binding := at(e.loc, 2026, time.Month(1+i%12), 1+(i*7)%28, 10, 0)
					var o *mailflow.Order
					if i%3 == 2 {
						o = e.bound("order-uv.json", "", binding)
					} else {
						o = e.bound("order-dv.json", prices[i%3], binding)
					}
					orders = append(orders, bound{o, o.Snapshot.Price})
				}

				var mu sync.Mutex
				seen := map[string]int{} // order/period/role → lines sent
				busy := 0
				runs := []time.Time{}
				for m := time.February; m <= time.December; m += 2 {
					runs = append(runs, at(e.loc, 2026, m, 1, 6, 0), at(e.loc, 2026, m, 15, 6, 0))
				}
				final := at(e.loc, 2027, 1, 1, 6, 0)
				runs = append(runs, final)
				for _, when := range runs {
					c.a.setClock(when)
					c.b.setClock(when)
					var wg sync.WaitGroup
					start := make(chan struct{})
					for _, d := range []*env{c.a, c.b} {
						wg.Add(1)
						go func() {
							defer wg.Done()
							<-start
							rep, err := d.sched.RunBilling(d.ctx, when, false)
							mu.Lock()
							defer mu.Unlock()
							if errors.Is(err, scheduler.ErrBusy) {
								busy++
								return
							}
							if err != nil {
								t.Errorf("run at %v: %v", when, err)
								return
							}
							for _, l := range rep.Lines {
								seen[l.Number+"/"+l.Period.Key+"/"+l.Role]++
							}
						}()
					}
					close(start)
					wg.Wait()
				}

				want := map[string]int{}
				var wantRecs []string
				for _, b := range orders {
					ps, err := scheduler.DuePeriods(*b.o.BindingAt, b.price.Interval, b.price.AmountCents, b.price.VATPercent, e.loc, time.Time{}, final)
					if err != nil {
						t.Fatal(err)
					}
					for _, p := range ps {
						wantRecs = append(wantRecs, b.o.Number+"/"+p.Key)
						for _, role := range b.o.Parties() {
							want[b.o.Number+"/"+p.Key+"/"+role] = 1
						}
					}
				}
				if len(want) < 100 {
					t.Fatalf("only %d lines expected: the test bills too little", len(want))
				}
				for k, n := range seen {
					if want[k] != n {
						t.Errorf("%s sent %d times, want %d", k, n, want[k])
					}
				}
				for k := range want {
					if seen[k] == 0 {
						t.Errorf("%s never sent", k)
					}
				}
				var recs []string
				for _, r := range e.records() {
					recs = append(recs, r.Number+"/"+r.PeriodKey)
				}
				sort.Strings(recs)
				sort.Strings(wantRecs)
				if fmt.Sprint(recs) != fmt.Sprint(wantRecs) {
					t.Errorf("billing_periods:\n got  %v\n want %v", recs, wantRecs)
				}
				// Every line sent is in exactly one mail.
				inMails := map[string]int{}
				for _, m := range e.outbox(mailflow.KindBilling) {
					for _, k := range billingMailLines(t, m) {
						inMails[k+"/"+m.Party]++
					}
				}
				for k := range want {
					if inMails[k] != 1 {
						t.Errorf("%s is in %d mails, want 1", k, inMails[k])
					}
				}
				t.Logf("%d runs, %d skipped as busy, %d lines", 2*len(runs), busy, len(want))
			})
		}
	}
}

// The leader lock admits one daemon per job and is free again once
// released.
func TestLeaderLock(t *testing.T) {
	c := newCluster(t, "postgres", true)
	ctx := context.Background()
	release, ok, err := c.a.store.TryLeader(ctx, scheduler.JobBilling)
	if err != nil || !ok {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	if _, ok, err := c.b.store.TryLeader(ctx, scheduler.JobBilling); ok || err != nil {
		t.Errorf("second daemon got the billing lock (%v)", err)
	}
	c.b.setClock(at(c.b.loc, 2026, 2, 1, 6, 0))
	if _, err := c.b.sched.RunBilling(ctx, c.b.now(), false); !errors.Is(err, scheduler.ErrBusy) {
		t.Errorf("billing run while another daemon runs it: %v, want ErrBusy", err)
	}
	relDigest, ok, err := c.b.store.TryLeader(ctx, scheduler.JobDigest)
	if err != nil || !ok {
		t.Errorf("another job's lock: %v %v", ok, err)
	} else {
		relDigest()
	}
	release()
	relB, ok, err := c.b.store.TryLeader(ctx, scheduler.JobBilling)
	if err != nil || !ok {
		t.Fatalf("lock after release: %v %v", ok, err)
	}
	relB()
}
