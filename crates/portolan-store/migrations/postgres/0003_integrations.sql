-- Integrations (Ocean installations): the same tables as migrations/sqlite/0003_integrations.sql.
-- JSON documents are `json` (kept verbatim, key order included), like audit diffs.

CREATE TABLE integrations (
    org_id         TEXT NOT NULL REFERENCES organizations(id),
    identifier     TEXT COLLATE "C" NOT NULL,
    data           JSON NOT NULL,
    config_version BIGINT NOT NULL,
    confirm_next   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     TEXT COLLATE "C" NOT NULL,
    created_by     TEXT NOT NULL,
    updated_at     TEXT COLLATE "C" NOT NULL,
    updated_by     TEXT NOT NULL,
    PRIMARY KEY (org_id, identifier)
);

CREATE TABLE integration_config_versions (
    org_id      TEXT NOT NULL,
    integration TEXT COLLATE "C" NOT NULL,
    version     BIGINT NOT NULL,
    config      JSON NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (org_id, integration, version)
);

CREATE TABLE integration_examples (
    org_id      TEXT NOT NULL,
    integration TEXT COLLATE "C" NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    examples    JSON NOT NULL,
    updated_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (org_id, integration, kind)
);

CREATE TABLE integration_resyncs (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id            TEXT NOT NULL,
    integration       TEXT COLLATE "C" NOT NULL,
    status            TEXT NOT NULL,
    started_at        TEXT COLLATE "C" NOT NULL,
    ended_at          TEXT COLLATE "C",
    entities_at_start BIGINT NOT NULL,
    deleted           BIGINT NOT NULL DEFAULT 0,
    refused           BIGINT NOT NULL DEFAULT 0,
    tripped           BOOLEAN NOT NULL DEFAULT FALSE,
    confirmed         BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX integration_resyncs_by_integration ON integration_resyncs(org_id, integration, id);

CREATE TABLE integration_logs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      TEXT NOT NULL,
    integration TEXT COLLATE "C" NOT NULL,
    resync_id   BIGINT,
    at          TEXT COLLATE "C" NOT NULL,
    level       TEXT NOT NULL,
    source      TEXT NOT NULL,
    event       TEXT NOT NULL,
    message     TEXT NOT NULL,
    extra       JSON NOT NULL
);
CREATE INDEX integration_logs_by_integration ON integration_logs(org_id, integration, id);
