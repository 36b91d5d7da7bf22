//! Cross-cutting middleware: trace ids, JSON errors for everything, rate limits, panics.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

pub const TRACE_HEADER: &str = "x-trace-id";

/// Paths whose segment after the prefix is a credential: a webhook's ingest key, an invitation
/// token.
const SECRET_PATHS: &[&str] = &[crate::handlers::webhook::INGEST_PATH, "/ui/invite/"];

/// `path` as it may appear in a log line or trace: the credential of a [`SECRET_PATHS`] path
/// replaced by `[redacted]` (everything after the prefix up to the next `/`).
pub fn redact_path(path: &str) -> std::borrow::Cow<'_, str> {
    for prefix in SECRET_PATHS {
        if let Some(rest) = path.strip_prefix(prefix) {
            let tail = rest.find('/').map_or("", |i| &rest[i..]);
            return format!("{prefix}[redacted]{tail}").into();
        }
    }
    path.into()
}

/// Give every response an `X-Trace-Id` and log the request under it (its path with
/// credentials redacted, see [`redact_path`]).
pub async fn trace_id(req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let path = redact_path(req.uri().path()).into_owned();
    let span = tracing::info_span!("request", trace.id = %id, http.method = %req.method(), http.path = %path);
    let started = std::time::Instant::now();
    let mut res = {
        let _g = span.enter();
        drop(_g);
        tracing::Instrument::instrument(next.run(req), span.clone()).await
    };
    let status = res.status().as_u16();
    span.in_scope(|| {
        tracing::debug!(http.status = status, elapsed_ms = started.elapsed().as_millis() as u64, "request done")
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(TRACE_HEADER, v);
    }
    res
}

/// Unknown routes.
pub async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}; GET /openapi.json lists the routes",
        req.method(),
        req.uri().path()
    ))
}

/// Rewrite any error response that is not already JSON (405 from the router, 413 from body
/// limits, …) into Port's envelope.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // The web UI answers its errors as HTML pages.
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json || is_html {
        return res;
    }
    let err = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not allowed on {path}"))
        }
        StatusCode::PAYLOAD_TOO_LARGE => crate::extract::too_large(),
        StatusCode::NOT_FOUND => ApiError::not_found(format!("no route for {method} {path}")),
        s if s.is_server_error() => {
            ApiError::with_status(s, ErrorCode::Internal, "an internal error occurred; the server log has the details")
        }
        s => ApiError::with_status(s, ErrorCode::BadRequest, s.canonical_reason().unwrap_or("bad request").to_string()),
    };
    let mut out = err.into_response();
    for (k, v) in res.headers() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// A panic in a handler becomes a 500 in Port's envelope (the panic is logged).
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    ApiError::internal("handler panicked", msg).into_response()
}

/// Per-organization request limit on `/v1` (per client address before authentication), with
/// Port's `x-ratelimit-*` headers on every response.
pub async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|t| state.tokens.verify(t.trim(), chrono::Utc::now().timestamp()).ok());
    let key = match bearer {
        Some(v) => format!("org:{}", v.org.0),
        None => {
            let ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
            format!("ip:{}", ip.unwrap_or_default())
        }
    };
    let d = state.rate_limiter.check(&key);
    let mut res = if d.allowed {
        next.run(req).await
    } else {
        ApiError::new(
            ErrorCode::RateLimited,
            format!("more than {} requests in a minute; retry after {} seconds", d.limit, d.reset_secs),
        )
        .into_response()
    };
    let h = res.headers_mut();
    h.insert("x-ratelimit-period", HeaderValue::from(60u64));
    h.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(d.reset_secs));
    if !d.allowed {
        h.insert(header::RETRY_AFTER, HeaderValue::from(d.reset_secs));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_a_json_500_without_internals() {
        let res = panic_response(Box::new("secret internal detail".to_string()));
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"], "internal_error");
        assert!(!body.windows(6).any(|w| w == b"secret"), "internals leaked: {v}");
    }

    #[test]
    fn credentials_in_paths_are_redacted() {
        assert_eq!(redact_path("/v1/ingest/abcdef0123456789"), "/v1/ingest/[redacted]");
        assert_eq!(redact_path("/v1/ingest/abcdef/x"), "/v1/ingest/[redacted]/x");
        assert_eq!(redact_path("/ui/invite/tok3n"), "/ui/invite/[redacted]");
        assert_eq!(redact_path("/v1/blueprints/svc"), "/v1/blueprints/svc");
    }
}
