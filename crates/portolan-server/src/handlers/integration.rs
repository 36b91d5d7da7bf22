//! `/v1/integration…`: integrations (Ocean installations) as Port serves them to Ocean — the
//! integration object with its `config` (the mapping, versioned), resync state, raw-data
//! examples per kind, the log ingest URL, resync requests — plus `GET /v1/organization`,
//! `GET /v1/integration/provision-enabled` and the paginated datasource-entities read.
//!
//! The event log and the mass-deletion guard are in `integration/events.rs`; see
//! `docs/ocean.md` for the protocol and the Portolan extensions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use portolan_core::FieldError;
use portolan_core::search::{Query, parse_query};
use portolan_store::{SaveMode, SearchRequest, StoredIntegration};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::catalog::{ReadOptions, render};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::handlers::search::{decode_cursor, encode_cursor};
use crate::handlers::{audit_ctx, base_url, now_iso};
use crate::state::AppState;

pub mod events;
pub mod latest;
pub use events::{confirm_deletions, ingest_logs, list_logs};

/// Keys of the integration object the server manages: set by the server, never stored from a
/// request body.
const MANAGED: &[&str] = &[
    "identifier",
    "installationId",
    "installationType",
    "configVersion",
    "createdAt",
    "createdBy",
    "updatedAt",
    "updatedBy",
    "logAttributes",
    "metricAttributes",
    "resyncState",
    "resyncRequest",
];

/// The integration's identifier rules: 1 to 100 characters of letters, digits and `@_.:=+-`.
fn check_id(path: &str, id: &str) -> Result<(), FieldError> {
    let ok = !id.is_empty()
        && id.chars().count() <= 100
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "@_.:=+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            path,
            format!(
                "{id:?} is not a valid integration identifier (1 to 100 characters of letters, digits and @_.:=+-)"
            ),
        ))
    }
}

/// Validate the writable fields of an integration body (all errors at once).
pub(crate) fn check_body(body: &Map<String, Value>) -> ApiResult<()> {
    let mut errs = portolan_core::FieldErrors::default();
    if let Some(t) = body.get("installationType")
        && !t.is_null()
        && t != "OnPrem"
    {
        // Ocean refuses to start for any other value (ocean-protocol.md §0.4).
        errs.push("installationType", "must be \"OnPrem\" (the only installation type a self-hosted portal has)");
    }
    match body.get("config") {
        None | Some(Value::Null) => {}
        Some(Value::Object(c)) => check_config(&mut errs, c),
        Some(_) => errs.push("config", "must be an object (the integration's mapping: {resources: [...]})"),
    }
    if let Some(g) = body.get("deletionGuard")
        && !g.is_null()
    {
        let share = g.get("maxShare");
        if !share.is_none_or(|s| s.as_f64().is_some_and(|s| (0.0..=1.0).contains(&s))) {
            errs.push("deletionGuard.maxShare", "must be a number from 0 to 1");
        }
        if g.get("minCount").is_some_and(|m| m.as_u64().is_none()) {
            errs.push("deletionGuard.minCount", "must be a non-negative integer");
        }
        if !g.is_object() {
            errs.push("deletionGuard", "must be an object {maxShare, minCount}");
        }
    }
    for (k, v) in body {
        if ["changelogDestination", "spec", "logAttributes"].contains(&k.as_str()) && !(v.is_object() || v.is_null()) {
            errs.push(k.clone(), "must be an object");
        }
    }
    errs.into_result().map_err(ApiError::from)
}

/// The mapping's shape as Ocean parses it (`PortAppConfig`): what would make Ocean fail.
fn check_config(errs: &mut portolan_core::FieldErrors, c: &Map<String, Value>) {
    for flag in ["deleteDependentEntities", "createMissingRelatedEntities", "enableMergeEntity"] {
        if c.get(flag).is_some_and(|v| !v.is_boolean()) {
            errs.push(format!("config.{flag}"), "must be a boolean");
        }
    }
    if let Some(t) = c.get("entityDeletionThreshold")
        && !t.as_f64().is_some_and(|t| (0.0..=1.0).contains(&t))
    {
        errs.push("config.entityDeletionThreshold", "must be a number from 0 to 1");
    }
    let Some(resources) = c.get("resources") else { return };
    let Some(resources) = resources.as_array() else {
        errs.push("config.resources", "must be an array");
        return;
    };
    for (i, r) in resources.iter().enumerate() {
        let at = format!("config.resources[{i}]");
        if !r.get("kind").is_some_and(Value::is_string) {
            errs.push(format!("{at}.kind"), "is required: the kind of raw object this resource maps");
        }
        match r.get("port").and_then(|p| p.get("entity")).and_then(|e| e.get("mappings")) {
            Some(Value::Object(m)) => check_mapping(errs, &format!("{at}.port.entity.mappings"), m),
            Some(Value::Array(ms)) => {
                for (j, m) in ms.iter().enumerate() {
                    match m.as_object() {
                        Some(m) => check_mapping(errs, &format!("{at}.port.entity.mappings[{j}]"), m),
                        None => errs.push(format!("{at}.port.entity.mappings[{j}]"), "must be an object"),
                    }
                }
            }
            _ => errs.push(format!("{at}.port.entity.mappings"), "is required: {identifier, blueprint, …} (jq)"),
        }
    }
}

