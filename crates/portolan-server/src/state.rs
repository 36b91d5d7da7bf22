//! Application state shared by every handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portolan_core::Blueprint;
use portolan_jq::JqEngine;
use portolan_store::{OrgId, Store, StoredBlueprint};

use crate::auth::TokenSigner;
use crate::error::ApiResult;
use crate::jobs::JobRuntime;
use crate::ratelimit::RateLimiter;

/// Limits and switches of the HTTP API and of this node's job workers.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Most entities accepted by one bulk-create request (Port: 20).
    pub max_bulk_entities: usize,
    /// Most entities a non-paginated read (`GET …/entities`, `POST /v1/entities/search`) returns.
    pub max_unpaginated: u32,
    /// Requests per organization per minute before 429.
    pub rate_limit_per_minute: u32,
    /// Job worker tasks on this node (0: this node runs no jobs, other nodes do).
    pub job_workers: usize,
    /// How long a claimed job stays leased without a heartbeat; the holder heartbeats every
    /// third of it. A node that dies leaves its jobs to others after at most this long.
    pub job_lease: Duration,
    /// How often an idle worker looks for jobs enqueued by other nodes, or left for it by work
    /// of this node that wakes no worker (most work of this node that gives a job work, an
    /// entity write, a delete, a run update, wakes one at once).
    pub job_poll: Duration,
    /// How long a job worker waits, before claiming a job, for this node's entity write
    /// requests in flight to end (the automation dispatch: four times as long before each
    /// round of events); 0: it does not wait (`jobs::Foreground`).
    pub job_yield: Duration,
    /// How long a request that runs as a job (`DELETE …/all-entities`) waits for it before
    /// answering with the job id alone.
    pub job_wait: Duration,
    /// This node's name in job leases (`GET /v1/jobs/{id}` shows it as `node`).
    pub node_id: String,
    /// Entities deleted per transaction (and per progress checkpoint) by the delete-all job.
    pub delete_chunk_size: u32,
    /// Web UI: a session unused this long is signed out (Port: 3 days).
    pub session_idle: Duration,
    /// Web UI: a session is signed out this long after sign-in, used or not (Port: 7 days).
    pub session_absolute: Duration,
    /// Web UI: mark cookies `Secure` (served over TLS). Requests with `X-Forwarded-Proto: https`
    /// get `Secure` cookies either way.
    pub secure_cookies: bool,
    /// Web UI: sign-in attempts per minute, per client address and per e-mail.
    pub signin_per_minute: u32,
    /// Web UI: argon2 cost of new password hashes (memory KiB, iterations). Tests lower it.
    pub password_cost: (u32, u32),
    /// Web UI: how long an invitation link can be used.
    pub invitation_ttl: Duration,
    /// Webhooks: the master key their signing secrets are encrypted with at rest
    /// (`PORTOLAN_SECRETS_KEY`). `None`: webhooks with a secret cannot be created or verified.
    pub secrets_key: Option<crate::secrets::SecretsKey>,
    /// The URL people reach this server at (`PORTOLAN_PUBLIC_URL`): the SSO redirect URI is
    /// made from it. `None`: from each request's host.
    pub public_url: Option<String>,
    /// Failed credential checks per key before answers slow down, before 429, and the window
    /// they are counted in (5, 20, 15 minutes).
    pub auth_failure_limits: (u32, u32, Duration),
    /// jq: worker threads or processes, time limit (also each request's jq budget), and each
    /// organization's share of the workers.
    pub jq: portolan_jq::JqConfig,
    /// jq: the budget of every evaluation of one webhook delivery together (selector,
    /// itemsToParse and the fields of every item).
    pub jq_delivery_budget: Duration,
    /// After shutdown begins, how long in-flight requests may still run; then `serve` stops
    /// them (their searches are interrupted) and returns anyway.
    pub shutdown_grace: Duration,
    /// Most of this node's job workers one organization's jobs may hold at once; 0: automatic
    /// (`job_workers - 1`, at least 1), so another organization always finds a worker.
    pub job_workers_per_org: u32,
    /// Most jobs of one organization running at once across the cluster (every node).
    pub jobs_per_org_cluster: u32,
    /// The bearer token `GET /metrics` requires; `None`: `/metrics` is off (404).
    pub metrics_token: Option<String>,
    /// The SMTP server approval e-mails go through (`PORTOLAN_SMTP_URL`, `PORTOLAN_SMTP_FROM`);
    /// `None`: none are sent, and the runs say so.
    pub smtp: Option<crate::smtp::SmtpConfig>,
    /// How often a GITHUB / GITLAB run's workflow run or pipeline is looked at (`jobs/git.rs`).
    pub git_poll: Duration,
    /// The first retry delay of a failed changelog delivery (doubling up to 10 minutes;
    /// `jobs/changelog.rs`).
    pub changelog_retry: Duration,
    /// The guarded outbound HTTP client (built from `[outbound]` settings) every call to a
    /// tenant-configured URL goes through.
    pub outbound: crate::outbound::Outbound,
}

