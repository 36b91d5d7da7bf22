-- The second half of the team-scoped count (entities/team_count.rs) tests `is_first = 0`, as on
-- PostgreSQL (migrations/postgres/0031_entity_teams_is_first_keys.sql): the partial index of the
-- rows that are not their entity's first team takes that condition, and the row id, so the
-- count's DISTINCT reads the index alone.
DROP INDEX entity_teams_others;
CREATE INDEX entity_teams_others ON entity_teams(org_id, blueprint, team, first_team, rid) WHERE is_first = 0;