fn check_mapping(errs: &mut portolan_core::FieldErrors, at: &str, m: &Map<String, Value>) {
    for key in ["identifier", "blueprint"] {
        match m.get(key) {
            Some(Value::String(_)) => {}
            Some(Value::Object(_)) if key == "identifier" => {}
            _ => errs.push(format!("{at}.{key}"), "is required: a jq expression"),
        }
    }
}

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
    state
        .store
        .get_integration(&caller.org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("integration {id:?} was not found")))
}

fn object(body: &Value) -> ApiResult<&Map<String, Value>> {
    body.as_object().ok_or_else(|| FieldError::new("", "the body must be a JSON object").into())
}

/// The stored fields of a body: everything but the managed keys.
fn writable(body: &Map<String, Value>) -> Map<String, Value> {
    body.iter().filter(|(k, _)| !MANAGED.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Save and, when the config changed, say so in the event log.
async fn save(
    state: &AppState,
    caller: &Caller,
    id: &str,
    data: Map<String, Value>,
    mode: SaveMode,
    before: Option<i64>,
) -> ApiResult<StoredIntegration> {
    let saved =
        state.store.save_integration(&caller.org, id, &Value::Object(data), mode, true, &audit_ctx(caller)).await?;
    if before.is_some_and(|v| v != saved.config_version) {
        let msg = format!("config changed to version {}", saved.config_version);
        events::log_server(
            state,
            &caller.org,
            id,
            None,
            "INFO",
            "config_changed",
            msg,
            json!({"version": saved.config_version}),
        )
        .await;
    }
    Ok(saved)
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
    let empty_config = body.get("config").is_none_or(|c| c.is_null() || c.as_object().is_some_and(Map::is_empty));
    if modes.iter().any(|m| m == "create_resources") && empty_config {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "provisioning_unsupported",
            "this portal does not provision an integration's default resources (integration_modes=create_resources); \
             send the mapping in \"config\", or run Ocean with OCEAN__CREATE_PORT_RESOURCES_ORIGIN=Default so that it \
             creates its defaults itself",
        ));
    }
    let id = match body.get("installationId").or_else(|| body.get("identifier")) {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(FieldError::new("installationId", "is required: the integration's identifier").into()),
    };
    check_id("installationId", &id)?;
    check_body(body)?;
    let mut data = writable(body);
    data.entry("config").or_insert_with(|| json!({}));
    let saved = save(&state, &caller, &id, data, SaveMode::Create, None).await?;
    Ok(Json(json!({"ok": true, "integration": render_integration(&saved, &base_url(&headers))})))
}

/// `GET /v1/integration/{id}`: 404 (JSON) when it does not exist — Ocean then creates it.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let i = load(&state, &caller, &id).await?;
    Ok(Json(json!({"ok": true, "integration": render_integration(&i, &base_url(&headers))})))
}

/// `PATCH /v1/integration/{id}`: change the given fields. An empty body requests a resync.
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = object(&body)?;
    check_body(body)?;
    let old = load(&state, &caller, &id).await?;
    let mut data = old.data.as_object().cloned().unwrap_or_default();
    if body.is_empty() {
        data.insert("resyncRequest".into(), json!({"updatedAt": now_iso()}));
    }
    for (k, v) in writable(body) {
        data.insert(k, v);
    }
    let saved = save(&state, &caller, &id, data, SaveMode::Update, Some(old.config_version)).await?;
    Ok(Json(json!({"ok": true, "integration": render_integration(&saved, &base_url(&headers))})))
}

/// `PUT /v1/integration/{id}`: replace the integration's fields (resync state and requests kept).
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = object(&body)?;
    check_body(body)?;
    let old = load(&state, &caller, &id).await?;
    let mut data = writable(body);
    data.entry("config").or_insert_with(|| json!({}));
    for k in ["resyncState", "resyncRequest"] {
        if let Some(v) = old.data.get(k) {
            data.insert(k.into(), v.clone());
        }
    }
    let saved = save(&state, &caller, &id, data, SaveMode::Update, Some(old.config_version)).await?;
    Ok(Json(json!({"ok": true, "integration": render_integration(&saved, &base_url(&headers))})))
}

