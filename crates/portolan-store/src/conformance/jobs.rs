//! Conformance: the durable job queue (claims, leases, retries, cancellation, shares).

use serde_json::json;

use super::{join_all, org};
use crate::{JobFilter, JobStatus, NewJob, Store};

fn new_job(kind: &str, n: i64, max_attempts: u32) -> NewJob {
    NewJob { kind: kind.into(), payload: json!({"n": n}), max_attempts }
}

const LONG: std::time::Duration = std::time::Duration::from_secs(60);

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

pub async fn job_claims_are_exclusive_under_concurrency(s: &dyn Store) {
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let mut enqueued = Vec::new();
    for i in 0..30 {
        let o = if i % 2 == 0 { &a } else { &b };
        let j = s.enqueue_job(o, &new_job("work", i, 3)).await.unwrap();
        assert_eq!((j.status, j.attempts, j.lease_owner.clone()), (JobStatus::Queued, 0, None));
        enqueued.push(j.id);
    }
    let other = s.enqueue_job(&a, &new_job("other-kind", 99, 3)).await.unwrap();
    let kinds = vec!["work".to_string()];
    let claimers: Vec<_> = (0..10)
        .map(|c| {
            let kinds = kinds.clone();
            async move {
                let node = format!("node-{c}");
                let mut got = Vec::new();
                while let Some(j) = s.claim_job(&node, &kinds, LONG).await.unwrap() {
                    assert_eq!(j.status, JobStatus::Running);
                    assert_eq!(j.lease_owner.as_deref(), Some(node.as_str()));
                    assert_eq!(j.attempts, 1);
                    assert!(j.lease_until.is_some() && j.started_at.is_some());
                    got.push(j.id);
                }
                got
            }
        })
        .collect();
    let mut claimed: Vec<String> = join_all(claimers).await.into_iter().flatten().collect();
    claimed.sort();
    let mut want = enqueued.clone();
    want.sort();
    assert_eq!(claimed, want, "every job claimed exactly once");
    assert!(s.claim_job("late", &kinds, LONG).await.unwrap().is_none(), "nothing left: leases are held");
    assert!(s.claim_job("late", &[], LONG).await.unwrap().is_none());
    let o = s.claim_job("late", &["other-kind".to_string()], LONG).await.unwrap().unwrap();
    assert_eq!(o.id, other.id, "kinds filter what a node claims");
}

