package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"mailflow/mailflow"
	"mailflow/storage/storagetest"
)

func TestIMAPState(t *testing.T) {
	for _, driver := range storagetest.Drivers() {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			s := storagetest.Open(t, driver)
			if _, _, err := s.IMAPState(ctx, "INBOX"); !errors.Is(err, mailflow.ErrNotFound) {
				t.Fatalf("state before the first save: %v, want ErrNotFound", err)
			}
			// Per-message saves carry no sync time.
			if err := s.SaveIMAPState(ctx, "INBOX", 7, 41, time.Time{}); err != nil {
				t.Fatal(err)
			}
			if sync, err := s.IMAPLastSync(ctx, "INBOX"); err != nil || !sync.IsZero() {
				t.Errorf("last sync %v (%v), want none yet", sync, err)
			}
			synced := time.Date(2026, 11, 20, 10, 0, 0, 0, time.FixedZone("CET", 3600))
			if err := s.SaveIMAPState(ctx, "INBOX", 7, 42, synced); err != nil {
				t.Fatal(err)
			}
			// UIDs use all 32 bits; a zero sync time keeps the last one.
			if err := s.SaveIMAPState(ctx, "INBOX", 4294967295, 4294967290, time.Time{}); err != nil {
				t.Fatal(err)
			}
			uv, last, err := s.IMAPState(ctx, "INBOX")
			if err != nil || uv != 4294967295 || last != 4294967290 {
				t.Errorf("state %d/%d (%v), want 4294967295/4294967290", uv, last, err)
			}
			if sync, err := s.IMAPLastSync(ctx, "INBOX"); err != nil || !sync.Equal(synced) {
				t.Errorf("last sync %v (%v), want %v", sync, err, synced)
			}
			if _, _, err := s.IMAPState(ctx, "Other"); !errors.Is(err, mailflow.ErrNotFound) {
				t.Errorf("other mailbox: %v, want ErrNotFound", err)
			}
		})
	}
}
