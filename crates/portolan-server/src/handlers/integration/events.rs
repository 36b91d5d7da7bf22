//! The event log of an integration and the mass-deletion guard.
//!
//! The log holds the lines Ocean ships to `logAttributes.ingestUrl` (source `ocean`) and what
//! the server saw (source `server`): every write of the integration that was rejected (entity
//! and reason), every deletion, refused deletions, and each resync's start and end with its
//! counts. A request belongs to an integration when its User-Agent is Ocean's
//! (`port-ocean/<type>/<version>/<identifier>/exporter`) and that integration exists.
//!
//! The guard: while a resync of an integration runs, its deletions may remove at most
//! `maxShare` (default 0.5) of the entities it had when the resync started, once more than
//! `minCount` (default 10) deletions are at stake. The first deletion of a resync also checks
//! how many of the integration's entities the resync did not write (what Ocean is about to
//! delete), so a source that answered nothing is refused before anything goes. Once refused,
//! every further deletion of that resync is refused until an admin confirms with
//! `POST /v1/integration/{id}/confirm-deletions`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portolan_core::FieldError;
use portolan_core::search::parse_query;
use portolan_store::{
    DeletionGuard, IntegrationLog, LogFilter, OrgId, Reservation, Resync, SearchRequest, StoredIntegration,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::load;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::handlers::now_iso;
use crate::state::AppState;

/// The integration identifier in an Ocean User-Agent
/// (`port-ocean/<type>/<version>/<identifier>[/exporter|/gitops]`).
pub fn ocean_integration(ua: &str) -> Option<&str> {
    let rest = ua.strip_prefix("port-ocean/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let parts = match parts.last() {
        Some(&("exporter" | "gitops")) => &parts[..parts.len() - 1],
        _ => &parts[..],
    };
    (parts.len() == 3 && !parts[2].is_empty()).then(|| parts[2])
}

/// The integration a request writes for: its User-Agent names an existing integration.
async fn caller_integration(state: &AppState, caller: &Caller) -> Option<StoredIntegration> {
    let id = ocean_integration(caller.user_agent.as_deref()?)?;
    match state.store.get_integration(&caller.org, id).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the integration of a write");
            None
        }
    }
}

/// How many entities integration `id` wrote last (by `$datasource`), optionally only those last
/// written before / at or after a time.
pub(crate) async fn count_entities(
    state: &AppState,
    org: &OrgId,
    id: &str,
    before: Option<&str>,
    since: Option<&str>,
) -> ApiResult<u64> {
    let mut rules = vec![
        json!({"property": "$datasource", "operator": "beginsWith", "value": "port-ocean/"}),
        json!({"property": "$datasource", "operator": "endsWith", "value": format!("/{id}/exporter")}),
    ];
    if let Some(b) = before {
        rules.push(json!({"property": "$updatedAt", "operator": "<", "value": b}));
    }
    if let Some(s) = since {
        rules.push(json!({"property": "$updatedAt", "operator": ">=", "value": s}));
    }
    let query = parse_query(&json!({"combinator": "and", "rules": rules})).map_err(ApiError::from)?;
    let blueprints = state.blueprints(org).await?;
    let req = SearchRequest::new(&blueprints, None, Some(&query), 1);
    Ok(state.store.count_entities(org, &req).await?)
}

/// Append one server line to an integration's event log (best effort: a failure is logged,
/// never fails the request that caused it).
#[allow(clippy::too_many_arguments)]
pub async fn log_server(
    state: &AppState,
    org: &OrgId,
    id: &str,
    resync: Option<String>,
    level: &str,
    event: &str,
    message: String,
    extra: Value,
) {
    let line = IntegrationLog {
        id: String::new(),
        at: now_iso(),
        level: level.into(),
        source: "server".into(),
        event: event.into(),
        resync_id: resync,
        message,
        extra,
    };
    if let Err(e) = state.store.append_integration_logs(org, id, &[line]).await {
        tracing::warn!(error = %e, integration = id, "could not append to the integration's event log");
    }
}

/// The running resync of an integration, if any (best effort).
pub(crate) async fn running_resync(state: &AppState, org: &OrgId, id: &str) -> Option<Resync> {
    match state.store.latest_resync(org, id).await {
        Ok(r) => r.filter(|r| r.status == "running"),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the integration's resync");
            None
        }
    }
}

