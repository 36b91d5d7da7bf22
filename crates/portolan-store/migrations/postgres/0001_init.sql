-- Portolan schema, PostgreSQL dialect: the same tables as migrations/sqlite/0001_init.sql, with
-- jsonb for the queried JSON columns. Every tenant-owned row carries org_id; the store never reads a
-- tenant-owned table without `org_id = $n` in the WHERE clause.
-- Timestamps stay ISO-8601 UTC text with millisecond precision ("2024-01-01T00:00:00.000Z"),
-- exactly as on SQLite, so cursors, comparisons and API output are identical on both backends;
-- columns that are compared or ordered use the "C" collation (byte order, as SQLite).

CREATE TABLE settings (
    key   TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE organizations (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT COLLATE "C" NOT NULL
);

-- API credentials (client id / secret). Only SHA-256 of the secret is stored.
CREATE TABLE credentials (
    client_id   TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    secret_hash TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX credentials_org ON credentials(org_id);

CREATE TABLE blueprints (
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    identifier TEXT COLLATE "C" NOT NULL,
    body       JSON NOT NULL,            -- the blueprint JSON as Port returns it (without meta);
                                         -- json, not jsonb: the key order is the API's order
    created_at TEXT COLLATE "C" NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (org_id, identifier)
);

CREATE TABLE entities (
    rid        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- pagination cursor, relation source
    org_id     TEXT NOT NULL,
    blueprint  TEXT COLLATE "C" NOT NULL,
    identifier TEXT COLLATE "C" NOT NULL,
    title      TEXT,
    icon       TEXT,
    team       JSONB NOT NULL DEFAULT '[]',   -- JSON array of team identifiers
    properties JSONB NOT NULL DEFAULT '{}',   -- JSON object of stored properties
    relations  JSONB NOT NULL DEFAULT '{}',   -- JSON object: relation -> id | [ids] | null
    created_at TEXT COLLATE "C" NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    updated_by TEXT NOT NULL,
    datasource TEXT,
    FOREIGN KEY (org_id, blueprint) REFERENCES blueprints(org_id, identifier)
);
CREATE UNIQUE INDEX entities_key ON entities(org_id, blueprint, identifier);
CREATE INDEX entities_org_rid ON entities(org_id, rid);
CREATE INDEX entities_properties ON entities USING GIN (properties jsonb_path_ops);

-- One row per (source entity, relation, target). Kept in step with entities.relations.
CREATE TABLE entity_relations (
    org_id            TEXT NOT NULL,
    src_rid           BIGINT NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    relation          TEXT NOT NULL,
    target_blueprint  TEXT NOT NULL,
    target_identifier TEXT NOT NULL,
    required          BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX entity_relations_src ON entity_relations(src_rid);
CREATE INDEX entity_relations_target ON entity_relations(org_id, target_blueprint, target_identifier);

CREATE TABLE audit_log (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id        TEXT NOT NULL,
    at            TEXT COLLATE "C" NOT NULL,
    resource_type TEXT NOT NULL,          -- blueprint | entity
    action        TEXT NOT NULL,          -- CREATE | UPDATE | DELETE
    status        TEXT NOT NULL,          -- SUCCESS | FAILURE
    identifier    TEXT COLLATE "C" NOT NULL,
    blueprint     TEXT COLLATE "C",
    entity        TEXT,
    origin        TEXT NOT NULL,          -- API | UI | <datasource>
    user_id       TEXT NOT NULL,
    diff          JSON,                   -- JSON {before, after}; json keeps key order
    message       TEXT
);
CREATE INDEX audit_log_org_at ON audit_log(org_id, id);
CREATE INDEX audit_log_org_entity ON audit_log(org_id, blueprint, entity);

-- A date-time text normalized to the canonical form ("2024-01-31T10:00:00.000Z"), or NULL when
-- it is not one: what the search compiler uses where SQLite uses strftime('%Y-%m-%dT%H:%M:%fZ', v).
-- A text without a zone is read as UTC, as SQLite does.
CREATE FUNCTION portolan_ts(v text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE SET timezone = 'UTC' AS $$
BEGIN
    IF v IS NULL OR v !~ '^\s*\d{4}-\d{2}-\d{2}' THEN
        RETURN NULL;
    END IF;
    RETURN to_char(v::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;
