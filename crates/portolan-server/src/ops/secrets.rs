//! Organization secrets (`/v1/organization/secrets`): write-only values, encrypted with the
//! installation's master key before they reach the store, usable as `{{ .secrets.NAME }}` in
//! action invocations (`jobs/action_run.rs`), never returned, logged or audited in clear.

use portolan_core::{FieldError, FieldErrors};
use portolan_store::{OrgId, OrgSecret, SaveMode};
use serde_json::{Value, json};

use super::Actor;
use super::audit::audit_ctx;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// Longest secret value kept.
const MAX_VALUE: usize = 64 * 1024;
const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 1000;

/// The associated data binding a secret's ciphertext to its row.
pub fn secret_aad(org: &OrgId, name: &str) -> String {
    format!("org-secret:{}:{name}", org.0)
}

/// A secret as the API shows it: never its value.
pub fn render(s: &OrgSecret) -> Value {
    json!({"secretName": s.name, "description": s.description, "createdAt": s.created_at, "createdBy": s.created_by,
           "updatedAt": s.updated_at, "updatedBy": s.updated_by})
}

fn check_name(errs: &mut FieldErrors, name: &str) {
    if name.is_empty()
        || name.len() > MAX_NAME
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        errs.push(
            "secretName",
            format!("must be 1 to {MAX_NAME} letters, digits, '_' or '-' (it is used as {{{{ .secrets.NAME }}}})"),
        );
    }
}

/// Create (`path_name` None: `POST`) or change (`PATCH`) a secret from a body
/// `{secretName, secretValue, description}`.
pub async fn save(state: &AppState, actor: &Actor, body: &Value, path_name: Option<&str>) -> ApiResult<OrgSecret> {
    let Some(obj) = body.as_object() else {
        return Err(FieldError::new("", "the body must be a JSON object {secretName, secretValue, description}").into());
    };
    let mut errs = FieldErrors::default();
    for k in obj.keys() {
        if !["secretName", "secretValue", "description"].contains(&k.as_str()) {
            errs.push(k.clone(), "is not a field of a secret (secretName, secretValue, description)");
        }
    }
    let name = match (path_name, obj.get("secretName")) {
        (Some(p), None) => p.to_string(),
        (Some(p), Some(Value::String(n))) if n == p => p.to_string(),
        (Some(p), Some(_)) => {
            errs.push("secretName", format!("must be {p:?}, the name in the URL (a secret cannot be renamed)"));
            p.to_string()
        }
        (None, Some(Value::String(n))) => n.clone(),
        (None, _) => {
            errs.push("secretName", "is required: the name templates use ({{ .secrets.NAME }})");
            String::new()
        }
    };
    if path_name.is_none() && !name.is_empty() {
        check_name(&mut errs, &name);
    }
    let value = match obj.get("secretValue") {
        Some(Value::String(v)) if v.is_empty() => {
            errs.push("secretValue", "must not be empty");
            None
        }
        Some(Value::String(v)) if v.len() > MAX_VALUE => {
            errs.push("secretValue", format!("must be at most {MAX_VALUE} bytes"));
            None
        }
        Some(Value::String(v)) => Some(v.clone()),
        None if path_name.is_some() => None,
        _ => {
            errs.push("secretValue", "is required: a string (it is never shown again)");
            None
        }
    };
    let description = match obj.get("description") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(d)) if d.chars().count() <= MAX_DESCRIPTION => Some(Some(d.clone())),
        Some(_) => {
            errs.push("description", format!("must be a string of at most {MAX_DESCRIPTION} characters"));
            None
        }
    };
    if !errs.0.is_empty() {
        return Err(ApiError::invalid(&errs));
    }
    let key = state.config.secrets_key.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::SecretsKeyMissing,
            "secrets need a master key: set PORTOLAN_SECRETS_KEY (or PORTOLAN_SECRETS_KEY_FILE) on every node",
        )
    })?;
    let old = match path_name {
        Some(n) => Some(
            state
                .store
                .get_secret(&actor.org, n)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("secret {n:?} was not found")))?,
        ),
        None => None,
    };
    let (value, key_id) = match (value, &old) {
        (Some(v), _) => (key.encrypt(&v, &secret_aad(&actor.org, &name)), key.id().to_string()),
        (None, Some(o)) => (o.value.clone(), o.key_id.clone()),
        (None, None) => unreachable!("a new secret has a value (checked above)"),
    };
    let s = OrgSecret {
        name,
        value,
        key_id,
        description: description.unwrap_or_else(|| old.as_ref().and_then(|o| o.description.clone())),
        created_at: String::new(),
        created_by: String::new(),
        updated_at: String::new(),
        updated_by: String::new(),
    };
    let mode = if old.is_some() { SaveMode::Update } else { SaveMode::Create };
    Ok(state.store.save_secret(&actor.org, &s, mode, &audit_ctx(actor)).await?)
}
