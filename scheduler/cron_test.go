package scheduler_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/scheduler"
)

// flakyDigest is the real mailer with a digest that panics on its first
// call and is slow afterwards, counting overlapping calls.
type flakyDigest struct {
	scheduler.Mailer
	calls, running, maxRunning atomic.Int32
}

func (f *flakyDigest) Digest(d scheduler.DigestData) (*mailflow.OutboxMessage, error) {
	n := f.calls.Add(1)
	r := f.running.Add(1)
	defer f.running.Add(-1)
	for {
		m := f.maxRunning.Load()
		if r <= m || f.maxRunning.CompareAndSwap(m, r) {
			break
		}
	}
	if n == 1 {
		panic("template exploded")
	}
	time.Sleep(1500 * time.Millisecond) // longer than the tick interval
	return f.Mailer.Digest(d)
}

// Jobs run on their cron spec; a panic is recovered, counted, and the
// transaction it happened in rolled back, so the next tick runs normally;
// a run that outlasts the interval is not overlapped by the next tick;
// Stop waits for the running job.
func TestCronRunsRecoversAndNeverOverlaps(t *testing.T) {
	e := newEnv(t, "sqlite")
	var minute atomic.Int64
	clock := func() time.Time { // each tick a new minute: a new digest slot
		return at(e.loc, 2026, 11, 23, 7, 0).Add(time.Duration(minute.Add(1)) * time.Minute)
	}
	mailer := &flakyDigest{Mailer: newTestMailer(t, clock)}
	cfg := testConfig(e.loc)
	cfg.Billing, cfg.Reminders, cfg.Digest = "", "", "@every 1s"
	s := scheduler.New(cfg, e.store, mailer, nil)
	s.Now = clock
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for e.count("outbox") < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop() // cancels a run in progress: its transaction rolls back
	calls := mailer.calls.Load()
	if calls < 3 {
		t.Fatalf("%d digest runs in 15s with a 1s spec", calls)
	}
	if s.Panics() != 1 {
		t.Errorf("%d panics counted, want 1", s.Panics())
	}
	if m := mailer.maxRunning.Load(); m != 1 {
		t.Errorf("%d digest runs overlapped", m)
	}
	if n := len(e.outbox(mailflow.KindDigest)); n < 2 || n > int(calls)-1 {
		t.Errorf("%d digests enqueued after %d calls, one of which panicked", n, calls)
	}
	time.Sleep(1200 * time.Millisecond)
	if mailer.calls.Load() != calls {
		t.Error("a job ran after Stop")
	}
}

func TestConfigValidate(t *testing.T) {
	loc := berlin(t)
	good := testConfig(loc)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*scheduler.Config){
		"no time zone":          func(c *scheduler.Config) { c.Location = nil },
		"six fields":            func(c *scheduler.Config) { c.Billing = "0 0 6 1 * *" },
		"bad reminder spec":     func(c *scheduler.Config) { c.Reminders = "every morning" },
		"zero remind_after":     func(c *scheduler.Config) { c.RemindAfter = 0 },
		"negative escalate":     func(c *scheduler.Config) { c.EscalateAfter = -time.Hour },
		"descriptor is allowed": nil,
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			if mutate == nil {
				c.Digest = "@daily"
				if err := c.Validate(); err != nil {
					t.Error(err)
				}
				return
			}
			mutate(&c)
			if err := c.Validate(); err == nil {
				t.Error("accepted")
			}
			if err := scheduler.New(c, nil, nil, nil).Start(context.Background()); err == nil {
				t.Error("Start accepted it")
			}
		})
	}
}
