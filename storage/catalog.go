package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
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
		// First, so that concurrent imports on PostgreSQL queue on this row.
		if _, err := tx.exec(`UPDATE catalog_revision SET revision = revision + 1 WHERE id = 1`); err != nil {
			return err
		}
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
	s.catalog.forget(0)
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

// catalogRevisionSQL reads the catalog's revision; prepared at start-up.
const catalogRevisionSQL = `SELECT revision FROM catalog_revision WHERE id = 1`

// catalogCache is the catalog as of one revision of catalog_revision.
type catalogCache struct {
	mu  sync.Mutex
	cat *mailflow.Catalog // nil: read it (again)
}

// forget drops the catalog kept in memory unless it is newer than rev
// (0: whatever it is), so that the next Catalog reads it again.
func (c *catalogCache) forget(rev int64) {
	c.mu.Lock()
	if c.cat != nil && (rev == 0 || c.cat.Revision <= rev) {
		c.cat = nil
	}
	c.mu.Unlock()
}

// Catalog returns the whole catalog. It is kept in memory with the
// revision it was read at and read again only after an import by this
// process or when an order's transaction found that another process had
// imported since (Tx.CreateOrder, which checks the revision in a
// statement it runs anyway): no query per order for it. The result is
// shared between callers and must not be modified.
func (s *Store) Catalog(ctx context.Context) (*mailflow.Catalog, error) {
	c := &s.catalog
	c.mu.Lock()
	cat := c.cat
	c.mu.Unlock()
	if cat != nil {
		return cat, nil
	}
	rev, err := s.catalogRevision(ctx)
	if err != nil {
		return nil, err
	}
	for range 3 {
		cat, err := s.loadCatalog(ctx)
		if err != nil {
			return nil, err
		}
		after, err := s.catalogRevision(ctx)
		if err != nil {
			return nil, err
		}
		if after != rev {
			// An import committed while the tables were read (they are
			// read in several statements): what was read may mix both.
			rev = after
			continue
		}
		cat.Revision = rev
		c.mu.Lock()
		if c.cat == nil || rev >= c.cat.Revision {
			c.cat = cat
		}
		c.mu.Unlock()
		return cat, nil
	}
	return nil, fmt.Errorf("storage: load catalog: imports keep changing it, try again")
}

func (s *Store) catalogRevision(ctx context.Context) (int64, error) {
	var rev int64
	if err := s.getPrepared(ctx, &rev, catalogRevisionSQL); err != nil {
		return 0, fmt.Errorf("storage: catalog revision: %w", err)
	}
	return rev, nil
}

// loadCatalog reads the whole catalog from the database.
func (s *Store) loadCatalog(ctx context.Context) (*mailflow.Catalog, error) {
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
