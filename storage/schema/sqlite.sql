-- mailflow's schema for SQLite, version 1: the baseline. Tables come in
-- dependency order. Later versions are migrations beside this file
-- (storage/migrations.go); this file is never edited once released.
-- Times are DATETIME text in UTC; amounts are integer cents.

-- The catalog: each entry is kept as the JSON the import gave (doc).
CREATE TABLE providers (
	id TEXT PRIMARY KEY,
	doc TEXT NOT NULL,
	updated_at DATETIME NOT NULL
);

CREATE TABLE intermediaries (
	id TEXT PRIMARY KEY,
	doc TEXT NOT NULL,
	updated_at DATETIME NOT NULL
);

CREATE TABLE services (
	id TEXT PRIMARY KEY,
	provider_id TEXT NOT NULL REFERENCES providers(id),
	doc TEXT NOT NULL,                 -- without its conditions, which are rows of terms
	updated_at DATETIME NOT NULL
);

-- Versions of the general terms (AGB) and of the service conditions.
CREATE TABLE terms (
	kind TEXT NOT NULL,                -- 'agb' or 'conditions'
	owner TEXT NOT NULL,               -- terms id for AGB, service id for conditions
	version TEXT NOT NULL,
	title TEXT NOT NULL DEFAULT '',
	valid_from TEXT NOT NULL,          -- YYYY-MM-DD
	valid_until TEXT,                  -- YYYY-MM-DD, inclusive
	body TEXT NOT NULL,
	sha256 TEXT NOT NULL,
	PRIMARY KEY (kind, owner, version)
);

-- One row, counted up by every catalog import: a daemon keeps the catalog
-- in memory and learns from this number that another one imported.
CREATE TABLE catalog_revision (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	revision BIGINT NOT NULL
);
INSERT INTO catalog_revision (id, revision) VALUES (1, 1);

-- The last order number given out per year: numbers are gapless.
CREATE TABLE order_counters (
	year INTEGER PRIMARY KEY,
	last INTEGER NOT NULL
);

-- Orders with the snapshot of everything contract-relevant at order time.
CREATE TABLE orders (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	number TEXT NOT NULL UNIQUE,       -- 2026-000123
	external_id TEXT NOT NULL UNIQUE,  -- the portal's id: a request sent twice is one order
	contract_model TEXT NOT NULL,      -- DV or UV
	ordered_at DATETIME NOT NULL,
	created_at DATETIME NOT NULL,
	status TEXT NOT NULL,              -- derived from decisions (mailflow.Evaluate)
	binding_at DATETIME,               -- when the order became binding (Bestellt)
	conflict BOOLEAN NOT NULL DEFAULT FALSE, -- a decision arrived after the final one
	provider_id TEXT NOT NULL,
	intermediary_id TEXT,              -- UV only
	search TEXT NOT NULL,              -- lowercased number, customer and provider for the status page search
	snapshot TEXT NOT NULL,             -- JSON of mailflow.Snapshot
	created_by TEXT                     -- name of the API token that created it (portal scoping); NULL: the CLI
);
CREATE INDEX orders_status ON orders (status, id);
CREATE INDEX orders_binding ON orders (binding_at);

-- Every decision recorded on an order, by mail or by hand.
CREATE TABLE decisions (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	order_id BIGINT NOT NULL REFERENCES orders(id),
	party TEXT NOT NULL,
	intent TEXT NOT NULL,
	reason TEXT NOT NULL DEFAULT '',
	source TEXT NOT NULL,              -- mail or manual
	actor TEXT NOT NULL DEFAULT '',
	message_id TEXT NOT NULL DEFAULT '',
	inbound_id BIGINT,                 -- the received message that carried it
	effect TEXT NOT NULL DEFAULT '',   -- what it changed: '', conflict or repeat
	at DATETIME NOT NULL
);
CREATE INDEX decisions_order ON decisions (order_id, id);

