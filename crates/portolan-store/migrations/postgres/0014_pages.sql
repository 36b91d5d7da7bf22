-- Pages (port-api.md §9): catalog pages, dashboards, the home page, folders. `data` is Port's
-- page object without identifier and meta. SQLite: migrations/sqlite/0014_pages.sql.

CREATE TABLE pages (
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    identifier TEXT COLLATE "C" NOT NULL,
    data       JSON NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (org_id, identifier)
);