pub async fn an_expired_lease_is_taken_over_and_the_old_holder_refused(s: &dyn Store) {
    let a = org(s, "a").await;
    let kinds = vec!["work".to_string()];
    let job = s.enqueue_job(&a, &new_job("work", 1, 3)).await.unwrap();
    let short = std::time::Duration::from_millis(300);
    let first = s.claim_job("node-1", &kinds, short).await.unwrap().unwrap();
    let old = first.lease().unwrap();
    assert_eq!((old.owner.as_str(), old.attempt), ("node-1", 1));
    assert!(s.claim_job("node-2", &kinds, short).await.unwrap().is_none(), "the lease is live");
    assert!(s.heartbeat_job(&old, short).await.unwrap());
    assert!(s.save_job_progress(&old, &json!({"done": 10})).await.unwrap());
    sleep_ms(600).await;
    let second = s.claim_job("node-2", &kinds, LONG).await.unwrap().expect("an expired lease is claimable");
    assert_eq!(second.id, job.id);
    assert_eq!((second.attempts, second.lease_owner.as_deref()), (2, Some("node-2")));
    assert_eq!(second.progress, Some(json!({"done": 10})), "the new holder resumes from the checkpoint");
    // The old holder has lost the lease: nothing it does counts.
    assert!(!s.heartbeat_job(&old, LONG).await.unwrap());
    assert!(!s.save_job_progress(&old, &json!({"done": 0})).await.unwrap());
    assert!(!s.complete_job(&old, &json!({"by": "node-1"})).await.unwrap());
    assert_eq!(s.fail_job(&old, "boom", None, None).await.unwrap(), None);
    assert!(!s.release_job(&old).await.unwrap());
    let new = second.lease().unwrap();
    assert!(s.save_job_progress(&new, &json!({"done": 20})).await.unwrap());
    assert!(s.complete_job(&new, &json!({"by": "node-2"})).await.unwrap());
    let done = s.get_job(&a, &job.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!((done.attempts, done.lease_owner.as_deref()), (2, Some("node-2")));
    assert_eq!((done.progress, done.result), (Some(json!({"done": 20})), Some(json!({"by": "node-2"}))));
    assert!(done.finished_at.is_some() && done.lease_until.is_none());
    // A finished job is not claimed again, and its lease is over.
    assert!(s.claim_job("node-3", &kinds, LONG).await.unwrap().is_none());
    assert!(!s.heartbeat_job(&new, LONG).await.unwrap());
}

pub async fn failed_jobs_retry_with_backoff_until_max_attempts(s: &dyn Store) {
    let a = org(s, "a").await;
    let kinds = vec!["work".to_string()];
    let job = s.enqueue_job(&a, &new_job("work", 1, 2)).await.unwrap();
    let l1 = s.claim_job("n", &kinds, LONG).await.unwrap().unwrap().lease().unwrap();
    let backoff = Some(std::time::Duration::from_millis(400));
    assert_eq!(s.fail_job(&l1, "flaky", None, backoff).await.unwrap(), Some(JobStatus::Queued));
    let queued = s.get_job(&a, &job.id).await.unwrap().unwrap();
    assert_eq!((queued.status, queued.last_error.as_deref(), queued.attempts), (JobStatus::Queued, Some("flaky"), 1));
    assert!(queued.run_at > queued.created_at, "runnable only after the backoff");
    assert!(s.claim_job("n", &kinds, LONG).await.unwrap().is_none(), "not before the backoff");
    sleep_ms(700).await;
    let j2 = s.claim_job("n", &kinds, LONG).await.unwrap().expect("claimable after the backoff");
    assert_eq!(j2.attempts, 2);
    let detail = json!({"error": "conflict"});
    let l2 = j2.lease().unwrap();
    assert_eq!(s.fail_job(&l2, "flaky again", Some(&detail), backoff).await.unwrap(), Some(JobStatus::Failed));
    let failed = s.get_job(&a, &job.id).await.unwrap().unwrap();
    assert_eq!((failed.status, failed.last_error.as_deref()), (JobStatus::Failed, Some("flaky again")));
    assert_eq!(failed.result, Some(detail));
    assert!(failed.finished_at.is_some());
    sleep_ms(500).await;
    assert!(s.claim_job("n", &kinds, LONG).await.unwrap().is_none(), "no attempts left");

    // A permanent failure (no retry) ends the job on its first attempt.
    let p = s.enqueue_job(&a, &new_job("work", 2, 5)).await.unwrap();
    let lp = s.claim_job("n", &kinds, LONG).await.unwrap().unwrap().lease().unwrap();
    assert_eq!(s.fail_job(&lp, "bad input", None, None).await.unwrap(), Some(JobStatus::Failed));
    assert_eq!(s.get_job(&a, &p.id).await.unwrap().unwrap().attempts, 1);

    // A node that dies on the last attempt: the job fails once its lease expires.
    let d = s.enqueue_job(&a, &new_job("work", 3, 1)).await.unwrap();
    s.claim_job("dies", &kinds, std::time::Duration::from_millis(200)).await.unwrap().unwrap();
    sleep_ms(500).await;
    assert!(s.claim_job("n", &kinds, LONG).await.unwrap().is_none());
    let dead = s.get_job(&a, &d.id).await.unwrap().unwrap();
    assert_eq!(dead.status, JobStatus::Failed);
    assert!(dead.last_error.as_deref().unwrap_or("").contains("expired"), "{:?}", dead.last_error);
}

pub async fn released_and_cancelled_jobs(s: &dyn Store) {
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let kinds = vec!["work".to_string()];
    let job = s.enqueue_job(&a, &new_job("work", 1, 1)).await.unwrap();
    let l1 = s.claim_job("n1", &kinds, LONG).await.unwrap().unwrap().lease().unwrap();
    assert!(s.save_job_progress(&l1, &json!({"step": 1})).await.unwrap());
    assert!(s.release_job(&l1).await.unwrap());
    let j2 = s.claim_job("n2", &kinds, LONG).await.unwrap().expect("a released job is claimable at once");
    assert_eq!((j2.attempts, j2.max_attempts), (2, 2), "the interrupted attempt is given back");
    assert_eq!(j2.progress, Some(json!({"step": 1})));
    assert!(!s.heartbeat_job(&l1, LONG).await.unwrap(), "the released lease stays dead");
    assert!(!s.cancel_job(&b, &job.id).await.unwrap(), "another organization cannot cancel it");
    assert!(s.cancel_job(&a, &job.id).await.unwrap());
    assert!(!s.cancel_job(&a, &job.id).await.unwrap(), "already finished");
    let l2 = j2.lease().unwrap();
    assert!(!s.heartbeat_job(&l2, LONG).await.unwrap(), "cancelling takes the lease away");
    assert!(!s.complete_job(&l2, &json!({})).await.unwrap());
    let c = s.get_job(&a, &job.id).await.unwrap().unwrap();
    assert_eq!(c.status, JobStatus::Cancelled);
    assert!(c.status.is_finished() && c.finished_at.is_some());
    assert!(s.claim_job("n3", &kinds, LONG).await.unwrap().is_none());
    assert!(!s.cancel_job(&a, "job_nope").await.unwrap());
}

/// A job queued with a delay is not claimed before it, and is claimed after it.
pub async fn delayed_jobs_wait_for_their_time(s: &dyn Store) {
    let a = org(s, "a").await;
    let kinds = vec!["later".to_string()];
    let job = s.enqueue_job_after(&a, &new_job("later", 1, 1), std::time::Duration::from_millis(700)).await.unwrap();
    assert!(job.run_at > job.created_at, "{} after {}", job.run_at, job.created_at);
    assert!(s.claim_job("n1", &kinds, LONG).await.unwrap().is_none(), "not before its time");
    sleep_ms(900).await;
    let claimed = s.claim_job("n1", &kinds, LONG).await.unwrap().expect("claimable once due");
    assert_eq!(claimed.id, job.id);
}

pub async fn jobs_are_tenant_scoped(s: &dyn Store) {
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    let ja = s.enqueue_job(&a, &new_job("work", 1, 3)).await.unwrap();
    let ja2 = s.enqueue_job(&a, &new_job("other", 2, 3)).await.unwrap();
    assert_eq!(ja.org, a);
    assert_eq!(ja.payload, json!({"n": 1}));
    assert_eq!(s.get_job(&a, &ja.id).await.unwrap().unwrap(), ja);
    assert!(s.get_job(&b, &ja.id).await.unwrap().is_none(), "B cannot read A's job");
    assert!(s.get_job(&a, "job_999999").await.unwrap().is_none());
    assert!(s.get_job(&a, "nonsense").await.unwrap().is_none());
    let all = JobFilter { limit: 10, ..Default::default() };
    assert!(s.list_jobs(&b, &all).await.unwrap().is_empty());
    let ids: Vec<String> = s.list_jobs(&a, &all).await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![ja2.id.clone(), ja.id.clone()], "newest first");
    let f = JobFilter { kind: Some("work".into()), ..all.clone() };
    assert_eq!(s.list_jobs(&a, &f).await.unwrap().len(), 1);
    s.claim_job("n", &["other".to_string()], LONG).await.unwrap().unwrap();
    let f = JobFilter { status: Some(JobStatus::Running), ..all.clone() };
    let running: Vec<String> = s.list_jobs(&a, &f).await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(running, vec![ja2.id]);
    let one = JobFilter { limit: 1, ..all };
    assert_eq!(s.list_jobs(&a, &one).await.unwrap().len(), 1);
}

