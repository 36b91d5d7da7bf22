//! `ApiError`: every error the API returns, rendered as Port's envelope
//! `{"ok": false, "error": "<code>", "message": "<what to fix>"}`.
//!
//! The `error` strings are a closed vocabulary, [`ErrorCode`]: each code has its HTTP status in
//! one `match` ([`ErrorCode::status`]) and round-trips through its string, so a code stored
//! with a failed job comes back as the same code.

use std::fmt;
use std::str::FromStr;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portolan_core::{FieldError, FieldErrors};
use portolan_store::StoreError;
use serde_json::{Value, json};

/// Declares [`ErrorCode`] with its wire strings, [`ErrorCode::ALL`] and [`ErrorCode::as_str`]
/// from one table, so a code cannot be missing from the list or from the parser.
macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $s:literal, )*) => {
        /// The `error` field of Port's error envelope: every code this server sends.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The code as it appears on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $s, )*
                }
            }
        }
    };
}

error_codes! {
    /// A resource (or route) that does not exist.
    NotFound = "not_found",
    /// The write conflicts with what is stored (exists already, still referenced, …).
    Conflict = "conflict",
    /// The request is well-formed JSON but breaks a rule; `details` lists the fields.
    InvalidRequest = "invalid_request",
    /// The request cannot be read (bad JSON, wrong shape).
    BadRequest = "bad_request",
    /// No valid credentials.
    Unauthorized = "unauthorized",
    /// Valid credentials whose role or permissions do not allow the request.
    Forbidden = "forbidden",
    /// An integration's deletions were refused by its mass-deletion guard.
    MassDeletionRefused = "mass_deletion_refused",
    /// An unpaginated read matched more entities than it may return.
    TooManyResults = "too_many_results",
    /// A webhook's `itemsToParse` produced more items than one delivery may process.
    TooManyItems = "too_many_items",
    /// Too many requests in the rate limiter's window.
    RateLimited = "rate_limited",
    /// Too many failed credential checks of one client id or address.
    TooManyFailedAttempts = "too_many_failed_attempts",
    /// The request body (or bulk request) is larger than allowed.
    PayloadTooLarge = "payload_too_large",
    /// The body is not sent as JSON.
    UnsupportedMediaType = "unsupported_media_type",
    /// The route exists, the method does not.
    MethodNotAllowed = "method_not_allowed",
    /// The query costs more than this server allows (a retry fails the same way).
    QueryBudgetExceeded = "query_budget_exceeded",
    /// The organization's last API credential cannot be deleted.
    LastCredential = "last_credential",
    /// The organization's last admin cannot be removed.
    LastAdmin = "last_admin",
    /// Ocean asked the portal to provision an integration's default resources.
    ProvisioningUnsupported = "provisioning_unsupported",
    /// A webhook secret was sent but this server has no master key to store it.
    SecretsKeyMissing = "secrets_key_missing",
    /// The server is overloaded (no database connection in time); retry shortly.
    Unavailable = "service_unavailable",
    /// `/readyz`: this node cannot serve now.
    NotReady = "not_ready",
    /// Anything else; the server log has the details.
    Internal = "internal_error",
}

impl ErrorCode {
    /// The HTTP status this code is answered with.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict | ErrorCode::MassDeletionRefused => StatusCode::CONFLICT,
            ErrorCode::InvalidRequest
            | ErrorCode::TooManyResults
            | ErrorCode::QueryBudgetExceeded
            | ErrorCode::LastCredential
            | ErrorCode::LastAdmin
            | ErrorCode::ProvisioningUnsupported => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::TooManyItems | ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RateLimited | ErrorCode::TooManyFailedAttempts => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::SecretsKeyMissing | ErrorCode::Unavailable | ErrorCode::NotReady => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the [`ErrorCode`]s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an error code of this server")]
pub struct UnknownErrorCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s).ok_or_else(|| UnknownErrorCode(s.to_string()))
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    /// The code's status ([`ErrorCode::status`]), except where [`ApiError::with_status`] keeps
    /// a status chosen elsewhere (the HTTP layer's, or one a failed job recorded).
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Extra fields for the body (e.g. per-field `details`).
    pub details: Option<Box<Value>>,
    /// Seconds for a `Retry-After` header (429s).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// An error answered with its code's status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::with_status(code.status(), code, message)
    }
    /// An error with a status other than its code's: a status the HTTP layer (axum's
    /// rejections, a bare status response) or a failed job already chose.
    pub fn with_status(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: None, retry_after: None }
    }
    /// 429 after too many failed credential checks of one client id or address.
    pub fn too_many_failures(retry_after: u32) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                ErrorCode::TooManyFailedAttempts,
                format!(
                    "too many failed attempts with this clientId or from this address; retry after {retry_after} seconds"
                ),
            )
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }
    pub fn invalid(errors: &FieldErrors) -> Self {
        let details: Vec<Value> = errors.0.iter().map(|e| json!({"path": e.path, "message": e.message})).collect();
        ApiError { details: Some(Box::new(json!(details))), ..Self::new(ErrorCode::InvalidRequest, errors.to_string()) }
    }
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(ErrorCode::Internal, "an internal error occurred; the server log has the details")
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
                ApiError::conflict(e.to_string())
            }
            // 422, not 5xx: the query itself costs more than this server allows (a retry of the
            // same query fails the same way, and clients retry 5xx), and the message says how
            // to narrow it.
            e @ StoreError::OverBudget { .. } => ApiError::new(ErrorCode::QueryBudgetExceeded, e.to_string()),
            StoreError::Unavailable(why) => ApiError::new(
                ErrorCode::Unavailable,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_string() {
        for &code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
            assert_eq!(code.to_string(), code.as_str());
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, json!(code.as_str()));
            assert_eq!(serde_json::from_value::<ErrorCode>(json).unwrap(), code);
        }
        let mut strings: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        strings.sort_unstable();
        strings.dedup();
        assert_eq!(strings.len(), ErrorCode::ALL.len(), "two codes share a string");
        assert_eq!("no_such_code".parse::<ErrorCode>(), Err(UnknownErrorCode("no_such_code".into())));
        assert!(serde_json::from_value::<ErrorCode>(json!("no_such_code")).is_err());
    }

    #[test]
    fn statuses_are_the_ones_the_api_has_always_answered() {
        let expected = [
            ("not_found", 404),
            ("conflict", 409),
            ("invalid_request", 422),
            ("bad_request", 400),
            ("unauthorized", 401),
            ("forbidden", 403),
            ("mass_deletion_refused", 409),
            ("too_many_results", 422),
            ("too_many_items", 413),
            ("rate_limited", 429),
            ("too_many_failed_attempts", 429),
            ("payload_too_large", 413),
            ("unsupported_media_type", 415),
            ("method_not_allowed", 405),
            ("query_budget_exceeded", 422),
            ("last_credential", 422),
            ("last_admin", 422),
            ("provisioning_unsupported", 422),
            ("secrets_key_missing", 503),
            ("service_unavailable", 503),
            ("not_ready", 503),
            ("internal_error", 500),
        ];
        assert_eq!(expected.len(), ErrorCode::ALL.len());
        for (s, status) in expected {
            assert_eq!(s.parse::<ErrorCode>().unwrap().status().as_u16(), status, "{s}");
        }
    }

    #[test]
    fn the_envelope_carries_the_code_string() {
        let res = ApiError::new(ErrorCode::MassDeletionRefused, "no").into_response();
        assert_eq!(res.status(), StatusCode::CONFLICT);
        let res = ApiError::with_status(StatusCode::REQUEST_TIMEOUT, ErrorCode::BadRequest, "slow").into_response();
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    }
}
