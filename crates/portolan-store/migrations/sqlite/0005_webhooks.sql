-- Custom webhook integrations (port-api.md §7.2): the webhook object, its deliveries (one row per
-- request identifier, so a replayed delivery is recognised atomically) and its event log.

CREATE TABLE webhooks (
    org_id        TEXT NOT NULL REFERENCES organizations(id),
    identifier    TEXT NOT NULL,
    data          TEXT NOT NULL,             -- JSON: the webhook object without the secret and the managed fields
    webhook_key   TEXT NOT NULL UNIQUE,      -- the ingest URL's credential (128+ random bits)
    secret        TEXT,                      -- encrypted security.secret: v1:<key id>:<nonce>:<ciphertext>
    secret_key_id TEXT,                      -- id of the master key `secret` is encrypted with
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    updated_by    TEXT NOT NULL,
    PRIMARY KEY (org_id, identifier)
);

-- A delivery with a request identifier (security.requestIdentifierPath). The primary key is what
-- makes "the same id for the same webhook is processed once" atomic: the row and its job are
-- inserted in one transaction, and a second insert of the same id finds the first.
CREATE TABLE webhook_deliveries (
    org_id      TEXT NOT NULL,
    webhook     TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    job_id      INTEGER NOT NULL,            -- jobs.id of the webhook_delivery job
    received_at TEXT NOT NULL,
    PRIMARY KEY (org_id, webhook, request_id)
);

-- The webhook's event log: deliveries received, dropped or refused, and what processing did
-- (entities written, rejected, deleted; mapping failures). `delivery` is the delivery's job id.
CREATE TABLE webhook_logs (
    id          INTEGER PRIMARY KEY,
    org_id      TEXT NOT NULL,
    webhook     TEXT NOT NULL,
    delivery    INTEGER,
    at          TEXT NOT NULL,
    level       TEXT NOT NULL,
    source      TEXT NOT NULL,
    event       TEXT NOT NULL,
    message     TEXT NOT NULL,
    extra       TEXT NOT NULL                -- JSON object
);
CREATE INDEX webhook_logs_by_webhook ON webhook_logs(org_id, webhook, id);
