//! The metrics ingest URL of the latest Ocean (0.48; `integration.metricAttributes.ingestUrl` =
//! `<base>/v1/integration/{id}/metrics`): `POST …/syncMetrics`, `PUT
//! …/syncMetrics/resync/{eventId}/kind/{kind}` and `POST …/heartbeat`, each kept as a line of
//! the integration's event log (source `ocean`, event `sync_metrics` / `heartbeat`).

use axum::Json;
use axum::extract::{Path, State};
use portolan_core::FieldError;
use portolan_store::IntegrationLog;
use serde_json::{Value, json};

use super::load;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::JsonBody;
use crate::ops::audit::now_iso;
use crate::ops::event_log::running_resync;
use crate::state::AppState;

/// Keep one metrics line Ocean sent in the integration's event log.
async fn log_ocean(
    state: &AppState,
    caller: &Caller,
    id: &str,
    level: &str,
    event: &str,
    message: String,
    extra: Value,
) -> ApiResult<()> {
    load(state, caller, id).await?;
    let resync = running_resync(state, &caller.org, id).await.map(|r| r.id);
    let line = IntegrationLog {
        id: String::new(),
        at: now_iso(),
        level: level.into(),
        source: "ocean".into(),
        event: event.into(),
        resync_id: resync,
        message,
        extra,
    };
    state.store.append_integration_logs(&caller.org, id, &[line]).await?;
    Ok(())
}

/// `POST /v1/integration/{id}/metrics/syncMetrics` `{syncKindsMetrics: [...]}`.
pub async fn post_sync_metrics(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let Some(metrics) = body.get("syncKindsMetrics").filter(|m| m.is_array()) else {
        return Err(FieldError::new("syncKindsMetrics", "is required: an array of per-kind sync metrics").into());
    };
    let n = metrics.as_array().map_or(0, Vec::len);
    let msg = format!("sync metrics of {n} kinds");
    log_ocean(&state, &caller, &id, "INFO", "sync_metrics", msg, json!({"syncKindsMetrics": metrics})).await?;
    Ok(Json(json!({"ok": true})))
}

/// `PUT /v1/integration/{id}/metrics/syncMetrics/resync/{eventId}/kind/{kind}` `{syncKindMetrics}`.
pub async fn put_kind_sync_metrics(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, event_id, kind)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let Some(metrics) = body.get("syncKindMetrics").filter(|m| m.is_object()) else {
        return Err(FieldError::new("syncKindMetrics", "is required: an object with the kind's sync metrics").into());
    };
    let msg = format!("sync metrics of kind {kind:?} (event {event_id})");
    let extra = json!({"eventId": event_id, "kind": kind, "syncKindMetrics": metrics});
    log_ocean(&state, &caller, &id, "INFO", "sync_metrics", msg, extra).await?;
    Ok(Json(json!({"ok": true})))
}

/// `POST /v1/integration/{id}/metrics/heartbeat` `{eventId}`.
pub async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    if !body.is_object() {
        return Err(FieldError::new("", "the body must be a JSON object {eventId}").into());
    }
    let event_id = body.get("eventId").cloned().unwrap_or(Value::Null);
    let msg = match event_id.as_str() {
        Some(e) => format!("heartbeat (event {e})"),
        None => "heartbeat".to_string(),
    };
    log_ocean(&state, &caller, &id, "DEBUG", "heartbeat", msg, json!({"eventId": event_id})).await?;
    Ok(Json(json!({"ok": true})))
}
