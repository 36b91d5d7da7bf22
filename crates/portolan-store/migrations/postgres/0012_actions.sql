-- Self-service actions and automations (port-api.md §5), their runs, run logs and affected
-- entities; organization secrets and settings; the encrypted client secret that signs
-- outgoing action webhooks (§5.8). PostgreSQL: migrations/postgres/0012_actions.sql.

-- An action as Port returns it, without the server's keys (id and meta are columns).
CREATE TABLE actions (
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    identifier TEXT COLLATE "C" NOT NULL,
    id         TEXT NOT NULL UNIQUE,         -- action_<random>
    data       JSON NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (org_id, identifier)
);

-- One run of an action. `data` is the rest of Port's run object (statusLabel, link, summary,
-- properties, payload, response, source, …); `trace` the outbound calls made for it.
-- pending_execution: waiting for an execution agent to claim (claimed_until: the claim's lease)
-- and acknowledge it. ended_by_log: terminated by a log's terminationStatus (immutable since).
CREATE TABLE action_runs (
    rid               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES organizations(id),
    id                TEXT NOT NULL UNIQUE,  -- r_<random>
    action            TEXT NOT NULL,
    blueprint         TEXT,
    entity            TEXT,
    status            TEXT NOT NULL,
    external_run_id   TEXT,
    data              JSON NOT NULL,
    trace             JSON NOT NULL DEFAULT '[]',
    pending_execution BOOLEAN NOT NULL DEFAULT FALSE,
    claimed_until     TEXT,
    installation_id   TEXT,
    ended_by_log      BOOLEAN NOT NULL DEFAULT FALSE,
    created_by        TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_by        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    ended_at          TEXT
);
CREATE INDEX action_runs_by_org ON action_runs(org_id, rid);
CREATE INDEX action_runs_by_action ON action_runs(org_id, action, rid);
CREATE INDEX action_runs_by_entity ON action_runs(org_id, blueprint, entity, rid);
CREATE INDEX action_runs_by_external_id ON action_runs(org_id, external_run_id);
CREATE INDEX action_runs_pending ON action_runs(org_id, rid) WHERE pending_execution;

CREATE TABLE action_run_logs (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id             TEXT NOT NULL,
    run_rid            BIGINT NOT NULL REFERENCES action_runs(rid) ON DELETE CASCADE,
    at                 TEXT NOT NULL,
    message            TEXT NOT NULL,
    termination_status TEXT,
    status_label       TEXT,
    user_id            TEXT NOT NULL
);
CREATE INDEX action_run_logs_by_run ON action_run_logs(run_rid, id);

-- Entities written with ?run_id= while the run was in progress ("affected entities").
CREATE TABLE action_run_entities (
    org_id     TEXT NOT NULL,
    run_rid    BIGINT NOT NULL REFERENCES action_runs(rid) ON DELETE CASCADE,
    blueprint  TEXT NOT NULL,
    identifier TEXT COLLATE "C" NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (run_rid, blueprint, identifier)
);

-- /v1/organization/secrets: values encrypted by the server (the store never sees them in clear).
CREATE TABLE org_secrets (
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    description TEXT,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (org_id, name)
);

-- PATCH /v1/organization settings (e.g. portAgentStreamerName).
ALTER TABLE organizations ADD COLUMN settings JSONB NOT NULL DEFAULT '{}';

-- The client secret, encrypted by the server, to sign action webhooks as Port does (§5.8).
-- NULL for credentials created before this migration (rotate to enable signing).
ALTER TABLE credentials ADD COLUMN secret_enc TEXT;
ALTER TABLE credentials ADD COLUMN secret_key_id TEXT;
