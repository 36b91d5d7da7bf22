//! API credentials and bearer tokens.
//!
//! Client secrets are high-entropy random strings, so the store keeps only their SHA-256
//! (argon2 buys nothing there). Access tokens are HS256 JWTs signed with a key generated on
//! first start and kept in the settings table; they carry the organization and expire after
//! three hours, like Port's.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use portolan_store::{OrgId, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::state::AppState;

/// Lifetime of an access token, in seconds (Port: 3 hours).
pub const TOKEN_TTL: i64 = 10_800;

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies access tokens.
#[derive(Clone)]
pub struct TokenSigner {
    key: Arc<Vec<u8>>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner { key: [redacted] }")
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// Client id.
    sub: String,
    org: String,
    iat: i64,
    exp: i64,
}

impl TokenSigner {
    /// The signer of this installation, creating its key on first use.
    pub async fn load(store: &dyn Store) -> Result<Self, portolan_store::StoreError> {
        let fresh = hex(&random_bytes::<32>());
        let key = store.setting_or_init("token_signing_key", &fresh).await?;
        Ok(TokenSigner { key: Arc::new(key.into_bytes()) })
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable_mac());
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    pub fn issue(&self, client_id: &str, org: &OrgId, now: i64) -> String {
        let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = Claims { sub: client_id.into(), org: org.0.clone(), iat: now, exp: now + TOKEN_TTL };
        let payload = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let sig = B64.encode(self.mac(signing_input.as_bytes()));
        format!("{signing_input}.{sig}")
    }

    /// Verify signature and expiry; returns (client id, organization).
    pub fn verify(&self, token: &str, now: i64) -> Result<(String, OrgId), &'static str> {
        let mut parts = token.rsplitn(2, '.');
        let (Some(sig), Some(signing_input)) = (parts.next(), parts.next()) else {
            return Err("the bearer token is malformed");
        };
        let sig = B64.decode(sig).map_err(|_| "the bearer token is malformed")?;
        if !bool::from(self.mac(signing_input.as_bytes()).ct_eq(&sig)) {
            return Err("the bearer token's signature is invalid");
        }
        let payload = signing_input.split('.').nth(1).ok_or("the bearer token is malformed")?;
        let claims: Claims = B64
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("the bearer token is malformed")?;
        if claims.exp <= now {
            return Err("the bearer token has expired; request a new one from POST /v1/auth/access_token");
        }
        Ok((claims.sub, OrgId(claims.org)))
    }
}

fn unreachable_mac() -> HmacSha256 {
    // HMAC accepts keys of any length; this is never reached.
    <HmacSha256 as KeyInit>::new_from_slice(b"k").unwrap_or_else(|_| unreachable_mac())
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::fill(&mut b);
    b
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a client secret, as stored.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A new (client id, client secret) pair.
pub fn new_credentials() -> (String, String) {
    (B64.encode(random_bytes::<24>()), B64.encode(random_bytes::<36>()))
}

/// The authenticated caller of a `/v1` route.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client_id: String,
    pub org: OrgId,
    /// User-Agent of the request: recorded as the writer's `$datasource`.
    pub user_agent: Option<String>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("missing Authorization header; send \"Authorization: Bearer <accessToken>\" from POST /v1/auth/access_token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be \"Bearer <accessToken>\""))?;
        let (client_id, org) =
            state.tokens.verify(token.trim(), chrono::Utc::now().timestamp()).map_err(ApiError::unauthorized)?;
        let user_agent =
            parts.headers.get(axum::http::header::USER_AGENT).and_then(|h| h.to_str().ok()).map(str::to_string);
        Ok(Caller { client_id, org, user_agent })
    }
}

/// `POST /v1/auth/access_token` `{clientId, clientSecret}`.
pub async fn access_token(State(state): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<axum::Json<Value>> {
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(client_id), Some(secret)) = (field("clientId"), field("clientSecret")) else {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "the body must be {\"clientId\": \"…\", \"clientSecret\": \"…\"} with both as strings",
        ));
    };
    let stored = state.store.credential(&client_id).await?;
    let Some((org, hash)) = stored else {
        return Err(ApiError::unauthorized("unknown clientId or wrong clientSecret"));
    };
    if !bool::from(hash.as_bytes().ct_eq(hash_secret(&secret).as_bytes())) {
        return Err(ApiError::unauthorized("unknown clientId or wrong clientSecret"));
    }
    let token = state.tokens.issue(&client_id, &org, chrono::Utc::now().timestamp());
    Ok(axum::Json(json!({"ok": true, "accessToken": token, "expiresIn": TOKEN_TTL, "tokenType": "Bearer"})))
}
