package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"mailflow/mailflow"
)

// maxShared is the most callers one shared transaction serves. Each of
// them waits for the whole group, so the groups stay small; with a few
// concurrent callers they never reach it.
const maxShared = 32

// sharedTxs joins the transactions of concurrent InSharedTx callers: one
// caller at a time runs a group, the others queue for the next one.
type sharedTxs struct {
	mu      sync.Mutex
	busy    bool         // a caller is running a group
	waiting []*sharedReq // the next group, in arrival order
}

type sharedReq struct {
	ctx  context.Context
	fn   func(*Tx) error
	lead chan struct{} // closed when this caller is to run the next group
	done chan error    // the outcome; errAlone: run fn again alone
}

// errAlone tells a caller that its group rolled back because a function
// in it failed, and that it is to run its own function again, alone.
var errAlone = errors.New("run alone")

// InSharedTx runs fn in a transaction that it may share with the
// functions of concurrent callers, and returns once that transaction has
// committed or failed. It is InTx for work that many callers do at once
// and that serialises on a lock held until commit, such as the order
// counter: while one group runs, the callers that arrive meanwhile queue
// and then run together, one commit (and one fsync) for all of them,
// where each would otherwise wait for the commit of the one before it.
//
// What fn writes commits together with the writes of the others in its
// group, or not at all. When any function of a group returns an error,
// the group rolls back and every function of it runs again, each in a
// transaction of its own, whose outcome its caller gets: a failure
// costs the others their shared commit, never their work, and an order
// number allocated in the group is not used up. fn may therefore run
// twice and must leave nothing behind outside the transaction that a
// second run does not overwrite. A caller whose ctx ends before its
// function runs gets ctx's error; the transaction's own context ends
// when those of all its callers have.
func (s *Store) InSharedTx(ctx context.Context, fn func(mailflow.Tx) error) error {
	return s.inSharedTx(ctx, func(tx *Tx) error { return fn(tx) })
}

func (s *Store) inSharedTx(ctx context.Context, fn func(*Tx) error) error {
	r := &sharedReq{ctx: ctx, fn: fn, lead: make(chan struct{}), done: make(chan error, 1)}
	g := &s.shared
	g.mu.Lock()
	g.waiting = append(g.waiting, r)
	if g.busy {
		g.mu.Unlock()
		select {
		case err := <-r.done:
			return s.sharedOutcome(r, err)
		case <-r.lead:
		}
		g.mu.Lock()
	}
	// This caller runs the next group; it is the first of the queue.
	g.busy = true
	n := min(len(g.waiting), maxShared)
	group := append([]*sharedReq(nil), g.waiting[:n]...)
	g.waiting = append(g.waiting[:0], g.waiting[n:]...)
	g.mu.Unlock()

	s.runShared(group)

	g.mu.Lock()
	if len(g.waiting) > 0 {
		close(g.waiting[0].lead)
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	return s.sharedOutcome(r, <-r.done)
}

func (s *Store) sharedOutcome(r *sharedReq, err error) error {
	if errors.Is(err, errAlone) {
		return s.inTx(r.ctx, r.fn)
	}
	return err
}

// runShared runs the functions of a group in one transaction and sends
// each caller its outcome.
func (s *Store) runShared(group []*sharedReq) {
	live := group[:0:0]
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.done <- fmt.Errorf("storage: begin: %w", err)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	ctx, stop := sharedContext(live)
	defer stop()
	err := s.inTx(ctx, func(tx *Tx) error {
		for _, r := range live {
			if err := runGuarded(r.fn, tx); err != nil {
				return fmt.Errorf("%w: %w", errAlone, err)
			}
		}
		return nil
	})
	for _, r := range live {
		r.done <- err
	}
}

// runGuarded runs fn, turning a panic into an error: the group then
// rolls back, and the panicking function, run again alone, panics in its
// own caller's goroutine rather than in the one running the group.
func runGuarded(fn func(*Tx) error, tx *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(tx)
}

// sharedContext returns a context for a group's transaction that ends
// when the contexts of all its callers have ended: one caller giving up
// does not abort the others' work.
func sharedContext(group []*sharedReq) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(group[0].ctx))
	var left atomic.Int64
	left.Store(int64(len(group)))
	stops := make([]func() bool, len(group))
	for i, r := range group {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}
