-- Organization quotas (the same columns as migrations/sqlite/0016_quotas.sql); NULL = unlimited.
ALTER TABLE organizations ADD COLUMN max_users BIGINT;
ALTER TABLE organizations ADD COLUMN max_entities BIGINT;
