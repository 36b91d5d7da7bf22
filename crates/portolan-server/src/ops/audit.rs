//! Audit context and failure records of the server's writes, and the one clock format.

use chrono::{DateTime, Utc};
use portolan_store::{AuditCtx, AuditRecord};

use super::Actor;
use crate::state::AppState;

/// An instant as Port writes it: `2024-01-31T12:00:00.000Z`.
pub fn iso(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Now, as [`iso`] writes it.
pub fn now_iso() -> String {
    iso(Utc::now())
}

/// Who is writing, from where (the User-Agent, else `API`), now.
pub fn audit_ctx(actor: &Actor) -> AuditCtx {
    AuditCtx {
        user_id: actor.client_id.clone(),
        origin: actor.user_agent.clone().map_or_else(|| "API".to_string(), |ua| ua.chars().take(200).collect()),
        at: now_iso(),
        depth: actor.depth,
    }
}

/// The longest start of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn byte_prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An audit record for a write that was refused.
pub fn failure_record(
    actor: &Actor,
    resource: &str,
    action: &str,
    identifier: &str,
    blueprint: Option<&str>,
    entity: Option<&str>,
    message: &str,
) -> AuditRecord {
    let ctx = audit_ctx(actor);
    AuditRecord {
        id: String::new(),
        at: ctx.at,
        resource_type: resource.into(),
        action: action.into(),
        status: "FAILURE".into(),
        identifier: identifier.chars().take(1000).collect(),
        // The refused values, cut to what the audit log's (blueprint, entity) index can key.
        blueprint: blueprint.map(|b| byte_prefix(b, 400).to_string()),
        entity: entity.map(|e| byte_prefix(e, portolan_core::ident::MAX_ENTITY_IDENT_BYTES).to_string()),
        origin: ctx.origin,
        user_id: ctx.user_id,
        diff: None,
        message: Some(message.chars().take(2000).collect()),
    }
}

/// Append failure records to the actor's audit log (best effort: a failure to record is
/// logged, never fails the operation that was refused).
/// Record a change the store does not audit itself (organization credentials, removed users):
/// `resource` `action` on `identifier` succeeded, with `diff` (`{before, after}`).
pub async fn record_change(
    state: &AppState,
    actor: &Actor,
    resource: &str,
    action: &str,
    identifier: &str,
    diff: Option<serde_json::Value>,
) {
    let mut rec = failure_record(actor, resource, action, identifier, None, None, "");
    rec.status = "SUCCESS".into();
    rec.message = None;
    rec.diff = diff;
    if let Err(e) = state.store.append_audit(&actor.org, &[rec]).await {
        tracing::warn!(error = %e, "could not record a change in the audit log");
    }
}

pub async fn record_failures(state: &AppState, actor: &Actor, records: &[AuditRecord]) {
    if records.is_empty() {
        return;
    }
    if let Err(e) = state.store.append_audit(&actor.org, records).await {
        tracing::warn!(error = %e, "could not record failed writes in the audit log");
    }
}
