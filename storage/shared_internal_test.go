package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailflow/internal/testdb"
	"mailflow/mailflow"
)

// TestSharedTxFailureRunsAlone: three callers queue while a fourth runs
// its transaction, so they share the next one; one of them fails. Its
// failure reaches only its own caller, the two others commit after all
// (the one before it ran twice, the one after it ran alone), and the
// number the failing one had allocated is not used up.
func TestSharedTxFailureRunsAlone(t *testing.T) {
	for _, driver := range testdb.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			_, dsn := testdb.DSN(t, driver)
			s, err := Open(ctx, driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			boom := errors.New("compose failed")
			hold, started := make(chan struct{}), make(chan struct{})
			var runs [4]atomic.Int32
			nums := make([]string, 4)
			errs := make([]error, 4)
			fn := func(i int) func(*Tx) error {
				return func(tx *Tx) error {
					runs[i].Add(1)
					o := &mailflow.Order{ExternalID: fmt.Sprintf("s-%d", i), ContractModel: mailflow.ModelDV,
						Status: mailflow.StatusOpen, OrderedAt: time.Now(), CreatedAt: time.Now()}
					if _, err := tx.CreateOrder(o, 2026, 0); err != nil {
						return err
					}
					nums[i] = o.Number
					switch i {
					case 0:
						close(started)
						<-hold
					case 2:
						return boom
					}
					return nil
				}
			}
			var wg sync.WaitGroup
			wg.Go(func() { errs[0] = s.inSharedTx(ctx, fn(0)) })
			<-started
			for i := 1; i < 4; i++ {
				wg.Go(func() { errs[i] = s.inSharedTx(ctx, fn(i)) })
				waitQueued(t, s, i)
			}
			close(hold)
			wg.Wait()

			if errs[0] != nil || errs[1] != nil || errs[3] != nil || !errors.Is(errs[2], boom) {
				t.Fatalf("errors %v; want only the third to fail with %v", errs, boom)
			}
			if got := []int32{runs[0].Load(), runs[1].Load(), runs[2].Load(), runs[3].Load()}; !slices.Equal(got, []int32{1, 2, 2, 1}) {
				t.Errorf("runs %v; want 1, 2, 2, 1: the group stops at its failure, and each of it runs alone", got)
			}
			got := []string{nums[1], nums[3]}
			slices.Sort(got)
			if nums[0] != "2026-000001" || !slices.Equal(got, []string{"2026-000002", "2026-000003"}) {
				t.Errorf("numbers %v; want 2026-000001 to 000003 without a gap", nums)
			}
			var last int
			if err := s.db.Get(&last, `SELECT last FROM order_counters WHERE year = 2026`); err != nil || last != 3 {
				t.Errorf("counter at %d, %v; want 3", last, err)
			}
		})
	}
}

// waitQueued waits until n callers queue for the next shared transaction.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.shared.mu.Lock()
		q := len(s.shared.waiting)
		s.shared.mu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}
