//! Extractors that reject bad input with Port's error envelope instead of axum's plain text.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ErrorCode};

/// A JSON body. Syntax errors → 400, wrong content type → 415, too large → 413.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // `Content-Type: application/json`: parsed straight into a value; axum's extractor,
        // which tracks the path of every key for its error, reads the body only when that
        // parse fails (for its message) or for other JSON media types.
        if !plain_json(req.headers()) {
            return match axum::Json::<Value>::from_request(req, state).await {
                Ok(axum::Json(v)) => Ok(JsonBody(v)),
                Err(rej) => Err(json_rejection(rej)),
            };
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| json_rejection(e.into()))?;
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            return Ok(JsonBody(v));
        }
        match axum::Json::<Value>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

/// Whether the request's media type is `application/json` (any parameters).
fn plain_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

pub fn json_rejection(rej: JsonRejection) -> ApiError {
    match rej {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the request body must be JSON, sent with Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request(format!("the request body is not valid JSON: {}", e.body_text()))
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::bad_request(format!("the request body has the wrong shape: {}", e.body_text()))
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        other => ApiError::with_status(other.status(), ErrorCode::BadRequest, other.body_text()),
    }
}

pub fn too_large() -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, "the request body is larger than the 1 MiB limit")
}

/// Query-string parameters. Arrays may be exploded (`include=a&include=b`) or bracketed
/// (`include[]=a`); a value is a number or a boolean where the field is one
/// ([`crate::query_de`]).
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or("");
        let mut keys: Vec<(String, Vec<String>)> = Vec::new();
        for (k, v) in form_pairs(raw) {
            let k = k.trim_end_matches("[]").to_string();
            match keys.iter_mut().find(|(key, _)| *key == k) {
                Some((_, values)) => values.push(v),
                None => keys.push((k, vec![v])),
            }
        }
        crate::query_de::from_pairs(keys)
            .map(QueryParams)
            .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))
    }
}

/// Decode `a=1&b=x%20y` pairs.
pub fn form_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Flags sent as `?upsert=true`. Accepts true/false/1/0 (and a bare `?upsert`); anything else
/// is a 422 naming the parameter.
pub fn flag(name: &str, v: &Option<Value>) -> Result<bool, ApiError> {
    let bad = |got: &dyn std::fmt::Display| {
        ApiError::from(portolan_core::FieldError::new(name, format!("must be true or false (got {got})")))
    };
    match v {
        None => Ok(false),
        Some(Value::String(s)) => match s.as_str() {
            "true" | "1" | "" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(bad(&format!("{other:?}"))),
        },
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(bad(other)),
    }
}
