-- Integrations (Ocean installations): Port's integration object, its mapping (`config`) with
-- every previous version, raw-data examples per kind, resyncs (with the mass-deletion guard's
-- counters) and the per-integration event log.

CREATE TABLE integrations (
    org_id         TEXT NOT NULL REFERENCES organizations(id),
    identifier     TEXT NOT NULL,
    data           TEXT NOT NULL,             -- JSON: the integration object without the meta fields
    config_version INTEGER NOT NULL,          -- the version number of data.config
    confirm_next   INTEGER NOT NULL DEFAULT 0, -- an admin confirmed deletions for the next resync
    created_at     TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    updated_by     TEXT NOT NULL,
    PRIMARY KEY (org_id, identifier)
);

-- Every version of every integration's config (the current one included).
CREATE TABLE integration_config_versions (
    org_id      TEXT NOT NULL,
    integration TEXT NOT NULL,
    version     INTEGER NOT NULL,
    config      TEXT NOT NULL,                -- JSON
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (org_id, integration, version)
);

CREATE TABLE integration_examples (
    org_id      TEXT NOT NULL,
    integration TEXT NOT NULL,
    kind        TEXT NOT NULL,
    examples    TEXT NOT NULL,                -- JSON array
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, integration, kind)
);

-- One row per resync (PATCH …/resync-state running → completed|failed). `deleted` counts the
-- deletions the guard let through; `tripped` is set once it refused one, and every further
-- deletion of the resync is refused unless `confirmed`.
CREATE TABLE integration_resyncs (
    id                INTEGER PRIMARY KEY,
    org_id            TEXT NOT NULL,
    integration       TEXT NOT NULL,
    status            TEXT NOT NULL,          -- running | completed | failed | abandoned
    started_at        TEXT NOT NULL,
    ended_at          TEXT,
    entities_at_start INTEGER NOT NULL,
    deleted           INTEGER NOT NULL DEFAULT 0,
    refused           INTEGER NOT NULL DEFAULT 0,
    tripped           INTEGER NOT NULL DEFAULT 0,
    confirmed         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX integration_resyncs_by_integration ON integration_resyncs(org_id, integration, id);

-- The event log: lines Ocean ships (source 'ocean') and what the server saw (source 'server':
-- rejected writes, deletions, refused deletions, resync starts and ends).
CREATE TABLE integration_logs (
    id          INTEGER PRIMARY KEY,
    org_id      TEXT NOT NULL,
    integration TEXT NOT NULL,
    resync_id   INTEGER,
    at          TEXT NOT NULL,
    level       TEXT NOT NULL,
    source      TEXT NOT NULL,
    event       TEXT NOT NULL,
    message     TEXT NOT NULL,
    extra       TEXT NOT NULL                 -- JSON object
);
CREATE INDEX integration_logs_by_integration ON integration_logs(org_id, integration, id);
