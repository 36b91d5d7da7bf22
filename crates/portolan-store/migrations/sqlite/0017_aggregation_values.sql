-- Aggregation properties (port-api.md §1.7): each entity's computed value per aggregation
-- property, kept current by the `aggregation_entities` and `aggregation_recompute` jobs.
-- PostgreSQL: migrations/postgres/0017_aggregation_values.sql.

-- `value` is NULL when the function has no value for an empty set (min, max, median, the
-- average of a property).
CREATE TABLE aggregation_values (
    org_id      TEXT NOT NULL,
    blueprint   TEXT NOT NULL,
    entity      TEXT NOT NULL,
    property    TEXT NOT NULL,
    value       REAL,
    computed_at TEXT NOT NULL,
    -- A search rule reads one property's range (once per statement).
    PRIMARY KEY (org_id, blueprint, property, entity)
);
-- An entity's values: answers, recomputation, deletes, and a sort's per-row lookup (at most
-- one row per aggregation property of the blueprint). There is deliberately no index led by
-- the value: on tables never analyzed PostgreSQL chose such an index for the sort's per-row
-- lookup and filtered the whole property's range for each row (`tests/pg_plans.rs`).
CREATE INDEX aggregation_values_by_entity ON aggregation_values(org_id, blueprint, entity);
