//! `/v1/webhooks…`: custom webhook integrations in Port's shape (docs/reference/port-api.md §7.2) — CRUD, the
//! event log, and (in `webhook/ingest.rs`) the unauthenticated ingest URL. Deliveries are
//! processed by the `webhook_delivery` job (`jobs/webhook.rs`). See docs/webhooks.md.
//!
//! *The secret* (`security.secret`) is encrypted with the installation's master key before it
//! reaches the store ([`crate::secrets`]) and is never returned: responses show `"********"` in
//! its place. Sending that mask back (PUT after GET, or PATCH without a `secret`) keeps the stored
//! secret; a new value replaces it; `null` (or leaving it out of a PUT) removes it.

pub mod ingest;

pub use ingest::ingest;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use portolan_core::{FieldError, FieldErrors};
use portolan_jq::{CompiledMapping, JqEngine, MappingErrorKind};
use portolan_store::{OrgId, SaveMode, StoredWebhook, WebhookWrite};
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};

use crate::handlers::integration::events::{LogParams, render_logs};
use crate::handlers::{audit_ctx, base_url};
use crate::state::AppState;

/// What responses show instead of a stored secret.
pub const SECRET_MASK: &str = "********";
/// Port's limits.
const MAX_ID: usize = 30;
const MAX_TITLE: usize = 30;
const MAX_DESCRIPTION: usize = 200;
/// The path of the ingest URL, before the key.
pub const INGEST_PATH: &str = "/v1/ingest/";

/// Keys the server sets; ignored in request bodies.
const MANAGED: &[&str] = &["identifier", "webhookKey", "url", "createdAt", "createdBy", "updatedAt", "updatedBy"];

/// The associated data binding a webhook's encrypted secret to its row.
pub fn secret_aad(org: &OrgId, id: &str) -> String {
    format!("webhook:{}:{id}", org.0)
}

/// Port's webhook object: the stored fields, the secret masked, the key and the ingest URL.
pub fn render(w: &StoredWebhook, base: &str) -> Value {
    let mut out = Map::new();
    out.insert("identifier".into(), json!(w.identifier));
    for (k, v) in w.data.as_object().into_iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    let mut security = out.get("security").and_then(Value::as_object).cloned().unwrap_or_default();
    if w.secret.is_some() {
        security.insert("secret".into(), json!(SECRET_MASK));
    }
    out.insert("security".into(), Value::Object(security));
    out.insert("webhookKey".into(), json!(w.webhook_key));
    out.insert("url".into(), json!(format!("{base}{INGEST_PATH}{}", w.webhook_key)));
    out.insert("createdAt".into(), json!(w.created_at));
    out.insert("createdBy".into(), json!(w.created_by));
    out.insert("updatedAt".into(), json!(w.updated_at));
    out.insert("updatedBy".into(), json!(w.updated_by));
    Value::Object(out)
}

fn object(body: &Value) -> ApiResult<&Map<String, Value>> {
    body.as_object().ok_or_else(|| FieldError::new("", "the body must be a JSON object (a webhook)").into())
}

/// Compile a jq field, recording a path-carrying error.
fn check_jq(jq: &JqEngine, errs: &mut FieldErrors, path: &str, v: Option<&Value>, required: bool) {
    match v {
        None | Some(Value::Null) if !required => {}
        None | Some(Value::Null) => errs.push(path, "is required: a jq expression"),
        Some(Value::String(src)) => {
            if let Err(e) = jq.compile(src) {
                errs.push(path, format!("is not a valid jq expression: {e}"));
            }
        }
        Some(_) => errs.push(path, "must be a jq expression (a string; literal strings need inner quotes: '\"x\"')"),
    }
}

fn check_text(errs: &mut FieldErrors, obj: &Map<String, Value>, key: &str, max: usize) {
    match obj.get(key) {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.chars().count() <= max => {}
        Some(Value::String(s)) => {
            errs.push(key, format!("must be at most {max} characters (Port's limit; it is {})", s.chars().count()))
        }
        Some(_) => errs.push(key, "must be a string"),
    }
}