impl ApiConfig {
    /// One organization's share of the job workers (what a worker claims within).
    pub fn job_share(&self) -> portolan_store::JobShare {
        let auto = u32::try_from(self.job_workers.saturating_sub(1).max(1)).unwrap_or(u32::MAX);
        let on_node = if self.job_workers_per_org == 0 { auto } else { self.job_workers_per_org };
        portolan_store::JobShare { per_org: self.jobs_per_org_cluster.max(1), per_org_on_node: on_node }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_bulk_entities: 1000,
            max_unpaginated: 10_000,
            rate_limit_per_minute: 60_000,
            job_workers: 2,
            job_lease: Duration::from_secs(30),
            job_poll: Duration::from_secs(1),
            job_yield: Duration::from_millis(100),
            job_wait: Duration::from_secs(10),
            node_id: default_node_id(),
            delete_chunk_size: 500,
            session_idle: Duration::from_secs(3 * 24 * 3600),
            session_absolute: Duration::from_secs(7 * 24 * 3600),
            secure_cookies: false,
            signin_per_minute: 10,
            password_cost: (19_456, 2),
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            secrets_key: None,
            public_url: None,
            auth_failure_limits: (5, 20, Duration::from_secs(15 * 60)),
            jq: portolan_jq::JqConfig::default(),
            jq_delivery_budget: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            job_workers_per_org: 0,
            jobs_per_org_cluster: 16,
            metrics_token: None,
            smtp: None,
            git_poll: Duration::from_secs(10),
            changelog_retry: Duration::from_secs(5),
            outbound: crate::outbound::Outbound::default(),
        }
    }
}

/// `hostname-pid-random`: unique per process, readable in job listings.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_string());
    format!("{host}-{}-{}", std::process::id(), crate::auth::hex(&crate::auth::random_bytes::<3>()))
}

/// One organization's blueprints, by identifier.
pub type Blueprints = Arc<HashMap<String, Blueprint>>;

