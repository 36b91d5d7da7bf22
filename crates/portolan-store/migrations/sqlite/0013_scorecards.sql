-- Scorecards (port-api.md §6): definitions per blueprint, each entity's current result per
-- scorecard, and the history of its level. PostgreSQL: migrations/postgres/0013_scorecards.sql.

-- A scorecard as Port returns it, without the server's keys (id and meta are columns).
CREATE TABLE scorecards (
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    blueprint  TEXT NOT NULL,
    identifier TEXT NOT NULL,
    id         TEXT NOT NULL UNIQUE,         -- scorecard_<random>
    data       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (org_id, blueprint, identifier)
);

-- The current result of a scorecard for an entity it evaluates (entities outside its filter
-- have none): the level reached and `rules`, [{identifier, status: SUCCESS|FAILURE, level}].
CREATE TABLE scorecard_results (
    org_id     TEXT NOT NULL,
    blueprint  TEXT NOT NULL,
    entity     TEXT NOT NULL,
    scorecard  TEXT NOT NULL,
    level      TEXT NOT NULL,
    rules      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, blueprint, entity, scorecard)
);
CREATE INDEX scorecard_results_by_scorecard ON scorecard_results(org_id, blueprint, scorecard, entity);

-- One row each time an entity's level in a scorecard changes (its first result included).
CREATE TABLE scorecard_level_history (
    id        INTEGER PRIMARY KEY,
    org_id    TEXT NOT NULL,
    blueprint TEXT NOT NULL,
    entity    TEXT NOT NULL,
    scorecard TEXT NOT NULL,
    level     TEXT NOT NULL,
    at        TEXT NOT NULL
);
CREATE INDEX scorecard_level_history_by_entity
    ON scorecard_level_history(org_id, blueprint, entity, scorecard, id);
CREATE INDEX scorecard_level_history_by_scorecard ON scorecard_level_history(org_id, blueprint, scorecard);
