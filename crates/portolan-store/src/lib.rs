#![doc = include_str!("../README.md")]

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod migrate;
mod plan;
mod postgres;
pub mod query;
pub mod sql;
mod sqlite;

use std::collections::HashMap;

use async_trait::async_trait;
use portolan_core::search::Query;
use portolan_core::{Blueprint, Entity, FieldError, FieldErrors};
use serde_json::Value;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// An organization's id. Every tenant-owned read and write of the store takes one, and every
/// SQL statement the store issues for such rows filters on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgId(pub String);

#[derive(Debug, Clone)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created_at: String,
}

/// A blueprint with the meta fields the store keeps beside it.
#[derive(Debug, Clone)]
pub struct StoredBlueprint {
    pub blueprint: Blueprint,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// Who is changing something, from where and when: stamped on audit records.
#[derive(Debug, Clone)]
pub struct AuditCtx {
    pub user_id: String,
    /// `API`, `UI`, or the writer's datasource (User-Agent).
    pub origin: String,
    pub at: String,
}

/// One audit-log record (port-api.md §8.6).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Assigned by the store (`aud_<n>`, increasing); ignored on append.
    pub id: String,
    pub at: String,
    pub resource_type: String,
    pub action: String,
    pub status: String,
    pub identifier: String,
    pub blueprint: Option<String>,
    pub entity: Option<String>,
    pub origin: String,
    pub user_id: String,
    pub diff: Option<Value>,
    pub message: Option<String>,
}

/// Filters of `GET /v1/audit-log`, all AND-ed.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub identifier: Option<String>,
    pub entity: Option<String>,
    pub blueprint: Option<String>,
    pub resources: Vec<String>,
    pub origin: Vec<String>,
    pub action: Option<String>,
    pub status: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Records with an id below this one (the `n` of `aud_<n>`): the next page of a listing,
    /// which is newest first.
    pub before: Option<i64>,
    pub limit: u32,
}

/// A relation edge of an entity: (relation, target blueprint, target identifier, required).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelTarget {
    pub relation: String,
    pub target_blueprint: String,
    pub target_identifier: String,
    pub required: bool,
}

/// Why one entity of a write was not written.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteRejection {
    /// Creating an entity that exists.
    Conflict(String),
    /// Updating an entity that does not exist.
    NotFound(String),
    /// The composed entity breaks the blueprint.
    Invalid(FieldErrors),
    /// A relation points at an entity that does not exist (and stubs were not asked for).
    MissingTarget { relation: String, blueprint: String, identifier: String },
}

/// Computes the entity to store from the stored one (or `None`), inside the write transaction,
/// so read-modify-write is atomic. Returns the entity and the relation edges it has.
pub type BuildEntity = Box<dyn FnOnce(Option<&Entity>) -> Result<(Entity, Vec<RelTarget>), WriteRejection> + Send>;

pub struct EntityWrite {
    pub blueprint: String,
    pub identifier: String,
    pub build: BuildEntity,
    /// Create a stub entity for each missing relation target instead of rejecting.
    pub create_missing_related: bool,
}

/// What a successful entity write did.
#[derive(Debug, Clone)]
pub struct Written {
    pub entity: Entity,
    pub created: bool,
}

/// A page request over entities.
#[derive(Debug, Clone)]
pub struct SearchRequest<'a> {
    /// Restrict to one blueprint (`POST /v1/blueprints/{bp}/entities/search`).
    pub blueprint: Option<&'a str>,
    pub query: Option<&'a Query>,
    /// Blueprints of the organization, for the query compiler.
    pub blueprints: &'a HashMap<String, Blueprint>,
    /// Cursor: return entities after this position.
    pub after: Option<i64>,
    pub limit: u32,
    pub now: chrono::DateTime<chrono::Utc>,
}

impl<'a> SearchRequest<'a> {
    /// A first page (no cursor) evaluated at the current time.
    pub fn new(
        blueprints: &'a HashMap<String, Blueprint>,
        blueprint: Option<&'a str>,
        query: Option<&'a Query>,
        limit: u32,
    ) -> Self {
        SearchRequest { blueprint, query, blueprints, after: None, limit, now: chrono::Utc::now() }
    }
}

