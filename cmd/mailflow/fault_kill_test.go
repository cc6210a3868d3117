package main

// The kill and graceful-shutdown fault tests: the daemon as its own process,
// under the load of fault_load_test.go.

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestFaultKill kills the daemon (its own process, SQLite in WAL mode)
// with SIGKILL at random moments while it works through orders and
// replies, and starts it again at once. Afterwards every order must be in
// its script's status, every outbound message delivered under one
// Message-ID, a second delivery only of a message in flight at a kill and
// then byte-identical, and no decision applied twice.
//
// MAILFLOW_FAULT_ORDERS (default 1000; the orders bring as many replies),
// MAILFLOW_FAULT_KILLS (default 20) and MAILFLOW_FAULT_SEED (default: the
// clock, logged) change the run.
func TestFaultKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a daemon twenty times under load")
	}
	n := envInt(t, "MAILFLOW_FAULT_ORDERS", 1000)
	kills := envInt(t, "MAILFLOW_FAULT_KILLS", 20)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MAILFLOW_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MAILFLOW_FAULT_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with MAILFLOW_FAULT_SEED=%d), %d orders, %d kills", seed, seed, n, kills)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	p, l, dbPath := procUnderLoad(t, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() { l.createAll(ctx, 0, n, 4) })
	wg.Go(func() { l.replyLoop(ctx) })

	// Kill at random intervals, restart at once.
	underLoad := 0
	for k := 1; k <= kills; k++ {
		time.Sleep(time.Duration(300+rng.IntN(1700)) * time.Millisecond)
		busy, why := l.caughtUp()
		p.kill()
		// A message in flight went out before this moment, its resend
		// after it.
		at := time.Now()
		l.fault(at)
		p.start()
		if !busy {
			underLoad++
		}
		t.Logf("kill %2d at %5.1fs: %d/%d orders, %d replies appended, %d delivered; %s",
			k, at.Sub(start).Seconds(), l.created.Load(), n, l.appends.Load(), l.sinks.count(), why)
	}
	took := l.waitCaughtUp(3 * time.Minute)
	total := time.Since(start)
	cancel()
	wg.Wait()
	if d, code := p.terminate(20 * time.Second); code != 0 {
		t.Errorf("daemon exit status %d after SIGTERM (%s)", code, d)
	}
	db := openStore(t, "sqlite", dbPath)
	var integrity string
	if err := db.Get(&integrity, `PRAGMA integrity_check`); err != nil || integrity != "ok" {
		t.Errorf("SQLite integrity check after %d kills: %q %v", kills, integrity, err)
	}
	f := l.verify(db)
	// A kill leaves unrecorded at most the deliveries in flight (one per
	// SMTP connection, smtp.concurrency = 4) and those delivered but not
	// yet marked sent: the statement marking them (what arrived while the
	// last one ran: up to a batch of 32 and the workers' 4) and the next
	// batch waiting for it.
	if perKill := 2*32 + 2*4 + 1; f.duplicates > perKill*kills {
		t.Errorf("%d duplicates for %d kills: more than the %d deliveries a kill can leave unrecorded", f.duplicates, kills, perKill)
	}
	t.Logf("kill test: %s; %d kills (%d under load), %d daemon starts, %d API requests repeated (%d answered \"exists\"); done %.1fs after start, %.1fs after the last kill",
		f, kills, underLoad, p.starts, l.retries.Load(), l.existed.Load(), total.Seconds(), took.Seconds())
}

// waitUntil polls cond until it holds or limit passes.
func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestFaultGracefulShutdown stops `mailflow serve` with SIGTERM three
// times while it works: each time it must exit with status 0 within 20 s,
// and after the restarts every order must end right with nothing lost and
// nothing sent twice, since a graceful stop finishes and records the
// deliveries it has started.
func TestFaultGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon as a process under load")
	}
	const stops = 3
	p, l, dbPath := procUnderLoad(t, 300)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() { l.createAll(ctx, 0, l.n, 4) })
	wg.Go(func() { l.replyLoop(ctx) })
	var longest time.Duration
	for k := 1; k <= stops; k++ {
		// Somewhere in the k-th quarter of the orders, so that work is in
		// flight however fast the machine.
		at := int64(k*l.n/(stops+1) + rand.IntN(l.n/(stops+1)/2))
		waitUntil(t, "orders to be created", time.Minute, func() bool { return l.created.Load() >= at })
		busy, why := l.caughtUp()
		took, code := p.terminate(20 * time.Second)
		longest = max(longest, took)
		t.Logf("SIGTERM %d at %4.1fs (%s): exit status %d after %s", k, time.Since(start).Seconds(), why, code, took.Round(time.Millisecond))
		if busy {
			t.Errorf("SIGTERM %d: the daemon had no work in flight", k)
		}
		if code != 0 {
			t.Fatalf("SIGTERM %d: exit status %d after %s, want 0 within 20 s", k, code, took)
		}
		// What the sender had taken from the outbox it finished: nothing
		// waits for its lease to run out after the restart.
		var claimed int
		db := openStore(t, "sqlite", dbPath)
		if err := db.Get(&claimed, `SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND claimed_until IS NOT NULL`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if claimed > 0 {
			t.Errorf("SIGTERM %d: %d outbox rows left claimed", k, claimed)
		}
		p.start()
	}
	l.waitCaughtUp(2 * time.Minute)
	cancel()
	wg.Wait()
	took, code := p.terminate(20 * time.Second)
	if code != 0 {
		t.Errorf("final SIGTERM: exit status %d after %s", code, took)
	}
	f := l.verify(openStore(t, "sqlite", dbPath))
	t.Logf("graceful shutdown test: %s; %d SIGTERMs under load, longest stop %s, %d API requests repeated",
		f, stops, longest.Round(time.Millisecond), l.retries.Load())
}

// restartSMTP starts a server on the address of a closed one.
