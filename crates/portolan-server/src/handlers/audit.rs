//! `GET /v1/audit-log`.

use axum::Json;
use axum::extract::State;
use portolan_store::{AuditFilter, AuditRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct AuditParams {
    identifier: Option<String>,
    entity: Option<String>,
    blueprint: Option<String>,
    resources: Option<OneOrMany>,
    origin: Option<OneOrMany>,
    action: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
}

/// Port's `resources[]` values (port-api.md §8.8).
use portolan_store::RESOURCE_TYPES as RESOURCES;

pub fn record_json(r: &AuditRecord, org: &str) -> Value {
    json!({
        "id": r.id,
        "identifier": r.identifier,
        "action": r.action,
        "resourceType": r.resource_type,
        "status": r.status,
        "trigger": {"by": {"orgId": org, "userId": r.user_id}, "origin": r.origin, "at": r.at},
        "context": {"blueprint": r.blueprint, "entity": r.entity},
        "diff": r.diff.clone().unwrap_or_else(|| json!({"before": null, "after": null})),
        "message": r.message,
    })
}

fn check_enum(name: &str, v: &Option<String>, allowed: &[&str]) -> ApiResult<()> {
    match v {
        Some(x) if !allowed.contains(&x.as_str()) => {
            Err(ApiError::from(portolan_core::FieldError::new(name, format!("must be one of {}", allowed.join(", ")))))
        }
        _ => Ok(()),
    }
}

fn check_time(name: &str, v: &Option<String>) -> ApiResult<Option<String>> {
    match v {
        None => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| Some(crate::ops::audit::iso(d.with_timezone(&chrono::Utc))))
            .map_err(|_| {
                portolan_core::FieldError::new(name, "must be an ISO-8601 date-time such as 2024-01-31T00:00:00Z")
                    .into()
            }),
    }
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(p): QueryParams<AuditParams>,
) -> ApiResult<Json<Value>> {
    check_enum("action", &p.action, &["CREATE", "UPDATE", "DELETE"])?;
    check_enum("status", &p.status, &["SUCCESS", "FAILURE"])?;
    let limit = match &p.limit {
        None => 100,
        Some(l) => l.parse::<u32>().ok().filter(|l| (1..=10_000).contains(l)).ok_or_else(|| {
            ApiError::from(portolan_core::FieldError::new("limit", "must be an integer from 1 to 10000"))
        })?,
    };
    let resources = p.resources.map(OneOrMany::into_vec).unwrap_or_default();
    if let Some(bad) = resources.iter().find(|r| !RESOURCES.contains(&r.as_str())) {
        return Err(portolan_core::FieldError::new(
            "resources",
            format!("{bad:?} is not a resource type; use {}", RESOURCES.join(", ")),
        )
        .into());
    }
    let (from, to) = (check_time("from", &p.from)?, check_time("to", &p.to)?);
    if let (Some(f), Some(t)) = (&from, &to)
        && t < f
    {
        return Err(portolan_core::FieldError::new("to", "must not be earlier than from").into());
    }
    let resources =
        crate::access::audit_scope(&state, &caller, p.blueprint.as_deref(), p.entity.as_deref(), resources).await?;
    let filter = AuditFilter {
        identifier: p.identifier,
        entity: p.entity,
        blueprint: p.blueprint,
        resources,
        origin: p.origin.map(OneOrMany::into_vec).unwrap_or_default(),
        action: p.action,
        status: p.status,
        from,
        to,
        before: None,
        limit,
    };
    let records = state.store.list_audit(&caller.org, &filter).await?;
    let audits: Vec<Value> = records.iter().map(|r| record_json(r, &caller.org.0)).collect();
    Ok(Json(json!({"ok": true, "audits": audits})))
}
