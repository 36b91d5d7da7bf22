-- entity_teams keyed by (org_id, team, blueprint, rid): the entity's organization and blueprint
-- are copied into each row (neither ever changes for an entity), so a count of one blueprint's
-- entities that some teams own — a member's entity count under an ownedByTeam read permission —
-- is read from this table's key alone (one range per team), without visiting the entities.
-- A team's rows of every blueprint stay one range (org_id, team). Rows still go with their
-- entity (ON DELETE CASCADE), and the triggers still keep them. PostgreSQL: the same in
-- migrations/postgres/0027_entity_teams_by_org.sql.
CREATE TABLE entity_teams_by_org (
    org_id    TEXT NOT NULL,
    team      TEXT NOT NULL,
    blueprint TEXT NOT NULL,
    rid       INTEGER NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    PRIMARY KEY (org_id, team, blueprint, rid)
) WITHOUT ROWID;
INSERT OR IGNORE INTO entity_teams_by_org(org_id, team, blueprint, rid)
    SELECT e.org_id, et.team, e.blueprint, et.rid FROM entity_teams et JOIN entities e ON e.rid = et.rid;
DROP TRIGGER entity_teams_insert;
DROP TRIGGER entity_teams_update;
DROP TABLE entity_teams;
ALTER TABLE entity_teams_by_org RENAME TO entity_teams;
CREATE INDEX entity_teams_rid ON entity_teams(rid);

CREATE TRIGGER entity_teams_insert AFTER INSERT ON entities BEGIN
    INSERT OR IGNORE INTO entity_teams(org_id, team, blueprint, rid)
        SELECT new.org_id, j.value, new.blueprint, new.rid FROM json_each(new.team) j WHERE j.type = 'text';
END;

CREATE TRIGGER entity_teams_update AFTER UPDATE OF team ON entities WHEN new.team IS NOT old.team BEGIN
    DELETE FROM entity_teams WHERE rid = old.rid;
    INSERT OR IGNORE INTO entity_teams(org_id, team, blueprint, rid)
        SELECT new.org_id, j.value, new.blueprint, new.rid FROM json_each(new.team) j WHERE j.type = 'text';
END;
