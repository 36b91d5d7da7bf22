//! Background jobs: the kinds this server knows, and the workers that run them.
//!
//! A job is a row of the store's durable job table (see `portolan_store::Job`), so it survives
//! the request that created it and the node that started it. Each node runs
//! [`ApiConfig::job_workers`](crate::ApiConfig) worker tasks; a worker claims a runnable job of a
//! known kind (the store hands each job to exactly one claimer), runs its handler while a
//! heartbeat task keeps the lease alive, and records the outcome:
//!
//! - `Ok(result)`: succeeded.
//! - [`JobError::Retry`] (a database error): back to the queue with exponential backoff, until
//!   `max_attempts` claims have been made; then failed.
//! - [`JobError::Fail`] (the request cannot succeed, e.g. a conflict): failed at once, with the
//!   HTTP status and error code in the job's `result` so a waiting request can answer with them.
//! - Lease lost (a heartbeat or checkpoint was refused because another node took the job over
//!   after this node stalled past the lease, or the job was cancelled): the handler is dropped
//!   at once and nothing more is written.
//! - Shutdown: the handler is dropped (its current store transaction rolls back) and the job is
//!   *released*: back in the queue, runnable at once by any node, the interrupted attempt not
//!   counted. A node that dies without shutting down (SIGKILL, power loss) leaves its jobs
//!   leased; another node takes them over once the lease expires.
//!
//! Handlers must be idempotent from their last checkpoint: a job taken over resumes from the
//! `progress` its previous holder saved ([`JobCtx::checkpoint`]), and work done after that
//! checkpoint may be repeated.
//!
//! Workers are woken at once when this node enqueues a job ([`JobRuntime::wake`]), and each
//! successful claim wakes one more (there may be more to claim); otherwise they poll every
//! [`ApiConfig::job_poll`](crate::ApiConfig) for jobs enqueued by other nodes. A worker that
//! ends a job claims again at once.
//! Deadlines (run timeouts) are not jobs but rows the [`timers`] task of the same nodes polls.

pub mod action_run;
pub mod aggregation;
pub mod approval;
pub mod automation;
pub mod changelog;
pub mod delete_all;
pub mod git;
pub mod scorecard;
pub mod timers;
pub mod webhook;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use portolan_store::{Job, JobStatus, Lease, NewJob, OrgId, StoreError};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// Why a job handler stopped without a result.
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// A transient failure (database): try again later, while attempts are left.
    Retry(String),
    /// The job cannot succeed; fail it now with this HTTP status, error code and message
    /// (recorded in the job's `result` as `statusCode`, `error`, `message`).
    Fail { status: u16, code: ErrorCode, message: String },
    /// This node no longer holds the job's lease: stop, write nothing more.
    LeaseLost,
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(msg) => JobError::Retry(format!("database error: {msg}")),
            other => JobError::from(ApiError::from(other)),
        }
    }
}

impl From<ApiError> for JobError {
    fn from(e: ApiError) -> Self {
        if e.status.is_server_error() {
            return JobError::Retry(e.message);
        }
        JobError::Fail { status: e.status.as_u16(), code: e.code, message: e.message }
    }
}

impl JobError {
    /// Fail the job now with `code` (answered with the code's status).
    pub fn fail(code: ErrorCode, message: impl Into<String>) -> Self {
        JobError::Fail { status: code.status().as_u16(), code, message: message.into() }
    }
}

/// The run a run job's payload names (`{"runId": …}`); `None` when it no longer exists.
pub(crate) async fn payload_run(ctx: &JobCtx) -> Result<Option<portolan_store::Run>, JobError> {
    let Some(run_id) = ctx.job.payload["runId"].as_str() else {
        return Err(JobError::fail(ErrorCode::Internal, "bad payload: no runId"));
    };
    Ok(ctx.state.store.get_run(&ctx.job.org, run_id).await?)
}

/// What a handler gets: the job as claimed (payload, last checkpoint), the application state,
/// and its lease.
pub struct JobCtx {
    pub state: AppState,
    pub job: Job,
    lease: Lease,
}

impl JobCtx {
    /// Save a checkpoint; a job taken over by another node resumes from the last one saved.
    /// `Err(LeaseLost)` when this node no longer holds the job: the handler must stop.
    pub async fn checkpoint(&self, progress: Value) -> Result<(), JobError> {
        match self.state.store.save_job_progress(&self.lease, &progress).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(JobError::LeaseLost),
            Err(e) => Err(e.into()),
        }
    }
}

pub type JobFuture = Pin<Box<dyn Future<Output = Result<Value, JobError>> + Send>>;
/// A job kind's handler.
pub type JobHandler = Arc<dyn Fn(JobCtx) -> JobFuture + Send + Sync>;

