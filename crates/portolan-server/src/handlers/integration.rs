//! `/v1/integration…`: integrations (Ocean installations) as Port serves them to Ocean — the
//! integration object with its `config` (the mapping, versioned), resync state, raw-data
//! examples per kind, the log ingest URL, resync requests — plus `GET /v1/organization`,
//! `GET /v1/integration/provision-enabled` and the paginated datasource-entities read.
//!
//! The rules and side effects of the writes are in [`crate::ops::integration`]; the event log
//! routes in `integration/event_log.rs`, the cursors and metrics of the latest Ocean in
//! `integration/cursors.rs` and `integration/metrics.rs`. See `docs/ocean.md` for the protocol
//! and the Portolan extensions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use portolan_core::FieldError;
use portolan_core::search::{Query, parse_query};
use portolan_store::{SearchRequest, StoredIntegration};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::computed::{ReadOptions, render};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::handlers::base_url;
use crate::handlers::search::{decode_cursor, encode_cursor};
use crate::ops::audit::now_iso;
use crate::ops::integration::{self, check_body};
use crate::state::AppState;

pub mod cursors;
pub mod event_log;
pub mod metrics;
pub use event_log::{confirm_deletions, ingest_logs, list_logs};

/// Port's integration object: the stored fields plus the managed ones.
pub fn render_integration(i: &StoredIntegration, base: &str) -> Value {
    let mut out = i.data.as_object().cloned().unwrap_or_default();
    out.insert("identifier".into(), json!(i.identifier));
    out.insert("installationId".into(), json!(i.identifier));
    out.insert("installationType".into(), json!("OnPrem"));
    out.insert("configVersion".into(), json!(i.config_version));
    out.insert("createdAt".into(), json!(i.created_at));
    out.insert("createdBy".into(), json!(i.created_by));
    out.insert("updatedAt".into(), json!(i.updated_at));
    out.insert("updatedBy".into(), json!(i.updated_by));
    out.insert("logAttributes".into(), json!({"ingestUrl": format!("{base}/v1/integration/{}/logs", i.identifier)}));
    // The latest Ocean posts sync metrics and heartbeats under this URL (integration/latest.rs).
    out.insert(
        "metricAttributes".into(),
        json!({"ingestUrl": format!("{base}/v1/integration/{}/metrics", i.identifier)}),
    );
    Value::Object(out)
}

pub async fn load(state: &AppState, caller: &Caller, id: &str) -> ApiResult<StoredIntegration> {
    integration::load(state, caller, id).await
}

fn object(body: &Value) -> ApiResult<&Map<String, Value>> {
    body.as_object().ok_or_else(|| FieldError::new("", "the body must be a JSON object").into())
}

/// Port's answer with one integration.
fn respond(i: &StoredIntegration, headers: &HeaderMap) -> Json<Value> {
    Json(json!({"ok": true, "integration": render_integration(i, &base_url(headers))}))
}

/// `GET /v1/integration`.
pub async fn list(State(state): State<AppState>, caller: Caller, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let base = base_url(&headers);
    let all = state.store.list_integrations(&caller.org).await?;
    Ok(Json(json!({"ok": true, "integrations": all.iter().map(|i| render_integration(i, &base)).collect::<Vec<_>>()})))
}

/// Query of `POST /v1/integration`.
#[derive(Debug, Default, Deserialize)]
pub struct CreateParams {
    integration_modes: Option<Value>,
}

/// `POST /v1/integration` `{installationId, installationAppType, version, changelogDestination,
/// config}` (the latest Ocean adds `actionsProcessingEnabled`, `createPortResourcesOrigin`, …,
/// stored as they are). `?integration_modes=create_resources` asks Port to provision default
/// resources, which Portolan does not do (`provision-enabled` lists no type, so Ocean does not
/// ask): the mode is ignored when the body brings a config, and refused when it does not —
/// Ocean would otherwise poll for a config that never comes.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(params): QueryParams<CreateParams>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = object(&body)?;
    let modes = match &params.integration_modes {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![],
    };
    let provision = modes.iter().any(|m| m == "create_resources");
    let saved = integration::create(&state, &caller, body, provision).await?;
    Ok(respond(&saved, &headers))
}

