-- Changelog destinations (issue 14, port-api.md §1.8): each change of an entity whose blueprint
-- has a webhook changelogDestination waits here until it is delivered, written in the same
-- transaction as the change (the audit record holds the diff: audit_id). Delivered rows are
-- deleted; a failed one keeps its attempts, next_at and last_error, and holds back the later
-- changes of its entity (delivered in order per entity). claimed_until: a deliverer holds it
-- until then (two nodes never send one change, or one entity's changes, at once).
-- PostgreSQL: migrations/postgres/0024_changelog_events.sql.
CREATE TABLE changelog_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    blueprint  TEXT NOT NULL,
    entity     TEXT NOT NULL,
    audit_id   INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    TEXT NOT NULL,
    last_error TEXT,
    claimed_until TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX changelog_events_by_org ON changelog_events(org_id, id);
CREATE INDEX changelog_events_by_entity ON changelog_events(org_id, blueprint, entity, id);

-- Every entity write reads which of its organization's blueprints have a webhook destination
-- (with the automations it wakes, automations.rs): this partial index holds only those, so the
-- read parses no blueprint body.
CREATE INDEX blueprints_with_changelog ON blueprints(org_id) WHERE json_extract(body, '$.changelogDestination.type') = 'WEBHOOK';
