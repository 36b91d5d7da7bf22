-- Each entity's teams as rows (issue 13: team-scoped read permissions). `$team` rules that
-- name teams (`=`, `in`, `containsAny`, and so the read restriction `ownedByTeam`) become
-- `rid IN (SELECT rid FROM entity_teams WHERE team IN (…))`: an index range per team instead
-- of unpacking every row's `team` array. Kept by triggers, so every writer (entity writes, team
-- renames and deletions, migrate-data) keeps it without knowing; rows go with their entity
-- (ON DELETE CASCADE). No org_id: rid is unique across organizations, and every read that uses
-- it also filters the entity's organization. PostgreSQL: migrations/postgres/0020_entity_teams.sql.
CREATE TABLE entity_teams (
    team TEXT NOT NULL,
    rid  INTEGER NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    PRIMARY KEY (team, rid)
) WITHOUT ROWID;
CREATE INDEX entity_teams_rid ON entity_teams(rid);

CREATE TRIGGER entity_teams_insert AFTER INSERT ON entities BEGIN
    INSERT OR IGNORE INTO entity_teams(team, rid)
        SELECT j.value, new.rid FROM json_each(new.team) j WHERE j.type = 'text';
END;

CREATE TRIGGER entity_teams_update AFTER UPDATE OF team ON entities WHEN new.team IS NOT old.team BEGIN
    DELETE FROM entity_teams WHERE rid = old.rid;
    INSERT OR IGNORE INTO entity_teams(team, rid)
        SELECT j.value, new.rid FROM json_each(new.team) j WHERE j.type = 'text';
END;

INSERT OR IGNORE INTO entity_teams(team, rid)
    SELECT j.value, e.rid FROM entities e, json_each(e.team) j WHERE j.type = 'text';