/// `GET /v1/integration/{id}`: 404 (JSON) when it does not exist — Ocean then creates it.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let i = load(&state, &caller, &id).await?;
    Ok(respond(&i, &headers))
}

/// `PATCH /v1/integration/{id}`: change the given fields. An empty body requests a resync.
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let saved = integration::patch(&state, &caller, &id, object(&body)?).await?;
    Ok(respond(&saved, &headers))
}

/// `PUT /v1/integration/{id}`: replace the integration's fields (resync state and requests kept).
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let saved = integration::put(&state, &caller, &id, object(&body)?).await?;
    Ok(respond(&saved, &headers))
}

/// `DELETE /v1/integration/{id}`: the integration, its config versions and its event log (its
/// entities stay).
pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    integration::delete(&state, &caller, &id).await?;
    Ok(Json(json!({"ok": true})))
}

/// `PATCH /v1/integration/{id}/config` `{config}`.
pub async fn patch_config(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = object(&body)?;
    let Some(config) = body.get("config").and_then(Value::as_object) else {
        return Err(FieldError::new("config", "is required: an object (the integration's mapping)").into());
    };
    // The whole body is checked, as on the other write routes; only the config is stored.
    check_body(body)?;
    let saved = integration::patch_config(&state, &caller, &id, config).await?;
    Ok(respond(&saved, &headers))
}

/// `GET /v1/integration/{id}/config/versions` (Portolan extension): every version of the
/// config, newest first.
pub async fn config_versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    load(&state, &caller, &id).await?;
    let versions = state.store.integration_config_versions(&caller.org, &id).await?;
    let out: Vec<Value> = versions
        .iter()
        .map(
            |v| json!({"version": v.version, "config": v.config, "createdAt": v.created_at, "createdBy": v.created_by}),
        )
        .collect();
    Ok(Json(json!({"ok": true, "versions": out})))
}

/// `POST /v1/integration/{id}/config/versions/{version}/restore` (Portolan extension): make an
/// earlier config current again (as a new version).
pub async fn restore_config(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let saved = integration::restore_config(&state, &caller, &id, &version).await?;
    Ok(respond(&saved, &headers))
}

/// `PATCH /v1/integration/{id}/resync-state` `{status, lastResyncStart, lastResyncEnd,
/// nextResync, intervalInMinuets}`. Answers with `integration.resyncState.updatedAt` equal to
/// `integration.updatedAt` (ocean-protocol.md §0.5). `running` starts a resync in the event log
/// (and the deletion guard's count); `completed` / `failed` ends it with its counts.
pub async fn resync_state(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let saved = integration::set_resync_state(&state, &caller, &id, object(&body)?).await?;
    Ok(respond(&saved, &headers))
}

/// Longest resource kind (`repository`, `pull-request`, …) or cursor index the store keeps, in
/// bytes: both are keys of indexes, which PostgreSQL cannot build over long values.
pub(crate) const MAX_KIND_BYTES: usize = 200;

/// Refuse a resource kind (or a cursor's index) too long to be a key.
pub(crate) fn check_kind(name: &str, kind: &str) -> Result<(), FieldError> {
    if kind.len() > MAX_KIND_BYTES {
        return Err(FieldError::new(
            name,
            format!(
                "must be at most {MAX_KIND_BYTES} bytes (this one is {}): it names one of the integration's kinds",
                kind.len()
            ),
        ));
    }
    Ok(())
}

/// `POST|PATCH /v1/integration/{id}/kinds/{kind}/examples` `{examples: [...]}`.
pub async fn put_examples(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, kind)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let Some(examples) = body.get("examples").filter(|e| e.is_array()) else {
        return Err(FieldError::new("examples", "is required: an array of raw objects").into());
    };
    check_kind("kind", &kind)?;
    load(&state, &caller, &id).await?;
    state.store.put_kind_examples(&caller.org, &id, &kind, examples, &now_iso()).await?;
    Ok(Json(json!({"ok": true})))
}

