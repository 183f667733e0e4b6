"""The store's tables: migrations in order, the same on SQLite and PostgreSQL but for ids and the
audit's append-only guard."""

from __future__ import annotations

# Migrations, in order, one statement each; {id} differs per engine, and so does the append-only guard.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE cutover_rules (route TEXT NOT NULL, entity TEXT NOT NULL, mode TEXT NOT NULL, "
        "percent REAL NOT NULL DEFAULT 0, pins TEXT NOT NULL DEFAULT '{{}}', version INTEGER NOT NULL, "
        "updated_at TEXT NOT NULL, updated_by TEXT NOT NULL, PRIMARY KEY (route, entity))",
        "CREATE TABLE cutover_audit ({id}, at TEXT NOT NULL, actor TEXT NOT NULL, kind TEXT NOT NULL, "
        "route TEXT NOT NULL, entity TEXT NOT NULL, from_mode TEXT, to_mode TEXT, from_percent REAL, "
        "to_percent REAL, reason TEXT NOT NULL, evidence TEXT NOT NULL)",
        "CREATE TABLE cutover_evidence (route TEXT NOT NULL, entity TEXT NOT NULL, rung TEXT NOT NULL, "
        "minute INTEGER NOT NULL, "
        "calls_legacy INTEGER NOT NULL DEFAULT 0, calls_cloud INTEGER NOT NULL DEFAULT 0, "
        "errors_legacy INTEGER NOT NULL DEFAULT 0, errors_cloud INTEGER NOT NULL DEFAULT 0, "
        "comparisons INTEGER NOT NULL DEFAULT 0, mismatches INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (route, entity, rung, minute))",
        "CREATE TABLE cutover_schedule ({id}, route TEXT NOT NULL, entity TEXT NOT NULL, mode TEXT NOT NULL, "
        "percent REAL NOT NULL, at TEXT NOT NULL, reason TEXT NOT NULL, actor TEXT NOT NULL, state TEXT NOT NULL, "
        "note TEXT NOT NULL DEFAULT '')",
        "CREATE TABLE cutover_freeze ({id}, entity TEXT NOT NULL, starts TEXT NOT NULL, ends TEXT NOT NULL, "
        "reason TEXT NOT NULL, actor TEXT NOT NULL)",
        "CREATE TABLE cutover_generation (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT INTO cutover_generation (id, value) VALUES (1, 0)",
        "{append_only}",
    ],
    [
        "CREATE TABLE cutover_outbox ({id}, created DOUBLE PRECISION NOT NULL, at TEXT NOT NULL, route TEXT NOT NULL, "
        "entity TEXT NOT NULL, business_key TEXT, side TEXT NOT NULL, rung TEXT NOT NULL, call TEXT NOT NULL, "
        "idempotency_key TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
        "next_at DOUBLE PRECISION NOT NULL DEFAULT 0, lease_until DOUBLE PRECISION NOT NULL DEFAULT 0, "
        "last_error TEXT NOT NULL DEFAULT '', "
        "served TEXT, updated_at TEXT NOT NULL)",
        "CREATE INDEX cutover_outbox_due ON cutover_outbox (state, next_at)",
    ],
    [
        "CREATE TABLE cutover_differences (route TEXT NOT NULL, entity TEXT NOT NULL, path TEXT NOT NULL, "
        "kind TEXT NOT NULL, minute INTEGER NOT NULL, count INTEGER NOT NULL, "
        "PRIMARY KEY (route, entity, path, kind, minute))",
        "CREATE TABLE cutover_samples ({id}, at TEXT NOT NULL, route TEXT NOT NULL, entity TEXT NOT NULL, "
        "path TEXT NOT NULL, kind TEXT NOT NULL, legacy TEXT, cloud TEXT)",
        "CREATE INDEX cutover_samples_path ON cutover_samples (route, entity, path, id)",
    ],
    ["CREATE INDEX cutover_outbox_key ON cutover_outbox (route, entity, business_key, id)"],
    [
        # legacy compared with itself: how often each field differs on its own
        "CREATE TABLE cutover_noise_calls (route TEXT NOT NULL, entity TEXT NOT NULL, minute INTEGER NOT NULL, "
        "count INTEGER NOT NULL, PRIMARY KEY (route, entity, minute))",
        "CREATE TABLE cutover_noise (route TEXT NOT NULL, entity TEXT NOT NULL, path TEXT NOT NULL, "
        "minute INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (route, entity, path, minute))",
    ],
    [
        # A business key's writes wait for its earliest unfinished one. Indexing only unfinished rows
        # makes finding that head one index seek, however long the key's delivered history is; with
        # the plain index, a hot key (one big customer, one SKU) made every claim scan its history.
        "CREATE INDEX cutover_outbox_unfinished ON cutover_outbox (route, entity, business_key, id) "
        "WHERE state IN ('intent', 'pending', 'in_doubt', 'dead')",
    ],
    [
        # The head of each business key's queue: the one message of the key that may be delivered
        # next. The worker claims heads (one row per key with a backlog), never a key's backlog, so a
        # hot key with thousands of writes waiting costs a claim one row. A message without a business
        # key is a queue of its own (NULL keys never collide in the unique index).
        "CREATE TABLE cutover_outbox_heads (head BIGINT PRIMARY KEY, route TEXT NOT NULL, entity TEXT NOT NULL, "
        "business_key TEXT)",
        "CREATE UNIQUE INDEX cutover_outbox_heads_key ON cutover_outbox_heads (route, entity, business_key)",
        "INSERT INTO cutover_outbox_heads (head, route, entity, business_key) "
        "SELECT MIN(id), route, entity, business_key FROM cutover_outbox "
        "WHERE business_key IS NOT NULL AND state IN ('intent', 'pending', 'in_doubt', 'dead') "
        "GROUP BY route, entity, business_key",
        "INSERT INTO cutover_outbox_heads (head, route, entity, business_key) "
        "SELECT id, route, entity, NULL FROM cutover_outbox "
        "WHERE business_key IS NULL AND state IN ('intent', 'pending', 'in_doubt', 'dead')",
    ],
    # comparisons made while a route learns its noise: counted for the noise rates, not as evidence
    ["ALTER TABLE cutover_evidence ADD COLUMN unjudged INTEGER NOT NULL DEFAULT 0"],
    # each route's gate and guardrail as the gateways run them (environment placeholders resolved), so
    # the CLI and the console judge with the same numbers whatever environment they run in
    [
        "CREATE TABLE cutover_settings (route TEXT PRIMARY KEY, gate TEXT NOT NULL, guardrail TEXT NOT NULL, "
        "source TEXT NOT NULL, at TEXT NOT NULL)"
    ],
    # the answers to writes by Idempotency-Key, for every gateway process: a retry on another one
    # replays the first answer; a write whose outcome is unknown stays in doubt, never booked twice
    [
        "CREATE TABLE cutover_idempotency (scope TEXT PRIMARY KEY, consumer TEXT NOT NULL, digest TEXT NOT NULL, "
        "state TEXT NOT NULL, status INTEGER, content_type TEXT, body TEXT, lease_until DOUBLE PRECISION NOT NULL, "
        "created DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL, correlation_id TEXT NOT NULL)",
        "CREATE INDEX cutover_idempotency_expires ON cutover_idempotency (expires)",
    ],
    # API consumers kept in the store: a key created or revoked on one machine counts on every gateway
    # within a second, without a restart (the consumers file stays as a seed)
    [
        "CREATE TABLE cutover_consumers (name TEXT PRIMARY KEY, key_sha256 TEXT NOT NULL UNIQUE, spec TEXT NOT NULL, "
        "revoked_at TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
    ],
    # how far each legacy event source has been published: restart-safe, at least once
    ["CREATE TABLE cutover_event_marks (source TEXT PRIMARY KEY, mark BIGINT NOT NULL, updated_at TEXT NOT NULL)"],
    # calls to deprecated versions per consumer and day, from every gateway: who still has to move
    [
        "CREATE TABLE cutover_deprecated_calls (route TEXT NOT NULL, consumer TEXT NOT NULL, day TEXT NOT NULL, "
        "calls INTEGER NOT NULL, last_at TEXT NOT NULL, PRIMARY KEY (route, consumer, day))"
    ],
    # writes accepted with 202 and made later: in the outbox as the serving side's own write (kind
    # `accepted`), found by the secret token of their status URL; a replayed 202 keeps its Location
    [
        "ALTER TABLE cutover_outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'copy'",
        "ALTER TABLE cutover_outbox ADD COLUMN token TEXT",
        "CREATE UNIQUE INDEX cutover_outbox_token ON cutover_outbox (token)",
        "ALTER TABLE cutover_idempotency ADD COLUMN location TEXT",
    ],
    # the events routes declare, recorded with the write they tell of and published from here in
    # order by one relay at a time for the fleet (events/log.py)
    [
        "CREATE TABLE cutover_events ({id}, created DOUBLE PRECISION NOT NULL, at TEXT NOT NULL, "
        "event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, subject TEXT, route TEXT NOT NULL, entity TEXT NOT NULL, "
        "body TEXT NOT NULL, state TEXT NOT NULL, replays INTEGER NOT NULL DEFAULT 0, published_at TEXT)",
        "CREATE INDEX cutover_events_pending ON cutover_events (id) WHERE state = 'pending'",
        "CREATE INDEX cutover_events_created ON cutover_events (type, created)",
        "CREATE TABLE cutover_event_relay (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, "
        "lease_until DOUBLE PRECISION NOT NULL)",
        "INSERT INTO cutover_event_relay (id, owner, lease_until) VALUES (1, '', 0)",
    ],
    # business SLOs: good and total events per route × entity × SLO and minute, from every gateway;
    # and the fast burns the fleet has told its webhook of (cutover/slos.py)
    [
        "CREATE TABLE cutover_slo_minutes (route TEXT NOT NULL, entity TEXT NOT NULL, slo TEXT NOT NULL, "
        "minute INTEGER NOT NULL, good INTEGER NOT NULL, total INTEGER NOT NULL, "
        "PRIMARY KEY (route, entity, slo, minute))",
        "CREATE TABLE cutover_slo_alerts (route TEXT NOT NULL, entity TEXT NOT NULL, slo TEXT NOT NULL, "
        "since TEXT NOT NULL, PRIMARY KEY (route, entity, slo))",
    ],
    # the files of a drop folder published as events (events/drop.py): by name and content, restart-safe
    [
        "CREATE TABLE cutover_drop_seen (source TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL, "
        "published_at TEXT NOT NULL, PRIMARY KEY (source, name, digest))"
    ],
    # flows: each file's journey (flows/journey.py), claimed once per arrival (`arrival`: name, size
    # and modification time), a row per side it was delivered to, and each side's replies seen
    [
        "CREATE TABLE flow_files ({id}, flow TEXT NOT NULL, arrival TEXT NOT NULL, name TEXT NOT NULL, "
        "digest TEXT NOT NULL, size BIGINT NOT NULL, created DOUBLE PRECISION NOT NULL, at TEXT NOT NULL, "
        "entity TEXT, business_key TEXT, document TEXT, control TEXT, groups TEXT NOT NULL DEFAULT '', "
        "rung TEXT, serving TEXT, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', "
        "lease_until DOUBLE PRECISION NOT NULL DEFAULT 0, compared INTEGER NOT NULL DEFAULT 0, "
        "updated_at TEXT NOT NULL, UNIQUE (flow, arrival))",
        "CREATE INDEX flow_files_digest ON flow_files (flow, digest)",
        "CREATE INDEX flow_files_control ON flow_files (flow, control)",
        "CREATE INDEX flow_files_state ON flow_files (state, lease_until)",
        "CREATE TABLE flow_deliveries (file_id BIGINT NOT NULL, side TEXT NOT NULL, folder TEXT NOT NULL, "
        "target TEXT NOT NULL, staged TEXT NOT NULL, state TEXT NOT NULL, reply TEXT, reply_name TEXT, "
        "accepted INTEGER, "
        "replied DOUBLE PRECISION, updated_at TEXT NOT NULL, PRIMARY KEY (file_id, side))",
        "CREATE TABLE flow_replies (flow TEXT NOT NULL, side TEXT NOT NULL, name TEXT NOT NULL, "
        "digest TEXT NOT NULL, file_id BIGINT, forwarded TEXT, seen_at TEXT NOT NULL, "
        "PRIMARY KEY (flow, side, name, digest))",
        # scheduled batches (flows/batches.py): a run per batch and due time, claimed once for the fleet
        "CREATE TABLE batch_runs (batch TEXT NOT NULL, due TEXT NOT NULL, state TEXT NOT NULL, rung TEXT, "
        "serving TEXT, legacy_file TEXT, cloud_file TEXT, delivered TEXT, records BIGINT NOT NULL DEFAULT 0, "
        "mismatches BIGINT NOT NULL DEFAULT 0, only_legacy BIGINT NOT NULL DEFAULT 0, "
        "only_cloud BIGINT NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '', created DOUBLE PRECISION NOT NULL, "
        "updated_at TEXT NOT NULL, PRIMARY KEY (batch, due))",
    ],
    # flows: each side's answers to a file, one per kind (997, 855, CONTRL, ORDRSP…), each kind
    # compared with its twin from the other side; a file's business numbers (its PO numbers) match the
    # replies that carry no control number of it (an 855, an 856, an 810)
    [
        "CREATE TABLE flow_answers (file_id BIGINT NOT NULL, side TEXT NOT NULL, kind TEXT NOT NULL, "
        "name TEXT NOT NULL, reply TEXT NOT NULL, accepted INTEGER, replied DOUBLE PRECISION NOT NULL, "
        "compared INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (file_id, side, kind))",
        "INSERT INTO flow_answers (file_id, side, kind, name, reply, accepted, replied, compared) "
        "SELECT d.file_id, d.side, 'reply', COALESCE(d.reply_name, ''), d.reply, d.accepted, COALESCE(d.replied, 0), "
        "f.compared FROM flow_deliveries d JOIN flow_files f ON f.id = d.file_id WHERE d.reply IS NOT NULL",
        "ALTER TABLE flow_deliveries DROP COLUMN reply",
        "ALTER TABLE flow_deliveries DROP COLUMN reply_name",
        "ALTER TABLE flow_deliveries DROP COLUMN accepted",
        "ALTER TABLE flow_deliveries DROP COLUMN replied",
        "ALTER TABLE flow_files DROP COLUMN compared",
        "ALTER TABLE flow_files ADD COLUMN numbers TEXT NOT NULL DEFAULT ''",
    ],
    # reconciliations (reconcile/store.py): a row a run with its counts, and the keys it found
    [
        "CREATE TABLE recon_runs ({id}, name TEXT NOT NULL, entity TEXT NOT NULL, since TEXT, "
        "started TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, finished TEXT, state TEXT NOT NULL, "
        "counts TEXT NOT NULL DEFAULT '{{}}', warnings TEXT NOT NULL DEFAULT '[]', reason TEXT NOT NULL DEFAULT '')",
        "CREATE INDEX recon_runs_name ON recon_runs (name, entity, id)",
        "CREATE TABLE recon_items (run_id BIGINT NOT NULL, kind TEXT NOT NULL, record_key TEXT NOT NULL, "
        "detail TEXT NOT NULL, records TEXT NOT NULL DEFAULT '{{}}')",
        # a record sent by `reconcile repair`, once per reconciliation, entity, key and content
        "CREATE TABLE recon_repairs (name TEXT NOT NULL, entity TEXT NOT NULL, record_key TEXT NOT NULL, "
        "digest TEXT NOT NULL, side TEXT NOT NULL, run_id BIGINT NOT NULL, message_id BIGINT, at TEXT NOT NULL, "
        "actor TEXT NOT NULL, PRIMARY KEY (name, entity, record_key, digest, side))",
        # a scheduled run, claimed once for the fleet
        "CREATE TABLE recon_schedule (name TEXT NOT NULL, entity TEXT NOT NULL, due TEXT NOT NULL, "
        "claimed_at TEXT NOT NULL, PRIMARY KEY (name, entity, due))",
        "CREATE INDEX recon_items_run ON recon_items (run_id, kind, record_key)",
    ],
    # the exception inbox (inbox/): one row for each thing a person must act on, folded by what it is
    # about (kind + fold), its owner, its state, and every action on it in the history
    [
        "CREATE TABLE exceptions ({id}, kind TEXT NOT NULL, fold TEXT NOT NULL, subject TEXT NOT NULL, "
        "entity TEXT NOT NULL, business_key TEXT, source TEXT NOT NULL, error TEXT NOT NULL, "
        "evidence TEXT NOT NULL DEFAULT '{{}}', state TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '', "
        "assignee TEXT NOT NULL DEFAULT '', snoozed_until TEXT, tier INTEGER, count INTEGER NOT NULL DEFAULT 1, "
        "since TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, last_seen TEXT NOT NULL, "
        "failed DOUBLE PRECISION NOT NULL, resolved DOUBLE PRECISION, updated_at TEXT NOT NULL, "
        "version INTEGER NOT NULL DEFAULT 1, alerted DOUBLE PRECISION NOT NULL DEFAULT 0)",
        "CREATE UNIQUE INDEX exceptions_fold ON exceptions (kind, fold)",
        "CREATE INDEX exceptions_inbox ON exceptions (created, id) WHERE resolved IS NULL",
        "CREATE INDEX exceptions_owner ON exceptions (owner, created, id) WHERE resolved IS NULL",
        "CREATE INDEX exceptions_resolved ON exceptions (resolved) WHERE resolved IS NOT NULL",
        "CREATE INDEX exceptions_counts ON exceptions (kind, entity, owner, created) WHERE resolved IS NULL",
        "CREATE TABLE exception_history ({id}, exception_id BIGINT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL, "
        "action TEXT NOT NULL, note TEXT NOT NULL DEFAULT '', from_state TEXT, to_state TEXT)",
        "CREATE INDEX exception_history_of ON exception_history (exception_id, id)",
    ],
    # process instances (processes/): one row an instance, leased by the gateway that runs it, and
    # one row a call it made (a fanned-out step's call per entity, a compensation), with its answer
    [
        "CREATE TABLE process_instances (id TEXT PRIMARY KEY, process TEXT NOT NULL, entity TEXT NOT NULL, "
        "consumer TEXT NOT NULL, state TEXT NOT NULL, request TEXT NOT NULL, result TEXT, status INTEGER, "
        "reason TEXT NOT NULL DEFAULT '', correlation_id TEXT NOT NULL, traceparent TEXT, "
        "lease_until DOUBLE PRECISION NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, "
        "created DOUBLE PRECISION NOT NULL, at TEXT NOT NULL, updated_at TEXT NOT NULL)",
        "CREATE INDEX process_instances_open ON process_instances (state, lease_until)",
        "CREATE INDEX process_instances_of ON process_instances (process, created)",
        "CREATE TABLE process_steps (instance_id TEXT NOT NULL, call TEXT NOT NULL, step TEXT NOT NULL, "
        "route TEXT NOT NULL, entity TEXT NOT NULL, state TEXT NOT NULL, status INTEGER, answer TEXT, "
        "served_by TEXT, reason TEXT NOT NULL DEFAULT '', started DOUBLE PRECISION NOT NULL, "
        "finished DOUBLE PRECISION, PRIMARY KEY (instance_id, call))",
    ],
    # change requests (cutover/changes.py): a step proposed by one person and applied when another
    # approves it; a schedule may carry an approved one
    [
        "CREATE TABLE cutover_changes ({id}, route TEXT NOT NULL, entity TEXT NOT NULL, mode TEXT NOT NULL, "
        "percent REAL NOT NULL DEFAULT 0, force INTEGER NOT NULL DEFAULT 0, at TEXT, rule_version INTEGER NOT NULL, "
        "reason TEXT NOT NULL, evidence TEXT NOT NULL DEFAULT '{{}}', needs TEXT NOT NULL DEFAULT '', "
        "proposed_by TEXT NOT NULL, proposed_at TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL, "
        "state TEXT NOT NULL, decided_by TEXT NOT NULL DEFAULT '', decided_at TEXT, note TEXT NOT NULL DEFAULT '', "
        "told DOUBLE PRECISION NOT NULL DEFAULT 0)",
        "CREATE INDEX cutover_changes_state ON cutover_changes (state, id)",
        "ALTER TABLE cutover_schedule ADD COLUMN change_id BIGINT",
    ],
]
APPEND_ONLY = {
    "sqlite": [
        "CREATE TRIGGER cutover_audit_no_update BEFORE UPDATE ON cutover_audit "
        "BEGIN SELECT RAISE(ABORT, 'the audit is append-only'); END",
        "CREATE TRIGGER cutover_audit_no_delete BEFORE DELETE ON cutover_audit "
        "BEGIN SELECT RAISE(ABORT, 'the audit is append-only'); END",
    ],
    "postgres": [
        "CREATE FUNCTION cutover_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the audit is append-only'; END $$",
        "CREATE TRIGGER cutover_audit_append_only BEFORE UPDATE OR DELETE ON cutover_audit "
        "FOR EACH ROW EXECUTE FUNCTION cutover_audit_append_only()",
    ],
}
IDS = {"sqlite": "id INTEGER PRIMARY KEY AUTOINCREMENT", "postgres": "id BIGSERIAL PRIMARY KEY"}
