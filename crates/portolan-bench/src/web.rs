//! Phase 3: the web UI's catalog page as a browser gets it — signed in through the sign-in form
//! (the bootstrap admin the server was started with), then sequential `GET /ui/catalog/service`
//! requests, the first page and a filtered page (two rules), timed to the last byte of the HTML.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, SET_COOKIE};

use crate::latency::{Stats, stats};
use crate::model::Dataset;

/// The catalog page's default page size (`DEFAULT_PAGE` of the web UI).
const PAGE_ROWS: usize = 50;
/// The filtered page: the same two rules as the API's filtered search.
pub const FILTERED_PAGE: &str = "/ui/catalog/service?fp=language&fo=%3D&fv=go&fp=cpu&fo=%3E&fv=16";
pub const FIRST_PAGE: &str = "/ui/catalog/service";

/// A signed-in browser session: its cookies.
pub struct Web {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Web {
    fn absorb(&mut self, headers: &HeaderMap) {
        for c in headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            let Some((k, v)) = c.split(';').next().and_then(|kv| kv.split_once('=')) else { continue };
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// Sign in through `/ui/signin` (its CSRF cookie and field, then the session cookie).
    pub async fn sign_in(base: &str, email: &str, password: &str) -> anyhow::Result<Web> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(300))
            .build()
            .context("cannot build the HTTP client")?;
        let mut web = Web { http, base: base.trim_end_matches('/').to_string(), cookies: Vec::new() };
        let form = web.http.get(format!("{}/ui/signin", web.base)).send().await.context("GET /ui/signin")?;
        web.absorb(form.headers());
        let html = form.text().await.context("GET /ui/signin: body")?;
        let marker = "name=\"_csrf\" value=\"";
        let csrf = html
            .find(marker)
            .and_then(|i| html[i + marker.len()..].split('"').next())
            .context("the sign-in page has no _csrf field")?
            .to_string();
        let body = format!("_csrf={}&email={}&password={}&next=%2Fui%2Fcatalog", enc(&csrf), enc(email), enc(password));
        let res = web
            .http
            .post(format!("{}/ui/signin", web.base))
            .header(COOKIE, web.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .context("POST /ui/signin")?;
        let status = res.status();
        web.absorb(res.headers());
        if status != StatusCode::SEE_OTHER || !web.cookies.iter().any(|(k, _)| k == "portolan_session") {
            bail!("signing in to the web UI as {email} failed ({status}); was the bootstrap admin created?");
        }
        Ok(web)
    }

    /// Accept the invitation at `path` (`/ui/invite/…`, from `POST /v1/users/invite`) with
    /// `password`: the invitee becomes a user.
    pub async fn accept_invitation(base: &str, path: &str, password: &str) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot build the HTTP client")?;
        let mut web = Web { http, base: base.trim_end_matches('/').to_string(), cookies: Vec::new() };
        let url = format!("{}{path}", web.base);
        let form = web.http.get(&url).send().await.with_context(|| format!("GET {path}"))?;
        web.absorb(form.headers());
        let html = form.text().await.context("the invitation page's body")?;
        let marker = "name=\"_csrf\" value=\"";
        let csrf = html
            .find(marker)
            .and_then(|i| html[i + marker.len()..].split('"').next())
            .context("the invitation page has no _csrf field")?
            .to_string();
        let body = format!("_csrf={}&password={}&confirm={}", enc(&csrf), enc(password), enc(password));
        let res = web
            .http
            .post(&url)
            .header(COOKIE, web.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        if res.status() != StatusCode::SEE_OTHER {
            bail!("accepting the invitation {path} answered {}", res.status());
        }
        Ok(())
    }

    /// GET a page: time to the last byte, and the HTML.
    pub async fn page(&self, path: &str) -> anyhow::Result<(Duration, String)> {
        let t = Instant::now();
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = res.status();
        let html = res.text().await.with_context(|| format!("GET {path}: body"))?;
        let elapsed = t.elapsed();
        if status != StatusCode::OK {
            bail!("GET {path} answered {status}: {}", html.chars().take(300).collect::<String>());
        }
        Ok((elapsed, html))
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Rows of the catalog table: links to service entity pages (one per row, in the identifier
/// column).
fn rows(html: &str) -> usize {
    let table = html.find("id=\"catalog-table\"").map_or("", |i| &html[i..]);
    table.matches("<a href=\"/ui/entities/service/").count()
}

/// Time the first catalog page and the filtered page, `samples` times each, checking each
/// answer's row count.
pub async fn run(web: &Web, data: &Dataset, samples: usize) -> anyhow::Result<Vec<Stats>> {
    let mut out = Vec::new();
    let expected_first = data.services.min(PAGE_ROWS);
    let expected_filtered = data.expected_filtered().min(PAGE_ROWS);
    for (path, expected, note) in [
        (FIRST_PAGE, expected_first, format!("first page, {PAGE_ROWS} rows, default columns; full HTML")),
        (FILTERED_PAGE, expected_filtered, format!("language=go ∧ cpu>16, first page of {PAGE_ROWS}; full HTML")),
    ] {
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let (t, html) = web.page(path).await?;
            let n = rows(&html);
            if n != expected {
                bail!("GET {path} showed {n} rows, {expected} expected");
            }
            times.push(t);
        }
        out.push(stats(&format!("GET {path}"), times, note));
    }
    Ok(out)
}
