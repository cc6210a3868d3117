package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"

	"github.com/lib/pq"
)

// Transient reports whether err may pass by itself when the same work is
// tried again: the connection failed, or the database refused because of
// the state it is in (a lock, a deadlock, a serialization conflict, a full
// disk, a shutdown) rather than because of the data. The watcher counts
// only other failures against a received message (inbound.Quarantiner).
func (s *Store) Transient(err error) bool { return transient(err) }

func transient(err error) bool {
	if err == nil {
		return false
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		// PostgreSQL error classes (Appendix A of its manual): 08
		// connection exception, 40 transaction rollback (serialization
		// failure, deadlock), 53 insufficient resources, 57 operator
		// intervention (shutdown, cancelled statement), 58 system error;
		// 55P03 lock not available.
		switch pe.Code.Class() {
		case "08", "40", "53", "57", "58":
			return true
		}
		return pe.Code == "55P03"
	}
	var se interface{ Code() int } // modernc.org/sqlite's *sqlite.Error
	if errors.As(err, &se) {
		// Primary result codes (the low byte): SQLITE_BUSY 5, SQLITE_LOCKED
		// 6, SQLITE_NOMEM 7, SQLITE_IOERR 10, SQLITE_FULL 13,
		// SQLITE_CANTOPEN 14, SQLITE_PROTOCOL 15.
		switch se.Code() & 0xff {
		case 5, 6, 7, 10, 13, 14, 15:
			return true
		}
		return false
	}
	var ne net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne)
}
