//! `POST /v1/ingest/{webhookKey}`: a custom webhook's ingest URL. No bearer token: the key (192
//! random bits) is the credential, and the webhook's `security` adds a signature check. Behind
//! the same middleware as the API (JSON errors, trace id, rate limit per client address).
//!
//! Checks, in order: the key names a webhook (404); the payload is at most 512 KiB (413); the
//! webhook is enabled (otherwise 202, dropped and logged); the body is JSON (400); the signature
//! (401, naming the header and algorithm). Then the delivery is stored durably — a
//! `webhook_delivery` job, plus a delivery row keyed by the request identifier in the same
//! transaction — and only then answered 202 `{ok: true, deliveryId, requestId, duplicate}`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use portolan_store::{Delivery, OrgId, StoredWebhook};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::jobs::webhook::{self as job, Payload, line, log};
use crate::ops::audit::now_iso;
use crate::ops::webhook::secret_aad;
use crate::state::AppState;

/// Port's payload limit for webhook ingest.
pub const MAX_PAYLOAD: usize = 512 * 1024;

/// Headers never stored with a delivery (credentials of the sender): their value is replaced.
const REDACTED_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie"];

fn hex(bytes: &[u8]) -> String {
    crate::auth::hex(bytes)
}

/// HMAC of the raw body, hex.
fn hmac_hex(algorithm: &str, secret: &[u8], body: &[u8]) -> Option<String> {
    match algorithm {
        "sha256" => {
            let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).ok()?;
            m.update(body);
            Some(hex(&m.finalize().into_bytes()))
        }
        "sha1" => {
            let mut m = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret).ok()?;
            m.update(body);
            Some(hex(&m.finalize().into_bytes()))
        }
        _ => None,
    }
}

/// The signature check of `security`: `Err(message)` on a missing or wrong signature.
pub(crate) fn verify(
    security: &Map<String, Value>,
    secret: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let Some(algorithm) = security.get("signatureAlgorithm").and_then(Value::as_str) else { return Ok(()) };
    let header = security.get("signatureHeaderName").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    let Some(secret) = secret else {
        return Err(format!("the webhook requires a {algorithm} signature but has no secret; set security.secret"));
    };
    let Some(got) = headers.get(header.as_str()).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()) else {
        return Err(format!("missing signature header {header:?} (this webhook requires a {algorithm} signature)"));
    };
    let prefix = security.get("signaturePrefix").and_then(Value::as_str).unwrap_or_default();
    let got = got.trim();
    let ok = if algorithm == "plain" {
        bool::from(got.as_bytes().ct_eq(secret.as_bytes()))
    } else {
        let got = got.strip_prefix(prefix).unwrap_or(got).to_ascii_lowercase();
        let want = hmac_hex(algorithm, secret.as_bytes(), body).unwrap_or_default();
        !want.is_empty() && bool::from(got.as_bytes().ct_eq(want.as_bytes()))
    };
    if ok {
        Ok(())
    } else if algorithm == "plain" {
        Err(format!("the {header:?} header does not match the webhook's secret (signatureAlgorithm plain)"))
    } else {
        Err(format!(
            "the {header:?} header does not match the HMAC-{} of the request body with the webhook's secret{}",
            algorithm.to_uppercase(),
            if prefix.is_empty() { String::new() } else { format!(" (after removing the prefix {prefix:?})") }
        ))
    }
}

/// Request headers as the mapping sees them: names lower-cased, repeated headers joined.
pub(crate) fn header_map(headers: &HeaderMap, redact: Option<&str>) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for (name, value) in headers {
        let name = name.as_str().to_ascii_lowercase();
        let value = if REDACTED_HEADERS.contains(&name.as_str()) || redact == Some(name.as_str()) {
            "[redacted]".to_string()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        match out.get_mut(&name) {
            Some(Value::String(s)) => {
                s.push_str(", ");
                s.push_str(&value);
            }
            _ => {
                out.insert(name, Value::String(value));
            }
        }
    }
    out
}

pub(crate) fn query_map(raw: Option<&str>) -> Map<String, Value> {
    crate::extract::form_pairs(raw.unwrap_or("")).into_iter().map(|(k, v)| (k, Value::String(v))).collect()
}

async fn refuse(state: &AppState, org: &OrgId, hook: &StoredWebhook, err: ApiError, event: &str) -> ApiError {
    let msg = format!("delivery refused ({} {}): {}", err.status.as_u16(), err.code, err.message);
    tracing::warn!(webhook = %hook.identifier, status = err.status.as_u16(), "webhook delivery refused: {}", err.message);
    log(state, org, &hook.identifier, &[line("WARNING", event, None, msg, json!({"status": err.status.as_u16()}))])
        .await;
    err
}