#[derive(Debug, Clone)]
pub struct Page {
    pub entities: Vec<Entity>,
    /// Position to pass as `after` for the next page; `None` on the last page.
    pub next: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} was not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(FieldError),
    /// A delete is blocked by entities with a required relation to the deleted one.
    #[error(
        "entity {blueprint}/{identifier} is the target of required relations of {dependents:?}; delete with delete_dependents=true to delete them too"
    )]
    RequiredBy { blueprint: String, identifier: String, dependents: Vec<(String, String)> },
    #[error("blueprint {blueprint} still has {count} entities")]
    HasEntities { blueprint: String, count: u64 },
    #[error("blueprint {blueprint} is the target of relation {relation} of blueprint {source_bp}")]
    Referenced { blueprint: String, source_bp: String, relation: String },
    /// A search statement ran past its time budget ([`Store::set_query_budget`]) and was stopped.
    #[error(
        "the search ran over its {} budget and was stopped; narrow it (a blueprint, fewer or shorter relation paths, more selective rules) or ask for a smaller page",
        budget_text(*budget)
    )]
    OverBudget { budget: std::time::Duration },
    /// No database connection could be had in time (every connection busy) or the database did
    /// not answer: try again later.
    #[error("the database is busy or unreachable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(String),
}

/// A budget as people write it: "20-second", "250 ms".
pub fn budget_text(budget: std::time::Duration) -> String {
    if budget.subsec_millis() == 0 && budget.as_secs() > 0 {
        format!("{}-second", budget.as_secs())
    } else {
        format!("{} ms", budget.as_millis())
    }
}

/// How long one search statement (entity search, count, sorted page) may run when nothing else
/// is configured. The review measured PostgreSQL answering the worst relation walk it tried in
/// 2.4 s; 20 s leaves room for large catalogs and still frees a connection long before a client
/// or proxy gives up.
pub const DEFAULT_QUERY_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// The budget shared by a store's clones (milliseconds; set at runtime).
#[derive(Debug, Clone)]
pub(crate) struct Budget(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Default for Budget {
    fn default() -> Self {
        Budget(std::sync::Arc::new(std::sync::atomic::AtomicU64::new(DEFAULT_QUERY_BUDGET.as_millis() as u64)))
    }
}

/// Each organization's share of the connections that run searches: at most `per_org` of its
/// search statements hold a connection at once, so one organization's slow searches cannot
/// take every connection and starve the others' reads. A search over the share waits for a
/// slot, at most its budget.
#[derive(Debug, Clone)]
pub(crate) struct SearchGate {
    per_org: usize,
    slots: std::sync::Arc<std::sync::Mutex<HashMap<String, std::sync::Arc<tokio::sync::Semaphore>>>>,
}

impl SearchGate {
    /// A gate for a pool of `connections`: an organization may use all of them but one.
    pub(crate) fn for_pool(connections: u32) -> SearchGate {
        let per_org = usize::try_from(connections.saturating_sub(1).max(1)).unwrap_or(1);
        SearchGate { per_org, slots: Default::default() }
    }

    /// A slot for one search of `org`, waiting at most `wait`.
    pub(crate) async fn enter(
        &self,
        org: &OrgId,
        wait: std::time::Duration,
    ) -> Result<tokio::sync::OwnedSemaphorePermit> {
        let sem = {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if slots.len() > 1024 {
                // Forget idle organizations (no permit out, no one waiting).
                slots.retain(|_, s| std::sync::Arc::strong_count(s) > 1 || s.available_permits() < self.per_org);
            }
            slots
                .entry(org.0.clone())
                .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(self.per_org)))
                .clone()
        };
        match tokio::time::timeout(wait, sem.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(StoreError::Unavailable(format!(
                "this organization already runs {} searches at once (its share of the database connections) \
                 and none ended within {} ms; wait for them to end or narrow them",
                self.per_org,
                wait.as_millis()
            ))),
        }
    }
}

