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
    PRIMARY KEY (org_id, blueprint, entity, property)
);
-- Search rules and sorts on an aggregation property.
CREATE INDEX aggregation_values_by_value ON aggregation_values(org_id, blueprint, property, value);
