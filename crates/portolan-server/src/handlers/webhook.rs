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
use portolan_store::StoredWebhook;
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, QueryParams};

use crate::handlers::base_url;
use crate::handlers::integration::event_log::{LogParams, render_logs};
use crate::ops::webhook::{self, SECRET_MASK, load};
use crate::state::AppState;

/// Port's limits.
const MAX_ID: usize = 30;
const MAX_TITLE: usize = 30;
const MAX_DESCRIPTION: usize = 200;
/// The path of the ingest URL, before the key.
pub const INGEST_PATH: &str = "/v1/ingest/";

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
    let saved = webhook::create(&state, &caller, object(&body)?.clone()).await?;
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

/// `PUT /v1/webhooks/{id}`: replace every field (a missing secret removes it; the mask keeps it).
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let saved = webhook::put(&state, &caller, &id, object(&body)?.clone()).await?;
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
    let saved = webhook::patch(&state, &caller, &id, object(&body)?.clone()).await?;
    Ok(Json(json!({"ok": true, "integration": render(&saved, &base_url(&headers))})))
}

pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    webhook::delete(&state, &caller, &id).await?;
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
