//! The organization's signing secret (the client secret that signs action webhooks, kept
//! encrypted) and Port's encryption of `aes256-gcm` inputs with it (§5.8).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use portolan_core::action::CheckedInputs;
use portolan_store::OrgId;
use serde_json::{Map, Value, json};

use crate::auth::random_bytes;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// The organization's client secret that signs webhooks and keys encrypted inputs, in clear.
pub async fn signing_secret(state: &AppState, org: &OrgId) -> ApiResult<Option<String>> {
    let Some((client_id, enc)) = state.store.signing_secret(org).await? else { return Ok(None) };
    let key = state.config.secrets_key.as_ref().ok_or_else(|| {
        ApiError::new(ErrorCode::SecretsKeyMissing, "no secrets key is configured (PORTOLAN_SECRETS_KEY)")
    })?;
    key.decrypt(&enc, &credential_aad(org, &client_id)).map(Some).map_err(|e| ApiError::internal("signing secret", e))
}

/// The associated data of a credential's encrypted client secret.
pub fn credential_aad(org: &OrgId, client_id: &str) -> String {
    format!("credential:{}:{client_id}", org.0)
}

/// Keep a credential's client secret, encrypted, so it can sign action webhooks (§5.8). Without a
/// secrets key nothing is kept (runs then say that their webhooks are unsigned).
pub async fn keep_signing_secret(state: &AppState, org: &OrgId, client_id: &str, secret: &str) -> ApiResult<()> {
    if let Some(key) = state.config.secrets_key.as_ref() {
        let enc = key.encrypt(secret, &credential_aad(org, client_id));
        state.store.set_credential_secret(org, client_id, &enc, key.id()).await?;
    }
    Ok(())
}

/// Encrypt inputs defined with `encryption: "aes256-gcm"` as Port does: AES-256-GCM with the
/// first 32 bytes of the client secret as key, a random 16-byte IV, `base64(IV ‖ ct ‖ tag)`.
pub(super) async fn encrypt_inputs(
    state: &AppState,
    org: &OrgId,
    checked: &CheckedInputs,
) -> ApiResult<Map<String, Value>> {
    let mut values = checked.values.clone();
    let present: Vec<&String> = checked.encrypted.iter().filter(|id| values.contains_key(*id)).collect();
    if present.is_empty() {
        return Ok(values);
    }
    let secret = signing_secret(state, org).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "input {:?} is encrypted with the organization's client secret, and no client secret is on record; \
                 rotate or create an API credential (POST /v1/apps) so the server can encrypt it",
                present[0]
            ),
        )
    })?;
    for id in present {
        let clear = match &values[id] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let enc = port_encrypt(&secret, &clear).ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidRequest, "the organization's client secret is shorter than 32 bytes")
        })?;
        values.insert(id.clone(), json!(enc));
    }
    Ok(values)
}

/// Port's input encryption (`aes256-gcm`): `None` when the secret is shorter than 32 bytes.
pub fn port_encrypt(client_secret: &str, clear: &str) -> Option<String> {
    use aes_gcm::aead::{Aead, KeyInit, consts::U16};
    type Cipher = aes_gcm::AesGcm<aes_gcm::aes::Aes256, U16>;
    let key = client_secret.as_bytes().get(..32)?;
    let cipher = Cipher::new_from_slice(key).ok()?;
    let iv = random_bytes::<16>();
    let ct = cipher.encrypt(&iv.into(), clear.as_bytes()).ok()?;
    let mut out = iv.to_vec();
    out.extend_from_slice(&ct);
    Some(STANDARD.encode(out))
}
