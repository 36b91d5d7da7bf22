//! Custom webhook writes: defaults, validation, and the secret, which is encrypted with the
//! installation's master key before it reaches the store and never returned (responses show
//! [`SECRET_MASK`]). Sending the mask back keeps the stored secret; a new value replaces it;
//! `null` (or leaving it out of a replacement) removes it.

use portolan_core::FieldError;
use portolan_store::{OrgId, SaveMode, StoredWebhook, WebhookWrite};
use serde_json::{Map, Value, json};

use super::Actor;
use super::audit::audit_ctx;
use crate::error::{ApiError, ApiResult, ErrorCode};
// The body's rules (the mapping's jq through `portolan_jq`'s mapping engine).
use crate::handlers::webhook::check;
use crate::state::AppState;

/// What responses show instead of a stored secret.
pub const SECRET_MASK: &str = "********";
/// Keys the server sets; ignored in request bodies.
const MANAGED: &[&str] = &["identifier", "webhookKey", "url", "createdAt", "createdBy", "updatedAt", "updatedBy"];

/// The associated data binding a webhook's encrypted secret to its row.
pub fn secret_aad(org: &OrgId, id: &str) -> String {
    format!("webhook:{}:{id}", org.0)
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
    actor: &Actor,
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
                    ErrorCode::SecretsKeyMissing,
                    "this server has no master key for secrets, so it cannot store a webhook secret; \
                     set PORTOLAN_SECRETS_KEY (base64 of 32 random bytes) on every node and restart",
                )
            })?;
            (Some(key.encrypt(&plain, &secret_aad(&actor.org, &id))), Some(key.id().to_string()))
        }
    };
    let key = crate::auth::hex(&crate::auth::random_bytes::<24>());
    let write = WebhookWrite { identifier: id, data: Value::Object(data), webhook_key: key, secret, secret_key_id };
    Ok(state.store.save_webhook(&actor.org, &write, mode, &audit_ctx(actor)).await?)
}

/// Webhook `id` of `org`, or 404.
pub async fn load(state: &AppState, org: &OrgId, id: &str) -> ApiResult<StoredWebhook> {
    state.store.get_webhook(org, id).await?.ok_or_else(|| ApiError::not_found(format!("webhook {id:?} was not found")))
}

/// Create a webhook from its wire JSON (`identifier` included).
pub async fn create(state: &AppState, actor: &Actor, obj: Map<String, Value>) -> ApiResult<StoredWebhook> {
    save(state, actor, obj, None, SaveMode::Create).await
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

/// Replace every field of webhook `id` (a missing secret removes it; the mask keeps it).
pub async fn put(state: &AppState, actor: &Actor, id: &str, mut obj: Map<String, Value>) -> ApiResult<StoredWebhook> {
    same_identifier(&mut obj, id)?;
    let old = load(state, &actor.org, id).await?;
    save(state, actor, obj, Some(&old), SaveMode::Update).await
}

/// Change the fields of webhook `id` that `patch` gives (`security` key by key; `null`
/// removes a field).
pub async fn patch(
    state: &AppState,
    actor: &Actor,
    id: &str,
    mut patch: Map<String, Value>,
) -> ApiResult<StoredWebhook> {
    same_identifier(&mut patch, id)?;
    let old = load(state, &actor.org, id).await?;
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
    save(state, actor, merged, Some(&old), SaveMode::Update).await
}

/// Delete webhook `id` (its entities stay).
pub async fn delete(state: &AppState, actor: &Actor, id: &str) -> ApiResult<()> {
    state.store.delete_webhook(&actor.org, id, &audit_ctx(actor)).await?;
    Ok(())
}
