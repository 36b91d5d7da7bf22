-- Each entity's teams as rows (the same table as migrations/sqlite/0020_entity_teams.sql, which
-- says why). Kept by triggers; rows go with their entity.
CREATE TABLE entity_teams (
    team TEXT COLLATE "C" NOT NULL,
    rid  BIGINT NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    PRIMARY KEY (team, rid)
);
CREATE INDEX entity_teams_rid ON entity_teams(rid);

CREATE FUNCTION entity_teams_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM entity_teams WHERE rid = OLD.rid;
    END IF;
    INSERT INTO entity_teams(team, rid)
        SELECT t, NEW.rid
        FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(NEW.team) = 'array' THEN NEW.team ELSE '[]'::jsonb END) t
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER entity_teams_insert AFTER INSERT ON entities
    FOR EACH ROW EXECUTE FUNCTION entity_teams_sync();
CREATE TRIGGER entity_teams_update AFTER UPDATE OF team ON entities
    FOR EACH ROW WHEN (NEW.team IS DISTINCT FROM OLD.team) EXECUTE FUNCTION entity_teams_sync();

INSERT INTO entity_teams(team, rid)
    SELECT t, e.rid
    FROM entities e,
         jsonb_array_elements_text(CASE WHEN jsonb_typeof(e.team) = 'array' THEN e.team ELSE '[]'::jsonb END) t
    ON CONFLICT DO NOTHING;
