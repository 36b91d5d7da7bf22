-- Durable background jobs, and a per-organization blueprint version for cache invalidation
-- across nodes: the same tables as migrations/sqlite/0002_jobs_and_versions.sql.
--
-- jobs: one row per unit of background work. A worker claims a runnable row (queued and due,
-- or running with an expired lease) with FOR UPDATE SKIP LOCKED, becomes its lease holder
-- (lease_owner = node id, lease_until), and from then on every heartbeat, progress save and
-- completion must name the lease: (id, lease_owner, attempts). `attempts` counts claims and is
-- the fencing token: a node whose lease was taken over holds an older attempt number and is
-- refused. Lease times come from the database's clock (portolan_now_ms), so nodes with skewed
-- clocks agree.

CREATE TABLE jobs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    kind         TEXT NOT NULL,
    payload      JSONB NOT NULL,
    status       TEXT NOT NULL DEFAULT 'queued', -- queued | running | succeeded | failed | cancelled
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at       TEXT COLLATE "C" NOT NULL,  -- not claimed before this time (retry backoff)
    lease_owner  TEXT,                       -- node id of the current or last holder
    lease_until  TEXT COLLATE "C",
    progress     JSONB,                      -- checkpoint saved by the handler
    last_error   TEXT,
    result       JSONB,                      -- the handler's result, or the error's detail
    created_at   TEXT COLLATE "C" NOT NULL,
    updated_at   TEXT COLLATE "C" NOT NULL,
    started_at   TEXT COLLATE "C",
    finished_at  TEXT COLLATE "C"
);
CREATE INDEX jobs_runnable ON jobs(status, run_at);
CREATE INDEX jobs_org ON jobs(org_id, id);

-- The database's clock plus `offset_ms`, in the store's timestamp format
-- ("2024-01-31T10:00:00.000Z"). clock_timestamp(), not now(): a lease is measured from when the
-- statement runs, not from when its transaction began.
CREATE FUNCTION portolan_now_ms(offset_ms bigint) RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT to_char((clock_timestamp() + offset_ms * interval '1 millisecond') AT TIME ZONE 'UTC',
                   'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- Bumped by a trigger on every change of an organization's blueprints; a node compares it with
-- the version its cached blueprints were read at (one primary-key lookup). The bump is part of
-- the transaction that changes the blueprint, so a reader that sees the new version also sees
-- the new blueprint.
CREATE TABLE blueprint_versions (
    org_id  TEXT PRIMARY KEY NOT NULL,
    version BIGINT NOT NULL
);

CREATE FUNCTION portolan_bump_blueprint_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO blueprint_versions(org_id, version) VALUES (OLD.org_id, 1)
        ON CONFLICT (org_id) DO UPDATE SET version = blueprint_versions.version + 1;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.org_id IS DISTINCT FROM OLD.org_id) THEN
        INSERT INTO blueprint_versions(org_id, version) VALUES (NEW.org_id, 1)
        ON CONFLICT (org_id) DO UPDATE SET version = blueprint_versions.version + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER blueprints_version AFTER INSERT OR UPDATE OR DELETE ON blueprints
FOR EACH ROW EXECUTE FUNCTION portolan_bump_blueprint_version();