-- Outbound mail, sent after the transaction that enqueued it commits.
CREATE TABLE outbox (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	order_id BIGINT REFERENCES orders(id),
	ref BIGINT NOT NULL UNIQUE,        -- the caller's key of the message
	kind TEXT NOT NULL,
	party TEXT NOT NULL DEFAULT '',
	sender TEXT NOT NULL,
	recipients TEXT NOT NULL,          -- JSON array of addresses
	message_id TEXT NOT NULL UNIQUE,
	subject TEXT NOT NULL,
	status TEXT NOT NULL,              -- pending, sent or failed
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt_at DATETIME NOT NULL,
	claimed_until DATETIME,            -- a sender's lease on the row
	last_error TEXT NOT NULL DEFAULT '',
	created_at DATETIME NOT NULL,
	sent_at DATETIME
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_order ON outbox (order_id);

-- The bytes of each outbound message, written once: claims and marks
-- change only the small outbox row (docs/benchmarks.md).
CREATE TABLE outbox_raw (
	outbox_id INTEGER PRIMARY KEY REFERENCES outbox(id) ON DELETE CASCADE,
	sha256 TEXT NOT NULL DEFAULT '',   -- of raw as sent, recorded when stored: the evidence export checks it
	raw_deleted_at DATETIME,           -- when retention removed the bytes; the hash stays
	raw BLOB NOT NULL                  -- last: reading the columns before it skips its overflow pages; '' once deleted
);

-- Received mail with its verdict.
CREATE TABLE inbound (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	message_id TEXT NOT NULL UNIQUE,   -- Message-ID, or sha256:<hex> of the raw message
	sha256 TEXT NOT NULL,              -- of raw as received ('' when not downloaded): the evidence export checks it
	received_at DATETIME NOT NULL,
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
	alert_suppressed BOOLEAN NOT NULL DEFAULT FALSE, -- its coordinator alert was held back (one per sender and hour); the digest counts them
	size BIGINT NOT NULL DEFAULT 0,
	auth TEXT NOT NULL DEFAULT '',     -- JSON of mailflow.AuthCheck: how the reply was tied to its order and its sender checked
	raw_deleted_at DATETIME,           -- when retention removed the raw bytes; the hash stays
	raw BLOB                           -- NULL when the message is in inbound_raw
);
CREATE INDEX inbound_order ON inbound (order_id);
CREATE INDEX inbound_review ON inbound (needs_review);
CREATE INDEX inbound_from ON inbound (from_addr, received_at); -- the loop guard counts a sender's recent mail

-- Received messages larger than 1 MiB, in pieces (docs/benchmarks.md).
CREATE TABLE inbound_raw (
	inbound_id BIGINT NOT NULL REFERENCES inbound(id),
	seq INTEGER NOT NULL,
	chunk BLOB NOT NULL,
	PRIMARY KEY (inbound_id, seq)
);

-- How far the IMAP watcher has read each mailbox.
CREATE TABLE imap_state (
	mailbox TEXT PRIMARY KEY,
	uidvalidity BIGINT NOT NULL,
	last_uid BIGINT NOT NULL,
	last_sync DATETIME
);

-- Automatic answers sent per sender, reason and day: at most one each.
CREATE TABLE answer_throttle (
	sender TEXT NOT NULL,
	reason TEXT NOT NULL,
	day TEXT NOT NULL,
	PRIMARY KEY (sender, reason, day)
);

-- Confirmation reminders and escalations sent: one per key.
CREATE TABLE confirmation_reminders (
	order_id BIGINT NOT NULL REFERENCES orders(id),
	party TEXT NOT NULL,
	kind TEXT NOT NULL,                -- 'remind' or 'escalate'
	slot BIGINT NOT NULL,              -- the reminder interval it answers; 0 for an escalation
	sent_at DATETIME NOT NULL,
	PRIMARY KEY (order_id, party, kind, slot)
);

-- Digests sent: one per cron tick, however many daemons.
CREATE TABLE digest_runs (
	slot DATETIME PRIMARY KEY,         -- the cron tick, to the minute
	sent_at DATETIME NOT NULL
);

-- One row per binding order: when a billing run must look at it next,
-- and what it needs of the order and its snapshot, copied here: a run then
-- never reads the large orders rows (docs/benchmarks.md).
CREATE TABLE billing_orders (
	order_id INTEGER PRIMARY KEY REFERENCES orders(id),
	number TEXT NOT NULL,
	contract_model TEXT NOT NULL,
	provider_id TEXT NOT NULL,
	intermediary_id TEXT NOT NULL DEFAULT '',
	binding_at DATETIME NOT NULL,
	due_at DATETIME,                   -- End of the next unbilled period, the binding time until a run has seen the order; NULL once all is billed
	price_interval TEXT NOT NULL,      -- once, monthly, quarterly or yearly
	amount_cents BIGINT NOT NULL,      -- per full period
	vat_percent DOUBLE PRECISION NOT NULL,
	doc TEXT NOT NULL                  -- JSON of mailflow.BillingDoc: whom the reminders go to, whom they invoice
);
CREATE INDEX billing_orders_due ON billing_orders (due_at);

-- Billed periods: the key (order, period) bills each once.
CREATE TABLE billing_periods (
	order_id BIGINT NOT NULL,          -- of billing_orders; no foreign key (docs/benchmarks.md)
	period_key TEXT NOT NULL,          -- 2026-11, 2026-Q4, 2026 or once
	period_start DATETIME NOT NULL,
	period_end DATETIME NOT NULL,      -- exclusive
	days INTEGER NOT NULL,
	full_days INTEGER NOT NULL,        -- days of the whole calendar period: the proration's denominator
	net_cents BIGINT NOT NULL,
	vat_cents BIGINT NOT NULL,
	gross_cents BIGINT NOT NULL,
	billed_at DATETIME NOT NULL,
	reminded_at DATETIME,              -- when its reminders were enqueued; NULL: still to be mailed
	PRIMARY KEY (order_id, period_key)
) WITHOUT ROWID;
CREATE INDEX billing_periods_unreminded ON billing_periods (order_id) WHERE reminded_at IS NULL;

-- How a coordinator took a received message out of review (the review queue, docs/design.md §4): attached to an order with a decision, or dismissed with a reason.
CREATE TABLE inbound_reviews (
	inbound_id INTEGER PRIMARY KEY REFERENCES inbound(id) ON DELETE CASCADE, -- one resolution per message
	action TEXT NOT NULL,              -- attached or dismissed
	actor TEXT NOT NULL,               -- the coordinator
	at DATETIME NOT NULL,
	reason TEXT NOT NULL DEFAULT '',   -- why it was dismissed
	order_id BIGINT REFERENCES orders(id) ON DELETE SET NULL,       -- attached to, or (dismissed) matched to
	decision_id BIGINT REFERENCES decisions(id) ON DELETE SET NULL  -- the decision an attachment recorded
);
CREATE INDEX inbound_reviews_order ON inbound_reviews (order_id);
CREATE INDEX inbound_reviews_at ON inbound_reviews (at);

-- Evidence bundles exported: which order, when, by whom, and the SHA-256
-- of the signed manifest, to recognise a bundle handed over later.
CREATE TABLE evidence_exports (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	order_number TEXT NOT NULL,        -- no foreign key: the record outlives a deleted order until its own retention
	exported_at DATETIME NOT NULL,
	actor TEXT NOT NULL,
	manifest_sha256 TEXT NOT NULL
);
CREATE INDEX evidence_exports_at ON evidence_exports (exported_at);
-- Sessions of the status page; only the SHA-256 of the cookie is stored (docs/design.md §7).
CREATE TABLE page_sessions (
	id_hash TEXT PRIMARY KEY,          -- hex SHA-256 of the session cookie's value
	role TEXT NOT NULL,                -- coordinator, provider or intermediary
	org TEXT NOT NULL DEFAULT '',      -- the party's catalog id; '' for a coordinator
	subject TEXT NOT NULL,             -- the signed-in address, or the coordinator's user name
	csrf TEXT NOT NULL,
	created_at DATETIME NOT NULL,
	last_seen_at DATETIME NOT NULL,
	idle_until DATETIME NOT NULL,      -- last_seen_at plus the idle timeout
	expires_at DATETIME NOT NULL       -- created_at plus the absolute lifetime
);
CREATE INDEX page_sessions_subject ON page_sessions (subject, role, org);
CREATE INDEX page_sessions_expires ON page_sessions (expires_at);

-- Sign-in links sent by email; only the SHA-256 of the token is stored, each signs in once.
CREATE TABLE signin_links (
	token_hash TEXT PRIMARY KEY,       -- hex SHA-256 of the token in the link
	role TEXT NOT NULL,                -- provider or intermediary
	org TEXT NOT NULL,                 -- the party's catalog id
	email TEXT NOT NULL,               -- the address the link was sent to
	created_at DATETIME NOT NULL,
	expires_at DATETIME NOT NULL,
	used_at DATETIME                   -- NULL until it signed in
);
CREATE INDEX signin_links_expires ON signin_links (expires_at);

-- Sign-in attempts counted for the rate limits, shared by every daemon; keys are hashed.
CREATE TABLE signin_attempts (
	kind TEXT NOT NULL,                -- link-address, link-client or password-client
	key_hash TEXT NOT NULL,            -- hex SHA-256 of the address or client address
	at DATETIME NOT NULL
);
CREATE INDEX signin_attempts_key ON signin_attempts (kind, key_hash, at);
CREATE INDEX signin_attempts_at ON signin_attempts (at);

-- Orders by deciding party: the status page lists a signed-in party's orders only.
CREATE INDEX orders_provider ON orders (provider_id, id);
CREATE INDEX orders_intermediary ON orders (intermediary_id, id);

-- Status page language chosen by each signed-in person, so it follows them to every browser.
CREATE TABLE page_preferences (
	role TEXT NOT NULL,                -- coordinator, provider or intermediary
	org TEXT NOT NULL,                 -- the party's catalog id; '' for a coordinator
	subject TEXT NOT NULL,             -- the signed-in address, or the coordinator's user name
	lang TEXT NOT NULL,                -- de or en
	updated_at DATETIME NOT NULL,
	PRIMARY KEY (role, org, subject)
);
