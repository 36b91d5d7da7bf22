//! The test application: a real server on an ephemeral port over a fresh database per test —
//! an in-memory SQLite database in the `api` test binary, a fresh PostgreSQL database in the
//! `api_postgres` binary (which compiles these same modules with `crate::BACKEND` set to
//! [`Backend::Postgres`]).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use portolan_server::auth::{hash_secret, new_credentials};
use portolan_server::{ApiConfig, AppState};
use portolan_store::{OrgId, PgStore, SqliteStore, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::pg::TestDb;

/// The store backend a test binary runs its tests on (`crate::BACKEND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    /// Bearer token of organization A.
    pub token: String,
    pub store: Arc<dyn Store>,
    pub client_id: String,
    pub client_secret: String,
    /// The PostgreSQL database of this test, dropped (best effort) with the app — also when the
    /// test panics.
    _db: Option<TestDb>,
}

/// A response: status, parsed JSON body (Null if not JSON) and headers.
pub struct Res {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl TestApp {
    /// The app on this binary's backend, or `None` (after saying so on stderr) when that is
    /// PostgreSQL and `PORTOLAN_TEST_DATABASE_URL` is not set: tests begin with
    /// `let Some(app) = TestApp::spawn().await else { return };`.
    pub async fn spawn() -> Option<TestApp> {
        Self::spawn_with(ApiConfig::default()).await
    }

