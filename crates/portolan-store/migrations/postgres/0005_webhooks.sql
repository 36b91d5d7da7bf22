-- Custom webhook integrations: the same tables as migrations/sqlite/0005_webhooks.sql.

CREATE TABLE webhooks (
    org_id        TEXT NOT NULL REFERENCES organizations(id),
    identifier    TEXT COLLATE "C" NOT NULL,
    data          JSON NOT NULL,
    webhook_key   TEXT NOT NULL UNIQUE,
    secret        TEXT,
    secret_key_id TEXT,
    created_at    TEXT COLLATE "C" NOT NULL,
    created_by    TEXT NOT NULL,
    updated_at    TEXT COLLATE "C" NOT NULL,
    updated_by    TEXT NOT NULL,
    PRIMARY KEY (org_id, identifier)
);

CREATE TABLE webhook_deliveries (
    org_id      TEXT NOT NULL,
    webhook     TEXT COLLATE "C" NOT NULL,
    request_id  TEXT NOT NULL,
    job_id      BIGINT NOT NULL,
    received_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (org_id, webhook, request_id)
);

CREATE TABLE webhook_logs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      TEXT NOT NULL,
    webhook     TEXT COLLATE "C" NOT NULL,
    delivery    BIGINT,
    at          TEXT COLLATE "C" NOT NULL,
    level       TEXT NOT NULL,
    source      TEXT NOT NULL,
    event       TEXT NOT NULL,
    message     TEXT NOT NULL,
    extra       JSON NOT NULL
);
CREATE INDEX webhook_logs_by_webhook ON webhook_logs(org_id, webhook, id);