#[derive(Clone)]
pub struct AppState {
    /// The database, behind the storage trait (SQLite or PostgreSQL).
    pub store: Arc<dyn Store>,
    /// Port's jq dialect with its compiled-filter cache (calculation properties).
    pub jq: Arc<JqEngine>,
    /// Signs and verifies bearer tokens.
    pub tokens: TokenSigner,
    pub config: Arc<ApiConfig>,
    /// Blueprints per organization with the store's blueprint version they were read at.
    /// Served only while that version is still current, so a change through any node is seen
    /// at once; this node also drops the entry when it makes a change itself.
    blueprints: Arc<Mutex<HashMap<OrgId, (i64, Blueprints)>>>,
    pub rate_limiter: Arc<RateLimiter>,
    /// Job kinds and the signals between requests and this node's job workers.
    pub jobs: Arc<JobRuntime>,
    /// The time sessions and invitations are judged by (tests replace it to move time on).
    pub clock: Arc<dyn Clock>,
    /// Sign-in attempts of the web UI, per client address and per e-mail.
    pub signin_limiter: Arc<RateLimiter>,
    /// Failed credential checks (API client ids, web e-mails, client addresses): slowed down,
    /// then refused with 429.
    pub auth_failures: Arc<crate::ratelimit::FailureGuard>,
    /// The web UI's templates.
    pub templates: Arc<crate::web::Templates>,
    /// This node's counters for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The guarded outbound HTTP client (`ApiConfig::outbound`).
    pub outbound: crate::outbound::Outbound,
    /// GitHub App installation tokens (`jobs/git.rs`), per node.
    pub git_tokens: Arc<crate::jobs::git::TokenCache>,
    /// Identity providers' discovery documents and key sets, kept a few minutes
    /// ([`crate::sso::DocCache`]).
    pub sso_docs: Arc<crate::sso::DocCache>,
}

/// Unix seconds, for session and invitation expiry.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }
}

