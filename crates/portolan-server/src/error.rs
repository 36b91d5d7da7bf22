//! `ApiError`: every error the API returns, rendered as Port's envelope
//! `{"ok": false, "error": "<code>", "message": "<what to fix>"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portolan_core::{FieldError, FieldErrors};
use portolan_store::StoreError;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra fields for the body (e.g. per-field `details`).
    pub details: Option<Box<Value>>,
    /// Seconds for a `Retry-After` header (429s).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: None, retry_after: None }
    }
    /// 429 after too many failed credential checks of one client id or address.
    pub fn too_many_failures(retry_after: u32) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failed_attempts",
                format!(
                    "too many failed attempts with this clientId or from this address; retry after {retry_after} seconds"
                ),
            )
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn invalid(errors: &FieldErrors) -> Self {
        let details: Vec<Value> = errors.0.iter().map(|e| json!({"path": e.path, "message": e.message})).collect();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_request",
            message: errors.to_string(),
            details: Some(Box::new(json!(details))),
            retry_after: None,
        }
    }
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred; the server log has the details",
        )
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::invalid(&e.into())
    }
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        ApiError::invalid(&e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} was not found")),
            StoreError::Invalid(f) => f.into(),
            e @ (StoreError::RequiredBy { .. } | StoreError::HasEntities { .. } | StoreError::Referenced { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            // 422, not 5xx: the query itself costs more than this server allows (a retry of the
            // same query fails the same way, and clients retry 5xx), and the message says how
            // to narrow it.
            e @ StoreError::OverBudget { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "query_budget_exceeded", e.to_string())
            }
            StoreError::Unavailable(why) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                format!("the server is overloaded ({why}); retry in a few seconds"),
            ),
            StoreError::Db(msg) => ApiError::internal("database error", msg),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"ok": false, "error": self.code, "message": self.message});
        if let (Some(d), Some(obj)) = (self.details, body.as_object_mut()) {
            obj.insert("details".into(), *d);
        }
        let mut res = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
