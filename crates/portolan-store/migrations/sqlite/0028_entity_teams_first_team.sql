-- Each entity_teams row names its entity's first team (the least of its teams): exactly one row
-- per entity that has teams has team = first_team. A count of the entities some teams own is
-- then a count of index entries instead of a DISTINCT over every team row: the entities whose
-- first team is among the teams (one entry each, partial index entity_teams_first), plus the
-- few that are owned by one of the teams but whose first team is not (their other rows,
-- partial index entity_teams_others, de-duplicated). `entities/team_count.rs` reads them.
-- PostgreSQL: migrations/postgres/0028_entity_teams_first_team.sql.
ALTER TABLE entity_teams ADD COLUMN first_team TEXT NOT NULL DEFAULT '';
UPDATE entity_teams SET first_team = (SELECT MIN(x.team) FROM entity_teams x WHERE x.rid = entity_teams.rid);
CREATE INDEX entity_teams_first ON entity_teams(org_id, blueprint, team) WHERE team = first_team;
CREATE INDEX entity_teams_others ON entity_teams(org_id, blueprint, team, first_team) WHERE team <> first_team;

DROP TRIGGER entity_teams_insert;
DROP TRIGGER entity_teams_update;

CREATE TRIGGER entity_teams_insert AFTER INSERT ON entities BEGIN
    INSERT OR IGNORE INTO entity_teams(org_id, team, blueprint, rid, first_team)
        SELECT new.org_id, j.value, new.blueprint, new.rid,
               (SELECT MIN(k.value) FROM json_each(new.team) k WHERE k.type = 'text')
        FROM json_each(new.team) j WHERE j.type = 'text';
END;

CREATE TRIGGER entity_teams_update AFTER UPDATE OF team ON entities WHEN new.team IS NOT old.team BEGIN
    DELETE FROM entity_teams WHERE rid = old.rid;
    INSERT OR IGNORE INTO entity_teams(org_id, team, blueprint, rid, first_team)
        SELECT new.org_id, j.value, new.blueprint, new.rid,
               (SELECT MIN(k.value) FROM json_each(new.team) k WHERE k.type = 'text')
        FROM json_each(new.team) j WHERE j.type = 'text';
END;