impl Budget {
    pub(crate) fn get(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }
    pub(crate) fn set(&self, budget: std::time::Duration) {
        let ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX).max(1);
        self.0.store(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The storage interface. Every method that touches tenant data takes an [`OrgId`].
#[async_trait]
pub trait Store: Send + Sync {
    /// Cheap round trip to the database (readiness checks) through the pool that serves
    /// reads: waits at most `wait` for a connection, so a starved pool is reported
    /// ([`StoreError::Unavailable`]) instead of queued behind.
    async fn ping(&self, wait: std::time::Duration) -> Result<()>;

    /// The time budget of every search statement (`search`, `count_entities`, `search_sorted`)
    /// from now on: a statement still running when it ends is stopped and the call returns
    /// [`StoreError::OverBudget`]. A search whose caller goes away (its future dropped) is
    /// stopped at once on SQLite and at its budget on PostgreSQL; either way its connection
    /// goes back to the pool. Default [`DEFAULT_QUERY_BUDGET`].
    fn set_query_budget(&self, budget: std::time::Duration);

    /// A value of the process-wide settings table; `init` is stored and returned if absent.
    async fn setting_or_init(&self, key: &str, init: &str) -> Result<String>;
    /// Replace a setting's value only if it is still `old` (compare-and-set: of several nodes
    /// upgrading the same value, one wins); `false` when it was not `old`.
    async fn replace_setting(&self, key: &str, old: &str, new: &str) -> Result<bool>;

    async fn create_org(&self, id: &OrgId, name: &str, now: &str) -> Result<Org>;
    async fn org_by_name(&self, name: &str) -> Result<Option<Org>>;
    async fn add_credential(
        &self,
        org: &OrgId,
        client_id: &str,
        secret_hash: &str,
        name: &str,
        now: &str,
    ) -> Result<()>;
    /// The organization and secret hash of a client id.
    async fn credential(&self, client_id: &str) -> Result<Option<(OrgId, String)>>;
    async fn list_credentials(&self, org: &OrgId) -> Result<Vec<(String, String, String)>>;
    /// Rename a credential and/or replace its secret hash (rotation); `false` when `org` has
    /// no such credential.
    async fn update_credential(
        &self,
        org: &OrgId,
        client_id: &str,
        name: Option<&str>,
        secret_hash: Option<&str>,
    ) -> Result<bool>;
    /// Delete a credential of `org`; `false` when there is none.
    async fn delete_credential(&self, org: &OrgId, client_id: &str) -> Result<bool>;

    async fn list_blueprints(&self, org: &OrgId) -> Result<Vec<StoredBlueprint>>;
    async fn get_blueprint(&self, org: &OrgId, id: &str) -> Result<Option<StoredBlueprint>>;
    async fn create_blueprint(&self, org: &OrgId, bp: &Blueprint, ctx: &AuditCtx) -> Result<StoredBlueprint>;
    /// Replace blueprint `id` (which may be renamed to `bp.identifier`); entity data whose keys
    /// are renamed is carried along through `renames`.
    async fn update_blueprint(
        &self,
        org: &OrgId,
        id: &str,
        bp: &Blueprint,
        renames: &[Rename],
        ctx: &AuditCtx,
    ) -> Result<StoredBlueprint>;
    async fn delete_blueprint(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()>;

    async fn get_entity(&self, org: &OrgId, bp: &str, id: &str) -> Result<Option<Entity>>;
    /// Entities of one blueprint by identifier (missing ones are left out).
    async fn get_entities(&self, org: &OrgId, bp: &str, ids: &[String]) -> Result<Vec<Entity>>;
    /// Apply writes in one transaction; each write succeeds or is rejected on its own.
    async fn write_entities(
        &self,
        org: &OrgId,
        writes: Vec<EntityWrite>,
        ctx: &AuditCtx,
    ) -> Result<Vec<Result<Written, WriteRejection>>>;
    /// Delete entities of one blueprint. Non-required relations pointing at them become null;
    /// required ones block the delete unless `cascade`. All or nothing. Returns what was deleted.
    async fn delete_entities(
        &self,
        org: &OrgId,
        bp: &str,
        ids: &[String],
        cascade: bool,
        ctx: &AuditCtx,
    ) -> Result<Vec<(String, String)>>;
    async fn count_entities(&self, org: &OrgId, req: &SearchRequest<'_>) -> Result<u64>;
    async fn search(&self, org: &OrgId, req: &SearchRequest<'_>) -> Result<Page>;

    async fn append_audit(&self, org: &OrgId, records: &[AuditRecord]) -> Result<()>;
    async fn list_audit(&self, org: &OrgId, filter: &AuditFilter) -> Result<Vec<AuditRecord>>;

    /// The version of `org`'s blueprints: it changes (in the same transaction) whenever any of
    /// them is created, changed or deleted, through any node. One primary-key lookup; 0 before
    /// the organization's first blueprint.
    async fn blueprints_version(&self, org: &OrgId) -> Result<i64>;
    /// Entities of other blueprints with a required relation to an entity of `bp`:
    /// (their blueprint, their identifier, the identifier of the `bp` entity), at most `limit`.
    async fn required_dependents(&self, org: &OrgId, bp: &str, limit: u32) -> Result<Vec<(String, String, String)>>;

    /// Queue a job, runnable now.
    async fn enqueue_job(&self, org: &OrgId, job: &NewJob) -> Result<Job>;
    /// Claim the next runnable job of one of `kinds` for `node`, for `lease`: a queued job that is
    /// due, or a running job whose lease expired (its node died) and that has attempts left.
    /// Each runnable job is handed to exactly one claimer; `attempts` is incremented. Running
    /// jobs whose lease expired on their last attempt are marked failed on the way.
    async fn claim_job(&self, node: &str, kinds: &[String], lease: std::time::Duration) -> Result<Option<Job>> {
        self.claim_job_fairly(node, kinds, lease, &JobShare::UNLIMITED).await
    }
    /// [`Store::claim_job`] within each organization's share of the workers: a job of an
    /// organization that already has `share.per_org` jobs running (live leases, any node) or
    /// `share.per_org_on_node` running on `node` is skipped. Among the rest, the organization
    /// with the fewest running jobs goes first, then the oldest due job — so one organization's
    /// flood of jobs cannot hold every worker while another organization's jobs wait. The cap
    /// is exact on both backends (SQLite's single writer; a transaction-scoped advisory lock
    /// serializes claims on PostgreSQL).
    async fn claim_job_fairly(
        &self,
        node: &str,
        kinds: &[String],
        lease: std::time::Duration,
        share: &JobShare,
    ) -> Result<Option<Job>>;
    /// Extend a lease to `lease` from now. `false`: the lease is lost (the job was taken over,
    /// cancelled or finished) and the holder must stop working on it.
    async fn heartbeat_job(&self, lease: &Lease, extend: std::time::Duration) -> Result<bool>;
    /// Save the handler's checkpoint; `false` (nothing saved) when the lease is lost.
    async fn save_job_progress(&self, lease: &Lease, progress: &Value) -> Result<bool>;
    /// Finish the job successfully; `false` (nothing changed) when the lease is lost.
    async fn complete_job(&self, lease: &Lease, result: &Value) -> Result<bool>;
    /// Record a failed attempt. With `retry_in` and attempts left the job goes back to the queue,
    /// runnable after `retry_in`; otherwise it fails for good. Returns the new status, or `None`
    /// (nothing changed) when the lease is lost.
    async fn fail_job(
        &self,
        lease: &Lease,
        error: &str,
        detail: Option<&Value>,
        retry_in: Option<std::time::Duration>,
    ) -> Result<Option<JobStatus>>;
    /// Give a running job back to the queue (graceful shutdown): runnable at once by any node,
    /// and the interrupted attempt is not counted against `max_attempts`. `false` when the
    /// lease is lost.
    async fn release_job(&self, lease: &Lease) -> Result<bool>;
    /// Cancel a queued or running job of `org` (a running job's holder loses its lease).
    /// `false` when there is no such unfinished job.
    async fn cancel_job(&self, org: &OrgId, id: &str) -> Result<bool>;
    async fn get_job(&self, org: &OrgId, id: &str) -> Result<Option<Job>>;
    async fn list_jobs(&self, org: &OrgId, filter: &JobFilter) -> Result<Vec<Job>>;

    // ---- Integrations (types at the end of this file) ----
    async fn get_integration(&self, org: &OrgId, id: &str) -> Result<Option<StoredIntegration>>;
    async fn list_integrations(&self, org: &OrgId) -> Result<Vec<StoredIntegration>>;
    /// Create or replace an integration's object. When `data.config` differs from the stored one
    /// (or on create), the config version is bumped and the new config kept as a version. With
    /// `audit`, an audit record (`resourceType` integration) is appended in the same transaction.
    async fn save_integration(
        &self,
        org: &OrgId,
        id: &str,
        data: &Value,
        mode: SaveMode,
        audit: bool,
        ctx: &AuditCtx,
    ) -> Result<StoredIntegration>;
    /// Delete an integration with its versions, examples, resyncs and event log.
    async fn delete_integration(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()>;
    /// Every version of the config, newest first.
    async fn integration_config_versions(&self, org: &OrgId, id: &str) -> Result<Vec<ConfigVersion>>;
    async fn put_kind_examples(&self, org: &OrgId, id: &str, kind: &str, examples: &Value, at: &str) -> Result<()>;
    async fn kind_examples(&self, org: &OrgId, id: &str, kind: &str) -> Result<Option<Value>>;

    async fn append_integration_logs(&self, org: &OrgId, id: &str, lines: &[IntegrationLog]) -> Result<()>;
    async fn list_integration_logs(&self, org: &OrgId, id: &str, filter: &LogFilter) -> Result<Vec<IntegrationLog>>;

    /// Start a resync (a running one of the same integration becomes `abandoned`). It starts
    /// confirmed if an admin confirmed deletions for the next resync (which that consumes).
    async fn start_resync(&self, org: &OrgId, id: &str, at: &str, entities: u64) -> Result<Resync>;
    /// The latest resync of an integration.
    async fn latest_resync(&self, org: &OrgId, id: &str) -> Result<Option<Resync>>;
    /// End the running resync of an integration (`None` when none is running).
    async fn finish_resync(&self, org: &OrgId, id: &str, status: &str, at: &str) -> Result<Option<Resync>>;
    /// Atomically count `n` deletions against the running resync of integration `id`, or refuse
    /// them: refused when the resync is tripped, or when `max(deleted + n, projected)` breaks
    /// `guard` — unless the resync is confirmed. `projected` is how many deletions the caller
    /// expects the whole resync to make (0 if unknown).
    async fn reserve_deletions(
        &self,
        org: &OrgId,
        id: &str,
        n: u64,
        projected: u64,
        guard: &DeletionGuard,
    ) -> Result<Reservation>;
    /// Give back reserved deletions that did not happen.
    async fn release_deletions(&self, org: &OrgId, resync_id: &str, n: u64) -> Result<()>;
    /// Confirm deletions past the guard: those of the running resync, or (none running) those of
    /// the next resync to start. Returns the running resync it confirmed, if any.
    async fn confirm_deletions(&self, org: &OrgId, id: &str) -> Result<Option<Resync>>;
    /// The organization with this id.
    async fn get_org(&self, org: &OrgId) -> Result<Option<Org>>;

    // ---- Local accounts of the web UI (types at the end of this file) ----
    /// Create a user; `Conflict` when the e-mail is taken (in any organization).
    async fn create_user(&self, user: &User) -> Result<()>;
    /// The user with this (lower-cased) e-mail, in any organization: sign-in finds the
    /// organization through it (as [`Store::credential`] does through a client id).
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn get_user(&self, org: &OrgId, id: &str) -> Result<Option<User>>;
    /// Users of `org`, by e-mail.
    async fn list_users(&self, org: &OrgId) -> Result<Vec<User>>;
    /// Remove a web user of `org` and end their sessions at once; `false` when there is none.
    async fn delete_user(&self, org: &OrgId, user_id: &str) -> Result<bool>;
    async fn create_session(&self, session: &Session) -> Result<()>;
    /// The session whose id hashes to `id_hash` (the cookie names it, in any organization).
    async fn session(&self, id_hash: &str) -> Result<Option<Session>>;
    /// Record activity on a session (idle expiry counts from `last_seen`).
    async fn touch_session(&self, id_hash: &str, last_seen: i64) -> Result<()>;
    async fn delete_session(&self, id_hash: &str) -> Result<()>;
    async fn create_invitation(&self, invitation: &Invitation) -> Result<()>;
    /// The invitation whose token hashes to `token_hash`, used or not.
    async fn invitation(&self, token_hash: &str) -> Result<Option<Invitation>>;
    /// Use an unused invitation that has not expired at `now`: creates the user (`user.id`,
    /// `password_hash` and `created_at`; organization, e-mail and role from the invitation) and
    /// marks the invitation used, in one transaction. `NotFound` when no usable invitation has
    /// this hash, `Conflict` when the e-mail already has a user.
    async fn accept_invitation(&self, token_hash: &str, user: &User, now: i64) -> Result<User>;
    /// A page of `req` (its filter and `limit`; not its cursor) ordered by `sort` — `$identifier`,
    /// `$title`, `$createdAt`, `$updatedAt` or a stored property's identifier (missing values
    /// last; ties by position) — after skipping `offset` entities. The web UI's sorted catalog
    /// views page this way.
    async fn search_sorted(
        &self,
        org: &OrgId,
        req: &SearchRequest<'_>,
        sort: &str,
        descending: bool,
        offset: u64,
    ) -> Result<SortedPage>;

    // ---- Webhooks: custom webhook integrations (types in the `Webhooks` block at the end) ----
    async fn get_webhook(&self, org: &OrgId, id: &str) -> Result<Option<StoredWebhook>>;
    /// The webhook whose ingest key is `key`, in any organization: the key is the ingest URL's
    /// credential, and it names the organization (as [`Store::credential`] does for a client id).
    async fn webhook_by_key(&self, key: &str) -> Result<Option<(OrgId, StoredWebhook)>>;
    /// Webhooks of `org`, by identifier.
    async fn list_webhooks(&self, org: &OrgId) -> Result<Vec<StoredWebhook>>;
    /// Create (`SaveMode::Create`: `Conflict` when the identifier or the key is taken) or replace
    /// (`SaveMode::Update`: `NotFound` when missing; the stored `webhook_key` is kept) a webhook,
    /// appending its audit record (`resourceType` webhook, secret never included) in the same
    /// transaction.
    async fn save_webhook(
        &self,
        org: &OrgId,
        w: &WebhookWrite,
        mode: SaveMode,
        ctx: &AuditCtx,
    ) -> Result<StoredWebhook>;
    /// Delete a webhook with its deliveries and event log (audited). Queued deliveries find it
    /// gone and do nothing.
    async fn delete_webhook(&self, org: &OrgId, id: &str, ctx: &AuditCtx) -> Result<()>;
    /// Durably accept a delivery of webhook `webhook`: enqueue `job` and, with a `request_id`,
    /// record the delivery under it — in one transaction. A request id already recorded for
    /// this webhook enqueues nothing and answers [`Delivery::Duplicate`] with the first job.
    async fn enqueue_webhook_delivery(
        &self,
        org: &OrgId,
        webhook: &str,
        request_id: Option<&str>,
        job: &NewJob,
        at: &str,
    ) -> Result<Delivery>;
    /// Append to a webhook's event log (ids `wl_<n>`; `resync_id` holds the delivery's job id).
    async fn append_webhook_logs(&self, org: &OrgId, webhook: &str, lines: &[IntegrationLog]) -> Result<()>;
    /// A webhook's event log; `filter.resync_id` selects one delivery (`job_<n>`), `cursor` is
    /// a `wl_<n>` row id.
    async fn list_webhook_logs(&self, org: &OrgId, webhook: &str, filter: &LogFilter) -> Result<Vec<IntegrationLog>>;
    /// The distinct ids of the master keys stored webhook secrets are encrypted with, in every
    /// organization (start-up refuses a key that cannot decrypt them).
    async fn webhook_secret_key_ids(&self) -> Result<Vec<String>>;

    // ---- Integration cursors: the latest Ocean's incremental sync cursor per (integration,
    // kind, index) — `GET/PUT/POST /v1/integration/{id}/cursor` (migration 0007). The cursor is
    // the JSON Ocean sent (`{"primary": "<iso>"}`); deleted with the integration. ----
    /// The cursor stored for (integration `id`, `kind`, `index`), if any.
    async fn integration_cursor(&self, org: &OrgId, id: &str, kind: &str, index: &str) -> Result<Option<Value>>;
    /// Create or replace the cursor of (integration `id`, `kind`, `index`).
    async fn save_integration_cursor(
        &self,
        org: &OrgId,
        id: &str,
        kind: &str,
        index: &str,
        cursor: &Value,
        at: &str,
    ) -> Result<()>;
    /// Replace an existing cursor only: `false` (nothing written) when there is none.
    async fn update_integration_cursor(
        &self,
        org: &OrgId,
        id: &str,
        kind: &str,
        index: &str,
        cursor: &Value,
        at: &str,
    ) -> Result<bool>;
    // ---- end of Integration cursors ----

    // ---- Web UI: saved page settings and paged reads (types in the `Web UI` block at the end) ----
    /// The saved initial filter of blueprint `blueprint`'s catalog page.
    async fn initial_filter(&self, org: &OrgId, blueprint: &str) -> Result<Option<InitialFilter>>;
    /// Save (`Some`, replacing any) or remove (`None`) that initial filter.
    async fn set_initial_filter(&self, org: &OrgId, blueprint: &str, filter: Option<&InitialFilter>) -> Result<()>;
    /// The newest `limit` config versions of an integration, newest first.
    async fn recent_config_versions(&self, org: &OrgId, id: &str, limit: u32) -> Result<Vec<ConfigVersion>>;
}

/// Where a background job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting to be claimed (at or after `run_at`).
    Queued,
    /// Leased by a node; claimable again once its lease expires.
    Running,
    Succeeded,
    /// Failed for good: a permanent error, or no attempts left.
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }

    /// Succeeded, failed or cancelled: nothing will run it again.
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub payload: Value,
    /// Claims allowed before the job fails for good (at least 1).
    pub max_attempts: u32,
}

/// A durable background job. Times are the database's clock, in the store's timestamp format.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// `job_<n>`.
    pub id: String,
    pub org: OrgId,
    pub kind: String,
    pub payload: Value,
    pub status: JobStatus,
    /// Claims so far; also the fencing token of the current lease (see [`Lease`]).
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_at: String,
    /// The node holding (or that last held) the lease.
    pub lease_owner: Option<String>,
    /// When the current lease expires (`None` once the job is finished or back in the queue).
    pub lease_until: Option<String>,
    /// The last checkpoint the handler saved; a node taking the job over resumes from it.
    pub progress: Option<Value>,
    pub last_error: Option<String>,
    /// The handler's result, or the detail of the error it failed with.
    pub result: Option<Value>,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl Job {
    /// The lease a claim returned this job under (for a job in `running`).
    pub fn lease(&self) -> Option<Lease> {
        match (self.status, &self.lease_owner) {
            (JobStatus::Running, Some(owner)) => {
                Some(Lease { job_id: self.id.clone(), owner: owner.clone(), attempt: self.attempts })
            }
            _ => None,
        }
    }
}

/// A node's hold on a running job. Heartbeats, progress and completion are accepted only while
/// the job is still running under this exact lease; a node whose lease expired and was claimed
/// by another node (a higher `attempt`) is refused and must stop working on the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: String,
    pub owner: String,
    pub attempt: u32,
}

/// How many jobs of one organization may run at once (see [`Store::claim_job_fairly`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobShare {
    /// Across every node of the cluster.
    pub per_org: u32,
    /// On the claiming node.
    pub per_org_on_node: u32,
}

impl JobShare {
    /// No caps: the oldest due job first, whatever its organization runs already.
    pub const UNLIMITED: JobShare = JobShare { per_org: u32::MAX, per_org_on_node: u32::MAX };
}

/// Filters of a job listing, AND-ed; newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    pub limit: u32,
}

/// A job row as read from either backend (JSON columns as text).
pub(crate) struct RawJob {
    pub id: i64,
    pub org_id: String,
    pub kind: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: String,
    pub lease_owner: Option<String>,
    pub lease_until: Option<String>,
    pub progress: Option<String>,
    pub last_error: Option<String>,
    pub result: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// The columns of `jobs` in [`RawJob`] order (JSON as text, counters as 64-bit integers).
pub(crate) const JOB_COLUMNS: &str = "id, org_id, kind, CAST(payload AS TEXT), status, CAST(attempts AS BIGINT), \
     CAST(max_attempts AS BIGINT), run_at, lease_owner, lease_until, CAST(progress AS TEXT), last_error, \
     CAST(result AS TEXT), created_at, updated_at, started_at, finished_at";

impl RawJob {
    pub(crate) fn into_job(self) -> Result<Job> {
        let json = |what: &str, s: &str| {
            serde_json::from_str::<Value>(s)
                .map_err(|e| StoreError::Db(format!("job {} has invalid {what}: {e}", self.id)))
        };
        Ok(Job {
            id: format!("job_{}", self.id),
            org: OrgId(self.org_id.clone()),
            kind: self.kind.clone(),
            payload: json("payload", &self.payload)?,
            status: JobStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Db(format!("job {} has unknown status {:?}", self.id, self.status)))?,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            max_attempts: u32::try_from(self.max_attempts).unwrap_or(0),
            run_at: self.run_at.clone(),
            lease_owner: self.lease_owner.clone(),
            lease_until: self.lease_until.clone(),
            progress: self.progress.as_deref().map(|p| json("progress", p)).transpose()?,
            last_error: self.last_error.clone(),
            result: self.result.as_deref().map(|r| json("result", r)).transpose()?,
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
            started_at: self.started_at.clone(),
            finished_at: self.finished_at.clone(),
        })
    }
}

/// The row id of a `job_<n>` id (`None` for anything else: such a job does not exist).
pub(crate) fn job_rowid(id: &str) -> Option<i64> {
    id.strip_prefix("job_")?.parse().ok()
}

/// A duration in whole milliseconds, for SQL.
pub(crate) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A key renamed in a blueprint update; entity data follows it.
#[derive(Debug, Clone)]
pub enum Rename {
    Property { from: String, to: String },
    Relation { from: String, to: String },
}

// ---- Integrations (Ocean installations), their event log and the mass-deletion guard ----

/// An integration: Port's integration object (`data`: `installationAppType`, `version`,
/// `config`, `changelogDestination`, `resyncState`, … as written) and the meta fields the store
/// keeps beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredIntegration {
    pub identifier: String,
    pub data: Value,
    /// Version of `data.config`: 1 when created, +1 on every change of the config.
    pub config_version: i64,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// One version of an integration's config (its mapping).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigVersion {
    pub version: i64,
    pub config: Value,
    pub created_at: String,
    pub created_by: String,
}

