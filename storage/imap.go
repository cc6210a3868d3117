package storage

import (
	"context"
	"fmt"
	"time"
)

// IMAPState returns the UIDVALIDITY and the last processed UID stored for a
// mailbox, or mailflow.ErrNotFound before the first message was processed.
func (s *Store) IMAPState(ctx context.Context, mailbox string) (uidValidity, lastUID uint32, err error) {
	var row struct {
		UIDValidity int64 `db:"uidvalidity"`
		LastUID     int64 `db:"last_uid"`
	}
	err = s.get(ctx, &row, `SELECT uidvalidity, last_uid FROM imap_state WHERE mailbox = ?`, mailbox)
	if err != nil {
		return 0, 0, fmt.Errorf("storage: imap state: %w", mapErr(err))
	}
	return uint32(row.UIDValidity), uint32(row.LastUID), nil
}

// SaveIMAPState records where the watcher stands in a mailbox. A zero
// syncedAt keeps the stored time of the last completed pass.
func (s *Store) SaveIMAPState(ctx context.Context, mailbox string, uidValidity, lastUID uint32, syncedAt time.Time) error {
	var synced *time.Time
	if !syncedAt.IsZero() {
		u := utc(syncedAt)
		synced = &u
	}
	// UIDs are 32-bit unsigned (RFC 9051 §2.3.1.1); BIGINT holds them on both databases.
	_, err := s.exec(ctx, `INSERT INTO imap_state (mailbox, uidvalidity, last_uid, last_sync) VALUES (?, ?, ?, ?)
		ON CONFLICT (mailbox) DO UPDATE SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid,
			last_sync = COALESCE(excluded.last_sync, imap_state.last_sync)`,
		mailbox, int64(uidValidity), int64(lastUID), synced)
	if err != nil {
		return fmt.Errorf("storage: save imap state: %w", mapErr(err))
	}
	return nil
}

// IMAPLastSync returns when the watcher last completed a pass over the
// mailbox; the zero time if it never has.
func (s *Store) IMAPLastSync(ctx context.Context, mailbox string) (time.Time, error) {
	var t *time.Time
	if err := s.get(ctx, &t, `SELECT last_sync FROM imap_state WHERE mailbox = ?`, mailbox); err != nil {
		return time.Time{}, fmt.Errorf("storage: imap last sync: %w", mapErr(err))
	}
	if t == nil {
		return time.Time{}, nil
	}
	return t.UTC(), nil
}
