//! Errors of web pages, rendered as pages (not the API's JSON envelope).
//!
//! An error of the API or the store keeps its status and message: [`WebError::Api`] carries the
//! [`ApiError`] (a store error converts through `ApiError`'s `From<StoreError>`, the API's own
//! mapping), so a conflict is a 409 page, a refused value a 422, an overloaded store a 503.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::{message_page, urlencode};
use crate::error::ApiError;

#[derive(Debug)]
pub enum WebError {
    /// Not signed in (or the session ended): go to the sign-in page, then back to `next`.
    SignIn {
        next: String,
        expired: bool,
    },
    /// The CSRF token is missing or wrong.
    Csrf,
    Forbidden(String),
    NotFound(String),
    BadRequest(String),
    /// Too many sign-in attempts; with the seconds until the next may succeed, when known.
    TooMany(Option<u32>),
    /// An error of the API's handlers or of the store, with its status and message.
    Api(ApiError),
    Internal,
}

impl WebError {
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        WebError::Internal
    }
}

impl From<portolan_store::StoreError> for WebError {
    fn from(e: portolan_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        WebError::Api(e)
    }
}

/// The heading of an error page of the API's `status`.
fn title_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "Bad request",
        StatusCode::UNAUTHORIZED => "Not signed in",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "Too large",
        StatusCode::UNPROCESSABLE_ENTITY => "Not valid",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        StatusCode::SERVICE_UNAVAILABLE => "Unavailable",
        s if s.is_client_error() => "Request refused",
        _ => "Something went wrong",
    }
}

fn api_page(e: ApiError) -> Response {
    // `ApiError::internal` logged the cause and says only that the log has it.
    let mut res = message_page(e.status, title_of(e.status), &e.message);
    if let Some(secs) = e.retry_after {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::SignIn { next, expired } => {
                let mut q = format!("/ui/signin?next={}", urlencode(&next));
                if expired {
                    q.push_str("&expired=1");
                }
                Redirect::to(&q).into_response()
            }
            WebError::Csrf => message_page(
                StatusCode::FORBIDDEN,
                "Request refused",
                "The form's security token is missing or out of date. Reload the page and try again.",
            ),
            WebError::Forbidden(m) => message_page(StatusCode::FORBIDDEN, "Not allowed", &m),
            WebError::NotFound(m) => message_page(StatusCode::NOT_FOUND, "Not found", &m),
            WebError::BadRequest(m) => message_page(StatusCode::BAD_REQUEST, "Bad request", &m),
            WebError::TooMany(None) => message_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Too many sign-in attempts; wait a minute and try again.",
            ),
            WebError::TooMany(Some(secs)) => {
                let mut res = message_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed attempts",
                    &format!(
                        "Too many wrong passwords for this account or from this address. Try again in {} minute(s), \
                         or ask an admin for a new invitation.",
                        secs.div_ceil(60)
                    ),
                );
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
                res
            }
            WebError::Api(e) => api_page(e),
            WebError::Internal => message_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "An internal error occurred; the server log has the details.",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_store::StoreError;

    fn status(e: impl Into<WebError>) -> StatusCode {
        e.into().into_response().status()
    }

    #[test]
    fn store_and_api_errors_keep_the_api_status() {
        assert_eq!(status(StoreError::Conflict("blueprint \"x\"".into())), StatusCode::CONFLICT);
        assert_eq!(status(StoreError::NotFound("entity \"x\"".into())), StatusCode::NOT_FOUND);
        assert_eq!(status(StoreError::Unavailable("pool".into())), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(StoreError::Db("boom".into())), StatusCode::INTERNAL_SERVER_ERROR);
        for s in [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN, StatusCode::PAYLOAD_TOO_LARGE] {
            assert_eq!(status(ApiError::with_status(s, crate::error::ErrorCode::BadRequest, "m")), s);
        }
        let res = WebError::from(ApiError::too_many_failures(30)).into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "30");
    }
}
