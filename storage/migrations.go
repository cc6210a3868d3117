package storage

import (
	"context"
	"fmt"
	"strings"
)

// migrations are applied in order, each in its own transaction; the
// schema_version table remembers how many ran. Placeholders {id}, {blob},
// {ts}, {ref_pk} and {without_rowid} become the dialect's types and table
// options. Never edit a released migration:
// append a new one.
var migrations = []string{
	// 1: catalog, orders, decisions, outbox, inbound, scheduler state.
	`
CREATE TABLE providers (
	id TEXT PRIMARY KEY,
	doc TEXT NOT NULL,
	updated_at {ts} NOT NULL
);
CREATE TABLE intermediaries (
	id TEXT PRIMARY KEY,
	doc TEXT NOT NULL,
	updated_at {ts} NOT NULL
);
CREATE TABLE services (
	id TEXT PRIMARY KEY,
	provider_id TEXT NOT NULL REFERENCES providers(id),
	doc TEXT NOT NULL,
	updated_at {ts} NOT NULL
);
CREATE TABLE terms (
	kind TEXT NOT NULL,            -- 'agb' or 'conditions'
	owner TEXT NOT NULL,           -- terms id for AGB, service id for conditions
	version TEXT NOT NULL,
	title TEXT NOT NULL DEFAULT '',
	valid_from TEXT NOT NULL,      -- YYYY-MM-DD
	valid_until TEXT,              -- YYYY-MM-DD, inclusive
	body TEXT NOT NULL,
	sha256 TEXT NOT NULL,
	PRIMARY KEY (kind, owner, version)
);
CREATE TABLE order_counters (
	year INTEGER PRIMARY KEY,
	last INTEGER NOT NULL
);
CREATE TABLE orders (
	id {id},
	number TEXT NOT NULL UNIQUE,
	external_id TEXT NOT NULL UNIQUE,
	contract_model TEXT NOT NULL,
	ordered_at {ts} NOT NULL,
	created_at {ts} NOT NULL,
	status TEXT NOT NULL,
	binding_at {ts},
	conflict BOOLEAN NOT NULL DEFAULT FALSE,
	provider_id TEXT NOT NULL,
	intermediary_id TEXT,
	search TEXT NOT NULL,          -- lowercased number, customer and provider for the status page search
	snapshot TEXT NOT NULL
);
CREATE INDEX orders_status ON orders (status, id);
CREATE INDEX orders_binding ON orders (binding_at);
CREATE TABLE decisions (
	id {id},
	order_id BIGINT NOT NULL REFERENCES orders(id),
	party TEXT NOT NULL,
	intent TEXT NOT NULL,
	reason TEXT NOT NULL DEFAULT '',
	source TEXT NOT NULL,
	actor TEXT NOT NULL DEFAULT '',
	message_id TEXT NOT NULL DEFAULT '',
	inbound_id BIGINT,
	effect TEXT NOT NULL DEFAULT '',
	at {ts} NOT NULL
);
CREATE INDEX decisions_order ON decisions (order_id, id);
CREATE TABLE outbox (
	id {id},
	order_id BIGINT REFERENCES orders(id),
	ref BIGINT NOT NULL UNIQUE,
	kind TEXT NOT NULL,
	party TEXT NOT NULL DEFAULT '',
	sender TEXT NOT NULL,
	recipients TEXT NOT NULL,
	message_id TEXT NOT NULL UNIQUE,
	subject TEXT NOT NULL,
	raw {blob} NOT NULL,
	status TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt_at {ts} NOT NULL,
	claimed_until {ts},
	last_error TEXT NOT NULL DEFAULT '',
	created_at {ts} NOT NULL,
	sent_at {ts}
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_order ON outbox (order_id);
CREATE TABLE inbound (
	id {id},
	message_id TEXT NOT NULL UNIQUE, -- Message-ID, or sha256:<hex> of the raw message
	sha256 TEXT NOT NULL,
	received_at {ts} NOT NULL,
	mailbox TEXT NOT NULL DEFAULT '',
	uidvalidity BIGINT NOT NULL DEFAULT 0,
	uid BIGINT NOT NULL DEFAULT 0,
	from_addr TEXT NOT NULL DEFAULT '',
	subject TEXT NOT NULL DEFAULT '',
	verdict TEXT NOT NULL,
	reason TEXT NOT NULL DEFAULT '',
	order_id BIGINT REFERENCES orders(id),
	party TEXT NOT NULL DEFAULT '',
	intent TEXT NOT NULL DEFAULT '',
	needs_review BOOLEAN NOT NULL DEFAULT FALSE,
	size BIGINT NOT NULL DEFAULT 0,
	raw {blob}
);
CREATE INDEX inbound_order ON inbound (order_id);
CREATE INDEX inbound_review ON inbound (needs_review);
CREATE TABLE imap_state (
	mailbox TEXT PRIMARY KEY,
	uidvalidity BIGINT NOT NULL,
	last_uid BIGINT NOT NULL,
	last_sync {ts}
);
CREATE TABLE billing_reminders (
	id {id},
	order_id BIGINT NOT NULL REFERENCES orders(id),
	period_key TEXT NOT NULL,
	period_start {ts} NOT NULL,
	period_end {ts} NOT NULL,
	net_cents BIGINT NOT NULL,
	vat_cents BIGINT NOT NULL,
	gross_cents BIGINT NOT NULL,
	created_at {ts} NOT NULL,
	UNIQUE (order_id, period_key)
);
CREATE TABLE confirmation_reminders (
	order_id BIGINT NOT NULL REFERENCES orders(id),
	party TEXT NOT NULL,
	kind TEXT NOT NULL,            -- 'remind' or 'escalate'
	sent_at {ts} NOT NULL,
	PRIMARY KEY (order_id, party, kind, sent_at)
);
CREATE TABLE answer_throttle (
	sender TEXT NOT NULL,
	reason TEXT NOT NULL,
	day TEXT NOT NULL,
	PRIMARY KEY (sender, reason, day)
);
`,
	// 2: scheduler state.
	//
	// order_billing: one row per binding order (SaveEvaluation adds it) with
	// what billing needs of the snapshot (price columns; doc, the parties
	// and the customer as JSON) and its progress: billed_until is the End
	// of the last billed period, due_at the End of the next one (NULL until
	// a billing run has seen the order, and once done). A run selects
	// due_at <= now, so its work follows the periods due, not the number or
	// age of the orders.
	//
	// billing_queue: the reminder lines still to be mailed, one per period
	// and reminded party, added in the transaction that records the period
	// and removed in the one that enqueues its mail. Keyed by party, so that
	// a party's lines are read and removed together (WITHOUT ROWID keeps
	// them together on disk in SQLite).
	//
	// confirmation_reminders.slot: the reminder interval a reminder answers,
	// so that one reminder per (order, party, interval) and one escalation
	// per (order, party) are unique keys rather than a read-then-write race.
	//
	// digest_runs: one digest per cron tick across several daemons.
	`
CREATE TABLE order_billing (
	order_id {ref_pk} REFERENCES orders(id),
	number TEXT NOT NULL,
	contract_model TEXT NOT NULL,
	provider_id TEXT NOT NULL,
	intermediary_id TEXT NOT NULL DEFAULT '',
	binding_at {ts} NOT NULL,
	price_interval TEXT NOT NULL,
	amount_cents BIGINT NOT NULL,
	vat_percent DOUBLE PRECISION NOT NULL,
	doc TEXT NOT NULL,
	billed_until {ts},
	due_at {ts},
	done BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX order_billing_due ON order_billing (due_at);
CREATE INDEX order_billing_new ON order_billing (order_id) WHERE due_at IS NULL AND done = FALSE;
ALTER TABLE billing_reminders ADD COLUMN days INTEGER NOT NULL DEFAULT 0;
ALTER TABLE billing_reminders ADD COLUMN full_days INTEGER NOT NULL DEFAULT 0;
CREATE TABLE billing_queue (
	role TEXT NOT NULL,            -- who is reminded: provider or intermediary
	party_id TEXT NOT NULL,
	order_id BIGINT NOT NULL,
	period_key TEXT NOT NULL,
	PRIMARY KEY (role, party_id, order_id, period_key)
){without_rowid};
ALTER TABLE confirmation_reminders ADD COLUMN slot BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX confirmation_reminders_slot ON confirmation_reminders (order_id, party, kind, slot);
CREATE TABLE digest_runs (
	slot {ts} PRIMARY KEY,         -- the cron tick, to the minute
	sent_at {ts} NOT NULL
);
`,
	// 3: the loop guard counts a sender's messages of the last hour for
	// every reply (CountInboundFrom); without an index that was a scan of
	// the whole inbound table per message, quadratic in the mailbox.
	// inbound_raw holds received messages larger than rawChunk in pieces
	// (inbound.raw is then NULL): SQLite copies a bound value and then
	// builds the row from it, two transient copies of the whole message
	// outside the Go heap, which for a 25 MB reply cost 50 MB of resident
	// memory.
	`
CREATE INDEX inbound_from ON inbound (from_addr, received_at);
CREATE TABLE inbound_raw (
	inbound_id BIGINT NOT NULL REFERENCES inbound(id),
	seq INTEGER NOT NULL,
	chunk {blob} NOT NULL,
	PRIMARY KEY (inbound_id, seq)
);
`,
	// 4: the billing doc moves out of order_billing into a table of its
	// own. A billing run updates the billing state of every due order; with
	// the doc (~600 bytes) beside it, 100,000 updates rewrote ~70 MB of
	// pages, which neither SQLite's cache nor the WAL liked. Docs are read
	// only to compose the reminders. Binding orders that order_billing
	// lacks (from before migration 2) are registered after this one
	// (migrationHooks), with the schema that registration writes.
	`
CREATE TABLE order_billing_doc (
	order_id {ref_pk} REFERENCES orders(id),
	doc TEXT NOT NULL
);
INSERT INTO order_billing_doc (order_id, doc) SELECT order_id, doc FROM order_billing;
ALTER TABLE order_billing DROP COLUMN doc;
`,
	// 5: the billing queue keeps a row per reminded party and phase-one
	// batch rather than per line: a billing run of 100,000 lines inserted
	// and deleted 100,000 rows, a third of its database work. The hook
	// moves queued lines and drops billing_queue.
	`
CREATE TABLE billing_pending (
	id {id},
	role TEXT NOT NULL,            -- who is reminded: provider or intermediary
	party_id TEXT NOT NULL,
	n INTEGER NOT NULL,            -- lines in lines
	lines TEXT NOT NULL            -- JSON array of [order_id, period_key]
);
CREATE INDEX billing_pending_party ON billing_pending (role, party_id);
`,
	// 6: outbox_raw holds each outbound message's bytes, keyed by its
	// outbox row and written once, in the transaction that enqueues it.
	// SQLite rewrites a whole row when any column changes: with the
	// message (about 10 KB) in the outbox row, each claim and each
	// mark-sent copied it, 0.42–0.62 ms per row against 0.10 ms for a small
	// row. The claim and the marks now touch the small row only. ON DELETE
	// CASCADE: deleting outbox rows (tests, manual clean-ups) takes their
	// bytes along.
	//
	// catalog_revision: one row, counted up by every catalog import in its
	// transaction. A daemon keeps the catalog in memory and reads only
	// this number per order to see whether any daemon sharing the database
	// has imported since (Store.Catalog).
	`
CREATE TABLE outbox_raw (
	outbox_id {ref_pk} REFERENCES outbox(id) ON DELETE CASCADE,
	raw {blob} NOT NULL
);
INSERT INTO outbox_raw (outbox_id, raw) SELECT id, raw FROM outbox;
ALTER TABLE outbox DROP COLUMN raw;
CREATE TABLE catalog_revision (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	revision BIGINT NOT NULL
);
INSERT INTO catalog_revision (id, revision) VALUES (1, 1);
`,
	// 7: billing_reminders keyed by (order, period) alone, without the
	// surrogate id nobody read and without the foreign key to orders. A
	// billing run inserts a row per due order: PostgreSQL checked the key
	// with a query and a row lock on the order per row, which was 60 % of
	// the insert (0.8 s of 1.3 s for 100,000 periods), and kept a second
	// index. Its rows come only from order_billing, whose rows reference
	// orders, and orders are never deleted. The table is rebuilt (SQLite
	// cannot drop a constraint) under a new name, then renamed.
	`
CREATE TABLE billing_periods (
	order_id BIGINT NOT NULL,
	period_key TEXT NOT NULL,
	period_start {ts} NOT NULL,
	period_end {ts} NOT NULL,
	days INTEGER NOT NULL,
	full_days INTEGER NOT NULL,
	net_cents BIGINT NOT NULL,
	vat_cents BIGINT NOT NULL,
	gross_cents BIGINT NOT NULL,
	created_at {ts} NOT NULL,
	PRIMARY KEY (order_id, period_key)
){without_rowid};
INSERT INTO billing_periods (order_id, period_key, period_start, period_end, days, full_days, net_cents, vat_cents, gross_cents, created_at)
	SELECT order_id, period_key, period_start, period_end, days, full_days, net_cents, vat_cents, gross_cents, created_at
	FROM billing_reminders;
DROP TABLE billing_reminders;
ALTER TABLE billing_periods RENAME TO billing_reminders;
`,
	// 8: orders.created_by is the name of the API token that created the
	// order; a portal token reads only its own orders (and those it names
	// by external_id that no other token created). NULL: created outside
	// the API (CLI) or before this migration.
	`
ALTER TABLE orders ADD COLUMN created_by TEXT;
`,
	// 9: inbound.alert_suppressed marks a received message whose
	// coordinator alert the junk throttle held back (one alert per sender
	// and hour), so that the digest can say how many were held back.
	`
ALTER TABLE inbound ADD COLUMN alert_suppressed BOOLEAN NOT NULL DEFAULT FALSE;
`,
}

