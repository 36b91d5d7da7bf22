-- PostgreSQL's 0006 aligns the collation of entity_relations' target columns with entities'.
-- SQLite compares TEXT with BINARY everywhere already: nothing to change. (Kept so that both
-- dialects number their migrations alike.)
SELECT 1;