    /// [`TestApp::spawn`] with a configuration.
    pub async fn spawn_with(config: ApiConfig) -> Option<TestApp> {
        let (store, db): (Arc<dyn Store>, _) = match crate::BACKEND {
            Backend::Sqlite => (Arc::new(SqliteStore::in_memory().await.expect("in-memory store")), None),
            Backend::Postgres => {
                let db = TestDb::create().await?;
                let store = PgStore::connect_with_pool_size(&db.url(), 4).await.expect("PostgreSQL store");
                (Arc::new(store), Some(db))
            }
        };
        let (client_id, client_secret) = create_org(store.as_ref(), "org-a").await;
        // As `portolan init` does: with a secrets key, the client secret is kept (encrypted)
        // to sign action webhooks.
        if let Some(key) = &config.secrets_key {
            let org = OrgId("org_org-a".into());
            let enc = key.encrypt(&client_secret, &portolan_server::ops::action::credential_aad(&org, &client_id));
            store.set_credential_secret(&org, &client_id, &enc, key.id()).await.expect("signing secret");
        }
        let state = AppState::new(store.clone(), config).await.expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = portolan_server::serve(listener, state, std::future::pending()).await;
        });
        let http = reqwest::Client::builder().no_proxy().build().expect("client");
        let base = format!("http://{addr}");
        let token = fetch_token(&http, &base, &client_id, &client_secret).await;
        Some(TestApp { base, http, token, store, client_id, client_secret, _db: db })
    }

    /// Another node serving this app's database with `config` (its own job workers and
    /// timers), as a second server of a cluster or the first one after a restart.
    pub async fn extra_node(&self, config: ApiConfig) {
        let state = AppState::new(self.store.clone(), config).await.expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        tokio::spawn(async move { portolan_server::serve(listener, state, std::future::pending()).await });
    }

    /// A token for a second, separate organization.
    pub async fn other_org_token(&self, name: &str) -> String {
        let (id, secret) = create_org(self.store.as_ref(), name).await;
        fetch_token(&self.http, &self.base, &id, &secret).await
    }

    pub async fn req(&self, method: &str, path: &str, body: Option<Value>) -> Res {
        self.req_as(&self.token, method, path, body).await
    }

    pub async fn req_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Res {
        let headers: &[(&str, &str)] = if body.is_some() { &[("content-type", "application/json")] } else { &[] };
        self.raw_as(token, method, path, headers, body.map(|b| b.to_string().into_bytes())).await
    }

    /// A request with raw body bytes and extra headers (content type, user agent, …).
    pub async fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Res {
        self.raw_as(&self.token, method, path, headers, body).await
    }

    pub async fn raw_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Res {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(method, format!("{}{}", self.base, path)).bearer_auth(token);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let res = rb.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Res { status, body, headers }
    }

    pub async fn get(&self, path: &str) -> Res {
        self.req("GET", path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Res {
        self.req("POST", path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Res {
        self.req("PUT", path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Res {
        self.req("PATCH", path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Res {
        self.req("DELETE", path, None).await
    }

    /// The run `id` (`GET /v1/actions/runs/{id}`), asserting it is there.
    pub async fn run(&self, id: &str) -> Value {
        let r = self.get(&format!("/v1/actions/runs/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["run"].clone()
    }

    /// Poll run `id` until `want` holds (at most 10 s): the run then.
    pub async fn wait_run(&self, id: &str, want: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            let r = self.run(id).await;
            if want(&r) {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("run {id} never reached the wanted state: {}", self.run(id).await);
    }

    /// Create a blueprint and assert it worked.
    pub async fn blueprint(&self, bp: Value) -> Value {
        let r = self.post("/v1/blueprints", bp).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["blueprint"].clone()
    }

    /// A web user of organization A (the store's, as sign-up would make it); answers A's id.
    pub async fn web_user(&self, id: &str, email: &str, role: &str) -> OrgId {
        let org = self.store.org_by_name("org-a").await.unwrap().unwrap().id;
        let u = portolan_store::User {
            id: id.into(),
            org: org.clone(),
            email: email.into(),
            password_hash: "x".into(),
            role: role.into(),
            created_at: "2024-01-01T00:00:00.000Z".into(),
        };
        self.store.create_user(&u).await.unwrap();
        org
    }

    /// Create teams (entities may name only existing teams) and assert it worked.
    pub async fn teams(&self, names: &[&str]) {
        for name in names {
            let r = self.post("/v1/teams", json!({"name": name})).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
    }

    /// Create an entity and assert it worked.
    pub async fn entity(&self, bp: &str, e: Value) -> Value {
        let r = self.post(&format!("/v1/blueprints/{bp}/entities"), e).await;
        assert!(r.status.is_success(), "{}", r.body);
        r.body["entity"].clone()
    }

    /// `GET /v1/blueprints/{bp}/entities-count`.
    pub async fn count(&self, bp: &str) -> u64 {
        let r = self.get(&format!("/v1/blueprints/{bp}/entities-count")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["count"].as_u64().expect("count")
    }

    /// Identifiers of organization A's own blueprints (not the system `_user` and `_team`), sorted.
    pub async fn blueprint_ids(&self) -> Vec<String> {
        let r = self.get("/v1/blueprints").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let mut ids: Vec<String> = r.body["blueprints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["identifier"].as_str().unwrap().to_string())
            .filter(|id| !portolan_core::system::is_system(id))
            .collect();
        ids.sort();
        ids
    }

    /// `GET /v1/audit-log?{query}`: the records, newest first.
    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let r = self.get(&format!("/v1/audit-log?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["audits"].as_array().unwrap().clone()
    }

    /// A small model: domain ← service → (many) package, with mirror and calculation properties.
    pub async fn model(&self) {
        self.blueprint(json!({"identifier": "domain", "title": "Domain",
            "schema": {"properties": {"owner": {"type": "string"}, "tier": {"type": "number"}}}}))
            .await;
        self.blueprint(json!({"identifier": "package", "title": "Package",
            "schema": {"properties": {"version": {"type": "string"}}}}))
            .await;
        self.blueprint(json!({"identifier": "service", "title": "Service",
            "schema": {"properties": {
                "language": {"type": "string", "enum": ["go", "rust", "python"]},
                "cpu": {"type": "number", "minimum": 0, "maximum": 64},
                "public": {"type": "boolean"},
                "url": {"type": "string", "format": "url"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "deployedAt": {"type": "string", "format": "date-time"}
            }, "required": ["language"]},
            "relations": {
                "domain": {"title": "Domain", "target": "domain", "required": false, "many": false},
                "packages": {"title": "Packages", "target": "package", "required": false, "many": true}
            },
            "mirrorProperties": {"domainOwner": {"path": "domain.owner"}},
            "calculationProperties": {"link": {"type": "string", "calculation": "'https://svc/' + .identifier"}}}))
            .await;
    }
}

pub async fn create_org(store: &dyn Store, name: &str) -> (String, String) {
    let org =
        store.create_org(&OrgId(format!("org_{name}")), name, "2024-01-01T00:00:00.000Z").await.expect("create org");
    let (id, secret) = new_credentials();
    store.add_credential(&org.id, &id, &hash_secret(&secret), "test", "2024-01-01T00:00:00.000Z").await.expect("cred");
    (id, secret)
}

pub async fn fetch_token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let res = http
        .post(format!("{base}/v1/auth/access_token"))
        .json(&json!({"clientId": id, "clientSecret": secret}))
        .send()
        .await
        .expect("token request");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("token json");
    body["accessToken"].as_str().expect("token").to_string()
}

/// `n` CJK letters that do not compress: PostgreSQL compresses an index entry before it refuses
/// one that is too large, so a test of a length limit needs text like this.
pub fn wide_text(n: u32) -> String {
    (0..n).map(|i| char::from_u32(0x4e00 + (i * 7919) % 20000).unwrap_or('x')).collect()
}

/// Assert Port's error envelope with this status and error code.
#[track_caller]
pub fn assert_error(r: &Res, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.body);
    assert_eq!(r.body["ok"], json!(false), "body: {}", r.body);
    assert_eq!(r.body["error"], json!(code), "body: {}", r.body);
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {}", r.body);
}

/// Assert a 422 in Port's envelope whose details name `path` (and whose message does too).
#[track_caller]
pub fn assert_invalid(r: &Res, path: &str) {
    assert_error(r, 422, "invalid_request");
    let details = r.body["details"].as_array().expect("details");
    assert!(details.iter().any(|d| d["path"] == json!(path)), "no error at {path:?}: {}", r.body);
    if !path.is_empty() {
        assert!(r.body["message"].as_str().unwrap().contains(path), "message does not name {path:?}: {}", r.body);
    }
}

/// The message of the detail at `path` of a 422.
#[track_caller]
pub fn detail(r: &Res, path: &str) -> String {
    let details = r.body["details"].as_array().expect("details");
    let d = details.iter().find(|d| d["path"] == json!(path)).unwrap_or_else(|| panic!("no {path:?}: {}", r.body));
    d["message"].as_str().unwrap().to_string()
}

/// Identifiers of the entities in a response, sorted.
pub fn ids(body: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        body["entities"].as_array().unwrap().iter().map(|e| e["identifier"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

/// A user of organization A with `roles` and `teams` (set through the API) and a token of
/// their personal credential.
pub async fn person(app: &TestApp, id: &str, email: &str, roles: Value, teams: Value) -> String {
    app.web_user(id, email, "member").await;
    let r = app.patch(&format!("/v1/users/{email}"), json!({"roles": roles, "teams": teams})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.post(&format!("/v1/rotate-credentials/{email}"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let c = &r.body["credentials"];
    fetch_token(&app.http, &app.base, c["clientId"].as_str().unwrap(), c["clientSecret"].as_str().unwrap()).await
}

/// One call a [`Recorder`] received.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub headers: axum::http::HeaderMap,
    /// The raw body, and the body as JSON (`null` when it is not JSON).
    pub raw: Vec<u8>,
    pub body: Value,
}

/// A local backend that answers 200 `{"ok": true}` and records every call.
pub struct Recorder {
    pub url: String,
    got: Arc<std::sync::Mutex<Vec<Call>>>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let got: Arc<std::sync::Mutex<Vec<Call>>> = Arc::default();
        let rec = got.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap, raw: axum::body::Bytes| {
                let rec = rec.clone();
                async move {
                    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
                    rec.lock().unwrap().push(Call { path: uri.path().to_string(), headers, raw: raw.to_vec(), body });
                    (axum::http::StatusCode::OK, axum::Json(json!({"ok": true})))
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Recorder { url, got }
    }

    /// Every call to `path`, in order.
    pub fn received(&self, path: &str) -> Vec<Call> {
        self.got.lock().unwrap().iter().filter(|c| c.path == path).cloned().collect()
    }

    /// The JSON bodies of the calls to `path`.
    pub fn calls(&self, path: &str) -> Vec<Value> {
        self.received(path).into_iter().map(|c| c.body).collect()
    }

    /// Wait until `path` has had `n` calls (at most 10 s), and a little longer for extra ones.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            if self.calls(path).len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        self.calls(path)
    }
}
