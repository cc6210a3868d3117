package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"mailflow/mailflow"
)

const (
	termsAGB        = "agb"
	termsConditions = "conditions"
)

// ImportCatalog inserts or updates every entry of cat in one transaction.
// Orders keep their snapshots: they copy what they bind at creation.
func (s *Store) ImportCatalog(ctx context.Context, cat *mailflow.Catalog) error {
	now := time.Now().UTC()
	upsertDoc := func(tx *Tx, table, id string, doc any, extra ...string) error {
		b, err := json.Marshal(doc)
		if err != nil {
			return err
		}
		if table == "services" {
			_, err = tx.exec(`INSERT INTO services (id, provider_id, doc, updated_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (id) DO UPDATE SET provider_id = excluded.provider_id, doc = excluded.doc, updated_at = excluded.updated_at`,
				id, extra[0], string(b), now)
		} else {
			_, err = tx.exec(`INSERT INTO `+table+` (id, doc, updated_at) VALUES (?, ?, ?)
				ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`, id, string(b), now)
		}
		return err
	}
	upsertTerms := func(tx *Tx, kind, owner string, t mailflow.Terms) error {
		var until *string
		if t.ValidUntil != nil {
			u := t.ValidUntil.String()
			until = &u
		}
		_, err := tx.exec(`INSERT INTO terms (kind, owner, version, title, valid_from, valid_until, body, sha256)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (kind, owner, version) DO UPDATE SET title = excluded.title, valid_from = excluded.valid_from,
				valid_until = excluded.valid_until, body = excluded.body, sha256 = excluded.sha256`,
			kind, owner, t.Version, t.Title, t.ValidFrom.String(), until, t.Text, mailflow.TextSHA256(t.Text))
		return err
	}
	err := s.inTx(ctx, func(tx *Tx) error {
		for _, p := range cat.Providers {
			if err := upsertDoc(tx, "providers", p.ID, p); err != nil {
				return err
			}
		}
		for _, p := range cat.Intermediaries {
			if err := upsertDoc(tx, "intermediaries", p.ID, p); err != nil {
				return err
			}
		}
		for _, t := range cat.Terms {
			owner := t.ID
			if owner == "" {
				owner = "agb"
			}
			if err := upsertTerms(tx, termsAGB, owner, t); err != nil {
				return err
			}
		}
		for _, svc := range cat.Services {
			for _, c := range svc.Conditions {
				if err := upsertTerms(tx, termsConditions, svc.ID, c); err != nil {
					return err
				}
			}
			doc := svc
			doc.Conditions = nil
			if err := upsertDoc(tx, "services", svc.ID, doc, svc.Provider); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: import catalog: %w", mapErr(err))
	}
	return nil
}

type termsRow struct {
	Kind       string  `db:"kind"`
	Owner      string  `db:"owner"`
	Version    string  `db:"version"`
	Title      string  `db:"title"`
	ValidFrom  string  `db:"valid_from"`
	ValidUntil *string `db:"valid_until"`
	Body       string  `db:"body"`
	SHA256     string  `db:"sha256"`
}

func (r termsRow) terms() (mailflow.Terms, error) {
	t := mailflow.Terms{Title: r.Title, Version: r.Version, Text: r.Body, SHA256: r.SHA256}
	if r.Kind == termsAGB {
		t.ID = r.Owner
	}
	var err error
	if t.ValidFrom, err = mailflow.ParseDate(r.ValidFrom); err != nil {
		return t, err
	}
	if r.ValidUntil != nil {
		u, err := mailflow.ParseDate(*r.ValidUntil)
		if err != nil {
			return t, err
		}
		t.ValidUntil = &u
	}
	return t, nil
}

// Catalog returns the whole current catalog.
func (s *Store) Catalog(ctx context.Context) (*mailflow.Catalog, error) {
	cat := &mailflow.Catalog{}
	load := func(table string, into func([]byte) error) error {
		var docs []string
		if err := s.sel(ctx, &docs, `SELECT doc FROM `+table+` ORDER BY id`); err != nil {
			return err
		}
		for _, d := range docs {
			if err := into([]byte(d)); err != nil {
				return err
			}
		}
		return nil
	}
	err := load("providers", func(b []byte) error {
		var p mailflow.Party
		err := json.Unmarshal(b, &p)
		cat.Providers = append(cat.Providers, p)
		return err
	})
	if err == nil {
		err = load("intermediaries", func(b []byte) error {
			var p mailflow.Party
			err := json.Unmarshal(b, &p)
			cat.Intermediaries = append(cat.Intermediaries, p)
			return err
		})
	}
	if err == nil {
		err = load("services", func(b []byte) error {
			var svc mailflow.Service
			err := json.Unmarshal(b, &svc)
			cat.Services = append(cat.Services, svc)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("storage: load catalog: %w", err)
	}
	var rows []termsRow
	if err := s.sel(ctx, &rows, `SELECT kind, owner, version, title, valid_from, valid_until, body, sha256 FROM terms ORDER BY kind, owner, valid_from, version`); err != nil {
		return nil, fmt.Errorf("storage: load terms: %w", err)
	}
	svcIdx := map[string]int{}
	for i, svc := range cat.Services {
		svcIdx[svc.ID] = i
	}
	for _, r := range rows {
		t, err := r.terms()
		if err != nil {
			return nil, fmt.Errorf("storage: load terms %s/%s: %w", r.Owner, r.Version, err)
		}
		if r.Kind == termsAGB {
			cat.Terms = append(cat.Terms, t)
		} else if i, ok := svcIdx[r.Owner]; ok {
			cat.Services[i].Conditions = append(cat.Services[i].Conditions, t)
		}
	}
	return cat, nil
}
