-- entity_teams keyed by (org_id, team, blueprint, rid): see migrations/sqlite/0027_entity_teams_by_org.sql.
ALTER TABLE entity_teams ADD COLUMN org_id TEXT, ADD COLUMN blueprint TEXT COLLATE "C";
UPDATE entity_teams et SET org_id = e.org_id, blueprint = e.blueprint FROM entities e WHERE e.rid = et.rid;
ALTER TABLE entity_teams ALTER COLUMN org_id SET NOT NULL, ALTER COLUMN blueprint SET NOT NULL;
ALTER TABLE entity_teams DROP CONSTRAINT entity_teams_pkey;
ALTER TABLE entity_teams ADD PRIMARY KEY (org_id, team, blueprint, rid);

CREATE OR REPLACE FUNCTION entity_teams_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM entity_teams WHERE rid = OLD.rid;
    END IF;
    INSERT INTO entity_teams(org_id, team, blueprint, rid)
        SELECT NEW.org_id, t, NEW.blueprint, NEW.rid
        FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(NEW.team) = 'array' THEN NEW.team ELSE '[]'::jsonb END) t
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
