-- Web UI settings: the saved initial filter of a blueprint's catalog page (applied when the page
-- is opened without filter parameters). `filter` is JSON: {"q": text|null, "rules": [[property,
-- operator, value], …]}.

CREATE TABLE ui_initial_filters (
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    blueprint  TEXT NOT NULL,
    filter     TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (org_id, blueprint)
);
