-- Incremental sync cursors of the latest Ocean (GET/PUT/POST /v1/integration/{id}/cursor?kind=&index=):
-- one per (integration, kind, index). `cursor` is the JSON Ocean sent, e.g. {"primary": "<iso>"}.
-- Deleted with the integration.
CREATE TABLE integration_cursors (
    org_id      TEXT NOT NULL,
    integration TEXT NOT NULL,
    kind        TEXT NOT NULL,
    idx         TEXT NOT NULL,
    cursor      TEXT NOT NULL,                -- JSON
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, integration, kind, idx)
);