/// `PATCH …/resync-state` with `running`.
pub async fn resync_started(state: &AppState, org: &OrgId, i: &StoredIntegration, at: &str) -> ApiResult<()> {
    let entities = count_entities(state, org, &i.identifier, None, None).await?;
    let r = state.store.start_resync(org, &i.identifier, at, entities).await?;
    let msg = format!("resync {} started; the integration has {entities} entities", r.id);
    let extra = json!({"entities": entities, "deletionsConfirmed": r.confirmed});
    log_server(state, org, &i.identifier, Some(r.id), "INFO", "resync_started", msg, extra).await;
    Ok(())
}

/// `PATCH …/resync-state` with `completed` or `failed`: the resync's counts.
pub async fn resync_finished(
    state: &AppState,
    org: &OrgId,
    i: &StoredIntegration,
    status: &str,
    at: &str,
) -> ApiResult<()> {
    let Some(r) = state.store.finish_resync(org, &i.identifier, status, at).await? else {
        return Ok(());
    };
    let written = count_entities(state, org, &i.identifier, None, Some(&r.started_at)).await?;
    let entities = count_entities(state, org, &i.identifier, None, None).await?;
    let filter = LogFilter {
        events: vec!["entity_rejected".into()],
        resync_id: Some(r.id.clone()),
        limit: 10_000,
        ..LogFilter::default()
    };
    let rejected = state.store.list_integration_logs(org, &i.identifier, &filter).await?.len();
    let msg = format!(
        "resync {} {status}: {written} entities written, {rejected} writes rejected, {} deleted, {} deletions refused; {entities} entities now",
        r.id, r.deleted, r.refused
    );
    let level = if status == "failed" || r.refused > 0 || rejected > 0 { "WARNING" } else { "INFO" };
    let extra = json!({"status": status, "written": written, "rejected": rejected, "deleted": r.deleted,
                       "deletionsRefused": r.refused, "entitiesAtStart": r.entities_at_start, "entities": entities,
                       "startedAt": r.started_at, "endedAt": r.ended_at});
    log_server(state, org, &i.identifier, Some(r.id), level, "resync_finished", msg, extra).await;
    Ok(())
}

