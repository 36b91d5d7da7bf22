-- Whether each entity_teams row is its entity's first team: see
-- migrations/sqlite/0030_entity_teams_is_first.sql. Here a generated column (the same column on
-- both databases); counts keep reading the partial index entity_teams_first.
ALTER TABLE entity_teams ADD COLUMN is_first SMALLINT GENERATED ALWAYS AS
    (CASE WHEN team = first_team THEN 1 ELSE 0 END) STORED;