/// How [`Store::save_integration`] treats an existing row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// Fail with `Conflict` if it exists.
    Create,
    /// Fail with `NotFound` if it does not.
    Update,
}

/// One line of an integration's event log.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationLog {
    /// Assigned by the store (`il_<n>`, increasing); ignored on append.
    pub id: String,
    pub at: String,
    /// DEBUG, INFO, WARNING, ERROR, FATAL.
    pub level: String,
    /// `ocean` (shipped by the integration) or `server` (what the server saw).
    pub source: String,
    /// `log` for shipped lines; the server's: `resync_started`, `resync_finished`,
    /// `entity_rejected`, `entity_deleted`, `deletion_refused`, `deletion_confirmed`, `config_changed`.
    pub event: String,
    /// The resync the line belongs to (`rs_<n>`), if any.
    pub resync_id: Option<String>,
    pub message: String,
    pub extra: Value,
}

/// Filters of `GET /v1/integration/{id}/logs`, AND-ed.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub levels: Vec<String>,
    pub events: Vec<String>,
    pub source: Option<String>,
    pub resync_id: Option<String>,
    /// Lines with an id below (`Some(false)`: above) this one.
    pub cursor: Option<(i64, bool)>,
    /// Lines at or after / before these times.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Oldest first (otherwise newest first).
    pub ascending: bool,
    pub limit: u32,
}

