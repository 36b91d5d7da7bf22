-- What every entity write asks of its organization's blueprints (`entities::OrgWrites`): does
-- one have aggregation properties, which deliver their changelog to a webhook. Read from the
-- JSON body, that parsed every blueprint's body at every write request, growing with their
-- number and size. Now each is a column set when the body is written (SQLite cannot add a
-- stored generated column to a table, so triggers keep them).
-- PostgreSQL: migrations/postgres/0035_blueprint_write_flags.sql (generated columns).
ALTER TABLE blueprints ADD COLUMN aggregates INTEGER NOT NULL DEFAULT 0;
ALTER TABLE blueprints ADD COLUMN changelog_webhook INTEGER NOT NULL DEFAULT 0;

UPDATE blueprints SET
    aggregates = COALESCE(json_extract(body, '$.aggregationProperties') <> '{}', 0),
    changelog_webhook = COALESCE(json_extract(body, '$.changelogDestination.type') = 'WEBHOOK'
        AND COALESCE(json_extract(body, '$.changelogDestination.agent'), 0) = 0, 0);

-- 0024's partial index on the body's destination type served the read now made from the
-- column; it parsed the body at every blueprint write. The flags' own partial indexes replace it
-- (their conditions are the store's, `changelog_webhook <> 0` and `aggregates <> 0`).
DROP INDEX blueprints_with_changelog;
CREATE INDEX blueprints_changelog_webhook ON blueprints(org_id) WHERE changelog_webhook <> 0;
CREATE INDEX blueprints_aggregating ON blueprints(org_id) WHERE aggregates <> 0;

-- Each trigger's own UPDATE also fires 0002's blueprints_version_update (AFTER UPDATE, every
-- column): a blueprint write moves the organization's version by two instead of one, which
-- the caches (that compare versions for equality) do not mind.
CREATE TRIGGER blueprints_write_flags_insert AFTER INSERT ON blueprints BEGIN
    UPDATE blueprints SET
        aggregates = COALESCE(json_extract(NEW.body, '$.aggregationProperties') <> '{}', 0),
        changelog_webhook = COALESCE(json_extract(NEW.body, '$.changelogDestination.type') = 'WEBHOOK'
            AND COALESCE(json_extract(NEW.body, '$.changelogDestination.agent'), 0) = 0, 0)
    WHERE org_id = NEW.org_id AND identifier = NEW.identifier;
END;

CREATE TRIGGER blueprints_write_flags_update AFTER UPDATE OF body ON blueprints BEGIN
    UPDATE blueprints SET
        aggregates = COALESCE(json_extract(NEW.body, '$.aggregationProperties') <> '{}', 0),
        changelog_webhook = COALESCE(json_extract(NEW.body, '$.changelogDestination.type') = 'WEBHOOK'
            AND COALESCE(json_extract(NEW.body, '$.changelogDestination.agent'), 0) = 0, 0)
    WHERE org_id = NEW.org_id AND identifier = NEW.identifier;
END;
