package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"mailflow/mailflow"
)

// OrderMails lists every mail of an order, received and sent, oldest
// first, without their bytes (CopyRaw reads those one at a time): the
// mails of an evidence bundle. Received mails in review are included;
// so is every outbound kind, alerts about the order among them.
func (s *Store) OrderMails(ctx context.Context, orderID int64) ([]mailflow.StoredMail, error) {
	var in []struct {
		inboundRow
		RawDeletedAt *time.Time `db:"raw_deleted_at"`
	}
	if err := s.sel(ctx, &in, `SELECT `+inboundColumns+`, i.raw_deleted_at FROM inbound i LEFT JOIN orders o ON o.id = i.order_id
		WHERE i.order_id = ? ORDER BY i.id`, orderID); err != nil {
		return nil, fmt.Errorf("storage: order mails: %w", err)
	}
	var out []struct {
		outboxRow
		SHA256       *string    `db:"sha256"`
		RawDeletedAt *time.Time `db:"raw_deleted_at"`
	}
	if err := s.sel(ctx, &out, `SELECT `+outboxColumns+`, r.sha256, r.raw_deleted_at`+outboxFrom+`
		LEFT JOIN outbox_raw r ON r.outbox_id = o.id WHERE o.order_id = ? ORDER BY o.id`, orderID); err != nil {
		return nil, fmt.Errorf("storage: order mails: %w", err)
	}
	mails := make([]mailflow.StoredMail, 0, len(in)+len(out))
	for _, r := range in {
		mails = append(mails, mailflow.StoredMail{Inbound: r.message(), RawDeletedAt: utcPtr(r.RawDeletedAt)})
	}
	for _, r := range out {
		m := r.message()
		if r.SHA256 != nil {
			m.SHA256 = *r.SHA256
		}
		mails = append(mails, mailflow.StoredMail{Outbound: m, RawDeletedAt: utcPtr(r.RawDeletedAt)})
	}
	sort.SliceStable(mails, func(i, j int) bool { return mails[i].At().Before(mails[j].At()) })
	return mails, nil
}

// CopyRaw writes the stored bytes of one mail to w, byte for byte, and
// returns how many it wrote; mailflow.ErrNotFound when none are stored.
// A received message of more than 1 MiB is read piece by piece
// (inbound_raw), so memory holds one piece at a time, not the message.
func (s *Store) CopyRaw(ctx context.Context, m mailflow.StoredMail, w io.Writer) (int64, error) {
	if m.Outbound != nil {
		return s.copyRows(ctx, w, `SELECT raw FROM outbox_raw WHERE outbox_id = ? AND raw_deleted_at IS NULL`, m.Outbound.ID)
	}
	n, err := s.copyRows(ctx, w, `SELECT raw FROM inbound WHERE id = ? AND raw IS NOT NULL`, m.Inbound.ID)
	if !errors.Is(err, mailflow.ErrNotFound) {
		return n, err
	}
	return s.copyRows(ctx, w, `SELECT chunk FROM inbound_raw WHERE inbound_id = ? ORDER BY seq`, m.Inbound.ID)
}

// copyRows writes the one column of each row of query to w, reusing the
// driver's buffer (sql.RawBytes) rather than copying each row.
func (s *Store) copyRows(ctx context.Context, w io.Writer, query string, args ...any) (int64, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(query), args...)
	if err != nil {
		return 0, fmt.Errorf("storage: read raw mail: %w", err)
	}
	defer rows.Close()
	var n int64
	found := false
	for rows.Next() {
		found = true
		var b sql.RawBytes
		if err := rows.Scan(&b); err != nil {
			return n, fmt.Errorf("storage: read raw mail: %w", err)
		}
		k, err := w.Write(b)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("storage: read raw mail: %w", err)
	}
	if !found {
		return 0, mailflow.ErrNotFound
	}
	return n, nil
}

// RecordEvidenceExport keeps a record of an exported bundle.
func (s *Store) RecordEvidenceExport(ctx context.Context, e mailflow.EvidenceExport) error {
	_, err := s.exec(ctx, `INSERT INTO evidence_exports (order_number, exported_at, actor, manifest_sha256) VALUES (?, ?, ?, ?)`,
		e.OrderNumber, utc(e.ExportedAt), e.Actor, e.ManifestSHA256)
	if err != nil {
		return fmt.Errorf("storage: record evidence export: %w", err)
	}
	return nil
}

// EvidenceExports lists the recorded exports of an order, oldest first.
func (s *Store) EvidenceExports(ctx context.Context, number string) ([]mailflow.EvidenceExport, error) {
	var rows []struct {
		OrderNumber    string    `db:"order_number"`
		ExportedAt     time.Time `db:"exported_at"`
		Actor          string    `db:"actor"`
		ManifestSHA256 string    `db:"manifest_sha256"`
	}
	if err := s.sel(ctx, &rows, `SELECT order_number, exported_at, actor, manifest_sha256 FROM evidence_exports WHERE order_number = ? ORDER BY id`, number); err != nil {
		return nil, fmt.Errorf("storage: evidence exports: %w", err)
	}
	out := make([]mailflow.EvidenceExport, len(rows))
	for i, r := range rows {
		out[i] = mailflow.EvidenceExport{OrderNumber: r.OrderNumber, ExportedAt: r.ExportedAt.UTC(), Actor: r.Actor, ManifestSHA256: r.ManifestSHA256}
	}
	return out, nil
}
