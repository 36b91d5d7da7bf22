//! The operations the API routes, the web UI and the background jobs share: typed arguments
//! in, typed results out, every rule and side effect (validation, audit records, the
//! integration event log, the mass-deletion guard, blueprint cache invalidation) applied here
//! once. Handlers only extract the request, call an operation and build Port's envelope.
//!
//! *Architecture invariant:* nothing here knows HTTP requests or responses; errors are
//! [`ApiError`](crate::error::ApiError)s because their codes are the API's vocabulary.

pub mod action;
pub mod approval;
pub mod audit;
pub mod blueprint;
pub mod deletion_guard;
pub mod entity;
pub mod event_log;
pub mod integration;
pub mod page;
pub mod people;
pub mod policy;
pub mod run_timeout;
pub mod scorecard;
pub mod secrets;
pub mod system_entity;
pub mod webhook;

use portolan_store::OrgId;

/// Who performs an operation: the organization acted on and the writer recorded in the audit
/// log, `$updatedBy` and `$datasource`. The API's [`Caller`](crate::auth::Caller) is one (from
/// the bearer token); the web UI acts as the signed-in user, a webhook delivery as the webhook.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The API client id, the web user's email, or `webhook:<identifier>`.
    pub client_id: String,
    pub org: OrgId,
    /// The request's User-Agent (the writer's `$datasource`); an Ocean User-Agent marks the
    /// writes of an integration.
    pub user_agent: Option<String>,
    /// Who decides what it may do ([`crate::access`]): an organization credential, a webhook
    /// and a background job act as an administrator machine.
    pub principal: portolan_core::permissions::Principal,
    /// How many automation runs led to this change (0 unless an automation's run writes);
    /// carried onto the automation events the change causes ([`AuditCtx::depth`]).
    ///
    /// [`AuditCtx::depth`]: portolan_store::AuditCtx
    pub depth: u32,
    /// The organization's blueprint version read with the caller's credential at the start of
    /// this request (`None` elsewhere): [`AppState::blueprints_for`] checks the cache against it
    /// instead of reading it again.
    ///
    /// [`AppState::blueprints_for`]: crate::state::AppState::blueprints_for
    pub blueprints_version: Option<i64>,
}