/// Hook of the entity write paths: writes (and deletes) of an integration that were refused,
/// `(identifier, reason, action)`, go to its event log.
pub async fn on_rejected(state: &AppState, caller: &Caller, bp: &str, fails: &[(String, String, &'static str)]) {
    if fails.is_empty() {
        return;
    }
    let Some(i) = caller_integration(state, caller).await else { return };
    let resync = running_resync(state, &caller.org, &i.identifier).await.map(|r| r.id);
    let lines: Vec<IntegrationLog> = fails
        .iter()
        .map(|(id, reason, action)| IntegrationLog {
            id: String::new(),
            at: now_iso(),
            level: "ERROR".into(),
            source: "server".into(),
            event: "entity_rejected".into(),
            resync_id: resync.clone(),
            message: format!("{action} of entity {id:?} of blueprint {bp:?} was rejected: {reason}"),
            extra: json!({"blueprint": bp, "identifier": id, "action": action, "reason": reason}),
        })
        .collect();
    if let Err(e) = state.store.append_integration_logs(&caller.org, &i.identifier, &lines).await {
        tracing::warn!(error = %e, "could not append rejected writes to the integration's event log");
    }
}

/// Deletions the guard let through, to log (and give back if the delete fails).
#[derive(Debug)]
pub struct DeletionTicket {
    integration: String,
    resync: Option<Resync>,
    n: u64,
}

/// The guard of a store-level deletion of `ids`: `Ok(None)` when the caller is not an
/// integration, `Err` (409 `mass_deletion_refused`, logged) when the guard refuses.
pub async fn before_delete(
    state: &AppState,
    caller: &Caller,
    bp: &str,
    ids: &[String],
) -> ApiResult<Option<DeletionTicket>> {
    let Some(i) = caller_integration(state, caller).await else { return Ok(None) };
    let n = ids.len() as u64;
    let Some(running) = running_resync(state, &caller.org, &i.identifier).await else {
        return Ok(Some(DeletionTicket { integration: i.identifier, resync: None, n }));
    };
    let guard = guard_of(&i);
    let projected = if running.deleted == 0 && !running.confirmed && !running.tripped {
        count_entities(state, &caller.org, &i.identifier, Some(&running.started_at), None).await?
    } else {
        0
    };
    match state.store.reserve_deletions(&caller.org, &i.identifier, n, projected, &guard).await? {
        Reservation::Granted(r) => Ok(Some(DeletionTicket { integration: i.identifier, resync: Some(r), n })),
        Reservation::NoResync => Ok(Some(DeletionTicket { integration: i.identifier, resync: None, n })),
        Reservation::Refused(r) => {
            let message = format!(
                "mass-deletion guard: resync {} of integration {:?} would delete more than {}% of the {} entities it had at its start \
                 (deleted so far: {}, not written by this resync: {projected}, minimum before the guard applies: {}); \
                 deletion of {bp}/{} refused. If this is intended, confirm with POST /v1/integration/{}/confirm-deletions and resync again",
                r.id,
                i.identifier,
                guard.max_share * 100.0,
                r.entities_at_start,
                r.deleted,
                guard.min_count,
                ids.join(","),
                i.identifier
            );
            let extra = json!({"blueprint": bp, "identifiers": ids, "entitiesAtStart": r.entities_at_start,
                               "deleted": r.deleted, "refused": r.refused, "projected": projected,
                               "maxShare": guard.max_share, "minCount": guard.min_count});
            log_server(
                state,
                &caller.org,
                &i.identifier,
                Some(r.id),
                "ERROR",
                "deletion_refused",
                message.clone(),
                extra,
            )
            .await;
            Err(ApiError::new(StatusCode::CONFLICT, "mass_deletion_refused", message))
        }
    }
}

/// After the store deleted (`Ok(deleted)`) or failed to: log the deletions, or give the
/// reservation back.
pub async fn after_delete(
    state: &AppState,
    caller: &Caller,
    ticket: Option<DeletionTicket>,
    deleted: Option<&[(String, String)]>,
) {
    let Some(t) = ticket else { return };
    let resync_id = t.resync.as_ref().map(|r| r.id.clone());
    let Some(deleted) = deleted else {
        if let Some(r) = &resync_id
            && let Err(e) = state.store.release_deletions(&caller.org, r, t.n).await
        {
            tracing::warn!(error = %e, "could not release reserved deletions");
        }
        return;
    };
    let lines: Vec<IntegrationLog> = deleted
        .iter()
        .map(|(bp, id)| IntegrationLog {
            id: String::new(),
            at: now_iso(),
            level: "INFO".into(),
            source: "server".into(),
            event: "entity_deleted".into(),
            resync_id: resync_id.clone(),
            message: format!("entity {id:?} of blueprint {bp:?} was deleted"),
            extra: json!({"blueprint": bp, "identifier": id}),
        })
        .collect();
    if let Err(e) = state.store.append_integration_logs(&caller.org, &t.integration, &lines).await {
        tracing::warn!(error = %e, "could not append deletions to the integration's event log");
    }
}

/// The integration's guard: `deletionGuard: {maxShare, minCount}` (Portolan extension), else
/// the defaults (0.5, 10).
pub fn guard_of(i: &StoredIntegration) -> DeletionGuard {
    let d = DeletionGuard::default();
    let g = i.data.get("deletionGuard");
    DeletionGuard {
        max_share: g.and_then(|g| g.get("maxShare")).and_then(Value::as_f64).unwrap_or(d.max_share),
        min_count: g.and_then(|g| g.get("minCount")).and_then(Value::as_u64).unwrap_or(d.min_count),
    }
}

/// `POST /v1/integration/{id}/confirm-deletions` (Portolan extension): an admin confirms that
/// the deletions the guard refused are intended — those of the running resync, or (when none
/// runs) those of the next resync.
pub async fn confirm_deletions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let running = state.store.confirm_deletions(&caller.org, &id).await?;
    let scope = if running.is_some() { "running" } else { "next" };
    let msg = match &running {
        Some(r) => format!("deletions of the running resync {} confirmed by {}", r.id, caller.client_id),
        None => format!("deletions of the next resync confirmed by {}", caller.client_id),
    };
    let resync_id = running.as_ref().map(|r| r.id.clone());
    log_server(
        &state,
        &caller.org,
        &id,
        resync_id.clone(),
        "WARNING",
        "deletion_confirmed",
        msg,
        json!({"by": caller.client_id, "resync": scope}),
    )
    .await;
    Ok(Json(json!({"ok": true, "confirmed": scope, "resyncId": resync_id})))
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

#[cfg(test)]
mod tests {
    use super::ocean_integration;

    #[test]
    fn the_integration_of_an_ocean_user_agent() {
        assert_eq!(ocean_integration("port-ocean/local-json/0.1.0/my-int/exporter"), Some("my-int"));
        assert_eq!(ocean_integration("port-ocean/local-json/0.1.0/my-int"), Some("my-int"));
        assert_eq!(ocean_integration("port-ocean/local-json/0.1.0//exporter"), None);
        assert_eq!(ocean_integration("python-httpx/0.27.2"), None);
        assert_eq!(ocean_integration("port-ocean/x/exporter"), None);
    }
}