/// Claims keep each organization within its share of the workers: per node and across the
/// cluster, counting only live leases; among organizations under their share, the one with
/// the fewest running jobs goes first, whatever the queue order.
pub async fn job_claims_keep_each_organizations_share(s: &dyn Store) {
    use crate::JobShare;
    use std::time::Duration;
    let (a, b) = (org(s, "a").await, org(s, "b").await);
    let job = || NewJob { kind: "k".into(), payload: json!({}), max_attempts: 3 };
    let mut a_jobs = Vec::new();
    for _ in 0..5 {
        a_jobs.push(s.enqueue_job(&a, &job()).await.unwrap().id);
    }
    let b1 = s.enqueue_job(&b, &job()).await.unwrap().id;
    let kinds = vec!["k".to_string()];
    let lease = Duration::from_secs(30);
    let share = JobShare { per_org: 2, per_org_on_node: 1 };
    let claim = |node: &'static str| {
        let kinds = &kinds;
        async move { s.claim_job_fairly(node, kinds, lease, &share).await.unwrap() }
    };
    let first = claim("n1").await.unwrap();
    assert_eq!((first.org.clone(), first.id.clone()), (a.clone(), a_jobs[0].clone()), "oldest first");
    // n1 holds one of A's: its next claim skips A's older jobs for B's.
    assert_eq!(claim("n1").await.map(|j| j.id), Some(b1.clone()));
    assert!(claim("n1").await.is_none(), "n1 holds its share of both");
    // Another node may run one more of A's, up to A's cluster share of 2.
    assert_eq!(claim("n2").await.map(|j| j.id), Some(a_jobs[1].clone()));
    assert!(claim("n3").await.is_none(), "A has 2 running in the cluster, B nothing queued");
    // A new job of B goes first at the next free node though A's are older: B runs fewer.
    let b2 = s.enqueue_job(&b, &job()).await.unwrap().id;
    assert_eq!(claim("n3").await.map(|j| j.id), Some(b2));
    // A job finished frees its slot.
    let lease_of = |j: &crate::Job| j.lease().unwrap();
    assert!(s.complete_job(&lease_of(&first), &json!({})).await.unwrap());
    assert_eq!(claim("n1").await.map(|j| j.id), Some(a_jobs[2].clone()));
    // Without caps the oldest due job goes, whoever runs what.
    assert_eq!(s.claim_job("n1", &kinds, lease).await.unwrap().map(|j| j.id), Some(a_jobs[3].clone()));
    // Expired leases do not count: a dead node's jobs neither hold the share nor stay lost.
    let short = Duration::from_millis(1);
    let c = org(s, "c").await;
    let c1 = s.enqueue_job(&c, &job()).await.unwrap().id;
    let c2 = s.enqueue_job(&c, &job()).await.unwrap().id;
    let one = JobShare { per_org: 1, per_org_on_node: 1 };
    let got = s.claim_job_fairly("dead", &kinds, short, &one).await.unwrap().unwrap();
    assert_eq!(got.id, c1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A and B are over a share of one; C's only running job has an expired lease, so C is
    // under it, and its expired job (the older one) is taken over first.
    let next = s.claim_job_fairly("live", &kinds, lease, &one).await.unwrap().unwrap();
    assert_eq!((next.id, next.attempts), (c1, 2));
    assert!(s.claim_job_fairly("live2", &kinds, lease, &one).await.unwrap().is_none(), "C has {c2} queued, 1 running");
}

