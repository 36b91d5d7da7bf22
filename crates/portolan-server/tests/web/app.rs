//! A test server with a signed-in browser simulated over HTTP.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use portolan_server::auth::{hash_secret, new_credentials};
use portolan_server::state::ManualClock;
use portolan_server::{ApiConfig, AppState};
use portolan_store::{OrgId, PgStore, SqliteStore, Store, User};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::pg::TestDb;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const ADMIN: &str = "admin@example.com";
pub const PASSWORD: &str = "correct horse battery";
pub const ORG: &str = "org_web";

pub struct WebApp {
    pub base: String,
    pub http: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    /// Bearer token of the organization's API credential.
    pub token: String,
    _db: Option<TestDb>,
}

/// A response: status, headers, body text.
pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Page {
    pub fn location(&self) -> String {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    }
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
    }
    /// The page's text with the entities minijinja writes for `/` and `&` decoded.
    pub fn unescaped(&self) -> String {
        self.text.replace("&#x2f;", "/").replace("&amp;", "&")
    }
    /// The value of `name="_csrf" value="…"` in the page.
    pub fn csrf_field(&self) -> String {
        let marker = "name=\"_csrf\" value=\"";
        let i = self.text.find(marker).unwrap_or_else(|| panic!("no _csrf field in {}", self.text)) + marker.len();
        self.text[i..].split('"').next().unwrap().to_string()
    }
}

/// A browser: its cookies (name=value).
#[derive(Default, Clone)]
pub struct Browser {
    pub cookies: Vec<(String, String)>,
    /// Extra headers sent with every request.
    pub headers: Vec<(String, String)>,
}

impl Browser {
    fn absorb(&mut self, page: &Page) {
        for c in page.set_cookies() {
            let first = c.split(';').next().unwrap();
            let (k, v) = first.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
    }
    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }
}

impl WebApp {
    pub async fn spawn() -> Option<WebApp> {
        Self::spawn_with(ApiConfig::default()).await
    }

    pub async fn spawn_with(config: ApiConfig) -> Option<WebApp> {
        let (store, db): (Arc<dyn Store>, _) = match crate::BACKEND {
            Backend::Sqlite => (Arc::new(SqliteStore::in_memory().await.expect("store")), None),
            Backend::Postgres => {
                let db = TestDb::create().await?;
                (Arc::new(PgStore::connect_with_pool_size(&db.url(), 4).await.expect("pg store")), Some(db))
            }
        };
        let org = store.create_org(&OrgId(ORG.into()), "web", "2024-01-01T00:00:00.000Z").await.unwrap().id;
        let cost = (8, 1);
        let hash = portolan_server::web::session::hash_password_with(cost, PASSWORD).unwrap();
        store
            .create_user(&User {
                id: "usr_admin".into(),
                org: org.clone(),
                email: ADMIN.into(),
                password_hash: hash,
                role: "admin".into(),
                created_at: "2024-01-01T00:00:00.000Z".into(),
            })
            .await
            .unwrap();
        let (id, secret) = new_credentials();
        store.add_credential(&org, &id, &hash_secret(&secret), "t", "2024-01-01T00:00:00.000Z").await.unwrap();
        let mut state = AppState::new(store.clone(), ApiConfig { password_cost: cost, ..config }).await.unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000));
        state.clock = clock.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = portolan_server::serve(listener, state, std::future::pending()).await;
        });
        let http = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let base = format!("http://{addr}");
        let res = http
            .post(format!("{base}/v1/auth/access_token"))
            .json(&json!({"clientId": id, "clientSecret": secret}))
            .send()
            .await
            .unwrap();
        let token = res.json::<Value>().await.unwrap()["accessToken"].as_str().unwrap().to_string();
        Some(WebApp { base, http, store, clock, token, _db: db })
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    pub async fn get(&self, b: &mut Browser, path: &str) -> Page {
        let mut rb = self.http.get(format!("{}{path}", self.base)).header("cookie", b.cookie_header());
        for (k, v) in &b.headers {
            rb = rb.header(k, v);
        }
        let res = rb.send().await.unwrap();
        let page = Page { status: res.status(), headers: res.headers().clone(), text: res.text().await.unwrap() };
        b.absorb(&page);
        page
    }

    pub async fn post(&self, b: &mut Browser, path: &str, form: &[(&str, &str)]) -> Page {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{}={}", portolan_server::web::urlencode(k), portolan_server::web::urlencode(v)))
            .collect();
        let mut rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", b.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"));
        for (k, v) in &b.headers {
            rb = rb.header(k, v);
        }
        let res = rb.send().await.unwrap();
        let page = Page { status: res.status(), headers: res.headers().clone(), text: res.text().await.unwrap() };
        b.absorb(&page);
        page
    }

    /// Sign in through the form; returns the browser and the sign-in response.
    pub async fn sign_in_as(&self, email: &str, password: &str) -> (Browser, Page) {
        let mut b = Browser::default();
        let form = self.get(&mut b, "/ui/signin").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        let csrf = form.csrf_field();
        let res = self
            .post(
                &mut b,
                "/ui/signin",
                &[("_csrf", &csrf), ("email", email), ("password", password), ("next", "/ui/catalog")],
            )
            .await;
        (b, res)
    }

    /// A signed-in admin.
    pub async fn admin(&self) -> Browser {
        let (b, res) = self.sign_in_as(ADMIN, PASSWORD).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
        b
    }

    /// The CSRF token of the signed-in browser (from any page's forms).
    /// A web user of the organization with [`PASSWORD`], signed in.
    pub async fn user(&self, id: &str, email: &str, role: &str) -> Browser {
        let hash = portolan_server::web::session::hash_password_with((8, 1), PASSWORD).unwrap();
        let u = User {
            id: id.into(),
            org: OrgId(ORG.into()),
            email: email.into(),
            password_hash: hash,
            role: role.into(),
            created_at: "2024-01-01T00:00:00.000Z".into(),
        };
        self.store.create_user(&u).await.unwrap();
        let (b, res) = self.sign_in_as(email, PASSWORD).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
        b
    }

    pub async fn csrf(&self, b: &mut Browser) -> String {
        self.get(b, "/ui/catalog").await.csrf_field()
    }

    pub async fn api(&self, method: &str, path: &str, body: Value) -> Value {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let res = self
            .http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let v: Value = res.json().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }
}