// migrationHooks run Go code in the transaction of a migration, after its
// SQL: data that SQL alone cannot derive portably.
var migrationHooks = map[int]func(*Tx) error{
	4: registerBindingOrders, // order_billing for the orders that were binding before migration 2
	5: movePendingLines,
	6: compressOutboxLZ4,
}

// compressOutboxLZ4 has PostgreSQL compress outbound messages with lz4
// rather than pglz, where the server supports it: a billing run enqueues
// 240 reminders of 345 KB, and pglz compressed them at a fraction of the
// speed. Values stored before keep their compression.
func compressOutboxLZ4(t *Tx) error {
	if t.s.d.name != "postgres" {
		return nil
	}
	var lz4 bool
	if err := t.get(&lz4, `SELECT COUNT(*) > 0 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)`); err != nil {
		return err
	}
	if !lz4 {
		return nil
	}
	_, err := t.exec(`ALTER TABLE outbox_raw ALTER COLUMN raw SET COMPRESSION lz4`)
	return err
}

// SchemaVersion is the number of migrations this binary knows.
var SchemaVersion = len(migrations)

// Migrate applies pending migrations. It refuses to run against a schema
// newer than the binary knows, so an old binary cannot corrupt the data of
// a newer one.
func (s *Store) Migrate(ctx context.Context) error {
	if _, err := s.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("storage: migrate: %w", err)
	}
	for {
		done, err := s.migrateOne(ctx)
		if err != nil || done {
			return err
		}
	}
}

