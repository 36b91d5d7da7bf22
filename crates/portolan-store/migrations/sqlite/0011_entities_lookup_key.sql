-- PostgreSQL's 0011 adds an expression index for its planner (see that file); SQLite's planner
-- already probes entities_key for these lookups without statistics, so nothing changes here.
SELECT 1;
