-- Web UI settings: the same table as migrations/sqlite/0008_ui.sql.

CREATE TABLE ui_initial_filters (
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    blueprint  TEXT COLLATE "C" NOT NULL,
    filter     TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (org_id, blueprint)
);
