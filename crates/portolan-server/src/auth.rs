//! API credentials and bearer tokens.
//!
//! Client secrets are high-entropy random strings, so the store keeps only their SHA-256
//! (argon2 buys nothing there). Access tokens are HS256 JWTs signed with a key generated on
//! first start and kept in the settings table; they carry the organization and expire after
//! three hours, like Port's.
//!
//! Revocation: a token carries a fingerprint of its credential's secret hash, and every request
//! looks the credential up (one primary-key read): a deleted credential, or one whose secret was
//! rotated after the token was issued, makes the token invalid at once on every node.
//!
//! Guessing: failed `POST /v1/auth/access_token` attempts are counted per client id and per
//! client address ([`crate::ratelimit::FailureGuard`]): after a few, each failure is answered more
//! slowly, then the key is refused with 429 until its window ends.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use portolan_core::permissions::Principal;
use portolan_store::{OrgId, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::state::AppState;

/// The settings key of the token signing key, and the associated data it is encrypted with.
const SIGNING_KEY_SETTING: &str = "token_signing_key";
const SIGNING_KEY_AAD: &str = "setting:token_signing_key";

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
    /// [`secret_fingerprint`] of the credential's secret hash when the token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sv: Option<String>,
}

/// What a token says, once its signature and expiry are checked.
#[derive(Debug, Clone)]
pub struct Verified {
    pub client_id: String,
    pub org: OrgId,
    /// Fingerprint of the credential's secret hash at issue time (`None`: a token from before
    /// revocation existed, refused by [`Caller`]).
    pub fingerprint: Option<String>,
}

/// A short, one-way fingerprint of a stored secret hash: tokens carry it so that rotating the
/// secret revokes them, without exposing anything that helps guess the secret.
pub fn secret_fingerprint(secret_hash: &str) -> String {
    hex(&Sha256::digest(format!("portolan-token-version:{secret_hash}").as_bytes())[..8])
}

impl TokenSigner {
    /// The signer of this installation, creating its key on first use. With a secrets key the
    /// signing key is stored encrypted (a clear key from an older version is encrypted in place,
    /// tokens issued with it stay valid): whoever reads the database file cannot mint tokens.
    pub async fn load(
        store: &dyn Store,
        secrets: Option<&crate::secrets::SecretsKey>,
    ) -> Result<Self, portolan_store::StoreError> {
        let fresh = hex(&random_bytes::<32>());
        let init = secrets.map_or_else(|| fresh.clone(), |k| k.encrypt(&fresh, SIGNING_KEY_AAD));
        let stored = store.setting_or_init(SIGNING_KEY_SETTING, &init).await?;
        let key = match (stored.starts_with("v1:"), secrets) {
            (true, Some(k)) => {
                k.decrypt(&stored, SIGNING_KEY_AAD).map_err(|e| {
                    portolan_store::StoreError::Db(format!(
                    "the token signing key in the database cannot be decrypted with this node's secrets key: {e}"
                )
                .into())
                })?
            }
            (true, None) => {
                return Err(portolan_store::StoreError::Db(
                    "the token signing key in the database is encrypted, and this node has no secrets key: set \
                     PORTOLAN_SECRETS_KEY (or PORTOLAN_SECRETS_KEY_FILE) to the key the other nodes use"
                        .into(),
                ));
            }
            (false, Some(k)) => {
                // Encrypt a clear key left by an older version (one node wins the race).
                if store.replace_setting(SIGNING_KEY_SETTING, &stored, &k.encrypt(&stored, SIGNING_KEY_AAD)).await? {
                    tracing::info!("the token signing key is now stored encrypted with the secrets key");
                }
                stored
            }
            (false, None) => {
                tracing::warn!(
                    "the token signing key is stored in clear because no secrets key is set \
                     (PORTOLAN_SECRETS_KEY): anyone who can read the database can mint API tokens"
                );
                stored
            }
        };
        Ok(TokenSigner { key: Arc::new(key.into_bytes()) })
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable_mac());
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// A token for `client_id` of `org` whose stored secret hash is `secret_hash`.
    pub fn issue(&self, client_id: &str, org: &OrgId, secret_hash: &str, now: i64) -> String {
        let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = Claims {
            sub: client_id.into(),
            org: org.0.clone(),
            iat: now,
            exp: now + TOKEN_TTL,
            sv: Some(secret_fingerprint(secret_hash)),
        };
        let payload = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let sig = B64.encode(self.mac(signing_input.as_bytes()));
        format!("{signing_input}.{sig}")
    }

    /// Verify signature and expiry (not revocation: [`Caller`] checks that against the store).
    pub fn verify(&self, token: &str, now: i64) -> Result<Verified, &'static str> {
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
        Ok(Verified { client_id: claims.sub, org: OrgId(claims.org), fingerprint: claims.sv })
    }
}

fn unreachable_mac() -> HmacSha256 {
    // HMAC accepts keys of any length; this is never reached.
    <HmacSha256 as KeyInit>::new_from_slice(b"k").unwrap_or_else(|_| unreachable_mac())
}

