-- Incremental sync cursors of the latest Ocean (GET/PUT/POST /v1/integration/{id}/cursor?kind=&index=):
-- one per (integration, kind, index). `cursor` is the JSON Ocean sent, e.g. {"primary": "<iso>"}.
-- Deleted with the integration.
CREATE TABLE integration_cursors (
    org_id      TEXT NOT NULL,
    integration TEXT COLLATE "C" NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    idx         TEXT COLLATE "C" NOT NULL,
    cursor      JSON NOT NULL,
    updated_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (org_id, integration, kind, idx)
);
