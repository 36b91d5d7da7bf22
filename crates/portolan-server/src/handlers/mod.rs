//! One module per resource.

pub mod apps;
pub mod audit;
pub mod blueprint;
pub mod entity;
pub mod integration;
pub mod jobs;
pub mod search;
pub mod webhook;

use portolan_store::{AuditCtx, AuditRecord};

use crate::auth::Caller;

pub fn now_iso() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Who is writing: the API client, from the API (or its datasource).
pub fn audit_ctx(caller: &Caller) -> AuditCtx {
    AuditCtx {
        user_id: caller.client_id.clone(),
        origin: caller.user_agent.clone().map_or_else(|| "API".to_string(), |ua| ua.chars().take(200).collect()),
        at: now_iso(),
    }
}

/// An audit record for a write that was refused.
pub fn failure_record(
    caller: &Caller,
    resource: &str,
    action: &str,
    identifier: &str,
    blueprint: Option<&str>,
    entity: Option<&str>,
    message: &str,
) -> AuditRecord {
    let ctx = audit_ctx(caller);
    AuditRecord {
        id: String::new(),
        at: ctx.at,
        resource_type: resource.into(),
        action: action.into(),
        status: "FAILURE".into(),
        identifier: identifier.chars().take(1000).collect(),
        blueprint: blueprint.map(str::to_string),
        entity: entity.map(str::to_string),
        origin: ctx.origin,
        user_id: ctx.user_id,
        diff: None,
        message: Some(message.chars().take(2000).collect()),
    }
}

/// The server's base URL as the client reached it (`X-Forwarded-Proto`/`-Host` behind a proxy,
/// else `Host`): integration log URLs and webhook ingest URLs are built on it.
pub(crate) fn base_url(headers: &axum::http::HeaderMap) -> String {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    let proto = h("x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = h("x-forwarded-host").or_else(|| h("host")).unwrap_or_else(|| "127.0.0.1".into());
    format!("{proto}://{host}")
}
