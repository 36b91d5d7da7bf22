-- Automations (issue 14): which event each automation listens to, as columns (so an entity
-- write finds the automations of its blueprint with one index probe), and the events waiting
-- to be dispatched. An event row is written in the same transaction as the change that caused
-- it, and deleted in the transaction that creates the automations' runs for it: nothing is lost
-- when a process dies, and no event starts an automation twice.
-- SQLite: migrations/sqlite/0022_automation_events.sql.
ALTER TABLE actions ADD COLUMN trigger_event TEXT;   -- ENTITY_CREATED, …, RUN_UPDATED (automations only)
ALTER TABLE actions ADD COLUMN trigger_target TEXT;  -- its blueprintIdentifier or actionIdentifier
UPDATE actions SET
    trigger_event = data::jsonb #>> '{trigger,event,type}',
    trigger_target = COALESCE(data::jsonb #>> '{trigger,event,blueprintIdentifier}',
                              data::jsonb #>> '{trigger,event,actionIdentifier}')
WHERE data::jsonb #>> '{trigger,type}' = 'automation';
CREATE INDEX actions_by_trigger ON actions(org_id, trigger_target) WHERE trigger_event IS NOT NULL;

-- kind: ENTITY_CREATED, ENTITY_UPDATED, ENTITY_DELETED, RUN_CREATED, RUN_UPDATED,
-- TIMER_PROPERTY_EXPIRED; target: the blueprint or action; an entity change's event is built
-- from its audit record (audit_id: the row holds no copy of the diff, so a write pays a small
-- row per event); other events keep Port's event object (port-api.md §5.3) in event; depth: how
-- many automation runs led to it (a loop is cut when it grows too deep).
CREATE TABLE automation_events (
    id         BIGSERIAL PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    kind       TEXT NOT NULL,
    target     TEXT NOT NULL,
    audit_id   BIGINT,
    event      JSON,
    depth      BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX automation_events_by_org ON automation_events(org_id, id);
