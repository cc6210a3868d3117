// Package storage is mailflow's sqlx store for SQLite (the embedded
// default) and PostgreSQL (production, several daemons). All SQL lives
// here, one file per entity; where the dialects differ they differ in one
// place, the dialect struct.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"mailflow/mailflow"
)

func init() {
	// sqlx knows "sqlite3" but not modernc's "sqlite".
	sqlx.BindDriver("sqlite", sqlx.QUESTION)
}

// dialect holds what differs between SQLite and PostgreSQL in the code;
// the schema's differences are in schema/.
type dialect struct {
	name      string
	forUpdate string // row lock suffix; SQLite's immediate transactions already lock the database
	// inOne: CreateOrder and Enqueue write with one statement each
	// (createOrderSQL, enqueueOneSQL), using data-modifying WITH queries,
	// which SQLite lacks.
	inOne bool
}

var (
	sqliteDialect   = dialect{name: "sqlite"}
	postgresDialect = dialect{name: "postgres", forUpdate: " FOR UPDATE", inOne: true}
)

// Store is the database behind mailflow.
type Store struct {
	db *sqlx.DB
	// wdb runs the write transactions and statements: with SQLite a pool
	// of its own with one connection (see Open), with PostgreSQL db.
	wdb *sqlx.DB
	d   dialect
	// wlock serialises this process's SQLite writes (see lockWrites);
	// nil for PostgreSQL.
	wlock chan struct{}
	// schema is PostgreSQL's current_schema(): it scopes the leader locks,
	// which PostgreSQL keeps per database (see TryLeader).
	schema string
	// catalog is the catalog as of its last revision (Catalog).
	catalog catalogCache
	// shared joins concurrent InSharedTx transactions.
	shared sharedTxs
	// stmts are the prepared hot statements (prepareHot); read-only
	// once Open returns.
	stmts map[stmtKey]*sqlx.Stmt
}

// busyTimeout is how long a SQLite writer waits for the lock.
const busyTimeout = 10 * time.Second

var _ mailflow.Store = (*Store)(nil)

// Open connects to the database and applies pending migrations. driver is
// "sqlite" or "postgres"; for SQLite the DSN is a file name, to which the
// pragmas for WAL, a busy timeout and foreign keys are added.
func Open(ctx context.Context, driver, dsn string) (*Store, error) {
	var d dialect
	switch driver {
	case "", "sqlite":
		d = sqliteDialect
		driver = "sqlite"
		if err := createPrivate(dsn); err != nil {
			return nil, err
		}
		if !strings.Contains(dsn, "?") {
			// _txlock=immediate: deferred transactions that read then
			// write fail with "database is locked" under concurrency.
			// cache_size is per connection (up to 8): 8 MiB each. 64 MiB
			// and a 1 GiB mmap raised the daemon's peak RSS in the memory
			// run from 62 to 106 MB and its CPU per reply by a third, and
			// did not speed up BenchmarkBillingRun (docs/benchmarks.md).
			dsn += "?_pragma=busy_timeout(" + strconv.Itoa(int(busyTimeout/time.Millisecond)) + ")&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-8192)&_txlock=immediate&_time_format=sqlite"
		}
	case "postgres":
		d = postgresDialect
		dsn = withBinaryParameters(dsn)
	default:
		return nil, fmt.Errorf("storage: unknown driver %q (want sqlite or postgres)", driver)
	}
	db, err := sqlx.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("storage: open: %w", err)
	}
	if d.name == "postgres" {
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(10)
	} else {
		db.SetMaxOpenConns(8)
	}
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{db: db, wdb: db, d: d}
	if d.name == "sqlite" {
		s.wlock = make(chan struct{}, 1)
		// The process's writes run one at a time anyway (lockWrites); on
		// one connection they also keep its page cache. SQLite empties a
		// connection's cache whenever another connection wrote since its
		// last transaction, so writes spread over the pool's connections
		// read the b-tree pages of every table and index they touch afresh
		// each time (27 reads per order).
		if s.wdb, err = sqlx.Open(driver, dsn); err != nil {
			db.Close()
			return nil, fmt.Errorf("storage: open: %w", err)
		}
		s.wdb.SetMaxOpenConns(1)
		s.wdb.SetConnMaxIdleTime(5 * time.Minute)
	}
	if err := s.Migrate(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	if d.name == "postgres" {
		if err := db.GetContext(ctx, &s.schema, `SELECT current_schema()`); err != nil {
			s.closeDBs()
			return nil, fmt.Errorf("storage: current schema: %w", err)
		}
	}
	if err := s.prepareHot(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// withBinaryParameters adds lib/pq's binary_parameters=yes to a DSN that
// does not set it: a statement with parameters then takes one round trip
// instead of two (no separate Parse and Describe), and []byte values such
// as outbound messages travel as bytes rather than hex text of twice the
// size. Both forms of DSN are understood: a URL and key=value pairs.
func withBinaryParameters(dsn string) string {
	if strings.Contains(dsn, "binary_parameters") {
		return dsn
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if strings.Contains(dsn, "?") {
			return dsn + "&binary_parameters=yes"
		}
		return dsn + "?binary_parameters=yes"
	}
	return strings.TrimSpace(dsn + " binary_parameters=yes")
}

func (s *Store) closeDBs() error {
	err := s.db.Close()
	if s.wdb != s.db {
		if werr := s.wdb.Close(); err == nil {
			err = werr
		}
	}
	return err
}

// Close closes the database.
func (s *Store) Close() error {
	for _, st := range s.stmts {
		st.Close()
	}
	return s.closeDBs()
}

// Driver is "sqlite" or "postgres".
func (s *Store) Driver() string { return s.d.name }

// Ping checks that the database answers, for /readyz.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// DB exposes the handle for tests and tools in this module.
func (s *Store) DB() *sqlx.DB { return s.db }

// Tx is a transaction of the store; it implements mailflow.Tx.
type Tx struct {
	tx  *sqlx.Tx
	s   *Store
	ctx context.Context
}

// InTx runs fn in one transaction, committing when it returns nil.
func (s *Store) InTx(ctx context.Context, fn func(mailflow.Tx) error) error {
	return s.inTx(ctx, func(tx *Tx) error { return fn(tx) })
}

func (s *Store) inTx(ctx context.Context, fn func(*Tx) error) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return fmt.Errorf("storage: begin: %w", err)
	}
	defer unlock()
	tx, err := s.wdb.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: begin: %w", mapErr(err))
	}
	if err := fn(&Tx{tx: tx, s: s, ctx: ctx}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: commit: %w", mapErr(err))
	}
	return nil
}