/// Every rule of a webhook body (after defaults and the secret's resolution), all errors at
/// once, each with its field path. `has_secret`: a secret is set (given or kept).
pub fn check(jq: &JqEngine, obj: &Map<String, Value>, has_secret: bool) -> Result<(), FieldErrors> {
    let mut errs = FieldErrors::default();
    match obj.get("identifier") {
        Some(Value::String(id)) => {
            if let Err(e) = portolan_core::ident::check_blueprint_id("identifier", id) {
                errs.0.push(e);
            } else if id.chars().count() > MAX_ID {
                errs.push("identifier", format!("must be at most {MAX_ID} characters (Port's limit for webhooks)"));
            }
        }
        _ => errs.push("identifier", "is required: a string of letters, digits and @_.+:\\/- (at most 30)"),
    }
    check_text(&mut errs, obj, "title", MAX_TITLE);
    check_text(&mut errs, obj, "description", MAX_DESCRIPTION);
    check_text(&mut errs, obj, "icon", 100);
    if obj.get("enabled").is_some_and(|v| !v.is_boolean()) {
        errs.push("enabled", "must be true or false");
    }
    if let Some(t) = obj.get("integrationType")
        && !matches!(t.as_str(), Some("custom" | "template"))
    {
        errs.push("integrationType", "must be \"custom\" or \"template\"");
    }
    match obj.get("mappings") {
        None | Some(Value::Null) => {}
        Some(Value::Array(ms)) => {
            for (i, m) in ms.iter().enumerate() {
                check_mapping(jq, &mut errs, &format!("mappings[{i}]"), m);
            }
        }
        Some(_) => errs.push("mappings", "must be an array of mappings {blueprint, operation, filter, entity}"),
    }
    match obj.get("security") {
        None | Some(Value::Null) => {}
        Some(Value::Object(s)) => check_security(jq, &mut errs, s, has_secret),
        Some(_) => errs.push("security", "must be an object ({} for no signature check)"),
    }
    errs.into_result()
}

fn check_mapping(jq: &JqEngine, errs: &mut FieldErrors, at: &str, mapping: &Value) {
    let Some(m) = mapping.as_object() else {
        errs.push(at, "must be an object {blueprint, operation, filter, itemsToParse, entity}");
        return;
    };
    match m.get("blueprint") {
        Some(Value::String(b)) => {
            if let Err(e) = portolan_core::ident::check_blueprint_id(&format!("{at}.blueprint"), b) {
                errs.0.push(e);
            }
        }
        _ => errs.push(format!("{at}.blueprint"), "is required: the identifier of the blueprint to write"),
    }
    match m.get("operation") {
        None | Some(Value::Null) => {}
        Some(Value::String(op)) if op == "create" || op == "delete" => {}
        Some(Value::Object(op)) => {
            if !matches!(op.get("type").and_then(Value::as_str), Some("create" | "delete")) {
                errs.push(format!("{at}.operation.type"), "must be \"create\" or \"delete\"");
            }
            if op.get("deleteDependents").is_some_and(|v| !v.is_boolean()) {
                errs.push(format!("{at}.operation.deleteDependents"), "must be true or false");
            }
        }
        Some(_) => errs.push(
            format!("{at}.operation"),
            "must be \"create\", \"delete\" or {\"type\": \"create\"|\"delete\", \"deleteDependents\": bool}",
        ),
    }
    // The jq of the mapping, checked by the engine that runs it (`portolan_jq::mapping`).
    for e in CompiledMapping::webhook(jq, mapping).errors() {
        let message = match e.kind {
            MappingErrorKind::Compile => format!("is not a valid jq expression: {}", e.message),
            MappingErrorKind::Shape | MappingErrorKind::Literal => e.message.clone(),
        };
        errs.push(format!("{at}.{}", e.path), message);
    }
}

