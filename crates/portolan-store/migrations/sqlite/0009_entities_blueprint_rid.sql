-- PostgreSQL's 0009 adds entities(org_id, blueprint, rid). SQLite reads a blueprint's entities
-- in rid order through entities_key already fast enough (BENCHMARKS.md): nothing to change.
SELECT 1;
