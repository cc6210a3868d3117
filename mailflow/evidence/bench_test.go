package evidence_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

// seedMails stores n received mails of about size bytes each with the
// order, as the inbox stores them: a header and a base64 attachment of
// random bytes (a PDF compresses no better). Mails over 1 MiB are stored
// in pieces.
func seedMails(t testing.TB, e *env, o *mailflow.Order, n, size int) {
	t.Helper()
	ctx := context.Background()
	att := make([]byte, size*3/4)
	rand.Read(att)
	var body strings.Builder
	enc := base64.StdEncoding.EncodeToString(att)
	for len(enc) > 76 {
		body.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	body.WriteString(enc + "\r\n")
	for i := 0; i < n; {
		err := e.store.InboxTx(ctx, func(tx mailflow.InboxTx) error {
			for end := min(n, i+10); i < end; i++ {
				id := fmt.Sprintf("seed-%d-%d@client.example", i, time.Now().UnixNano())
				raw := []byte("From: bestellungen@dataport.example\r\nSubject: Anlage " + fmt.Sprint(i) + "\r\nMessage-ID: <" + id +
					">\r\nMIME-Version: 1.0\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body.String())
				sum := sha256.Sum256(raw)
				m := &mailflow.InboundMessage{MessageID: id, SHA256: hex.EncodeToString(sum[:]), ReceivedAt: time.Now(),
					From: "bestellungen@dataport.example", Verdict: mailflow.VerdictAutoReply, OrderID: o.ID, Size: int64(len(raw)), Raw: raw}
				if _, err := tx.ClaimInbound(m); err != nil {
					return err
				}
				if err := tx.FinishInbound(m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// peakWriter discards what is written and samples the live heap
// (runtime/metrics, no stop-the-world) every 64 KiB, keeping the peak.
type peakWriter struct {
	since  int
	peak   uint64
	sample []metrics.Sample
}

func newPeakWriter() *peakWriter {
	return &peakWriter{sample: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
}

func (p *peakWriter) Write(b []byte) (int, error) {
	p.since += len(b)
	if p.since >= 64<<10 {
		p.since = 0
		metrics.Read(p.sample)
		p.peak = max(p.peak, p.sample[0].Value.Uint64())
	}
	return len(b), nil
}

// exportPeak exports the order and returns the peak heap during it, the
// bytes allocated and the number of allocations.
func exportPeak(t testing.TB, e *env, number string) (peak, alloc, mallocs uint64) {
	t.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	w := newPeakWriter()
	if _, err := e.exp.Export(context.Background(), number, "test", w); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	return w.peak, after.TotalAlloc - before.TotalAlloc, after.Mallocs - before.Mallocs
}

// The bundle streams: exporting 60 mails of 1.5 MiB (90 MiB) needs about
// the heap that 60 mails of 10 KiB need, not the mails' size. Were the
// mails held until the ZIP is written, the peak would grow by 90 MiB. The
// bytes allocated do grow, each piece being read from the database into
// a fresh buffer, but not the number of allocations: nothing is built per
// byte or per line of a mail.
func TestExportStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 90 MiB of mail")
	}
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, driver)
			small, large := e.order(t, "order-dv.json"), e.order(t, "order-dv.json")
			seedMails(t, e, small, 60, 10<<10)
			seedMails(t, e, large, 60, 3<<19)
			peakSmall, _, nSmall := exportPeak(t, e, small.Number)
			peakLarge, allocLarge, nLarge := exportPeak(t, e, large.Number)
			t.Logf("peak heap: 60 × 10 KiB %.1f MiB, 60 × 1.5 MiB %.1f MiB (allocated %.0f MiB); allocations %d and %d",
				float64(peakSmall)/(1<<20), float64(peakLarge)/(1<<20), float64(allocLarge)/(1<<20), nSmall, nLarge)
			if nLarge > 2*nSmall {
				t.Errorf("allocations grow with the mails' size: %d for 90 MiB of mail against %d for 600 KiB", nLarge, nSmall)
			}
			if peakLarge > peakSmall+24<<20 {
				t.Errorf("peak heap grows with the mails' size: %.1f MiB for 90 MiB of mail against %.1f MiB for 600 KiB",
					float64(peakLarge)/(1<<20), float64(peakSmall)/(1<<20))
			}
		})
	}
}

// BenchmarkExport exports an order with 200 received mails (and its
// notification) into a ZIP that is thrown away; the floor is 1 s per
// export for 200 mails of 30 KiB. peak-MiB is the live heap's peak.
func BenchmarkExport(b *testing.B) {
	for _, driver := range storagetest.Drivers() {
		for _, c := range []struct {
			name string
			size int
		}{{"200x30KiB", 30 << 10}, {"200x1MiB", 1 << 20}} {
			b.Run(driver+"/"+c.name, func(b *testing.B) {
				e := newEnv(b, driver)
				o := e.order(b, "order-dv.json")
				seedMails(b, e, o, 200, c.size)
				var peak uint64
				b.ResetTimer()
				for range b.N {
					w := newPeakWriter()
					if _, err := e.exp.Export(context.Background(), o.Number, "bench", w); err != nil {
						b.Fatal(err)
					}
					peak = max(peak, w.peak)
				}
				b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
			})
		}
	}
}
