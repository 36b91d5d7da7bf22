#![doc = include_str!("../README.md")]

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod migrate;
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
    #[error("database error: {0}")]
    Db(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The storage interface. Every method that touches tenant data takes an [`OrgId`].
#[async_trait]
pub trait Store: Send + Sync {
    /// Cheap round trip to the database (readiness checks).
    async fn ping(&self) -> Result<()>;

    /// A value of the process-wide settings table; `init` is stored and returned if absent.
    async fn setting_or_init(&self, key: &str, init: &str) -> Result<String>;

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
}

/// A key renamed in a blueprint update; entity data follows it.
#[derive(Debug, Clone)]
pub enum Rename {
    Property { from: String, to: String },
    Relation { from: String, to: String },
}