/// A claim that would find nothing because the organization's due jobs are held back by its
/// share (another worker runs one) is answered from a read: it waits neither for SQLite's one
/// writer nor for PostgreSQL's claim lock, which `hold` takes (and keeps until its guard is
/// dropped). A claim that finds a job still does.
pub async fn claims_the_share_refuses_wait_for_no_writer<G>(s: &dyn Store, hold: impl std::future::Future<Output = G>) {
    use crate::JobShare;
    use std::time::Duration;
    let a = org(s, "a").await;
    let job = || NewJob { kind: "k".into(), payload: json!({}), max_attempts: 3 };
    let first = s.enqueue_job(&a, &job()).await.unwrap().id;
    let second = s.enqueue_job(&a, &job()).await.unwrap().id;
    let (kinds, lease) = (vec!["k".to_string()], Duration::from_secs(30));
    let share = JobShare { per_org: 2, per_org_on_node: 1 };
    let running = s.claim_job_fairly("n1", &kinds, lease, &share).await.unwrap().unwrap();
    assert_eq!(running.id, first);
    let guard = hold.await;
    let refused = tokio::time::timeout(Duration::from_secs(2), s.claim_job_fairly("n1", &kinds, lease, &share)).await;
    assert!(
        matches!(refused, Ok(Ok(None))),
        "a claim over the share must be refused without waiting for the writer: {refused:?}"
    );
    drop(guard);
    assert!(s.complete_job(&running.lease().unwrap(), &json!({})).await.unwrap());
    let next = s.claim_job_fairly("n1", &kinds, lease, &share).await.unwrap().map(|j| j.id);
    assert_eq!(next, Some(second), "the freed slot is claimed");
}

pub async fn queue_stats_count_unfinished_jobs_per_kind(s: &dyn Store) {
    assert_eq!(s.queue_stats().await.unwrap(), vec![]);
    let a = org(s, "a").await;
    let b = org(s, "b").await;
    for i in 0..3 {
        s.enqueue_job(&a, &new_job("alpha", i, 3)).await.unwrap();
    }
    s.enqueue_job(&b, &new_job("alpha", 9, 3)).await.unwrap();
    s.enqueue_job(&b, &new_job("beta", 1, 3)).await.unwrap();
    let first = s.list_jobs(&a, &JobFilter { limit: 10, ..Default::default() }).await.unwrap();
    let oldest_alpha = first.iter().map(|j| j.run_at.clone()).min().unwrap();
    // One alpha job running, one beta job finished.
    let running = s.claim_job("n1", &["alpha".to_string()], LONG).await.unwrap().unwrap();
    let beta = s.claim_job("n1", &["beta".to_string()], LONG).await.unwrap().unwrap();
    assert!(s.complete_job(&beta.lease().unwrap(), &json!({})).await.unwrap());
    let stats = s.queue_stats().await.unwrap();
    assert_eq!(stats.len(), 1, "{stats:?}");
    let alpha = &stats[0];
    assert_eq!((alpha.kind.as_str(), alpha.queued, alpha.running), ("alpha", 3, 1), "{stats:?}");
    // The oldest queued job is not the one now running.
    assert!(alpha.oldest_queued.as_deref().is_some_and(|t| t >= oldest_alpha.as_str()), "{stats:?}");
    assert_ne!(running.kind, "beta");
}