fn check_security(jq: &JqEngine, errs: &mut FieldErrors, s: &Map<String, Value>, has_secret: bool) {
    for key in ["secret", "signatureHeaderName", "signaturePrefix"] {
        if s.get(key).is_some_and(|v| !(v.is_string() || v.is_null())) {
            errs.push(format!("security.{key}"), "must be a string");
        }
    }
    if let Some(Value::String(h)) = s.get("signatureHeaderName")
        && axum::http::HeaderName::from_bytes(h.as_bytes()).is_err()
    {
        errs.push("security.signatureHeaderName", format!("{h:?} is not a valid HTTP header name"));
    }
    match s.get("signatureAlgorithm") {
        None | Some(Value::Null) => {}
        Some(Value::String(a)) if ["sha1", "sha256", "plain"].contains(&a.as_str()) => {
            if !s.get("signatureHeaderName").is_some_and(Value::is_string) {
                errs.push(
                    "security.signatureHeaderName",
                    format!("is required with signatureAlgorithm {a:?}: the header carrying the signature, e.g. x-hub-signature-256"),
                );
            }
            if !has_secret {
                errs.push("security.secret", format!("is required with signatureAlgorithm {a:?}"));
            }
        }
        Some(_) => errs.push("security.signatureAlgorithm", "must be \"sha1\", \"sha256\" or \"plain\""),
    }
    check_jq(jq, errs, "security.requestIdentifierPath", s.get("requestIdentifierPath"), false);
}

/// The secret a body carries.
enum SecretInput {
    /// None given (or `null`): no secret.
    None,
    /// The mask: keep the stored secret.
    Keep,
    New(String),
}

/// Split a body into the stored data (defaults applied, managed keys and the secret removed)
/// and the secret it carries.
fn split(id: &str, obj: &Map<String, Value>) -> (Map<String, Value>, SecretInput) {
    let mut data: Map<String, Value> =
        obj.iter().filter(|(k, _)| !MANAGED.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    data.entry("title").or_insert_with(|| json!(id));
    data.entry("enabled").or_insert(json!(true));
    data.entry("integrationType").or_insert(json!("custom"));
    data.entry("mappings").or_insert(json!([]));
    let mut secret = SecretInput::None;
    match data.get_mut("security") {
        Some(Value::Object(s)) => {
            secret = match s.remove("secret") {
                Some(Value::String(v)) if v == SECRET_MASK => SecretInput::Keep,
                Some(Value::String(v)) => SecretInput::New(v),
                _ => SecretInput::None,
            };
        }
        _ => {
            data.insert("security".into(), json!({}));
        }
    }
    (data, secret)
}

/// Validate and save a complete webhook object `obj` (identifier included).
async fn save(
    state: &AppState,
    caller: &Caller,
    obj: Map<String, Value>,
    old: Option<&StoredWebhook>,
    mode: SaveMode,
) -> ApiResult<StoredWebhook> {
    let id = obj.get("identifier").and_then(Value::as_str).unwrap_or_default().to_string();
    let (data, secret) = split(&id, &obj);
    let has_secret = match &secret {
        SecretInput::None => false,
        SecretInput::Keep => old.is_some_and(|o| o.secret.is_some()),
        SecretInput::New(_) => true,
    };
    let mut full = data.clone();
    full.insert("identifier".into(), json!(id));
    let jq = state.jq.clone();
    tokio::task::spawn_blocking(move || check(&jq, &full, has_secret))
        .await
        .map_err(|e| ApiError::internal("webhook validation", e))?
        .map_err(ApiError::from)?;
    if matches!(secret, SecretInput::Keep) && !has_secret {
        return Err(FieldError::new(
            "security.secret",
            format!("{SECRET_MASK:?} keeps the stored secret, but this webhook has none; send the secret itself"),
        )
        .into());
    }
    let (secret, secret_key_id) = match secret {
        SecretInput::None => (None, None),
        SecretInput::Keep => (old.and_then(|o| o.secret.clone()), old.and_then(|o| o.secret_key_id.clone())),
        SecretInput::New(plain) => {
            let key = state.config.secrets_key.as_ref().ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "secrets_key_missing",
                    "this server has no master key for secrets, so it cannot store a webhook secret; \
                     set PORTOLAN_SECRETS_KEY (base64 of 32 random bytes) on every node and restart",
                )
            })?;
            (Some(key.encrypt(&plain, &secret_aad(&caller.org, &id))), Some(key.id().to_string()))
        }
    };
    let key = crate::auth::hex(&crate::auth::random_bytes::<24>());
    let write = WebhookWrite { identifier: id, data: Value::Object(data), webhook_key: key, secret, secret_key_id };
    Ok(state.store.save_webhook(&caller.org, &write, mode, &audit_ctx(caller)).await?)
}