/// A clock that stands still until moved (tests).
#[derive(Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(now: i64) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(now))
    }
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX), std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl AppState {
    pub async fn new(store: Arc<dyn Store>, config: ApiConfig) -> Result<Self, portolan_store::StoreError> {
        let tokens = TokenSigner::load(store.as_ref(), config.secrets_key.as_ref()).await?;
        Ok(AppState {
            store,
            jq: Arc::new(JqEngine::with_config(config.jq.clone())),
            tokens,
            rate_limiter: Arc::new(RateLimiter::new(config.rate_limit_per_minute)),
            signin_limiter: Arc::new(RateLimiter::new(config.signin_per_minute)),
            auth_failures: Arc::new(crate::ratelimit::FailureGuard::new(
                config.auth_failure_limits.0,
                config.auth_failure_limits.1,
                config.auth_failure_limits.2,
            )),
            clock: Arc::new(SystemClock),
            templates: Arc::new(crate::web::Templates::new()),
            outbound: config.outbound.clone(),
            sso_docs: Arc::default(),
            git_tokens: Arc::default(),
            config: Arc::new(config),
            blueprints: Arc::default(),
            jobs: Arc::new(JobRuntime::with_builtin_kinds()),
            metrics: Arc::default(),
        })
    }

    /// All blueprints of `org`, by identifier: cached, after one primary-key lookup of the
    /// store's blueprint version confirms the cache is current.
    pub async fn blueprints(&self, org: &OrgId) -> ApiResult<Blueprints> {
        self.blueprints_at(org, None).await
    }

    /// [`AppState::blueprints`] of the actor's organization, checked against the version read
    /// with its credential at the start of the request when there is one (an API request: one
    /// statement fewer), else read now.
    pub async fn blueprints_for(&self, actor: &crate::ops::Actor) -> ApiResult<Blueprints> {
        self.blueprints_at(&actor.org, actor.blueprints_version).await
    }

    async fn blueprints_at(&self, org: &OrgId, known: Option<i64>) -> ApiResult<Blueprints> {
        // The version is read before the blueprints: if a change lands in between, the entry
        // is stored under the older version and the next call reloads it.
        let version = match known {
            Some(v) => v,
            None => self.store.blueprints_version(org).await?,
        };
        if let Some((v, m)) = self.blueprints.lock().ok().and_then(|c| c.get(org).cloned())
            && v == version
        {
            return Ok(m);
        }
        let list: Vec<StoredBlueprint> = self.store.list_blueprints(org).await?;
        let map: Blueprints =
            Arc::new(list.into_iter().map(|b| (b.blueprint.identifier.clone(), b.blueprint)).collect());
        if let Ok(mut c) = self.blueprints.lock() {
            c.insert(org.clone(), (version, map.clone()));
        }
        Ok(map)
    }

    /// Forget the cached blueprints of `org` after a change (other nodes notice through the
    /// version).
    pub fn blueprints_changed(&self, org: &OrgId) {
        if let Ok(mut c) = self.blueprints.lock() {
            c.remove(org);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use portolan_store::{AuditCtx, SqliteStore};
    use serde_json::json;

    /// A store with one organization holding blueprint `svc` titled "One", and the audit
    /// context of the changes.
    async fn one_blueprint() -> (Arc<dyn Store>, OrgId, AuditCtx) {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
        let org = store.create_org(&OrgId("org_a".into()), "a", "2024-01-01T00:00:00.000Z").await.unwrap().id;
        let ctx =
            AuditCtx { user_id: "t".into(), origin: "API".into(), at: "2024-01-01T00:00:00.000Z".into(), depth: 0 };
        let v1: Blueprint = serde_json::from_value(json!({"identifier": "svc", "title": "One"})).unwrap();
        store.create_blueprint(&org, &v1, &ctx).await.unwrap();
        (store, org, ctx)
    }

    /// Two nodes (two states, each with its own cache) on one database: a blueprint change
    /// through one is seen by the other on its next read, with no message between them.
    #[tokio::test]
    async fn a_blueprint_change_through_one_node_is_seen_by_another_at_once() {
        let (store, org, ctx) = one_blueprint().await;
        let node1 = AppState::new(store.clone(), ApiConfig::default()).await.unwrap();
        let node2 = AppState::new(store.clone(), ApiConfig::default()).await.unwrap();
        assert_eq!(node2.blueprints(&org).await.unwrap()["svc"].title, "One", "node 2 caches it");
        let v2: Blueprint = serde_json::from_value(json!({"identifier": "svc", "title": "Two"})).unwrap();
        node1.store.update_blueprint(&org, "svc", &v2, &[], &ctx).await.unwrap();
        node1.blueprints_changed(&org);
        assert_eq!(node2.blueprints(&org).await.unwrap()["svc"].title, "Two", "node 2 is not stale");
        node1.store.delete_blueprint(&org, "svc", &ctx).await.unwrap();
        assert!(!node2.blueprints(&org).await.unwrap().contains_key("svc"));
        // An unchanged version serves the cache: the same map, not a reload.
        let a = node2.blueprints(&org).await.unwrap();
        let b = node2.blueprints(&org).await.unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    /// An API request checks the cache against the version read with its credential, not
    /// against a second read: a request authenticated before another node's change still sees
    /// its version's map, and the next request's credential brings the change.
    #[tokio::test]
    async fn an_api_request_checks_the_cache_against_its_credentials_version() {
        let (store, org, ctx) = one_blueprint().await;
        store.add_credential(&org, "cid", "hash", "n", "2024-01-01T00:00:00.000Z").await.unwrap();
        let node = AppState::new(store.clone(), ApiConfig::default()).await.unwrap();
        let request = |version: i64| crate::ops::Actor {
            client_id: "cid".into(),
            org: org.clone(),
            user_agent: None,
            principal: portolan_core::permissions::Principal::Machine,
            depth: 0,
            blueprints_version: Some(version),
        };
        let first = request(store.credential("cid").await.unwrap().unwrap().blueprints_version);
        assert_eq!(node.blueprints_for(&first).await.unwrap()["svc"].title, "One");
        // Another node changes it (no message to this one).
        let v2: Blueprint = serde_json::from_value(json!({"identifier": "svc", "title": "Two"})).unwrap();
        store.update_blueprint(&org, "svc", &v2, &[], &ctx).await.unwrap();
        assert_eq!(node.blueprints_for(&first).await.unwrap()["svc"].title, "One", "the request's own version");
        let next = request(store.credential("cid").await.unwrap().unwrap().blueprints_version);
        assert_eq!(node.blueprints_for(&next).await.unwrap()["svc"].title, "Two", "the next request is not stale");
        assert_eq!(node.blueprints(&org).await.unwrap()["svc"].title, "Two");
    }
}
