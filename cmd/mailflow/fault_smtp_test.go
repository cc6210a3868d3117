package main

// The SMTP-outage fault test.

import (
	"context"
	"sync"
	"testing"
	"time"

	"mailflow/internal/mailtest"
	"mailflow/storage/storagetest"
)

func restartSMTP(t *testing.T, addr string) *mailtest.SMTPServer {
	t.Helper()
	for try := 0; ; try++ {
		srv, err := mailtest.Start(mailtest.Options{Addr: addr})
		if err == nil {
			t.Cleanup(func() { srv.Close() })
			return srv
		}
		if try == 50 {
			t.Fatalf("SMTP server back on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFaultSMTPOutage takes the SMTP server away twice: once while the
// daemon is idle (orders created meanwhile queue up) and once in the
// middle of deliveries. Every notification must be delivered once the
// server is back, each Message-ID once; only a message whose transfer the
// outage cut short may arrive twice, byte-identical.
func TestFaultSMTPOutage(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			first := mailtest.NewSMTPServer(t)
			sinks := oneSink(first)
			box, err := mailtest.NewIMAPServer("bestellungen@example.org", "imap-pass")
			if err != nil {
				t.Fatal(err)
			}
			defer box.Close()
			drv, dsn := storagetest.DSN(t, driver)
			e := startFaultDaemon(t, daemonConfig{driver: drv, dsn: dsn, smtpPort: first.Port,
				imapPort: box.Port(), imapUser: "bestellungen@example.org", imapPass: "imap-pass"})
			l := newLoad(t, e.base, box, sinks, 90)
			var wg sync.WaitGroup
			defer wg.Wait()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			wg.Go(func() { l.replyLoop(ctx) })

			// Up: a first third goes through.
			phase := time.Now()
			l.createAll(ctx, 0, 30, 2)
			l.waitSettled(time.Minute)
			t.Logf("up: 30 orders done in %s", time.Since(phase).Round(time.Millisecond))
			if n := e.d.sender.Stats.Retried.Load(); n != 0 {
				t.Errorf("%d retries with the server up", n)
			}

			// Down while idle: new orders queue up and are retried.
			first.Close()
			l.fault(time.Now())
			before := sinks.count()
			l.createAll(ctx, 30, 60, 2)
			waitUntil(t, "retries of the queued notifications", 20*time.Second, func() bool {
				return e.d.sender.Stats.Retried.Load() >= 60
			})
			time.Sleep(2 * time.Second) // several rounds of backoff
			retried := e.d.sender.Stats.Retried.Load()
			t.Logf("down while idle: 30 orders queued, %d retries", retried)
			second := restartSMTP(t, first.Addr)
			sinks.add(second)
			upAt := time.Now()
			waitUntil(t, "the queued notifications", time.Minute, func() bool { return second.Count() >= 30 })
			recovery := time.Since(upAt)
			if sinks.count() == before {
				t.Fatal("nothing delivered after the outage")
			}
			l.waitSettled(time.Minute)

			// Down in the middle of deliveries.
			phase = time.Now()
			wg.Go(func() {
				l.pace = 20 * time.Millisecond
				l.createAll(ctx, 60, l.n, 2)
			})
			c0 := second.Count()
			waitUntil(t, "deliveries of the last third", 20*time.Second, func() bool { return second.Count() > c0+10 })
			second.Close()
			l.fault(time.Now())
			time.Sleep(1500 * time.Millisecond)
			sinks.add(restartSMTP(t, first.Addr))
			l.waitCaughtUp(2 * time.Minute)
			t.Logf("down in the middle: 30 orders done in %s", time.Since(phase).Round(time.Millisecond))
			cancel()
			wg.Wait()
			e.stop()
			f := l.verify(openStore(t, drv, dsn))
			t.Logf("SMTP outage test (%s): %s; %d temporary failures retried, all queued notifications delivered %s after the server came back",
				driver, f, retried, recovery.Round(time.Millisecond))
		})
	}
}

// imapProxy forwards IMAP connections to a server and kills them on
// request: in the middle of a message download (after part of a BODY[]
// literal), or while the client idles. It works the same in front of the
// in-process server and Dovecot.
