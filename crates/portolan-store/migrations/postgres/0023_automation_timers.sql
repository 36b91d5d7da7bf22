-- TIMER_PROPERTY_EXPIRED automations (issue 14): for each timer property some automation
-- watches, the time up to which its expiries have been turned into events. Each tick of a
-- node's timers moves it to the tick's time and records an event for every entity whose timer
-- fell in between, in one transaction: a timer fires once, also when it expired while no node
-- was running. SQLite: migrations/sqlite/0023_automation_timers.sql.
CREATE TABLE automation_timer_cursors (
    org_id        TEXT NOT NULL REFERENCES organizations(id),
    blueprint     TEXT NOT NULL,
    property      TEXT NOT NULL,
    checked_until TEXT NOT NULL,
    PRIMARY KEY (org_id, blueprint, property)
);
