-- The write path's entity lookups (issue 18): one unique single-column key per entity, so the
-- planner knows, without statistics, that `key = ANY($1)` matches one row per value. With the
-- lookups written against (org_id, blueprint, identifier), a never-analyzed table (a fresh
-- installation receiving its first resync) was planned as a scan of the blueprint's rows through
-- entities_blueprint_rid with `identifier` as a filter: every 20-entity request read the whole
-- blueprint, and a load at Port's batch size was quadratic. The key is length-prefixed, so no
-- two (org_id, blueprint, identifier) triples give the same text. The store computes the same
-- text (`entities::write::lookup_key`); tests/pg_plans.rs reads the plans.
CREATE UNIQUE INDEX entities_lookup_key
    ON entities ((length(org_id)::text || ':' || org_id || length(blueprint)::text || ':' || blueprint || identifier));
