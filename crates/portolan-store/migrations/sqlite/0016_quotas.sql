-- Organization quotas, set by the operator (`portolan org quota`), never by the organization:
-- at most this many web users and entities; NULL = unlimited.
-- PostgreSQL: migrations/postgres/0016_quotas.sql.
ALTER TABLE organizations ADD COLUMN max_users INTEGER;
ALTER TABLE organizations ADD COLUMN max_entities INTEGER;
