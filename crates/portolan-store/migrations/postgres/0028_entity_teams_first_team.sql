-- Each entity_teams row names its entity's first team: see
-- migrations/sqlite/0028_entity_teams_first_team.sql.
ALTER TABLE entity_teams ADD COLUMN first_team TEXT COLLATE "C" NOT NULL DEFAULT '';
UPDATE entity_teams et SET first_team = m.first FROM
    (SELECT rid, MIN(team) AS first FROM entity_teams GROUP BY rid) m WHERE m.rid = et.rid;
CREATE INDEX entity_teams_first ON entity_teams(org_id, blueprint, team) WHERE team = first_team;
CREATE INDEX entity_teams_others ON entity_teams(org_id, blueprint, team, first_team) WHERE team <> first_team;

CREATE OR REPLACE FUNCTION entity_teams_sync() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    teams jsonb := CASE WHEN jsonb_typeof(NEW.team) = 'array' THEN NEW.team ELSE '[]'::jsonb END;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM entity_teams WHERE rid = OLD.rid;
    END IF;
    INSERT INTO entity_teams(org_id, team, blueprint, rid, first_team)
        SELECT NEW.org_id, t, NEW.blueprint, NEW.rid, (SELECT MIN(x) FROM jsonb_array_elements_text(teams) x)
        FROM jsonb_array_elements_text(teams) t
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