func (t *Tx) exec(query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(t.ctx, t.tx.Rebind(query), args...)
}

func (t *Tx) get(dest any, query string, args ...any) error {
	return t.tx.GetContext(t.ctx, dest, t.tx.Rebind(query), args...)
}

func (t *Tx) sel(dest any, query string, args ...any) error {
	return t.tx.SelectContext(t.ctx, dest, t.tx.Rebind(query), args...)
}

// prepareHot prepares the statements that every order and every outbox
// batch runs, once, at start-up (a mistake in them stops Open), and keeps
// them: SQLite then parses each once instead of on every call (a sixth of
// the CPU of creating an order), and with PostgreSQL lib/pq saves the
// round trip of preparing an unnamed statement per call and the server
// its parse and plan. Write statements are prepared on the write pool,
// the only one whose transactions may use them.
func (s *Store) prepareHot(ctx context.Context) error {
	hot := []stmtKey{{true, s.d.markSentManySQL()}}
	if s.d.inOne {
		hot = append(hot, stmtKey{true, createOrderSQL}, stmtKey{true, enqueueOneSQL})
	} else {
		hot = append(hot, stmtKey{true, catalogRevisionSQL}, stmtKey{true, orderIDByExternalIDSQL},
			stmtKey{true, nextOrderNumberSQL}, stmtKey{true, insertOrderSQL}, stmtKey{true, enqueueSQL},
			stmtKey{true, enqueueRawSQL})
	}
	if q := s.d.claimSQL(); q != "" {
		hot = append(hot, stmtKey{true, q})
	} else {
		hot = append(hot, stmtKey{true, s.d.claimDueSQL()}, stmtKey{true, s.d.claimMarkSQL()},
			stmtKey{true, s.d.claimRowsSQL()}, stmtKey{false, s.d.loadRawSQL()})
	}
	s.stmts = make(map[stmtKey]*sqlx.Stmt, len(hot))
	for _, h := range hot {
		db := s.db
		if h.write {
			db = s.wdb
		}
		st, err := db.PreparexContext(ctx, db.Rebind(h.query))
		if err != nil {
			return fmt.Errorf("storage: prepare %q: %w", strings.Join(strings.Fields(h.query), " "), err)
		}
		s.stmts[h] = st
	}
	return nil
}

// stmtKey names a prepared statement: a transaction can use only one
// prepared on its own pool.
type stmtKey struct {
	write bool
	query string
}