/// `GET /v1/integration/{id}/kinds/{kind}/examples`.
pub async fn get_examples(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, kind)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    load(&state, &caller, &id).await?;
    let examples = state.store.kind_examples(&caller.org, &id, &kind).await?.unwrap_or_else(|| json!([]));
    Ok(Json(json!({"ok": true, "examples": examples})))
}

/// `GET /v1/integration/{id}/resync-request` → `{request: {updatedAt}}`: when a resync was last
/// requested (the integration's creation if never).
pub async fn get_resync_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let i = load(&state, &caller, &id).await?;
    let at = i.data.pointer("/resyncRequest/updatedAt").cloned().unwrap_or_else(|| json!(i.created_at));
    Ok(Json(json!({"ok": true, "request": {"updatedAt": at}})))
}

/// `POST /v1/integration/{id}/resync-request`: request a resync.
pub async fn post_resync_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let at = integration::request_resync(&state, &caller, &id).await?;
    Ok(Json(json!({"ok": true, "request": {"updatedAt": at}})))
}

/// `GET /v1/integration/provision-enabled`: integration types the portal can provision itself
/// (none: Ocean runs where the user runs it).
pub async fn provision_enabled(_caller: Caller) -> Json<Value> {
    Json(json!({"ok": true, "integrations": []}))
}

#[derive(Debug, Deserialize)]
pub struct DatasourceBody {
    datasource_prefix: Option<String>,
    datasource_suffix: Option<String>,
    limit: Option<u32>,
    from: Option<String>,
    before: Option<String>,
}

/// Most entities one datasource-entities page returns (Ocean asks for 5000).
const DATASOURCE_MAX_LIMIT: u32 = 5000;

/// `POST /v1/blueprints/entities/datasource-entities` `{datasource_prefix, datasource_suffix,
/// limit, from?, before?}` → `{entities, next}`: the entities whose `$datasource` starts and
/// ends so (last written before `before`), a page at a time.
pub async fn datasource_entities(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let b: DatasourceBody = serde_json::from_value(body)
        .map_err(|e| ApiError::from(FieldError::new("", format!("the body has the wrong shape: {e}"))))?;
    let mut rules = Vec::new();
    if let Some(p) = b.datasource_prefix.filter(|p| !p.is_empty()) {
        rules.push(json!({"property": "$datasource", "operator": "beginsWith", "value": p}));
    }
    if let Some(s) = b.datasource_suffix.filter(|s| !s.is_empty()) {
        rules.push(json!({"property": "$datasource", "operator": "endsWith", "value": s}));
    }
    if rules.is_empty() {
        return Err(FieldError::new("datasource_prefix", "datasource_prefix or datasource_suffix is required").into());
    }
    if let Some(before) = &b.before {
        rules.push(json!({"property": "$updatedAt", "operator": "<", "value": before}));
    }
    let query: Query = parse_query(&json!({"combinator": "and", "rules": rules})).map_err(ApiError::from)?;
    let limit = b.limit.unwrap_or(DATASOURCE_MAX_LIMIT);
    if !(1..=DATASOURCE_MAX_LIMIT).contains(&limit) {
        return Err(FieldError::new("limit", format!("must be from 1 to {DATASOURCE_MAX_LIMIT}")).into());
    }
    let after = b.from.as_deref().map(decode_cursor).transpose()?;
    let blueprints = state.blueprints_for(&caller).await?;
    let req = SearchRequest { after, ..SearchRequest::new(&blueprints, None, Some(&query), limit) };
    let page = state.store.search(&caller.org, &req).await?;
    let entities = render(&state, &caller, &page.entities, &ReadOptions::default()).await?;
    Ok(Json(json!({"ok": true, "entities": entities, "next": page.next.map(encode_cursor)})))
}
