//! Integration (Ocean installation) writes: the integration object's checks, saves that log a
//! changed config, config versions, resync state and requests.

use portolan_core::{FieldError, FieldErrors};
use portolan_store::{SaveMode, StoredIntegration};
use serde_json::{Map, Value, json};

use super::audit::{audit_ctx, now_iso};
use super::{Actor, deletion_guard, event_log};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

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
pub fn check_body(body: &Map<String, Value>) -> ApiResult<()> {
    let mut errs = FieldErrors::default();
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
fn check_config(errs: &mut FieldErrors, c: &Map<String, Value>) {
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

fn check_mapping(errs: &mut FieldErrors, at: &str, m: &Map<String, Value>) {
    for key in ["identifier", "blueprint"] {
        match m.get(key) {
            Some(Value::String(_)) => {}
            Some(Value::Object(_)) if key == "identifier" => {}
            _ => errs.push(format!("{at}.{key}"), "is required: a jq expression"),
        }
    }
}

/// Integration `id` of the actor's organization, or 404.
pub async fn load(state: &AppState, actor: &Actor, id: &str) -> ApiResult<StoredIntegration> {
    state
        .store
        .get_integration(&actor.org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("integration {id:?} was not found")))
}

/// The stored fields of a body: everything but the managed keys.
fn writable(body: &Map<String, Value>) -> Map<String, Value> {
    body.iter().filter(|(k, _)| !MANAGED.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The stored fields of `i`.
fn data_of(i: &StoredIntegration) -> Map<String, Value> {
    i.data.as_object().cloned().unwrap_or_default()
}

/// Save and, when the config changed (from version `before`), say so in the event log.
async fn save(
    state: &AppState,
    actor: &Actor,
    id: &str,
    data: Map<String, Value>,
    mode: SaveMode,
    before: Option<i64>,
) -> ApiResult<StoredIntegration> {
    let saved =
        state.store.save_integration(&actor.org, id, &Value::Object(data), mode, true, &audit_ctx(actor)).await?;
    if before.is_some_and(|v| v != saved.config_version) {
        let msg = format!("config changed to version {}", saved.config_version);
        let extra = json!({"version": saved.config_version});
        event_log::log_server(state, &actor.org, id, None, "INFO", "config_changed", msg, extra).await;
    }
    Ok(saved)
}

/// Create an integration from Ocean's body (`installationId`, `config`, …; unknown fields are
/// stored as they are). `provision`: Ocean asked the portal to provision the integration's
/// default resources (`integration_modes=create_resources`), which Portolan does not do; that
/// is refused when the body brings no config, since Ocean would then wait for one forever.
pub async fn create(
    state: &AppState,
    actor: &Actor,
    body: &Map<String, Value>,
    provision: bool,
) -> ApiResult<StoredIntegration> {
    let empty_config = body.get("config").is_none_or(|c| c.is_null() || c.as_object().is_some_and(Map::is_empty));
    if provision && empty_config {
        return Err(ApiError::new(
            ErrorCode::ProvisioningUnsupported,
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
    save(state, actor, &id, data, SaveMode::Create, None).await
}

/// Change the fields of integration `id` that `body` gives; an empty body requests a resync.
pub async fn patch(
    state: &AppState,
    actor: &Actor,
    id: &str,
    body: &Map<String, Value>,
) -> ApiResult<StoredIntegration> {
    check_body(body)?;
    let old = load(state, actor, id).await?;
    let mut data = data_of(&old);
    if body.is_empty() {
        data.insert("resyncRequest".into(), json!({"updatedAt": now_iso()}));
    }
    data.extend(writable(body));
    save(state, actor, id, data, SaveMode::Update, Some(old.config_version)).await
}

/// Replace the fields of integration `id` (its resync state and requests are kept).
pub async fn put(state: &AppState, actor: &Actor, id: &str, body: &Map<String, Value>) -> ApiResult<StoredIntegration> {
    check_body(body)?;
    let old = load(state, actor, id).await?;
    let mut data = writable(body);
    data.entry("config").or_insert_with(|| json!({}));
    for k in ["resyncState", "resyncRequest"] {
        if let Some(v) = old.data.get(k) {
            data.insert(k.into(), v.clone());
        }
    }
    save(state, actor, id, data, SaveMode::Update, Some(old.config_version)).await
}

/// Make `config` (the mapping, `{resources: [...]}`) integration `id`'s current config, as a
/// new version.
pub async fn patch_config(
    state: &AppState,
    actor: &Actor,
    id: &str,
    config: &Map<String, Value>,
) -> ApiResult<StoredIntegration> {
    let mut body = Map::new();
    body.insert("config".into(), Value::Object(config.clone()));
    check_body(&body)?;
    let old = load(state, actor, id).await?;
    let mut data = data_of(&old);
    data.extend(body);
    save(state, actor, id, data, SaveMode::Update, Some(old.config_version)).await
}

/// Make config version `version` (as given in the route; 404 when it is not one) integration
/// `id`'s current config again, as a new version.
pub async fn restore_config(state: &AppState, actor: &Actor, id: &str, version: &str) -> ApiResult<StoredIntegration> {
    let old = load(state, actor, id).await?;
    let versions = state.store.integration_config_versions(&actor.org, id).await?;
    let Some(v) = version.parse::<i64>().ok().and_then(|n| versions.into_iter().find(|v| v.version == n)) else {
        return Err(ApiError::not_found(format!("integration {id:?} has no config version {version:?}")));
    };
    let mut data = data_of(&old);
    data.insert("config".into(), v.config);
    save(state, actor, id, data, SaveMode::Update, Some(old.config_version)).await
}

/// Merge `fields` into integration `id`'s `resyncState` (its `updatedAt` set to the
/// integration's). `status` `running` starts a resync for the event log and the deletion
/// guard; `completed` / `failed` ends it.
pub async fn set_resync_state(
    state: &AppState,
    actor: &Actor,
    id: &str,
    fields: &Map<String, Value>,
) -> ApiResult<StoredIntegration> {
    if let Some(s) = fields.get("status")
        && !(s.is_string() || s.is_null())
    {
        return Err(FieldError::new("status", "must be a string (running, completed or failed)").into());
    }
    let old = load(state, actor, id).await?;
    let ctx = audit_ctx(actor);
    let mut rs = old.data.get("resyncState").and_then(Value::as_object).cloned().unwrap_or_default();
    rs.extend(fields.clone());
    rs.insert("updatedAt".into(), json!(ctx.at));
    let mut data = data_of(&old);
    data.insert("resyncState".into(), Value::Object(rs));
    let org = &actor.org;
    let saved = state.store.save_integration(org, id, &Value::Object(data), SaveMode::Update, false, &ctx).await?;
    match fields.get("status").and_then(Value::as_str) {
        Some("running") => deletion_guard::resync_started(state, org, &saved, &ctx.at).await?,
        Some(s @ ("completed" | "failed")) => deletion_guard::resync_finished(state, org, &saved, s, &ctx.at).await?,
        _ => {}
    }
    Ok(saved)
}

/// Request a resync of integration `id`; returns when (the request's `updatedAt`).
pub async fn request_resync(state: &AppState, actor: &Actor, id: &str) -> ApiResult<String> {
    let old = load(state, actor, id).await?;
    let at = now_iso();
    let mut data = data_of(&old);
    data.insert("resyncRequest".into(), json!({"updatedAt": at}));
    let data = Value::Object(data);
    state.store.save_integration(&actor.org, id, &data, SaveMode::Update, true, &audit_ctx(actor)).await?;
    Ok(at)
}

/// Delete integration `id` with its config versions and event log (its entities stay).
pub async fn delete(state: &AppState, actor: &Actor, id: &str) -> ApiResult<()> {
    state.store.delete_integration(&actor.org, id, &audit_ctx(actor)).await?;
    Ok(())
}
