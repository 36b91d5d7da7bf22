-- An entity change that an automation listens to is its own pending event: its audit record
-- carries the event's depth (how many automation runs led to it), set in the same insert, and
-- the dispatch clears it in the transaction that creates the automations' runs. Before, such a
-- change also wrote an automation_events row naming its audit record (one more statement, and
-- `RETURNING` on the audit insert, in every write an automation listens to). Run and timer
-- events, which have no audit record, stay in automation_events; rows already there are still
-- dispatched. The partial index holds only the records still waiting.
-- SQLite: migrations/sqlite/0033_audit_log_events.sql.
ALTER TABLE audit_log ADD COLUMN event_depth BIGINT;
CREATE INDEX audit_log_events ON audit_log(org_id, id) WHERE event_depth IS NOT NULL;