// getPrepared is get with query's prepared statement, or without one
// where none was prepared.
func (t *Tx) getPrepared(dest any, query string, args ...any) error {
	st := t.s.stmts[stmtKey{true, query}]
	if st == nil {
		return t.get(dest, query, args...)
	}
	return t.tx.StmtxContext(t.ctx, st).GetContext(t.ctx, dest, args...)
}

// selPrepared is sel with query's prepared statement (getPrepared).
func (t *Tx) selPrepared(dest any, query string, args ...any) error {
	st := t.s.stmts[stmtKey{true, query}]
	if st == nil {
		return t.sel(dest, query, args...)
	}
	return t.tx.StmtxContext(t.ctx, st).SelectContext(t.ctx, dest, args...)
}

// execPrepared is exec with query's prepared statement (getPrepared).
func (t *Tx) execPrepared(query string, args ...any) (sql.Result, error) {
	st := t.s.stmts[stmtKey{true, query}]
	if st == nil {
		return t.exec(query, args...)
	}
	return t.tx.StmtxContext(t.ctx, st).ExecContext(t.ctx, args...)
}

// getPrepared is get with query's prepared statement (Tx.getPrepared).
func (s *Store) getPrepared(ctx context.Context, dest any, query string, args ...any) error {
	st := s.stmts[stmtKey{false, query}]
	if st == nil {
		return s.get(ctx, dest, query, args...)
	}
	return st.GetContext(ctx, dest, args...)
}

// selPrepared is sel with query's prepared statement on the write
// pool, for a statement that writes and returns rows (getPrepared).
func (s *Store) selPrepared(ctx context.Context, dest any, query string, args ...any) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if st := s.stmts[stmtKey{true, query}]; st != nil {
		return st.SelectContext(ctx, dest, args...)
	}
	return s.wdb.SelectContext(ctx, dest, s.wdb.Rebind(query), args...)
}

// queryPrepared is a query with query's prepared statement (getPrepared).
func (s *Store) queryPrepared(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := s.stmts[stmtKey{false, query}]; st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.db.QueryContext(ctx, s.db.Rebind(query), args...)
}

// execPrepared is exec with query's prepared statement (getPrepared).
func (s *Store) execPrepared(ctx context.Context, query string, args ...any) (sql.Result, error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if st := s.stmts[stmtKey{true, query}]; st != nil {
		return st.ExecContext(ctx, args...)
	}
	return s.wdb.ExecContext(ctx, s.wdb.Rebind(query), args...)
}

func (s *Store) get(ctx context.Context, dest any, query string, args ...any) error {
	return s.db.GetContext(ctx, dest, s.db.Rebind(query), args...)
}

func (s *Store) sel(ctx context.Context, dest any, query string, args ...any) error {
	return s.db.SelectContext(ctx, dest, s.db.Rebind(query), args...)
}

func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.wdb.ExecContext(ctx, s.wdb.Rebind(query), args...)
}

// lockWrites serialises the write transactions of this process on SQLite
// (every transaction here is a write: _txlock=immediate). SQLite admits
// one writer at a time, and a writer that finds the database locked waits
// in SQLite's busy handler, which sleeps in steps growing to 100 ms: under
// contention between the IMAP watcher and the outbox sender that added
// tens of milliseconds per reply (docs/benchmarks.md). Waiting here
// instead wakes the next writer as soon as the lock is free, in arrival
// order. Other processes (CLI verbs) still meet busy_timeout. Like the busy
// timeout, the wait is bounded, so a writer nested inside another
// transaction fails instead of hanging.
func (s *Store) lockWrites(ctx context.Context) (unlock func(), err error) {
	if s.wlock == nil {
		return func() {}, nil
	}
	select {
	case s.wlock <- struct{}{}:
		return func() { <-s.wlock }, nil
	default:
	}
	t := time.NewTimer(busyTimeout)
	defer t.Stop()
	select {
	case s.wlock <- struct{}{}:
		return func() { <-s.wlock }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, fmt.Errorf("database is locked: a write of this process held it for %s", busyTimeout)
	}
}

// mapErr turns driver errors into the domain's sentinels.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return mailflow.ErrNotFound
	}
	var pe *pq.Error
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("%w: %s", mailflow.ErrConflict, pe.Message)
	}
	if strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return fmt.Errorf("%w: %v", mailflow.ErrConflict, err)
	}
	return err
}

// utc normalises times before they are stored: SQLite compares the text.
func utc(t time.Time) time.Time { return t.UTC() }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
