-- Port's `port_type` of a person: `Standard` (signs in) or `Service Account` (API only, made as
-- a `_user` entity with its credentials in the answer; no password, no web sign-in). The
-- `_user` and `_team` system blueprints and their entities are created in Rust
-- (`mirror::ensure_all`) after migrations, for every organization that lacks them.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'Standard';
