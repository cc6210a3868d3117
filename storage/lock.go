package storage

import (
	"context"
	"fmt"
	"hash/fnv"
)

// TryLeader takes the cluster-wide lock of a scheduler job without
// waiting.
//
// PostgreSQL: a transaction-scoped advisory lock
// (pg_try_advisory_xact_lock) in a transaction of its own, on a
// connection of its own, held open for the whole run (the run's work is
// in other transactions) and rolled back to release the lock. If the
// daemon dies, its connection closes and PostgreSQL ends the transaction
// and the lock with it; nothing can leave the lock held on a pooled
// connection.
//
// The lock is the schema's: advisory locks belong to the whole database,
// and mailflow installations (or test runs) in other schemas of it must
// not hold up each other's jobs.
//
// SQLite is one file on one host: concurrent runs (the daemon's and
// `mailflow billing run`) serialise on each immediate transaction, and a
// billing batch finds the orders another run billed no longer due, so
// there is no lock to take.
func (s *Store) TryLeader(ctx context.Context, job string) (func(), bool, error) {
	if s.d.name != "postgres" {
		return func() {}, true, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, fmt.Errorf("storage: leader lock %s: %w", job, err)
	}
	var ok bool
	if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock($1)`, leaderKey(s.schema, job)).Scan(&ok); err != nil || !ok {
		tx.Rollback()
		if err != nil {
			return nil, false, fmt.Errorf("storage: leader lock %s: %w", job, err)
		}
		return nil, false, nil
	}
	return func() { tx.Rollback() }, true, nil
}

// leaderKey is the advisory lock key of a job in a schema: a hash of
// both names, so keys need no registry (migrations use 7246001).
func leaderKey(schema, job string) int64 {
	h := fnv.New64a()
	h.Write([]byte("mailflow.scheduler." + schema + "." + job))
	return int64(h.Sum64())
}
