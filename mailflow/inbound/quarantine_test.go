package inbound_test

import (
	"context"
	"errors"
	"mailflow/mailflow/inbound"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"mailflow/mailflow"
)

// quarantiner is a recorder that is also a Quarantiner, with a database
// that can be down and a record that can fail.
type quarantiner struct {
	*recorder
	down atomic.Bool
	qerr error

	mu          sync.Mutex
	quarantined []uint32
}

func (q *quarantiner) Transient(ctx context.Context, cause error) string {
	if q.down.Load() {
		return "connection refused"
	}
	return ""
}

func (q *quarantiner) Quarantine(ctx context.Context, m mailflow.FetchedMessage, attempts int, cause error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.quarantined = append(q.quarantined, m.UID)
	return q.qerr
}

func (q *quarantiner) quarantinedUIDs() []uint32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.quarantined)
}

// While the database does not answer, failures are the connection's: the
// message is retried beyond MaxAttempts and never filed for review; once
// the database is back it is processed.
func TestWatcherDatabaseDownIsNotPoison(t *testing.T) {
	forEachDriver(t, func(t *testing.T, store inbound.State) {
		srv := newIMAPServer(t)
		mustAppend(t, srv, "INBOX", testMessage(1, ""))
		mustAppend(t, srv, "INBOX", testMessage(2, ""))
		q := &quarantiner{}
		q.recorder = &recorder{fail: func(m mailflow.FetchedMessage) error {
			if q.down.Load() {
				return errors.New("database unavailable")
			}
			return nil
		}}
		q.down.Store(true)
		cfg := watcherConfig(t, srv, testUser, testPass)
		cfg.MaxAttempts = 2
		w := inbound.New(cfg, store, q)
		runWatcher(t, w)

		eventually(t, "more than MaxAttempts attempts while the database is down", func() bool { return len(q.attemptUIDs()) > 2 })
		if got := q.quarantinedUIDs(); len(got) != 0 {
			t.Errorf("quarantined %v while the database was down", got)
		}
		if n := count(t, srv, "Review"); n != 0 {
			t.Errorf("Review has %d messages while the database was down", n)
		}
		if got := uids(t, srv, "INBOX"); !slices.Equal(got, []uint32{1, 2}) {
			t.Errorf("INBOX has %v, want both messages waiting", got)
		}
		q.down.Store(false)
		w.Poke()
		eventually(t, "both processed", func() bool { return count(t, srv, "Processed") == 2 })
		if st := w.Stats(); st.Unprocessable != 0 || st.Reviewed != 0 {
			t.Errorf("stats %+v, want nothing unprocessable", st)
		}
	})
}

// A message that fails (an error, then panics) while the database answers
// is filed for review after MaxAttempts tries, even when recording it
// fails too; the message behind it is processed.
func TestWatcherQuarantineFails(t *testing.T) {
	forEachDriver(t, func(t *testing.T, store inbound.State) {
		srv := newIMAPServer(t)
		mustAppend(t, srv, "INBOX", testMessage(1, ""))
		mustAppend(t, srv, "INBOX", testMessage(2, ""))
		var tries atomic.Int32
		q := &quarantiner{qerr: errors.New("database refused the record")}
		q.recorder = &recorder{fail: func(m mailflow.FetchedMessage) error {
			if m.UID != 1 {
				return nil
			}
			if tries.Add(1) > 1 {
				panic("parser bug")
			}
			return errors.New("no good")
		}}
		cfg := watcherConfig(t, srv, testUser, testPass)
		cfg.MaxAttempts = 4
		w := inbound.New(cfg, store, q)
		runWatcher(t, w)

		eventually(t, "a first attempt", func() bool { return len(q.attemptUIDs()) > 0 }) // the folders exist
		eventually(t, "message 1 in Review, 2 processed", func() bool {
			return count(t, srv, "Review") == 1 && count(t, srv, "Processed") == 1
		})
		if got := q.attemptUIDs(); !slices.Equal(got, []uint32{1, 1, 1, 1, 2}) {
			t.Errorf("attempts %v, want message 1 four times, then 2", got)
		}
		if got := q.quarantinedUIDs(); !slices.Equal(got, []uint32{1}) {
			t.Errorf("quarantined %v, want message 1", got)
		}
		if st := w.Stats(); st.Unprocessable != 1 || st.Unrecorded != 1 || st.Panics != 3 {
			t.Errorf("stats %+v, want one unprocessable, unrecorded message and three panics", st)
		}
		if got := uids(t, srv, "INBOX"); len(got) != 0 {
			t.Errorf("INBOX still has %v", got)
		}
	})
}