func (s *Store) migrateOne(ctx context.Context) (done bool, err error) {
	err = s.inTx(ctx, func(tx *Tx) error {
		if s.d.name == "postgres" {
			// Several daemons may start at once.
			if _, err := tx.exec(`SELECT pg_advisory_xact_lock(7246001)`); err != nil {
				return err
			}
		}
		var versions []int
		if err := tx.sel(&versions, `SELECT version FROM schema_version`); err != nil {
			return err
		}
		v := 0
		if len(versions) > 0 {
			v = versions[0]
		}
		if v > len(migrations) {
			return fmt.Errorf("database schema version %d is newer than this binary's %d: upgrade mailflow", v, len(migrations))
		}
		if v == len(migrations) {
			s.version = v
			done = true
			return nil
		}
		ddl := strings.NewReplacer("{id}", s.d.id, "{blob}", s.d.blob, "{ts}", s.d.ts, "{ref_pk}", s.d.refPK, "{without_rowid}", s.d.withoutRowID).Replace(migrations[v])
		for _, stmt := range strings.Split(ddl, ";\n") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if _, err := tx.tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
		}
		if hook := migrationHooks[v+1]; hook != nil {
			if err := hook(tx); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
		}
		if v == 0 {
			_, err := tx.exec(`INSERT INTO schema_version (version) VALUES (?)`, v+1)
			return err
		}
		_, err := tx.exec(`UPDATE schema_version SET version = ?`, v+1)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("storage: migrate: %w", err)
	}
	return done, nil
}
