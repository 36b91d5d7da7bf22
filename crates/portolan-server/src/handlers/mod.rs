//! One module per resource: extract the request, call [`crate::ops`] (or one store read),
//! answer with Port's envelope.

pub mod action;
pub mod apps;
pub mod audit;
pub mod blueprint;
pub mod entity;
pub mod integration;
pub mod jobs;
pub mod organization;
pub mod page;
pub mod people;
pub mod scorecard;
pub mod search;
pub mod webhook;

/// The server's base URL as the client reached it (`X-Forwarded-Proto`/`-Host` behind a proxy,
/// else `Host`): integration log URLs and webhook ingest URLs are built on it.
pub(crate) fn base_url(headers: &axum::http::HeaderMap) -> String {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    let proto = h("x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = h("x-forwarded-host").or_else(|| h("host")).unwrap_or_else(|| "127.0.0.1".into());
    format!("{proto}://{host}")
}
