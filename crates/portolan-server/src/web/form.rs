//! Form input of the web UI: `application/x-www-form-urlencoded` query strings and bodies,
//! decoded with the API's decoder (`extract::form_pairs`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;

use super::session::{self, WebUser};
use super::{WebError, WebResult};

/// `application/x-www-form-urlencoded` pairs (query strings and form bodies).
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    crate::extract::form_pairs(s)
}

/// The pairs of a query string or form body, in order (a key may repeat).
pub(super) struct Form(pub(super) Vec<(String, String)>);

impl Form {
    /// The first value of `k`, unless it is empty.
    pub(super) fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }
    /// Every non-empty value of `k`.
    pub(super) fn all(&self, k: &str) -> Vec<String> {
        self.0.iter().filter(|(key, _)| key == k).map(|(_, v)| v.clone()).filter(|v| !v.is_empty()).collect()
    }
    /// Every value of `k`, empty ones included (position matters: `fp`/`fo`/`fv`).
    pub(super) fn raw(&self, k: &str) -> Vec<&str> {
        self.0.iter().filter(|(key, _)| key == k).map(|(_, v)| v.as_str()).collect()
    }
}

pub(super) fn query_form(q: &Option<String>) -> Form {
    Form(q.as_deref().map(parse_form).unwrap_or_default())
}

/// The request's headers, peer address and form body.
pub(super) async fn body_form(req: Request) -> WebResult<(HeaderMap, Option<SocketAddr>, Form)> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, crate::BODY_LIMIT)
        .await
        .map_err(|_| WebError::BadRequest("the form is too large".into()))?;
    let addr = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    Ok((parts.headers, addr, Form(parse_form(&String::from_utf8_lossy(&bytes)))))
}

/// The form body of a signed-in user's state-changing request, once its CSRF token (form field
/// or header) matches the session's.
pub(super) async fn signed_form(user: &WebUser, req: Request) -> WebResult<(HeaderMap, Form)> {
    let (headers, _, form) = body_form(req).await?;
    session::require_csrf(user, &headers, form.get(session::CSRF_FIELD))?;
    Ok((headers, form))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_percent_and_plus() {
        let f = parse_form("a=1+2&b=%3Cx%3E&c&d=%E2%9C%93&e=%zz");
        assert_eq!(
            f,
            vec![
                ("a".into(), "1 2".into()),
                ("b".into(), "<x>".into()),
                ("c".into(), String::new()),
                ("d".into(), "✓".into()),
                ("e".into(), "%zz".into())
            ]
        );
    }

    #[test]
    fn repeated_keys_keep_their_order_and_empty_values() {
        let f = Form(parse_form("fp=a&fv=&fp=b&fv=2"));
        assert_eq!(f.raw("fp"), ["a", "b"]);
        assert_eq!(f.raw("fv"), ["", "2"]);
        assert_eq!(f.all("fv"), ["2"]);
        assert_eq!(f.get("fv"), None);
    }
}