/// The job kinds this node can run, and the signals between requests and workers.
pub struct JobRuntime {
    handlers: HashMap<String, JobHandler>,
    /// Wakes one idle worker of this node (a job was enqueued here, or a worker claimed one and
    /// more may be claimable).
    wake: Notify,
    /// Signalled whenever a worker of this node finishes with a job (requests waiting for one).
    finished: Notify,
    /// Entity write requests in flight on this node, which background work yields to.
    pub(crate) foreground: Foreground,
}

/// Entity write requests of the API in flight on this node (single and bulk writes; not the
/// writes of jobs, such as webhook deliveries). A job worker about to claim a job, and the automation
/// dispatch before each round, wait while there are any, for at most a bounded time
/// ([`crate::state::ApiConfig::job_yield`]): like PostgreSQL's vacuum cost delay, background
/// work takes what the requests leave and is slowed, never starved, under a stream of writes.
/// BENCHMARKS.md, "Background work yields to entity writes".
#[derive(Default)]
pub(crate) struct Foreground {
    in_flight: std::sync::atomic::AtomicUsize,
    idle: Notify,
}

/// A foreground request, counted while it lives.
pub(crate) struct ForegroundGuard<'a>(&'a Foreground);

impl Drop for ForegroundGuard<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Foreground {
    pub(crate) fn enter(&self) -> ForegroundGuard<'_> {
        self.in_flight.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        ForegroundGuard(self)
    }

    /// Returns once no foreground request is in flight, or after `most`.
    pub(crate) async fn yield_to(&self, most: Duration) {
        if most.is_zero() {
            return;
        }
        let deadline = tokio::time::Instant::now() + most;
        loop {
            let idle = self.idle.notified();
            if self.in_flight.load(std::sync::atomic::Ordering::Acquire) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return;
            }
        }
    }
}

impl JobRuntime {
    /// A runtime with no kinds registered.
    pub fn new() -> Self {
        JobRuntime {
            handlers: HashMap::new(),
            wake: Notify::new(),
            finished: Notify::new(),
            foreground: Foreground::default(),
        }
    }

    /// Every kind Portolan ships.
    pub fn with_builtin_kinds() -> Self {
        let mut rt = Self::new();
        rt.register(delete_all::KIND, Arc::new(|ctx| Box::pin(delete_all::run(ctx))));
        rt.register(webhook::KIND, Arc::new(|ctx| Box::pin(webhook::run(ctx))));
        rt.register(action_run::KIND, Arc::new(|ctx| Box::pin(action_run::run(ctx))));
        rt.register(scorecard::RECOMPUTE_KIND, Arc::new(|ctx| Box::pin(scorecard::recompute(ctx))));
        rt.register(scorecard::ENTITIES_KIND, Arc::new(|ctx| Box::pin(scorecard::entities(ctx))));
        rt.register(aggregation::RECOMPUTE_KIND, Arc::new(|ctx| Box::pin(aggregation::recompute(ctx))));
        rt.register(aggregation::ENTITIES_KIND, Arc::new(|ctx| Box::pin(aggregation::entities(ctx))));
        rt.register(automation::KIND, Arc::new(|ctx| Box::pin(automation::run(ctx))));
        rt.register(approval::KIND, Arc::new(|ctx| Box::pin(approval::run(ctx))));
        rt.register(changelog::KIND, Arc::new(|ctx| Box::pin(changelog::run(ctx))));
        rt.register(git::FOLLOW_KIND, Arc::new(|ctx| Box::pin(git::follow(ctx))));
        rt
    }

    pub fn register(&mut self, kind: &str, handler: JobHandler) {
        self.handlers.insert(kind.to_string(), handler);
    }

    /// The registered kinds (what this node's workers claim).
    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.handlers.keys().cloned().collect();
        k.sort();
        k
    }
}

impl Default for JobRuntime {
    fn default() -> Self {
        Self::new()
    }
}

/// Wake an idle worker of this node (a job was enqueued here, e.g. in a store transaction
/// with other rows).
pub fn wake_workers(state: &AppState) {
    state.jobs.wake.notify_one();
}

/// Write entities, then wake an idle worker if a write transaction gave a job work meanwhile
/// ([`portolan_store::WriteGroupUse::queued_jobs`] moved): this one (its scorecards,
/// aggregations, automation events or changelog) or a concurrent one. A write that gave no job
/// work wakes no worker (a woken worker reads the queue: a statement per write request, for
/// nothing, under a bulk load).
pub async fn write_entities_and_wake(
    state: &AppState,
    org: &OrgId,
    writes: Vec<portolan_store::EntityWrite>,
    ctx: &portolan_store::AuditCtx,
) -> portolan_store::Result<Vec<Result<portolan_store::Written, portolan_store::WriteRejection>>> {
    let before = state.store.write_group_use().queued_jobs;
    let out = state.store.write_entities(org, writes, ctx).await;
    if state.store.write_group_use().queued_jobs != before {
        wake_workers(state);
    }
    out
}

