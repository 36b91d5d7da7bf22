#![doc = include_str!("../README.md")]

mod accounts;
mod actions;
mod aggregations;
mod audit;
mod automations;
mod blueprints;
mod budget;
mod changelog;
#[cfg(feature = "conformance")]
pub mod conformance;
mod db;
mod dialect;
mod entities;
mod eventlog;
mod integrations;
mod jobs;
pub mod migrate;
mod mirror;
mod orgs;
mod pages;
mod permission_docs;
mod plan;
pub mod query;
mod resyncs;
mod scorecards;
mod secrets;
mod settings;
pub mod sql;
mod teams;
mod ui;
mod webhooks;
mod widgets;

use portolan_core::FieldError;

pub use accounts::{Accounts, Invitation, Session, User};
pub use actions::{ActionWrite, Actions, MAX_CLAIM, Run, RunEdit, RunFilter, RunLog, StoredAction, run_json};
pub use aggregations::{
    AGGREGATE_ENTITIES_JOB, AGGREGATE_RECOMPUTE_JOB, Affected, AggregateOutcome, AggregateTargets, AggregationValue,
    Aggregations, MAX_AFFECTED,
};
pub use audit::{Audit, AuditCtx, AuditFilter, AuditRecord, RESOURCE_TYPES};
pub use automations::{AUTOMATION_JOB, AutomationEvent, Automations, Dispatch, MAX_TIMERS_PER_TICK};
pub use blueprints::{Blueprints, Rename, StoredBlueprint};
pub use changelog::{CHANGELOG_JOB, Changelog, ChangelogEvent, ChangelogStatus};
pub use db::DbError;
pub use dialect::{DEFAULT_QUERY_BUDGET, budget_text};
pub use entities::WriteGroupUse;
pub use entities::{
    BuildEntity, Entities, EntityWrite, Page, RelTarget, SearchRequest, SortedPage, WriteRejection, Written,
};
#[doc(hidden)]
pub use entities::{team_count_sql, team_walk_sql, write_path_lookup_key, write_path_lookups};
pub use eventlog::{IntegrationLog, LogFilter};
pub use integrations::{ConfigVersion, Integrations, SaveMode, StoredIntegration};
pub use jobs::{CLAIM_LOCK, Job, JobFilter, JobShare, JobStatus, Jobs, Lease, NewJob, QueueStat, job_queue_statements};
pub use mirror::SystemChange;
pub use orgs::{Credential, Org, Orgs, Quotas, Usage};
pub use pages::{Pages, StoredPage};
pub use resyncs::{DeletionGuard, Reservation, Resync, Resyncs};
pub use scorecards::{
    LevelChange, SCORE_ENTITIES_JOB, ScoreOutcome, ScoreTargets, ScorecardResult, ScorecardWrite, Scorecards,
    StoredScorecard,
};
pub use secrets::{OrgSecret, Secrets};
pub use settings::{PoolUse, Settings};
pub use teams::{MAX_TEAMS, Person, PersonEdit, Team, TeamWrite, Teams};
pub use ui::{InitialFilter, Ui};
pub use webhooks::{Delivery, StoredWebhook, WebhookWrite, Webhooks};
pub use widgets::{Aggregate, Breakdown, MAX_COMBINATIONS, MAX_GROUPS, Measure, Measured, SCAN_PART_ROWS, Widgets};

pub(crate) use dialect::{Budget, SearchGate};
pub(crate) use jobs::job_rowid;
pub(crate) use resyncs::prefixed_rowid;

/// An organization's id. Every tenant-owned read and write of the store takes one, and every
/// SQL statement the store issues for such rows filters on it (the PostgreSQL write path's key
/// lookups do so through `entities_lookup_key`, whose text begins with the organization).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgId(pub String);

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
    /// A search statement ran past its time budget ([`Settings::set_query_budget`]) and was stopped.
    #[error(
        "the search ran over its {} budget and was stopped; narrow it (a blueprint, fewer or shorter relation paths, more selective rules) or ask for a smaller page",
        budget_text(*budget)
    )]
    OverBudget { budget: std::time::Duration },
    /// No database connection could be had in time (every connection busy) or the database did
    /// not answer: try again later.
    #[error("the database is busy or unreachable: {0}")]
    Unavailable(String),
    /// The database failed (or returned what the store cannot read). Displays as its message;
    /// the sqlx error it came from, if any, is its source.
    #[error("database error: {0}")]
    Db(#[source] DbError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The storage interface: every aggregate's trait. Every method that touches tenant data takes
/// an [`OrgId`]. `Arc<dyn Store>` and a concrete [`SqlStore`] call any aggregate's method
/// without importing its trait.
pub trait Store:
    Settings
    + Orgs
    + Blueprints
    + Entities
    + Audit
    + Jobs
    + Integrations
    + Resyncs
    + Accounts
    + Webhooks
    + Ui
    + Actions
    + Secrets
    + Scorecards
    + Aggregations
    + Pages
    + Teams
    + Widgets
    + Automations
    + Changelog
{
}

impl<T> Store for T where
    T: Settings
        + Orgs
        + Blueprints
        + Entities
        + Audit
        + Jobs
        + Integrations
        + Resyncs
        + Accounts
        + Webhooks
        + Ui
        + Actions
        + Secrets
        + Scorecards
        + Aggregations
        + Pages
        + Teams
        + Widgets
        + Automations
        + Changelog
{
}

/// Every aggregate trait, for calling store methods on a concrete store.
pub mod prelude {
    pub use crate::{
        Accounts, Actions, Aggregations, Audit, Automations, Blueprints, Entities, Integrations, Jobs, Orgs, Pages,
        Resyncs, Scorecards, Secrets, Settings, Store, Teams, Ui, Webhooks, Widgets,
    };
}

/// The store over SQLite or PostgreSQL: one implementation of every aggregate, over
/// `db::Db`; what differs between the databases is in `dialect.rs`.
#[derive(Clone)]
pub struct SqlStore {
    db: db::Db,
    budget: Budget,
    gate: SearchGate,
    /// [`SCAN_PART_ROWS`], lowered by tests ([`Settings::set_scan_part_rows`]).
    scan_part_rows: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The entity write queue (group commit: `entities/group.rs`).
    writes: std::sync::Arc<entities::Groups>,
}

/// The SQLite store ([`SqlStore::open`], [`SqlStore::in_memory`]).
pub type SqliteStore = SqlStore;
/// The PostgreSQL store ([`SqlStore::connect`], [`SqlStore::connect_with_pool_size`]).
pub type PgStore = SqlStore;

/// A concrete store calls every aggregate's method without importing the aggregate's trait
/// (as `Arc<dyn Store>` does): method lookup falls through to `dyn Store`.
impl std::ops::Deref for SqlStore {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        self
    }
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("dialect", &self.db.dialect()).finish_non_exhaustive()
    }
}