pub async fn load(state: &AppState, org: &OrgId, id: &str) -> ApiResult<StoredWebhook> {
    state.store.get_webhook(org, id).await?.ok_or_else(|| ApiError::not_found(format!("webhook {id:?} was not found")))
}

/// `GET /v1/webhooks`: `{ok, integrations: [...]}`.
pub async fn list(State(state): State<AppState>, caller: Caller, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let base = base_url(&headers);
    let all = state.store.list_webhooks(&caller.org).await?;
    let out: Vec<Value> = all.iter().map(|w| render(w, &base)).collect();
    Ok(Json(json!({"ok": true, "integrations": out})))
}

/// `POST /v1/webhooks`: 201 `{ok, integration: {…, webhookKey, url}}`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let obj = object(&body)?.clone();
    let saved = save(&state, &caller, obj, None, SaveMode::Create).await?;
    Ok((StatusCode::CREATED, Json(json!({"ok": true, "integration": render(&saved, &base_url(&headers))}))))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let w = load(&state, &caller.org, &id).await?;
    Ok(Json(json!({"ok": true, "integration": render(&w, &base_url(&headers))})))
}

fn same_identifier(obj: &mut Map<String, Value>, id: &str) -> ApiResult<()> {
    match obj.get("identifier") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == id => {}
        Some(other) => {
            return Err(FieldError::new(
                "identifier",
                format!("is {other} but the path names webhook {id:?}; a webhook's identifier cannot change"),
            )
            .into());
        }
    }
    obj.insert("identifier".into(), json!(id));
    Ok(())
}

/// `PUT /v1/webhooks/{id}`: replace every field (a missing secret removes it; the mask keeps it).
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let mut obj = object(&body)?.clone();
    same_identifier(&mut obj, &id)?;
    let old = load(&state, &caller.org, &id).await?;
    let saved = save(&state, &caller, obj, Some(&old), SaveMode::Update).await?;
    Ok(Json(json!({"ok": true, "integration": render(&saved, &base_url(&headers))})))
}

/// `PATCH /v1/webhooks/{id}`: change the fields given (`security` key by key; `null` removes).
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let mut patch = object(&body)?.clone();
    same_identifier(&mut patch, &id)?;
    let old = load(&state, &caller.org, &id).await?;
    let mut merged = old.data.as_object().cloned().unwrap_or_default();
    let mut security = merged.get("security").and_then(Value::as_object).cloned().unwrap_or_default();
    if old.secret.is_some() {
        security.insert("secret".into(), json!(SECRET_MASK));
    }
    let mut bad_security = None;
    for (k, v) in patch {
        if k == "security" {
            match v {
                Value::Object(s) => {
                    for (sk, sv) in s {
                        if sv.is_null() {
                            security.remove(&sk);
                        } else {
                            security.insert(sk, sv);
                        }
                    }
                }
                Value::Null => security.clear(),
                // Not an object: validation names it.
                other => bad_security = Some(other),
            }
        } else if v.is_null() {
            merged.remove(&k);
        } else {
            merged.insert(k, v);
        }
    }
    merged.insert("security".into(), bad_security.unwrap_or(Value::Object(security)));
    merged.insert("identifier".into(), json!(id));
    let saved = save(&state, &caller, merged, Some(&old), SaveMode::Update).await?;
    Ok(Json(json!({"ok": true, "integration": render(&saved, &base_url(&headers))})))
}

pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    state.store.delete_webhook(&caller.org, &id, &audit_ctx(&caller)).await?;
    Ok(Json(json!({"ok": true})))
}

/// `GET /v1/webhooks/{id}/logs?limit=&timestamp=&log_id=&direction=up|down&eventId=&level=&event=`
/// (the filters of `GET /v1/integration/{id}/logs`; `eventId` is a delivery's job id `job_<n>`):
/// `{ok, logs: [...]}`, newest first (`direction=down`: after the cursor, oldest first).
pub async fn list_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<LogParams>,
) -> ApiResult<Json<Value>> {
    let filter = p.filter("wl_")?;
    load(&state, &caller.org, &id).await?;
    if filter.limit == 0 {
        return Ok(Json(json!({"ok": true, "logs": []})));
    }
    let lines = state.store.list_webhook_logs(&caller.org, &id, &filter).await?;
    Ok(Json(render_logs(&lines, "deliveryId")))
}