/// A fresh random token (32 bytes, URL-safe base64): session ids, invitation links.
pub fn new_token() -> String {
    B64.encode(random_bytes::<32>())
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

/// The authenticated caller of a `/v1` route: the [`Actor`](crate::ops::Actor) of the
/// operations it calls, extracted from the bearer token (and the User-Agent).
pub use crate::ops::Actor as Caller;

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
        let v = state.tokens.verify(token.trim(), chrono::Utc::now().timestamp()).map_err(ApiError::unauthorized)?;
        // Revocation: the credential must still exist, in the token's organization, with the
        // secret the token was issued for.
        let current = state.store.credential(&v.client_id).await?;
        let (user_email, blueprints_version) = match current {
            Some(c) if c.org == v.org && v.fingerprint.as_deref() == Some(&*secret_fingerprint(&c.secret_hash)) => {
                (c.user_email, c.blueprints_version)
            }
            Some(c) if c.org == v.org => {
                return Err(ApiError::unauthorized(
                    "the bearer token was issued before its credential's secret was rotated; request a new one \
                     from POST /v1/auth/access_token",
                ));
            }
            _ => {
                return Err(ApiError::unauthorized(
                    "the bearer token's credential (or its organization) no longer exists; it was revoked",
                ));
            }
        };
        let (client_id, org) = (v.client_id, v.org);
        // A personal credential acts as its user, as that user is now (a disabled or removed
        // user's tokens stop working at once); an organization credential as an administrator.
        let principal = match &user_email {
            Some(email) => crate::access::user_principal(state, &org, email).await?,
            None => Principal::Machine,
        };
        // The route's access decision (router.rs), before its handler runs.
        if let Some(matched) = parts.extensions.get::<axum::extract::MatchedPath>() {
            let template = matched.as_str();
            let Some(access) = crate::access::route_access(parts.method.as_str(), template) else {
                return Err(ApiError::forbidden(format!("no access decision is declared for {template}")));
            };
            let path = parts.uri.path();
            if let Some(why) = access.refusal(&principal, |name| crate::access::path_param(template, path, name)) {
                return Err(ApiError::forbidden(why));
            }
        }
        let user_agent =
            parts.headers.get(axum::http::header::USER_AGENT).and_then(|h| h.to_str().ok()).map(str::to_string);
        Ok(Caller {
            client_id: user_email.unwrap_or(client_id),
            org,
            user_agent,
            principal,
            depth: 0,
            blueprints_version: Some(blueprints_version),
        })
    }
}

/// The address a request came from (`None` when the server was not started with connection
/// info, as in some tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let info = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(ClientAddr(info.map(|c| c.0.ip())))
    }
}

/// `POST /v1/auth/access_token` `{clientId, clientSecret}`.
pub async fn access_token(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(body): JsonBody,
) -> ApiResult<axum::Json<Value>> {
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(client_id), Some(secret)) = (field("clientId"), field("clientSecret")) else {
        return Err(ApiError::new(
            crate::error::ErrorCode::InvalidRequest,
            "the body must be {\"clientId\": \"…\", \"clientSecret\": \"…\"} with both as strings",
        ));
    };
    let keys = [format!("client:{client_id}"), format!("addr:{}", addr.map(|a| a.to_string()).unwrap_or_default())];
    for key in &keys {
        if let Err(retry_after) = state.auth_failures.check(key) {
            return Err(ApiError::too_many_failures(retry_after));
        }
    }
    let stored = state.store.credential(&client_id).await?;
    let valid =
        stored.as_ref().is_some_and(|c| bool::from(c.secret_hash.as_bytes().ct_eq(hash_secret(&secret).as_bytes())));
    let (Some(portolan_store::Credential { org, secret_hash: hash, .. }), true) = (stored, valid) else {
        let delay = keys.iter().map(|k| state.auth_failures.failed(k)).max().unwrap_or_default();
        tokio::time::sleep(delay).await;
        return Err(ApiError::unauthorized("unknown clientId or wrong clientSecret"));
    };
    state.auth_failures.succeeded(&keys[0]);
    let token = state.tokens.issue(&client_id, &org, &hash, chrono::Utc::now().timestamp());
    Ok(axum::Json(json!({"ok": true, "accessToken": token, "expiresIn": TOKEN_TTL, "tokenType": "Bearer"})))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::secrets::SecretsKey;
    use portolan_store::SqliteStore;

    /// Finding 7: with a secrets key the signing key is stored encrypted; a clear key from an
    /// older version is encrypted in place and the tokens it signed stay valid.
    #[tokio::test]
    async fn the_signing_key_is_stored_encrypted_and_an_old_clear_key_is_upgraded() {
        let store = SqliteStore::in_memory().await.unwrap();
        let old = TokenSigner::load(&store, None).await.unwrap(); // an older version: clear
        let org = OrgId("org_a".into());
        let token = old.issue("cid", &org, "h", 1_000);
        let clear = store.setting_or_init(SIGNING_KEY_SETTING, "unused").await.unwrap();
        assert!(!clear.starts_with("v1:"));

        let key = SecretsKey::generate();
        let upgraded = TokenSigner::load(&store, Some(&key)).await.unwrap();
        let stored = store.setting_or_init(SIGNING_KEY_SETTING, "unused").await.unwrap();
        assert!(stored.starts_with("v1:") && !stored.contains(&clear), "{stored}");
        assert_eq!(upgraded.verify(&token, 1_001).unwrap().client_id, "cid", "old tokens stay valid");
        // Later starts decrypt it; without the key (or with another) a node refuses to start.
        let again = TokenSigner::load(&store, Some(&key)).await.unwrap();
        assert!(again.verify(&token, 1_001).is_ok());
        assert!(TokenSigner::load(&store, None).await.is_err());
        assert!(TokenSigner::load(&store, Some(&SecretsKey::generate())).await.is_err());

        // A fresh installation with a key never stores it in clear.
        let fresh = SqliteStore::in_memory().await.unwrap();
        TokenSigner::load(&fresh, Some(&key)).await.unwrap();
        assert!(fresh.setting_or_init(SIGNING_KEY_SETTING, "x").await.unwrap().starts_with("v1:"));
    }
}