/// Queue a job for `org` and wake a worker of this node.
pub async fn enqueue(state: &AppState, org: &OrgId, kind: &str, payload: Value) -> ApiResult<Job> {
    let job = state.store.enqueue_job(org, &NewJob { kind: kind.to_string(), payload, max_attempts: 5 }).await?;
    state.jobs.wake.notify_one();
    Ok(job)
}

/// Wait up to `timeout` for a job of `org` to finish (run by this node or any other); the job
/// as last seen.
pub async fn wait_for(state: &AppState, org: &OrgId, id: &str, timeout: Duration) -> ApiResult<Job> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Registered before reading, so a finish in between is not missed.
        let finished = state.jobs.finished.notified();
        tokio::pin!(finished);
        finished.as_mut().enable();
        let job = state
            .store
            .get_job(org, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("job {id:?} was not found")))?;
        let now = tokio::time::Instant::now();
        if job.status.is_finished() || now >= deadline {
            return Ok(job);
        }
        // Jobs finished by other nodes are noticed by polling.
        let nap = (deadline - now).min(Duration::from_millis(100));
        tokio::select! {
            _ = finished => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

/// The error a failed job recorded (status, code, message), as the request would have answered.
/// A code this server does not know (or none, after retries ran out) reads back as
/// `internal_error`, with the recorded status if there is one.
pub fn job_failure(job: &Job) -> ApiError {
    let detail = job.result.as_ref();
    let code = detail
        .and_then(|d| d.get("error"))
        .and_then(Value::as_str)
        .and_then(|c| c.parse::<ErrorCode>().ok())
        .unwrap_or(ErrorCode::Internal);
    let status = detail
        .and_then(|d| d.get("statusCode"))
        .and_then(Value::as_u64)
        .and_then(|s| axum::http::StatusCode::from_u16(u16::try_from(s).ok()?).ok())
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let message = job.last_error.clone().unwrap_or_else(|| format!("job {} failed", job.id));
    ApiError::with_status(status, code, message)
}

/// Retry delay after failed attempt `attempt` (1-based): 1 s, 2 s, 4 s, … up to 1 minute.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// This node's running workers.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Start `config.job_workers` workers and, with them, the [`timers`] (none of either when
    /// it is 0: such a node leaves background work to the others).
    pub fn start(state: &AppState) -> Workers {
        let (stop, rx) = watch::channel(false);
        let mut tasks: Vec<JoinHandle<()>> =
            (0..state.config.job_workers).map(|i| tokio::spawn(worker(state.clone(), i, rx.clone()))).collect();
        if state.config.job_workers > 0 {
            tasks.push(tokio::spawn(timers::run(state.clone(), rx)));
        }
        Workers { stop, tasks }
    }

    /// Stop the workers: running jobs are released to the queue. Returns when all have stopped.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Resolves once the watched flag is true (never, if its sender is gone while false).
async fn until_true(mut rx: watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

async fn worker(state: AppState, index: usize, stop: watch::Receiver<bool>) {
    let kinds = state.jobs.kinds();
    let node = state.config.node_id.clone();
    let share = state.config.job_share();
    tracing::debug!(node = %node, worker = index, "job worker started");
    // This worker has just ended a job: its claim is the one that takes the slot the job freed.
    let mut ended = false;
    loop {
        if *stop.borrow() {
            break;
        }
        // Background work takes what the entity write requests leave (ApiConfig::job_yield).
        state.jobs.foreground.yield_to(state.config.job_yield).await;
        match state.store.claim_job_fairly(&node, &kinds, state.config.job_lease, &share).await {
            Ok(Some(job)) => {
                // More may be claimable: an idle worker looks (a read, when nothing is).
                state.jobs.wake.notify_one();
                run_one(&state, job, stop.clone()).await;
                ended = true;
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not claim a job");
                if ended {
                    // The freed slot is not left to the next poll: another worker tries once.
                    state.jobs.wake.notify_one();
                }
            }
        }
        ended = false;
        tokio::select! {
            _ = state.jobs.wake.notified() => {}
            _ = tokio::time::sleep(state.config.job_poll) => {}
            _ = until_true(stop.clone()) => break,
        }
    }
    tracing::debug!(node = %node, worker = index, "job worker stopped");
}

enum Outcome {
    Done(Result<Value, JobError>),
    Lost,
    Stopped,
}

async fn run_one(state: &AppState, job: Job, stop: watch::Receiver<bool>) {
    use tracing::Instrument;
    let span = tracing::info_span!("job", job.id = %job.id, job.kind = %job.kind, attempt = job.attempts);
    run_claimed(state, job, stop).instrument(span).await;
    state.jobs.finished.notify_waiters();
    // The slot this job held is free again, and this worker claims next, at once: waking an
    // idle worker here too would only race it to the same job (a lost claim is a statement on
    // SQLite's one writer). Each successful claim wakes one idle worker instead.
}

async fn run_claimed(state: &AppState, job: Job, stop: watch::Receiver<bool>) {
    let Some(lease) = job.lease() else { return };
    let Some(handler) = state.jobs.handlers.get(&job.kind).cloned() else { return };
    tracing::info!(org.id = %job.org.0, "job started");
    let (lost_tx, lost_rx) = watch::channel(false);
    let heartbeat = {
        let (store, lease, every, extend) =
            (state.store.clone(), lease.clone(), state.config.job_lease / 3, state.config.job_lease);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match store.heartbeat_job(&lease, extend).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = lost_tx.send(true);
                        return;
                    }
                    // The lease may still be valid; the next beat tells.
                    Err(e) => tracing::warn!(error = %e, job.id = %lease.job_id, "job heartbeat failed"),
                }
            }
        })
    };
    let ctx = JobCtx { state: state.clone(), job: job.clone(), lease: lease.clone() };
    let outcome = tokio::select! {
        r = handler(ctx) => Outcome::Done(r),
        _ = until_true(lost_rx) => Outcome::Lost,
        _ = until_true(stop) => Outcome::Stopped,
    };
    heartbeat.abort();
    let store = &state.store;
    let recorded = match outcome {
        Outcome::Done(Ok(result)) => store.complete_job(&lease, &result).await.map(|ok| ok.then_some("succeeded")),
        Outcome::Done(Err(JobError::Retry(msg))) => {
            tracing::warn!(error = %msg, "job attempt failed");
            store.fail_job(&lease, &msg, None, Some(backoff(lease.attempt))).await.map(|s| s.map(JobStatus::as_str))
        }
        Outcome::Done(Err(JobError::Fail { status, code, message })) => {
            let detail = json!({"error": code, "statusCode": status, "message": message});
            store.fail_job(&lease, &message, Some(&detail), None).await.map(|s| s.map(JobStatus::as_str))
        }
        Outcome::Done(Err(JobError::LeaseLost)) | Outcome::Lost => Ok(None),
        Outcome::Stopped => store.release_job(&lease).await.map(|ok| ok.then_some("released")),
    };
    match recorded {
        Ok(Some(status)) => tracing::info!(status, "job attempt ended"),
        Ok(None) => tracing::warn!("job lease lost (taken over by another node or cancelled); stopped"),
        Err(e) => {
            tracing::error!(error = %e, "could not record a job's outcome; it is retried after its lease expires")
        }
    }
}

