package storage_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"mailflow/storage/storagetest"
)

// Transient tells failures that pass by themselves from failures caused by
// the data: a received message is set aside only for the second kind.
func TestTransient(t *testing.T) {
	ctx := context.Background()
	s := storagetest.Open(t, "sqlite")
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"serialization failure", fmt.Errorf("storage: x: %w", &pq.Error{Code: "40001"}), true},
		{"deadlock", &pq.Error{Code: "40P01"}, true},
		{"admin shutdown", &pq.Error{Code: "57P01"}, true},
		{"connection failure", &pq.Error{Code: "08006"}, true},
		{"disk full", &pq.Error{Code: "53100"}, true},
		{"lock not available", &pq.Error{Code: "55P03"}, true},
		{"invalid byte sequence", &pq.Error{Code: "22021"}, false},
		{"raised by a trigger", &pq.Error{Code: "P0001"}, false},
		{"unique violation", &pq.Error{Code: "23505"}, false},
		{"network", fmt.Errorf("storage: x: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), true},
		{"context deadline", context.DeadlineExceeded, true},
		{"anything else", errors.New("no good"), false},
	} {
		if got := s.Transient(tt.err); got != tt.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}

	// Real failures of each driver: a trigger's abort is the data's fault.
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			s := storagetest.Open(t, driver)
			q := `CREATE TRIGGER refuse BEFORE INSERT ON answer_throttle BEGIN SELECT RAISE(ABORT, 'refused'); END`
			if driver == "postgres" {
				q = `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;
					CREATE TRIGGER refuse BEFORE INSERT ON answer_throttle FOR EACH ROW EXECUTE FUNCTION refuse()`
			}
			if _, err := s.DB().Exec(q); err != nil {
				t.Fatal(err)
			}
			_, err := s.DB().Exec(`INSERT INTO answer_throttle (sender, reason, day) VALUES ('a', 'b', 'c')`)
			if err == nil || s.Transient(err) {
				t.Errorf("trigger abort: Transient(%v) = true, want a failure of the data", err)
			}
		})
	}

	// A SQLite database locked by another connection is busy, not bad.
	_, path := storagetest.DSN(t, "sqlite")
	holder, err := sqlx.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	conn, err := holder.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, `ROLLBACK`)
	other, err := sqlx.Open("sqlite", path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = other.Exec(`INSERT INTO t VALUES (1)`)
	if err == nil || !s.Transient(err) {
		t.Errorf("busy database: Transient(%v) = false, want true", err)
	}
}
