-- Portolan schema, SQLite dialect. Every tenant-owned row carries org_id; the store
-- never reads a tenant-owned table without `org_id = ?` in the WHERE clause.
-- Timestamps are ISO-8601 UTC text with millisecond precision ("2024-01-01T00:00:00.000Z"),
-- which sorts and compares correctly as text.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE organizations (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

-- API credentials (client id / secret). Only SHA-256 of the secret is stored.
CREATE TABLE credentials (
    client_id   TEXT PRIMARY KEY NOT NULL,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    secret_hash TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX credentials_org ON credentials(org_id);

CREATE TABLE blueprints (
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    identifier TEXT NOT NULL,
    body       TEXT NOT NULL,            -- the blueprint JSON as Port returns it (without meta)
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (org_id, identifier)
);

CREATE TABLE entities (
    rid        INTEGER PRIMARY KEY,      -- internal; pagination cursor and relation source
    org_id     TEXT NOT NULL,
    blueprint  TEXT NOT NULL,
    identifier TEXT NOT NULL,
    title      TEXT,
    icon       TEXT,
    team       TEXT NOT NULL DEFAULT '[]',   -- JSON array of team identifiers
    properties TEXT NOT NULL DEFAULT '{}',   -- JSON object of stored properties
    relations  TEXT NOT NULL DEFAULT '{}',   -- JSON object: relation -> id | [ids] | null
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    datasource TEXT,
    FOREIGN KEY (org_id, blueprint) REFERENCES blueprints(org_id, identifier)
);
CREATE UNIQUE INDEX entities_key ON entities(org_id, blueprint, identifier);
CREATE INDEX entities_org_rid ON entities(org_id, rid);

-- One row per (source entity, relation, target). Kept in step with entities.relations.
CREATE TABLE entity_relations (
    org_id            TEXT NOT NULL,
    src_rid           INTEGER NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    relation          TEXT NOT NULL,
    target_blueprint  TEXT NOT NULL,
    target_identifier TEXT NOT NULL,
    required          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX entity_relations_src ON entity_relations(src_rid);
CREATE INDEX entity_relations_target ON entity_relations(org_id, target_blueprint, target_identifier);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    org_id        TEXT NOT NULL,
    at            TEXT NOT NULL,
    resource_type TEXT NOT NULL,          -- blueprint | entity
    action        TEXT NOT NULL,          -- CREATE | UPDATE | DELETE
    status        TEXT NOT NULL,          -- SUCCESS | FAILURE
    identifier    TEXT NOT NULL,
    blueprint     TEXT,
    entity        TEXT,
    origin        TEXT NOT NULL,          -- API | UI | <datasource>
    user_id       TEXT NOT NULL,
    diff          TEXT,                   -- JSON {before, after}
    message       TEXT
);
CREATE INDEX audit_log_org_at ON audit_log(org_id, id);
CREATE INDEX audit_log_org_entity ON audit_log(org_id, blueprint, entity);
