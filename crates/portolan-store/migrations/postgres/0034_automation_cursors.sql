-- SQLite's dispatch position (migrations/sqlite/0034_automation_cursors.sql): PostgreSQL commits
-- ids out of order, so its dispatch clears each audit record's event_depth instead and leaves
-- this table empty; the table exists here so that both stores read waiting events alike.
CREATE TABLE automation_cursors (
    org_id   TEXT PRIMARY KEY REFERENCES organizations(id),
    audit_id BIGINT NOT NULL
);
