-- SQLite's automation dispatch takes an organization's entity events by moving its cursor past
-- them instead of clearing each audit record's event_depth: rewriting a thousand audit records
-- (each holding its diff) was most of the dispatch transaction, which holds the one writer every
-- entity write waits for. SQLite commits in id order (one writer), so every record at or below
-- the cursor has been read; on PostgreSQL ids commit out of order, its dispatch clears the marks
-- as before and this table stays empty. A record is waiting when it is marked and above its
-- organization's cursor. `migrate-data` copies only those marks (src/migrate/tables.rs). The
-- partial index audit_log_events (0033) now holds every event ever recorded on SQLite, and the
-- cursor relies on audit ids never being reused: audit records are never deleted (a pruning of
-- the newest records would have to move or clear the cursors).
-- PostgreSQL: migrations/postgres/0034_automation_cursors.sql.
CREATE TABLE automation_cursors (
    org_id   TEXT PRIMARY KEY REFERENCES organizations(id),
    audit_id INTEGER NOT NULL
);