pub async fn ingest(
    State(state): State<AppState>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Some((org, hook)) = state.store.webhook_by_key(&key).await? else {
        return Err(ApiError::not_found(
            "no webhook has this ingest key; copy the url from GET /v1/webhooks/{identifier}",
        ));
    };
    let bytes = match axum::body::to_bytes(body, MAX_PAYLOAD).await {
        Ok(b) => b,
        Err(e) => {
            let err = if std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit")
            {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the webhook payload is larger than the {} KiB limit", MAX_PAYLOAD / 1024),
                )
            } else {
                ApiError::bad_request(format!("could not read the request body: {e}"))
            };
            return Err(refuse(&state, &org, &hook, err, "delivery_refused").await);
        }
    };
    if hook.data.get("enabled") == Some(&Value::Bool(false)) {
        let msg = "delivery dropped: the webhook is disabled (enabled: false)".to_string();
        tracing::info!(webhook = %hook.identifier, "webhook delivery dropped: disabled");
        log(&state, &org, &hook.identifier, &[line("WARNING", "delivery_dropped", None, msg, json!({}))]).await;
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"ok": true, "dropped": true, "reason": "the webhook is disabled"})),
        ));
    }
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let err = ApiError::bad_request(format!("the webhook payload is not valid JSON: {e}"));
            return Err(refuse(&state, &org, &hook, err, "delivery_refused").await);
        }
    };
    let security = hook.data.get("security").and_then(Value::as_object).cloned().unwrap_or_default();
    let secret = match (&hook.secret, &state.config.secrets_key) {
        (None, _) => None,
        (Some(stored), Some(k)) => match k.decrypt(stored, &secret_aad(&org, &hook.identifier)) {
            Ok(s) => Some(s),
            Err(e) => return Err(ApiError::internal("cannot read a webhook secret", e)),
        },
        (Some(_), None) => {
            return Err(ApiError::internal(
                "cannot read a webhook secret",
                "PORTOLAN_SECRETS_KEY is not set on this node",
            ));
        }
    };
    if let Err(msg) = verify(&security, secret.as_deref(), &headers, &bytes) {
        return Err(refuse(&state, &org, &hook, ApiError::unauthorized(msg), "delivery_refused").await);
    }
    let plain_header = (security.get("signatureAlgorithm").and_then(Value::as_str) == Some("plain"))
        .then(|| security.get("signatureHeaderName").and_then(Value::as_str).map(str::to_ascii_lowercase))
        .flatten();
    let headers_for_jq = header_map(&headers, None);
    let query_params = query_map(query.as_deref());
    let request_id = match security.get("requestIdentifierPath").and_then(Value::as_str) {
        None => None,
        Some(path) => {
            let input = json!({"body": body, "headers": headers_for_jq, "queryParams": query_params});
            let (jq, path, budget) = (state.jq.clone(), path.to_string(), state.jq.budget_for(&org.0));
            let v = tokio::task::spawn_blocking(move || jq.first_in(&budget, &path, &input).unwrap_or(Value::Null))
                .await
                .unwrap_or(Value::Null);
            match v {
                Value::Null => None,
                Value::String(s) if s.is_empty() => None,
                Value::String(s) => Some(s),
                other => Some(other.to_string()),
            }
        }
    };
    let payload = Payload {
        webhook: hook.identifier.clone(),
        body,
        headers: header_map(&headers, plain_header.as_deref()),
        query_params,
        request_id: request_id.clone(),
        received_at: now_iso(),
    };
    let (delivery, duplicate) = match job::enqueue(&state, &org, &payload).await? {
        Delivery::Enqueued(j) => (j.id, false),
        Delivery::Duplicate { job_id } => (job_id, true),
    };
    let (event, msg) = if duplicate {
        (
            "delivery_duplicate",
            format!("delivery with request id {request_id:?} was received before ({delivery}); ignored"),
        )
    } else {
        (
            "delivery_received",
            format!("delivery received ({} bytes, request id {request_id:?}); queued as {delivery}", bytes.len()),
        )
    };
    let extra = json!({"requestId": request_id, "bytes": bytes.len(), "duplicate": duplicate});
    log(&state, &org, &hook.identifier, &[line("INFO", event, Some(&delivery), msg, extra)]).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"ok": true, "deliveryId": delivery, "requestId": request_id, "duplicate": duplicate})),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sec(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn signatures_are_checked_per_algorithm() {
        let body = br#"{"a":1}"#;
        let sig = hmac_hex("sha256", b"s", body).unwrap();
        let s = sec(
            json!({"signatureAlgorithm": "sha256", "signatureHeaderName": "X-Hub-Signature-256", "signaturePrefix": "sha256="}),
        );
        let mut h = HeaderMap::new();
        h.insert("x-hub-signature-256", format!("sha256={sig}").parse().unwrap());
        assert_eq!(verify(&s, Some("s"), &h, body), Ok(()));
        assert!(verify(&s, Some("other"), &h, body).unwrap_err().contains("HMAC-SHA256"));
        assert!(verify(&s, Some("s"), &HeaderMap::new(), body).unwrap_err().contains("missing signature header"));
        let plain = sec(json!({"signatureAlgorithm": "plain", "signatureHeaderName": "x-token"}));
        let mut h = HeaderMap::new();
        h.insert("x-token", "s".parse().unwrap());
        assert_eq!(verify(&plain, Some("s"), &h, body), Ok(()));
        assert!(verify(&plain, Some("t"), &h, body).is_err());
        assert_eq!(verify(&Map::new(), None, &HeaderMap::new(), body), Ok(()), "security: {{}} checks nothing");
        // Known HMAC-SHA1 vector (RFC 2202 case 2).
        assert_eq!(
            hmac_hex("sha1", b"Jefe", b"what do ya want for nothing?").unwrap(),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }
}
