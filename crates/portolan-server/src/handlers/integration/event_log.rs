//! The event log of an integration: `GET …/logs`, the log ingest URL `POST …/logs`, and the
//! confirmation of deletions the mass-deletion guard refused.
//!
//! The log holds the lines Ocean ships to `logAttributes.ingestUrl` (source `ocean`) and what
//! the server saw (source `server`, written by [`crate::ops::event_log`] and
//! [`crate::ops::deletion_guard`]): every write of the integration that was rejected (entity
//! and reason), every deletion, refused deletions, and each resync's start and end with its
//! counts.

use axum::Json;
use axum::extract::{Path, State};
use portolan_core::FieldError;
use portolan_store::{IntegrationLog, LogFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::load;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::ops::audit::now_iso;
use crate::ops::deletion_guard;
use crate::ops::event_log::running_resync;
use crate::state::AppState;

/// `POST /v1/integration/{id}/confirm-deletions` (Portolan extension): an admin confirms that
/// the deletions the guard refused are intended — those of the running resync, or (when none
/// runs) those of the next resync.
pub async fn confirm_deletions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let running = deletion_guard::confirm(&state, &caller, &id).await?;
    let scope = if running.is_some() { "running" } else { "next" };
    Ok(Json(json!({"ok": true, "confirmed": scope, "resyncId": running.map(|r| r.id)})))
}

/// `POST /v1/integration/{id}/logs` `{logs: [{message, level, timestamp, extra}]}`: the log
/// ingest URL Ocean ships its log lines to (`integration.logAttributes.ingestUrl`).
pub async fn ingest_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let Some(logs) = body.get("logs").and_then(Value::as_array) else {
        return Err(FieldError::new("logs", "is required: an array of {message, level, timestamp, extra}").into());
    };
    load(&state, &caller, &id).await?;
    let resync = running_resync(&state, &caller.org, &id).await.map(|r| r.id);
    let now = now_iso();
    let lines: Vec<IntegrationLog> = logs
        .iter()
        .map(|l| IntegrationLog {
            id: String::new(),
            at: l.get("timestamp").and_then(Value::as_str).map_or_else(|| now.clone(), str::to_string),
            level: l.get("level").and_then(Value::as_str).unwrap_or("INFO").to_ascii_uppercase(),
            source: "ocean".into(),
            event: "log".into(),
            resync_id: resync.clone(),
            message: match l.get("message") {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            },
            extra: l.get("extra").filter(|e| e.is_object()).cloned().unwrap_or_else(|| json!({})),
        })
        .collect();
    state.store.append_integration_logs(&caller.org, &id, &lines).await?;
    Ok(Json(json!({"ok": true})))
}

/// Query of `GET /v1/integration/{id}/logs` (and of `GET /v1/webhooks/{id}/logs`).
#[derive(Debug, Default, Deserialize)]
pub struct LogParams {
    limit: Option<String>,
    timestamp: Option<String>,
    log_id: Option<String>,
    direction: Option<String>,
    /// A resync (`rs_<n>`), or for a webhook a delivery (its job id `job_<n>`).
    #[serde(rename = "eventId")]
    event_id: Option<String>,
    level: Option<Value>,
    event: Option<Value>,
    source: Option<String>,
}

fn list_param(v: &Option<Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![],
    }
}

/// Port's log levels.
const LEVELS: &[&str] = &["DEBUG", "INFO", "WARNING", "ERROR", "FATAL"];

impl LogParams {
    /// The store filter of these parameters: `limit` 0..300 (default 100), `direction` up
    /// (newest first, before the cursor) or down (oldest first, after it), `level`s of Port's,
    /// `log_id` a line id with `id_prefix` (`il_`, `wl_`). Errors name the parameter.
    pub fn filter(&self, id_prefix: &str) -> ApiResult<LogFilter> {
        let limit = match &self.limit {
            None => 100,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|l| *l <= 300)
                .ok_or_else(|| ApiError::from(FieldError::new("limit", "must be an integer from 0 to 300")))?,
        };
        let down = match self.direction.as_deref() {
            None | Some("up") => false,
            Some("down") => true,
            Some(_) => return Err(FieldError::new("direction", "must be \"up\" or \"down\"").into()),
        };
        let levels: Vec<String> = list_param(&self.level).into_iter().map(|l| l.to_ascii_uppercase()).collect();
        if let Some(bad) = levels.iter().find(|l| !LEVELS.contains(&l.as_str())) {
            return Err(FieldError::new("level", format!("{bad:?} is not one of {}", LEVELS.join(", "))).into());
        }
        let cursor = match &self.log_id {
            None => None,
            Some(l) => Some(l.strip_prefix(id_prefix).and_then(|n| n.parse::<i64>().ok()).ok_or_else(|| {
                ApiError::from(FieldError::new("log_id", format!("is not a log line id ({id_prefix}<n>)")))
            })?),
        };
        let (from, to) = match (&self.timestamp, down) {
            (Some(t), true) => (Some(t.clone()), None),
            (Some(t), false) => (None, Some(t.clone())),
            (None, _) => (None, None),
        };
        Ok(LogFilter {
            levels,
            events: list_param(&self.event),
            source: self.source.clone(),
            resync_id: self.event_id.clone(),
            cursor: cursor.map(|c| (c, !down)),
            from,
            to,
            ascending: down,
            limit,
        })
    }
}

/// Log lines as the API answers them; `group_key` names the line's resync (`resyncId`) or
/// delivery (`deliveryId`).
pub fn render_logs(lines: &[IntegrationLog], group_key: &str) -> Value {
    let out: Vec<Value> = lines
        .iter()
        .map(|l| {
            json!({"id": l.id, "timestamp": l.at, "level": l.level, "message": l.message, "source": l.source,
                   "event": l.event, group_key: l.resync_id, "extra": l.extra})
        })
        .collect();
    json!({"ok": true, "logs": out})
}

/// `GET /v1/integration/{id}/logs?limit=&timestamp=&log_id=&direction=up|down&eventId=&level=`
/// (+ Portolan's `event`, `source`): `{logs: [...]}`, newest first (`direction=down`: the lines
/// after the cursor, oldest first). `limit` 0..300, default 100.
pub async fn list_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<LogParams>,
) -> ApiResult<Json<Value>> {
    let filter = p.filter("il_")?;
    load(&state, &caller, &id).await?;
    if filter.limit == 0 {
        return Ok(Json(json!({"ok": true, "logs": []})));
    }
    let lines = state.store.list_integration_logs(&caller.org, &id, &filter).await?;
    Ok(Json(render_logs(&lines, "resyncId")))
}
