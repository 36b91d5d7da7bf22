-- Run timeouts (issue 14): when an IN_PROGRESS run ends FAILURE if nothing ended it before
-- (the action's runTimeoutSeconds, else the organization's, else 24 hours, from its creation;
-- the server's clock, in the store's timestamp format). NULL once the run has ended, so the
-- partial index holds only the runs still waiting to time out, and each node's timer loop finds
-- the due ones with one index range. SQLite: migrations/sqlite/0021_run_timeouts.sql.
ALTER TABLE action_runs ADD COLUMN timeout_at TEXT;
CREATE INDEX action_runs_timeout ON action_runs(timeout_at) WHERE timeout_at IS NOT NULL;
