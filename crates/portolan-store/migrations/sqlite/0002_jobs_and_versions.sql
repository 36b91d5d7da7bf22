-- Durable background jobs, and a per-organization blueprint version for cache invalidation
-- across nodes.
--
-- jobs: one row per unit of background work. A worker claims a runnable row (queued and due,
-- or running with an expired lease), becomes its lease holder (lease_owner = node id,
-- lease_until), and from then on every heartbeat, progress save and completion must name the
-- lease: (id, lease_owner, attempts). `attempts` counts claims and is the fencing token: a node
-- whose lease was taken over holds an older attempt number and is refused.
-- Lease times come from the database's clock, so nodes with skewed clocks agree.

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,              -- JSON
    status       TEXT NOT NULL DEFAULT 'queued', -- queued | running | succeeded | failed | cancelled
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at       TEXT NOT NULL,              -- not claimed before this time (retry backoff)
    lease_owner  TEXT,                       -- node id of the current or last holder
    lease_until  TEXT,
    progress     TEXT,                       -- JSON checkpoint saved by the handler
    last_error   TEXT,
    result       TEXT,                       -- JSON: the handler's result, or the error's detail
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT
);
CREATE INDEX jobs_runnable ON jobs(status, run_at);
CREATE INDEX jobs_org ON jobs(org_id, id);

-- Bumped by triggers on every change of an organization's blueprints; a node compares it with
-- the version its cached blueprints were read at (one primary-key lookup).
CREATE TABLE blueprint_versions (
    org_id  TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL
);

CREATE TRIGGER blueprints_version_insert AFTER INSERT ON blueprints BEGIN
    INSERT OR IGNORE INTO blueprint_versions(org_id, version) VALUES (NEW.org_id, 0);
    UPDATE blueprint_versions SET version = version + 1 WHERE org_id = NEW.org_id;
END;

CREATE TRIGGER blueprints_version_update AFTER UPDATE ON blueprints BEGIN
    INSERT OR IGNORE INTO blueprint_versions(org_id, version) VALUES (OLD.org_id, 0);
    INSERT OR IGNORE INTO blueprint_versions(org_id, version) VALUES (NEW.org_id, 0);
    UPDATE blueprint_versions SET version = version + 1 WHERE org_id IN (OLD.org_id, NEW.org_id);
END;

CREATE TRIGGER blueprints_version_delete AFTER DELETE ON blueprints BEGIN
    INSERT OR IGNORE INTO blueprint_versions(org_id, version) VALUES (OLD.org_id, 0);
    UPDATE blueprint_versions SET version = version + 1 WHERE org_id = OLD.org_id;
END;