/// A resync of an integration, with the deletion guard's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Resync {
    /// `rs_<n>`.
    pub id: String,
    pub integration: String,
    /// running, completed, failed, or abandoned (a new resync started first).
    pub status: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// The integration's entities when the resync started.
    pub entities_at_start: u64,
    /// Deletions the guard let through.
    pub deleted: u64,
    /// Deletions the guard refused.
    pub refused: u64,
    /// The guard refused a deletion; every further one is refused unless `confirmed`.
    pub tripped: bool,
    /// An admin confirmed the deletions of this resync.
    pub confirmed: bool,
}

/// Limits of the mass-deletion guard: a resync may delete at most `max_share` of the entities
/// its integration had at its start, once more than `min_count` deletions are at stake.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeletionGuard {
    pub max_share: f64,
    pub min_count: u64,
}

impl Default for DeletionGuard {
    fn default() -> Self {
        DeletionGuard { max_share: 0.5, min_count: 10 }
    }
}

impl DeletionGuard {
    /// May `n` deletions happen in a resync that started with `total` entities?
    pub fn allows(&self, n: u64, total: u64) -> bool {
        n <= self.min_count || (n as f64) <= self.max_share * total as f64
    }
}

/// What [`Store::reserve_deletions`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    /// Go ahead (the counter now includes these deletions).
    Granted(Resync),
    /// Refused (the resync is now tripped and counts them as refused).
    Refused(Resync),
    /// No such running resync: the guard does not apply.
    NoResync,
}

