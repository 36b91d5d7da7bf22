-- Relation targets compare with entities' (blueprint, identifier), which are COLLATE "C". With
-- the default collation on this side, the join `r.target_blueprint = t.blueprint AND
-- r.target_identifier = t.identifier` (walking relations backwards: relatedTo downstream,
-- matchAny, dependents) compares in "C" and could not use entity_relations_target beyond its
-- org_id column: a relatedTo search at 100,000 entities scanned every edge of the organization
-- per hop (~3 s). Same collation on both sides, and the index is used for the whole key.
ALTER TABLE entity_relations
    ALTER COLUMN target_blueprint TYPE TEXT COLLATE "C",
    ALTER COLUMN target_identifier TYPE TEXT COLLATE "C";
