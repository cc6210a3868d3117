package storage

import (
	"context"
	"database/sql/driver"
	"fmt"
	"hash/fnv"
	"time"
)

// TryLeader takes the cluster-wide lock of a scheduler job without
// waiting.
//
// PostgreSQL: a session advisory lock (pg_try_advisory_lock) on a
// connection of its own, held for the whole run and released explicitly.
// A transaction-scoped lock (pg_try_advisory_xact_lock) would end with the
// first of the run's many batch transactions. If the daemon dies, its
// connection closes and PostgreSQL releases the lock; if the unlock fails,
// the connection is discarded rather than returned to the pool still
// holding the lock.
//
// The lock is the schema's: advisory locks belong to the whole database,
// and mailflow installations (or test runs) in other schemas of it must
// not hold up each other's jobs.
//
// SQLite is one file on one host: concurrent runs (the daemon's and
// `mailflow billing run`) serialise on each immediate transaction and the
// unique keys make the later one a no-op, so there is no lock to take.
func (s *Store) TryLeader(ctx context.Context, job string) (func(), bool, error) {
	if s.d.name != "postgres" {
		return func() {}, true, nil
	}
	key := leaderKey(s.schema, job)
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("storage: leader lock %s: %w", job, err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("storage: leader lock %s: %w", job, err)
	}
	if !ok {
		conn.Close()
		return nil, false, nil
	}
	release := func() {
		// The job's context may be cancelled by now; the unlock must
		// still happen.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var unlocked bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock($1)`, key).Scan(&unlocked); err != nil || !unlocked {
			conn.Raw(func(any) error { return driver.ErrBadConn }) // close it: the lock goes with it
		}
		conn.Close()
	}
	return release, true, nil
}

// leaderKey is the advisory lock key of a job in a schema: a hash of
// both names, so keys need no registry (migrations use 7246001).
func leaderKey(schema, job string) int64 {
	h := fnv.New64a()
	h.Write([]byte("mailflow.scheduler." + schema + "." + job))
	return int64(h.Sum64())
}
