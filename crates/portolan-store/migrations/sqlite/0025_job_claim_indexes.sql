-- Job claims and enqueue_once independent of the jobs table's history (finished jobs are kept).
-- Before: the claim grouped live leases by scanning every job through jobs_org and sorted every
-- runnable job, and enqueue_once scanned an organization's due jobs, so each claim cost time in
-- proportion to all jobs ever run and each entity write with automations to the queue's length.
-- Partial indexes hold only unfinished rows; they replace jobs_runnable(status, run_at), which
-- planners without statistics preferred to them and which walked every queued job of every
-- organization for one organization's oldest:
--   jobs_queued:      an organization's oldest queued job (the claim walks organizations with
--                     queued jobs, one index step each, and takes each one's oldest);
--   jobs_queued_kind: "is a job of this kind queued and due?" (enqueue_once);
--   jobs_running:     live leases per organization (the claim's fair share).
CREATE INDEX jobs_queued ON jobs(org_id, run_at, id) WHERE status = 'queued';
CREATE INDEX jobs_queued_kind ON jobs(kind, org_id, run_at) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs(org_id, lease_until) WHERE status = 'running';
DROP INDEX jobs_runnable;