/// The job as `GET /v1/jobs/{id}` shows it.
pub fn job_json(j: &Job) -> Value {
    json!({
        "id": j.id,
        "kind": j.kind,
        "status": j.status.as_str(),
        "payload": j.payload,
        "progress": j.progress,
        "attempts": j.attempts,
        "maxAttempts": j.max_attempts,
        "node": j.lease_owner,
        "leaseUntil": j.lease_until,
        "runAt": j.run_at,
        "lastError": j.last_error,
        "result": j.result,
        "createdAt": j.created_at,
        "updatedAt": j.updated_at,
        "startedAt": j.started_at,
        "finishedAt": j.finished_at,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::ApiConfig;
    use crate::auth::{hash_secret, new_credentials};
    use portolan_store::{SqliteStore, Store};

    struct App {
        base: String,
        http: reqwest::Client,
        token: String,
        state: AppState,
    }

    impl App {
        async fn req(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut rb = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
            if let Some(b) = body {
                rb = rb.json(&b);
            }
            let r = rb.send().await.unwrap();
            (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
        }
        async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
            self.req(&self.token, method, path, body).await
        }
    }

    async fn org_token(store: &dyn Store, http: &reqwest::Client, base: &str, name: &str) -> String {
        let org = store.create_org(&OrgId(format!("org_{name}")), name, "2024-01-01T00:00:00.000Z").await.unwrap();
        let (id, secret) = new_credentials();
        store.add_credential(&org.id, &id, &hash_secret(&secret), "t", "2024-01-01T00:00:00.000Z").await.unwrap();
        let r = http
            .post(format!("{base}/v1/auth/access_token"))
            .json(&json!({"clientId": id, "clientSecret": secret}))
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["accessToken"].as_str().unwrap().to_string()
    }

    /// A server (one node) on `store`.
    async fn serve_on(store: Arc<dyn Store>, config: ApiConfig, org: &str) -> App {
        let state = AppState::new(store.clone(), config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let s = state.clone();
        tokio::spawn(async move { crate::serve(listener, s, std::future::pending()).await });
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let token = org_token(store.as_ref(), &http, &base, org).await;
        App { base, http, token, state }
    }

    async fn with_packages(app: &App, n: usize) {
        let (s, b) = app.call("POST", "/v1/blueprints", Some(json!({"identifier": "pkg", "title": "Package"}))).await;
        assert_eq!(s, 201, "{b}");
        let entities: Vec<Value> = (0..n).map(|i| json!({"identifier": format!("p{i}")})).collect();
        let (s, b) = app.call("POST", "/v1/blueprints/pkg/entities/bulk", Some(json!({"entities": entities}))).await;
        assert_eq!(s, 200, "{b}");
    }

    /// Background work waits while entity write requests are in flight, until the last ends
    /// or its bound runs out; with no bound, or none in flight, it does not wait.
    #[tokio::test]
    async fn background_work_yields_to_writes_in_flight_for_a_bounded_time() {
        use std::time::Instant;
        let fg = Arc::new(Foreground::default());
        let t = Instant::now();
        fg.yield_to(Duration::from_secs(10)).await;
        assert!(t.elapsed() < Duration::from_secs(1), "nothing in flight: no wait");

        // Two writes in flight; the yield ends when the second of them ends, not the first.
        let (a, b) = (fg.clone(), fg.clone());
        let waiting = {
            let fg = fg.clone();
            let (tx_a, rx_a) = tokio::sync::oneshot::channel::<()>();
            let (tx_b, rx_b) = tokio::sync::oneshot::channel::<()>();
            let (ga, gb) = (tokio::sync::oneshot::channel::<()>(), tokio::sync::oneshot::channel::<()>());
            let held_a = tokio::spawn(async move {
                let _g = a.enter();
                let _ = ga.0.send(());
                let _ = rx_a.await;
            });
            let held_b = tokio::spawn(async move {
                let _g = b.enter();
                let _ = gb.0.send(());
                let _ = rx_b.await;
            });
            ga.1.await.unwrap();
            gb.1.await.unwrap();
            let t = Instant::now();
            let yielding = tokio::spawn(async move { fg.yield_to(Duration::from_secs(10)).await });
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx_a.send(()).unwrap();
            held_a.await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(!yielding.is_finished(), "one write still in flight: still waiting");
            tx_b.send(()).unwrap();
            held_b.await.unwrap();
            yielding.await.unwrap();
            t.elapsed()
        };
        assert!(waiting >= Duration::from_millis(190) && waiting < Duration::from_secs(5), "{waiting:?}");

        // A write that stays in flight: the wait ends at its bound; a zero bound does not wait.
        let _g = fg.enter();
        let t = Instant::now();
        fg.yield_to(Duration::from_millis(200)).await;
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(190) && waited < Duration::from_secs(5), "{waited:?}");
        let t = Instant::now();
        fg.yield_to(Duration::ZERO).await;
        assert!(t.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn delete_all_runs_as_a_chunked_job_shown_at_v1_jobs() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
        let config = ApiConfig { delete_chunk_size: 2, node_id: "node-a".into(), ..ApiConfig::default() };
        let app = serve_on(store.clone(), config, "a").await;
        with_packages(&app, 7).await;
        let (s, b) = app.call("DELETE", "/v1/blueprints/pkg/all-entities?run_id=r1", None).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!((&b["ok"], &b["jobStatus"]), (&json!(true), &json!("succeeded")));
        let id = b["jobId"].as_str().unwrap().to_string();
        let (s, b) = app.call("GET", "/v1/blueprints/pkg/entities-count", None).await;
        assert_eq!((s, &b["count"]), (200, &json!(0)));
        let (s, b) = app.call("GET", &format!("/v1/jobs/{id}"), None).await;
        assert_eq!(s, 200, "{b}");
        let job = &b["job"];
        assert_eq!(
            (&job["status"], &job["kind"], &job["node"]),
            (&json!("succeeded"), &json!(delete_all::KIND), &json!("node-a"))
        );
        assert_eq!(
            job["progress"],
            json!({"deleted": 7, "dependentsDeleted": 0, "chunks": 4}),
            "7 entities, chunks of 2"
        );
        assert_eq!((&job["attempts"], &job["result"]["deleted"]), (&json!(1), &json!(7)));
        assert_eq!(job["payload"]["runId"], json!("r1"));
        assert!(job["finishedAt"].is_string() && job["leaseUntil"].is_null());
        let (s, b) = app.call("GET", "/v1/jobs?status=succeeded&kind=delete_all_entities", None).await;
        assert_eq!((s, b["jobs"].as_array().unwrap().len()), (200, 1));
        let (s, b) = app.call("GET", "/v1/jobs?status=running", None).await;
        assert_eq!((s, b["jobs"].as_array().unwrap().len()), (200, 0));
        let (s, b) = app.call("GET", "/v1/jobs?status=sleeping", None).await;
        assert_eq!((s, &b["ok"]), (422, &json!(false)), "{b}");
        let (s, _) = app.call("GET", "/v1/jobs?limit=0", None).await;
        assert_eq!(s, 422);
        // Another organization sees none of it.
        let other = org_token(store.as_ref(), &app.http, &app.base, "b").await;
        let (s, b) = app.req(&other, "GET", &format!("/v1/jobs/{id}"), None).await;
        assert_eq!((s, &b["error"]), (404, &json!("not_found")));
        let (_, b) = app.req(&other, "GET", "/v1/jobs", None).await;
        assert_eq!(b["jobs"], json!([]));
        let (_, doc) = app.call("GET", "/openapi.json", None).await;
        assert!(doc["paths"]["/v1/jobs/{id}"]["get"].is_object() && doc["paths"]["/v1/jobs"]["get"].is_object());
    }

    #[tokio::test]
    async fn a_node_without_workers_leaves_its_jobs_to_other_nodes() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
        let idle = ApiConfig { job_workers: 0, job_wait: Duration::from_millis(300), ..ApiConfig::default() };
        let app = serve_on(store.clone(), idle, "a").await;
        with_packages(&app, 5).await;
        let (s, b) = app.call("DELETE", "/v1/blueprints/pkg/all-entities?delete_blueprint=true", None).await;
        assert_eq!((s, &b["ok"], &b["jobStatus"]), (200, &json!(true), &json!("queued")), "{b}");
        let id = b["jobId"].as_str().unwrap().to_string();
        let (_, b) = app.call("GET", "/v1/blueprints/pkg/entities-count", None).await;
        assert_eq!(b["count"], json!(5), "nothing ran here");
        // Another node with workers picks it up from the table.
        let busy = ApiConfig { node_id: "node-b".into(), job_poll: Duration::from_millis(50), ..ApiConfig::default() };
        let other = AppState::new(store.clone(), busy).await.unwrap();
        let workers = Workers::start(&other);
        let org = OrgId("org_a".into());
        let job = wait_for(&app.state, &org, &id, Duration::from_secs(10)).await.unwrap();
        assert_eq!((job.status, job.lease_owner.as_deref()), (JobStatus::Succeeded, Some("node-b")));
        let (s, _) = app.call("GET", "/v1/blueprints/pkg", None).await;
        assert_eq!(s, 404, "the blueprint went too, and this node's cache noticed");
        workers.shutdown().await;
    }

    #[tokio::test]
    async fn delete_all_is_refused_when_other_blueprints_require_the_entities() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
        let app = serve_on(store.clone(), ApiConfig { delete_chunk_size: 1, ..ApiConfig::default() }, "a").await;
        let env =
            json!({"identifier": "env", "title": "Env", "relations": {"parent": {"target": "env", "required": true}}});
        let deploy = json!({"identifier": "deploy", "title": "Deploy", "relations": {"env": {"target": "env", "required": true}}});
        for bp in [env, deploy] {
            assert_eq!(app.call("POST", "/v1/blueprints", Some(bp)).await.0, 201);
        }
        // A chain of required relations inside the blueprint, deleted one entity per chunk.
        let es = json!({"entities": [{"identifier": "e0", "relations": {"parent": "e0"}},
            {"identifier": "e1", "relations": {"parent": "e0"}}, {"identifier": "e2", "relations": {"parent": "e1"}}]});
        assert_eq!(app.call("POST", "/v1/blueprints/env/entities/bulk", Some(es)).await.0, 200);
        let d = json!({"identifier": "d1", "relations": {"env": "e2"}});
        assert_eq!(app.call("POST", "/v1/blueprints/deploy/entities", Some(d)).await.0, 201);
        let (s, b) = app.call("DELETE", "/v1/blueprints/env/all-entities", None).await;
        assert_eq!((s, &b["error"]), (409, &json!("conflict")), "{b}");
        assert!(b["message"].as_str().unwrap().contains("deploy"), "{b}");
        let (_, b) = app.call("GET", "/v1/blueprints/env/entities-count", None).await;
        assert_eq!(b["count"], json!(3), "nothing deleted");
        let (_, b) = app.call("GET", "/v1/jobs?status=failed", None).await;
        assert_eq!(b["jobs"][0]["attempts"], json!(1), "a conflict is not retried: {b}");
        assert_eq!(b["jobs"][0]["result"]["statusCode"], json!(409));
        let (s, b) = app.call("DELETE", "/v1/blueprints/env/all-entities?delete_dependents=true", None).await;
        assert_eq!(s, 200, "{b}");
        let id = b["jobId"].as_str().unwrap();
        let (_, b) = app.call("GET", &format!("/v1/jobs/{id}"), None).await;
        assert_eq!(
            (&b["job"]["progress"]["deleted"], &b["job"]["progress"]["dependentsDeleted"]),
            (&json!(3), &json!(1))
        );
        for bp in ["env", "deploy"] {
            let (_, b) = app.call("GET", &format!("/v1/blueprints/{bp}/entities-count"), None).await;
            assert_eq!(b["count"], json!(0));
        }
    }

    /// Job kinds for the worker tests: `flaky` fails its first attempt, `doomed` cannot succeed,
    /// `stuck` checkpoints and never ends, `cancelled` loses its lease to a cancel.
    fn test_kinds() -> JobRuntime {
        let mut rt = JobRuntime::new();
        rt.register(
            "flaky",
            Arc::new(|ctx: JobCtx| {
                Box::pin(async move {
                    if ctx.job.attempts == 1 {
                        return Err(JobError::Retry("transient".into()));
                    }
                    Ok(json!({"attempt": ctx.job.attempts}))
                })
            }),
        );
        rt.register(
            "doomed",
            Arc::new(|_ctx: JobCtx| {
                Box::pin(async move {
                    Err(JobError::Fail { status: 409, code: ErrorCode::Conflict, message: "cannot".into() })
                })
            }),
        );
        rt.register(
            "stuck",
            Arc::new(|ctx: JobCtx| {
                Box::pin(async move {
                    ctx.checkpoint(json!({"step": 1})).await?;
                    std::future::pending().await
                })
            }),
        );
        rt.register(
            "cancelled",
            Arc::new(|ctx: JobCtx| {
                Box::pin(async move {
                    ctx.state.store.cancel_job(&ctx.job.org, &ctx.job.id).await?;
                    ctx.checkpoint(json!({"after": "cancel"})).await?;
                    Ok(json!("should not be recorded"))
                })
            }),
        );
        rt
    }

    #[tokio::test]
    async fn workers_retry_fail_release_and_stop_on_a_lost_lease() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
        let org = store.create_org(&OrgId("org_a".into()), "a", "2024-01-01T00:00:00.000Z").await.unwrap().id;
        let config = ApiConfig {
            node_id: "n".into(),
            job_poll: Duration::from_millis(50),
            job_lease: Duration::from_secs(3),
            // One organization here: let it use both workers (the stuck job holds one).
            job_workers_per_org: 2,
            ..ApiConfig::default()
        };
        let mut state = AppState::new(store.clone(), config).await.unwrap();
        state.jobs = Arc::new(test_kinds());
        let workers = Workers::start(&state);
        let flaky = enqueue(&state, &org, "flaky", json!({})).await.unwrap();
        let doomed = enqueue(&state, &org, "doomed", json!({})).await.unwrap();
        let cancelled = enqueue(&state, &org, "cancelled", json!({})).await.unwrap();
        let stuck = enqueue(&state, &org, "stuck", json!({})).await.unwrap();

        let j = wait_for(&state, &org, &doomed.id, Duration::from_secs(5)).await.unwrap();
        assert_eq!((j.status, j.attempts, j.last_error.as_deref()), (JobStatus::Failed, 1, Some("cannot")));
        let e = job_failure(&j);
        assert_eq!((e.status.as_u16(), e.code, e.message.as_str()), (409, ErrorCode::Conflict, "cannot"));

        let j = wait_for(&state, &org, &flaky.id, Duration::from_secs(8)).await.unwrap();
        assert_eq!((j.status, j.attempts), (JobStatus::Succeeded, 2), "retried after the backoff: {j:?}");
        assert_eq!((j.last_error.as_deref(), j.result), (Some("transient"), Some(json!({"attempt": 2}))));

        let j = wait_for(&state, &org, &cancelled.id, Duration::from_secs(5)).await.unwrap();
        assert_eq!(j.status, JobStatus::Cancelled);
        assert_eq!((j.progress, j.result), (None, None), "nothing written without the lease");

        // Shutdown: the stuck job goes back to the queue with its checkpoint.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while store.get_job(&org, &stuck.id).await.unwrap().unwrap().progress.is_none() {
            assert!(tokio::time::Instant::now() < deadline, "the stuck job never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        workers.shutdown().await;
        let j = store.get_job(&org, &stuck.id).await.unwrap().unwrap();
        assert_eq!((j.status, j.attempts, j.max_attempts), (JobStatus::Queued, 1, 6), "released, attempt given back");
        assert_eq!(j.progress, Some(json!({"step": 1})));
        let again = store.claim_job("other", &["stuck".to_string()], Duration::from_secs(1)).await.unwrap();
        assert_eq!(again.map(|j| j.id), Some(stuck.id), "runnable at once by any node");
    }

    /// A job that fails with any client-error code reads back with that code and status, as the
    /// request waiting for it answers (5xx codes are retried instead, like database errors).
    #[tokio::test]
    async fn a_failed_job_keeps_its_error_code() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
        let org = store.create_org(&OrgId("org_a".into()), "a", "2024-01-01T00:00:00.000Z").await.unwrap().id;
        let config = ApiConfig { node_id: "n".into(), job_poll: Duration::from_millis(50), ..ApiConfig::default() };
        let mut state = AppState::new(store.clone(), config).await.unwrap();
        let mut kinds = JobRuntime::new();
        kinds.register(
            "fails_with",
            Arc::new(|ctx: JobCtx| {
                Box::pin(async move {
                    let code: ErrorCode = serde_json::from_value(ctx.job.payload["code"].clone())
                        .map_err(|e| JobError::Retry(e.to_string()))?;
                    Err(ApiError::new(code, format!("failed with {code}")).into())
                })
            }),
        );
        state.jobs = Arc::new(kinds);
        let workers = Workers::start(&state);
        let client_errors: Vec<ErrorCode> =
            ErrorCode::ALL.iter().copied().filter(|c| c.status().is_client_error()).collect();
        assert!(client_errors.contains(&ErrorCode::MassDeletionRefused));
        let mut jobs = Vec::new();
        for &code in &client_errors {
            jobs.push((code, enqueue(&state, &org, "fails_with", json!({"code": code})).await.unwrap()));
        }
        for (code, job) in jobs {
            let j = wait_for(&state, &org, &job.id, Duration::from_secs(10)).await.unwrap();
            assert_eq!((j.status, j.attempts), (JobStatus::Failed, 1), "{code}: {j:?}");
            assert_eq!(j.result.as_ref().map(|r| r["error"].clone()), Some(json!(code.as_str())));
            let e = job_failure(&j);
            assert_eq!((e.code, e.status, e.message), (code, code.status(), format!("failed with {code}")));
        }
        workers.shutdown().await;
    }

    /// Organization A floods the queue with jobs that never end (webhook deliveries to a
    /// server that hangs, huge delete-alls); organization B's job, queued after all of them,
    /// still runs at once: A holds at most its share of this node's workers (by default all
    /// but one).
    #[tokio::test]
    async fn one_organizations_flood_leaves_a_worker_for_the_others() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
        let a = store.create_org(&OrgId("org_a".into()), "a", "2024-01-01T00:00:00.000Z").await.unwrap().id;
        let b = store.create_org(&OrgId("org_b".into()), "b", "2024-01-01T00:00:00.000Z").await.unwrap().id;
        let config = ApiConfig {
            node_id: "n".into(),
            job_workers: 3,
            job_poll: Duration::from_millis(50),
            job_lease: Duration::from_secs(30),
            ..ApiConfig::default()
        };
        assert_eq!(config.job_share().per_org_on_node, 2, "automatic share: all workers but one");
        let mut state = AppState::new(store.clone(), config).await.unwrap();
        let mut kinds = test_kinds();
        kinds.register("quick", Arc::new(|_ctx: JobCtx| Box::pin(async move { Ok(json!({"done": true})) })));
        state.jobs = Arc::new(kinds);
        let mut flood = Vec::new();
        for _ in 0..10 {
            flood.push(enqueue(&state, &a, "stuck", json!({})).await.unwrap());
        }
        let workers = Workers::start(&state);
        // Let the workers take what they can of A's flood first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let quick = enqueue(&state, &b, "quick", json!({})).await.unwrap();
        let j = wait_for(&state, &b, &quick.id, Duration::from_secs(3)).await.unwrap();
        assert_eq!(j.status, JobStatus::Succeeded, "B's job ran while A's flood waits: {j:?}");
        let mut running = 0;
        for f in &flood {
            if store.get_job(&a, &f.id).await.unwrap().unwrap().status == JobStatus::Running {
                running += 1;
            }
        }
        assert_eq!(running, 2, "A holds its share of the 3 workers, no more");
        workers.shutdown().await;
    }
}