/// The row id of an `<prefix><n>` id.
pub(crate) fn prefixed_rowid(id: &str, prefix: &str) -> Option<i64> {
    id.strip_prefix(prefix)?.parse().ok()
}

// ---- Local accounts of the web UI ----

/// A person who signs in to the web UI.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// `usr_<hex>`.
    pub id: String,
    pub org: OrgId,
    /// Lower-cased.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// `admin` or `member`.
    pub role: String,
    pub created_at: String,
}

/// A signed-in browser. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// SHA-256 (hex) of the session id the cookie holds; the id itself is never stored.
    pub id_hash: String,
    pub org: OrgId,
    pub user_id: String,
    /// The token every state-changing request of this session must carry.
    pub csrf: String,
    pub created_at: i64,
    pub last_seen: i64,
}

/// An invitation link. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    /// SHA-256 (hex) of the link's token.
    pub token_hash: String,
    pub org: OrgId,
    pub email: String,
    pub role: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// A page of [`Store::search_sorted`].
#[derive(Debug, Clone)]
pub struct SortedPage {
    pub entities: Vec<Entity>,
    /// More entities follow this page.
    pub more: bool,
}

/// The column a meta sort key orders by (`None`: a property, ordered by its JSON value).
pub(crate) fn sort_column(sort: &str) -> Option<&'static str> {
    match sort {
        "$identifier" => Some("e.identifier"),
        "$title" => Some("e.title"),
        "$createdAt" => Some("e.created_at"),
        "$updatedAt" => Some("e.updated_at"),
        _ => None,
    }
}

