package mailtest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Run runs a daemon part's Run method (a watcher, a sender) until the
// returned stop is called or the test ends. stop cancels its context and
// fails the test unless run returns nil within ten seconds.
func Run(t testing.TB, what string, run func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: Run returned %v", what, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s: Run did not return after cancel", what)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
