//! A thin HTTP client for the Portolan API: bearer token, JSON in, status and JSON out.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// One response: status and parsed body (`Null` if the body was not JSON).
pub struct Res {
    pub status: StatusCode,
    pub body: Value,
}

impl Api {
    /// Exchange the credentials for a token (`POST /v1/auth/access_token`).
    pub async fn connect(base: &str, client_id: &str, client_secret: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(300))
            .pool_max_idle_per_host(64)
            .build()
            .context("cannot build the HTTP client")?;
        let mut api = Api { http, base: base.trim_end_matches('/').to_string(), token: String::new() };
        let body = json!({"clientId": client_id, "clientSecret": client_secret}).to_string();
        let r = api.send(Method::POST, "/v1/auth/access_token", Some(body)).await?;
        let Some(token) = r.body.get("accessToken").and_then(Value::as_str) else {
            bail!("POST /v1/auth/access_token answered {}: {}", r.status, r.body);
        };
        api.token = token.to_string();
        Ok(api)
    }

    /// Send a request; the body, if any, is JSON text.
    pub async fn send(&self, method: Method, path: &str, body: Option<String>) -> anyhow::Result<Res> {
        let mut rb = self.http.request(method.clone(), format!("{}{path}", self.base));
        if !self.token.is_empty() {
            rb = rb.bearer_auth(&self.token);
        }
        if let Some(b) = body {
            rb = rb.header("content-type", "application/json").body(b);
        }
        let res = rb.send().await.with_context(|| format!("{method} {path}: request failed"))?;
        let status = res.status();
        let bytes = res.bytes().await.with_context(|| format!("{method} {path}: cannot read the response"))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Res { status, body })
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Res> {
        self.send(Method::POST, path, Some(body.to_string())).await
    }

    /// `GET …` or `POST …` that must answer 200; returns the body.
    pub async fn ok(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let r = self.send(method.clone(), path, body.map(Value::to_string)).await?;
        if r.status != StatusCode::OK {
            bail!("{method} {path} answered {}: {}", r.status, short(&r.body));
        }
        Ok(r.body)
    }

    /// `GET /v1/blueprints/{bp}/entities-count`.
    pub async fn count(&self, blueprint: &str) -> anyhow::Result<u64> {
        let path = format!("/v1/blueprints/{blueprint}/entities-count");
        let body = self.ok(Method::GET, &path, None).await?;
        body.get("count").and_then(Value::as_u64).with_context(|| format!("GET {path}: no count in {body}"))
    }
}

/// A response body cut to a readable length for error messages.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 600 {
        return s;
    }
    let mut end = 600;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