// ---- Webhooks: custom webhook integrations ----

/// A custom webhook integration as stored: Port's webhook object (`data`: title, description,
/// icon, enabled, integrationType, mappings, security without its secret, …), its ingest key
/// and its encrypted secret.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWebhook {
    pub identifier: String,
    pub data: Value,
    /// The ingest URL's key (unguessable; unique across organizations).
    pub webhook_key: String,
    /// `security.secret`, encrypted by the server (`v1:<key id>:<nonce>:<ciphertext>`); the store
    /// never sees it in clear.
    pub secret: Option<String>,
    /// Id of the master key `secret` is encrypted with.
    pub secret_key_id: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// What [`Store::save_webhook`] writes.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookWrite {
    pub identifier: String,
    pub data: Value,
    /// Used on create; an update keeps the stored key.
    pub webhook_key: String,
    pub secret: Option<String>,
    pub secret_key_id: Option<String>,
}

/// What [`Store::enqueue_webhook_delivery`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Stored: this job will process it.
    Enqueued(Box<Job>),
    /// The request id was delivered before; `job_id` is the job of the first delivery.
    Duplicate { job_id: String },
}

/// The audit record of a webhook change (`data` only: the secret is never in an audit record).
pub(crate) fn webhook_audit_record(
    id: &str,
    action: &str,
    before: Option<&StoredWebhook>,
    after: Option<&WebhookWrite>,
    ctx: &AuditCtx,
) -> AuditRecord {
    let secret_changed = before.and_then(|b| b.secret.as_ref()) != after.and_then(|a| a.secret.as_ref());
    AuditRecord {
        id: String::new(),
        at: ctx.at.clone(),
        resource_type: "webhook".into(),
        action: action.into(),
        status: "SUCCESS".into(),
        identifier: id.into(),
        blueprint: None,
        entity: None,
        origin: ctx.origin.clone(),
        user_id: ctx.user_id.clone(),
        diff: Some(serde_json::json!({"before": before.map(|b| &b.data), "after": after.map(|a| &a.data)})),
        message: (secret_changed && action != "DELETE").then(|| "security.secret changed".to_string()),
    }
}

// ---- Web UI ----

/// The saved initial filter of a catalog page: `filter` is the web UI's own JSON
/// (`{"q": …, "rules": [[property, operator, value], …]}`), opaque to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct InitialFilter {
    pub filter: Value,
    pub updated_at: String,
    pub updated_by: String,
}