/// `DELETE /v1/integration/{id}`: the integration, its config versions and its event log (its
/// entities stay).
pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    state.store.delete_integration(&caller.org, &id, &audit_ctx(&caller)).await?;
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
    let Some(config) = body.get("config").filter(|c| c.is_object()) else {
        return Err(FieldError::new("config", "is required: an object (the integration's mapping)").into());
    };
    check_body(body)?;
    let old = load(&state, &caller, &id).await?;
    let mut data = old.data.as_object().cloned().unwrap_or_default();
    data.insert("config".into(), config.clone());
    let saved = save(&state, &caller, &id, data, SaveMode::Update, Some(old.config_version)).await?;
    Ok(Json(json!({"ok": true, "integration": render_integration(&saved, &base_url(&headers))})))
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
    let old = load(&state, &caller, &id).await?;
    let versions = state.store.integration_config_versions(&caller.org, &id).await?;
    let Some(v) = version.parse::<i64>().ok().and_then(|n| versions.into_iter().find(|v| v.version == n)) else {
        return Err(ApiError::not_found(format!("integration {id:?} has no config version {version:?}")));
    };
    let mut data = old.data.as_object().cloned().unwrap_or_default();
    data.insert("config".into(), v.config);
    let saved = save(&state, &caller, &id, data, SaveMode::Update, Some(old.config_version)).await?;
    Ok(Json(json!({"ok": true, "integration": render_integration(&saved, &base_url(&headers))})))
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
    let body = object(&body)?;
    if let Some(s) = body.get("status")
        && !(s.is_string() || s.is_null())
    {
        return Err(FieldError::new("status", "must be a string (running, completed or failed)").into());
    }
    let old = load(&state, &caller, &id).await?;
    let ctx = audit_ctx(&caller);
    let mut rs = old.data.get("resyncState").and_then(Value::as_object).cloned().unwrap_or_default();
    for (k, v) in body {
        rs.insert(k.clone(), v.clone());
    }
    rs.insert("updatedAt".into(), json!(ctx.at));
    let mut data = old.data.as_object().cloned().unwrap_or_default();
    data.insert("resyncState".into(), Value::Object(rs));
    let saved =
        state.store.save_integration(&caller.org, &id, &Value::Object(data), SaveMode::Update, false, &ctx).await?;
    match body.get("status").and_then(Value::as_str) {
        Some("running") => events::resync_started(&state, &caller.org, &saved, &ctx.at).await?,
        Some(s @ ("completed" | "failed")) => events::resync_finished(&state, &caller.org, &saved, s, &ctx.at).await?,
        _ => {}
    }
    Ok(Json(json!({"ok": true, "integration": render_integration(&saved, &base_url(&headers))})))
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
    let old = load(&state, &caller, &id).await?;
    let at = now_iso();
    let mut data = old.data.as_object().cloned().unwrap_or_default();
    data.insert("resyncRequest".into(), json!({"updatedAt": at}));
    state
        .store
        .save_integration(&caller.org, &id, &Value::Object(data), SaveMode::Update, true, &audit_ctx(&caller))
        .await?;
    Ok(Json(json!({"ok": true, "request": {"updatedAt": at}})))
}

/// `GET /v1/integration/provision-enabled`: integration types the portal can provision itself
/// (none: Ocean runs where the user runs it).
pub async fn provision_enabled(_caller: Caller) -> Json<Value> {
    Json(json!({"ok": true, "integrations": []}))
}

/// `GET /v1/organization`.
pub async fn organization(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let org = state
        .store
        .get_org(&caller.org)
        .await?
        .ok_or_else(|| ApiError::not_found("the caller's organization was not found"))?;
    Ok(Json(json!({"ok": true, "organization": {
        "id": org.id.0, "name": org.name, "createdAt": org.created_at, "featureFlags": [], "settings": {}
    }})))
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
    let blueprints = state.blueprints(&caller.org).await?;
    let req = SearchRequest { after, ..SearchRequest::new(&blueprints, None, Some(&query), limit) };
    let page = state.store.search(&caller.org, &req).await?;
    let entities = render(&state, &caller.org, &page.entities, &ReadOptions::default()).await?;
    Ok(Json(json!({"ok": true, "entities": entities, "next": page.next.map(encode_cursor)})))
}
