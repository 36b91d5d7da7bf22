//! The one outbound HTTP client: every call the server makes to a URL a tenant configured
//! (action webhooks today) goes through [`Outbound::send`], which
//! - bounds it: a connect timeout, a total timeout, at most 3 redirects, an answer cut at
//!   `max_response_bytes`;
//! - honours `HTTP_PROXY` / `HTTPS_PROXY` / `ALL_PROXY` / `NO_PROXY` (either case) and an extra CA
//!   bundle added to the platform's roots (`outbound.ca_bundle`);
//! - refuses cloud metadata and link-local targets (169.254.0.0/16, fe80::/10, fd00:ec2::254,
//!   100.100.100.200, `metadata.google.internal`) unless `outbound.allow_metadata_addresses`:
//!   literal addresses and host names in the URL and in every redirect (followed here, not by
//!   reqwest, so each target is checked before anything is sent to it) are checked, and host
//!   names are resolved by a resolver that drops refused addresses, so DNS cannot answer
//!   differently between the check and the connection. Through a proxy (which resolves names
//!   itself) a name is resolved here first and refused if any of its addresses is. Private and
//!   loopback addresses are allowed: that is where a self-hosted team's backends live;
//! - never fails: the [`Exchange`] it returns records the request, the answer (status, headers,
//!   body up to the cap), the duration and, in words, what went wrong — the trace a run keeps.
//!   [`Exchange::censored`] removes secret values before anything is stored.
//!
//! Port's webhook signature (port-api.md §5.8) is [`port_signature`]; [`verify_port_signature`]
//! checks one as a receiver does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

/// Settings of the outbound client (`[outbound]` in the configuration file).
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// The whole call, from connecting to the last byte of the answer.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Answers are cut here (the rest is not read) and the call counts as failed.
    pub max_response_bytes: usize,
    /// A PEM file of CA certificates trusted in addition to the platform's roots.
    pub ca_bundle: Option<PathBuf>,
    /// Allow cloud metadata and link-local addresses (refused by default).
    pub allow_metadata_addresses: bool,
    /// A proxy for every call, instead of the environment's (tests; `HTTP(S)_PROXY` otherwise).
    pub proxy: Option<String>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
            ca_bundle: None,
            allow_metadata_addresses: false,
            proxy: None,
        }
    }
}

/// One outbound call.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// A call as it happened, for a run's trace.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Exchange {
    pub request: TraceRequest,
    pub response: Option<TraceResponse>,
    /// The redirect targets followed, in order (absent when there were none); `response` is
    /// the last one's answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<String>,
    pub duration_ms: u64,
    /// What went wrong, in words (`None`: an answer arrived, whatever its status).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TraceRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8), cut at the trace limit.
    pub body: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TraceResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub body_truncated: bool,
}

/// What stands for a censored value.
pub const MASK: &str = "********";
/// Headers whose values a trace never shows.
const SENSITIVE_HEADERS: &[&str] =
    &["authorization", "proxy-authorization", "cookie", "set-cookie", "x-port-signature"];
/// Longest request body a trace keeps.
const TRACE_BODY: usize = 64 * 1024;

/// Replace every occurrence of each non-empty secret in `text` with [`MASK`] (longest first, so
/// a secret containing another is masked whole).
pub fn censor(text: &str, secrets: &[&str]) -> String {
    let mut sorted: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in sorted {
        if out.contains(s) {
            out = out.replace(s, MASK);
        }
    }
    out
}

impl Exchange {
    /// The exchange with every secret value masked (URL, headers, bodies, error) and the
    /// sensitive headers' values masked whatever they hold.
    pub fn censored(mut self, secrets: &[&str]) -> Exchange {
        let c = |s: &str| censor(s, secrets);
        let headers = |hs: &mut Vec<(String, String)>| {
            for (k, v) in hs.iter_mut() {
                *v = if SENSITIVE_HEADERS.contains(&k.to_ascii_lowercase().as_str()) { MASK.to_string() } else { c(v) };
            }
        };
        self.request.url = c(&self.request.url);
        self.redirects = self.redirects.iter().map(|u| c(u)).collect();
        headers(&mut self.request.headers);
        self.request.body = c(&self.request.body);
        if let Some(r) = &mut self.response {
            headers(&mut r.headers);
            r.body = c(&r.body);
        }
        self.error = self.error.map(|e| c(&e));
        self
    }
}

/// Why an address is refused (`None`: allowed).
fn refused_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) if v4 == Ipv4Addr::new(169, 254, 169, 254) => Some("the cloud metadata service"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address (169.254.0.0/16)"),
        IpAddr::V4(v4) if v4 == Ipv4Addr::new(100, 100, 100, 200) => Some("a cloud metadata service (100.100.100.200)"),
        IpAddr::V6(v6) if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => {
            Some("the cloud metadata service")
        }
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some("a link-local address (fe80::/10)"),
        // An IPv4 address written as IPv6 (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, or the
        // NAT64 prefix 64:ff9b::/96) is judged as the IPv4 address.
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let nat64 = (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0])
                .then(|| Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
            nat64.or_else(|| v6.to_ipv4()).and_then(|v4| refused_ip(IpAddr::V4(v4)))
        }
        _ => None,
    }
}

fn refused_host(host: &str) -> Option<&'static str> {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    matches!(h.as_str(), "metadata.google.internal" | "metadata").then_some("a cloud metadata host name")
}

fn policy_message(target: &str, why: &str) -> String {
    format!(
        "refused by the address policy: {target} is {why}; such targets are refused unless \
         outbound.allow_metadata_addresses is set"
    )
}

/// The policy's verdict on a URL's host (literal addresses and names; names are resolved by
/// [`PolicyResolver`] at connection time).
fn check_url(url: &reqwest::Url) -> Result<(), String> {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => {
            refused_ip(IpAddr::V4(ip)).map_or(Ok(()), |why| Err(policy_message(&ip.to_string(), why)))
        }
        Some(url::Host::Ipv6(ip)) => {
            refused_ip(IpAddr::V6(ip)).map_or(Ok(()), |why| Err(policy_message(&ip.to_string(), why)))
        }
        Some(url::Host::Domain(d)) => refused_host(d).map_or(Ok(()), |why| Err(policy_message(d, why))),
        None => Err("the URL has no host".into()),
    }
}

/// Resolves host names and drops refused addresses; refuses a name with nothing else left.
struct PolicyResolver;

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs = lookup(&host, 0).await?;
            let allowed: Vec<SocketAddr> = addrs.iter().copied().filter(|a| refused_ip(a.ip()).is_none()).collect();
            if allowed.is_empty() && !addrs.is_empty() {
                let why = refused_ip(addrs[0].ip()).unwrap_or("refused");
                let msg = policy_message(&format!("{host} (resolves to {})", addrs[0].ip()), why);
                return Err(Box::new(PolicyError(msg)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses a host name resolves to (the system resolver; tests add names of their own).
async fn lookup(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    #[cfg(test)]
    if let Some(ips) = tests::fake_dns(host) {
        return Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect());
    }
    Ok(tokio::net::lookup_host((host, port)).await?.collect())
}

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 3;

/// Headers dropped when a redirect leaves the origin (as browsers and reqwest do).
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie", "cookie2", "www-authenticate"];

/// Headers describing a body, dropped when a redirect turns the call into a GET.
const BODY_HEADERS: &[&str] = &["content-type", "content-length", "content-encoding", "transfer-encoding"];

#[derive(Debug)]
struct PolicyError(String);

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

/// The guarded outbound client (cheap to clone).
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    cfg: Arc<OutboundConfig>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound::new(&OutboundConfig::default()).unwrap_or_else(|e| panic!("the default outbound client: {e}"))
    }
}

impl Outbound {
    /// Build the client; the error names the setting that is wrong.
    pub fn new(cfg: &OutboundConfig) -> Result<Outbound, String> {
        let allow = cfg.allow_metadata_addresses;
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            // Redirects are followed by `send`, each target passing the address policy first.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("portolan/", env!("CARGO_PKG_VERSION")));
        if !allow {
            b = b.dns_resolver(Arc::new(PolicyResolver));
        }
        if let Some(p) = &cfg.proxy {
            let proxy =
                reqwest::Proxy::all(p).map_err(|e| format!("outbound proxy {p:?} is not a valid proxy URL: {e}"))?;
            b = b.proxy(proxy);
        }
        if let Some(path) = &cfg.ca_bundle {
            let pem = std::fs::read(path)
                .map_err(|e| format!("outbound.ca_bundle {}: cannot read it: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("outbound.ca_bundle {}: not a PEM bundle of certificates: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("outbound.ca_bundle {}: holds no certificate", path.display()));
            }
            b = b.tls_certs_merge(certs);
        }
        let client = b.build().map_err(|e| format!("the outbound HTTP client cannot be built: {e}"))?;
        Ok(Outbound { client, cfg: Arc::new(cfg.clone()) })
    }

    /// Make the call; everything that happened is in the answer.
    pub async fn send(&self, req: OutboundRequest) -> Exchange {
        let started = Instant::now();
        let trace_req = TraceRequest {
            method: req.method.clone(),
            url: req.url.clone(),
            headers: req.headers.clone(),
            body: req.body.as_deref().map(|b| cut_text(b, TRACE_BODY).0).unwrap_or_default(),
        };
        let mut redirects = Vec::new();
        let (response, error) = self.call(req, started, &mut redirects).await;
        Exchange {
            request: trace_req,
            response,
            redirects,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            error,
        }
    }

    /// The call and its redirects; `redirects` collects the targets followed.
    async fn call(
        &self,
        req: OutboundRequest,
        started: Instant,
        redirects: &mut Vec<String>,
    ) -> (Option<TraceResponse>, Option<String>) {
        let mut url = match reqwest::Url::parse(&req.url) {
            Ok(u) => u,
            Err(e) => return (None, Some(format!("{:?} is not a valid URL: {e}", req.url))),
        };
        if let Err(why) = self.admit(&url).await {
            return (None, Some(why));
        }
        let mut method = match reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes()) {
            Ok(m) => m,
            Err(_) => return (None, Some(format!("{:?} is not an HTTP method", req.method))),
        };
        let mut headers = req.headers;
        let mut body = req.body;
        let deadline = started + self.cfg.timeout;
        loop {
            // One total timeout for the call and its redirects.
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return (None, Some(self.total_timeout_message("")));
            }
            let mut rb = self.client.request(method.clone(), url.clone()).timeout(remaining);
            for (k, v) in &headers {
                rb = rb.header(k.as_str(), v.as_str());
            }
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            let res = match rb.send().await {
                Ok(r) => r,
                Err(e) if redirects.is_empty() => return (None, Some(self.explain(&e))),
                Err(e) => return (None, Some(format!("redirect to {url}: {}", self.explain(&e)))),
            };
            let status = res.status().as_u16();
            let location = res.headers().get(reqwest::header::LOCATION).cloned();
            let (Some(location), 301 | 302 | 303 | 307 | 308) = (location, status) else {
                return self.read(res).await;
            };
            // Whatever stops a redirect, the redirect's own answer stays in the trace.
            let next = match location.to_str().ok().and_then(|l| url.join(l).ok()) {
                Some(next) => next,
                None => {
                    let (r, _) = self.read(res).await;
                    let loc = String::from_utf8_lossy(location.as_bytes()).into_owned();
                    return (r, Some(format!("the answer {status} redirects to {loc:?}, which is not a valid URL")));
                }
            };
            if redirects.len() == MAX_REDIRECTS {
                let (r, _) = self.read(res).await;
                return (r, Some(format!("more than {MAX_REDIRECTS} redirects (the next to {next})")));
            }
            if let Err(why) = self.admit(&next).await {
                let (r, _) = self.read(res).await;
                return (r, Some(format!("redirect to {next}: {why}")));
            }
            // As browsers do: 303 (and 301/302 after a POST) continue as a GET without the body;
            // credentials are not sent to another origin.
            if (status == 303 && method != reqwest::Method::HEAD)
                || (matches!(status, 301 | 302) && method == reqwest::Method::POST)
            {
                method = reqwest::Method::GET;
                body = None;
                headers.retain(|(k, _)| !BODY_HEADERS.contains(&k.to_ascii_lowercase().as_str()));
            }
            if next.origin() != url.origin() {
                headers.retain(|(k, _)| !CREDENTIAL_HEADERS.contains(&k.to_ascii_lowercase().as_str()));
            }
            redirects.push(next.to_string());
            url = next;
        }
    }

    /// The address policy's verdict on a target (the URL in a request or a redirect), before
    /// anything is sent. Host names are checked again when they are resolved for the connection
    /// ([`PolicyResolver`]); through a proxy the proxy resolves them, so they are resolved here
    /// and refused if any of their addresses is.
    async fn admit(&self, url: &reqwest::Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("unsupported URL scheme {:?}: only http and https are called", url.scheme()));
        }
        if self.cfg.allow_metadata_addresses {
            return Ok(());
        }
        check_url(url)?;
        if let Some(url::Host::Domain(d)) = url.host()
            && (self.cfg.proxy.is_some() || env_proxy_set())
            && let Ok(addrs) = lookup(d, url.port_or_known_default().unwrap_or(80)).await
        {
            for a in addrs {
                if let Some(why) = refused_ip(a.ip()) {
                    return Err(policy_message(&format!("{d} (resolves to {})", a.ip()), why));
                }
            }
        }
        Ok(())
    }

    /// The answer, its body read up to `max_response_bytes`.
    async fn read(&self, mut res: reqwest::Response) -> (Option<TraceResponse>, Option<String>) {
        let status = res.status().as_u16();
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let cap = self.cfg.max_response_bytes;
        let mut body = Vec::new();
        let mut error = None;
        let mut truncated = false;
        loop {
            match res.chunk().await {
                Ok(Some(c)) => {
                    if body.len() + c.len() > cap {
                        body.extend_from_slice(&c[..cap - body.len()]);
                        truncated = true;
                        error = Some(format!(
                            "the answer is larger than outbound.max_response_bytes ({cap} bytes); the first {cap} are kept"
                        ));
                        break;
                    }
                    body.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(format!("reading the answer failed: {}", self.explain(&e)));
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        (Some(TraceResponse { status, headers, body: text, body_truncated: truncated }), error)
    }

    fn total_timeout_message(&self, chain: &str) -> String {
        let detail = if chain.is_empty() { String::new() } else { format!(" [{chain}]") };
        format!("timed out: no complete answer within outbound.timeout ({} s){detail}", self.cfg.timeout.as_secs_f64())
    }

    /// What a client error means, in words.
    fn explain(&self, e: &reqwest::Error) -> String {
        let chain = error_chain(e);
        if let Some(p) = find_policy(e) {
            return p;
        }
        if e.is_builder() {
            return format!("the request cannot be built (a header name or value that HTTP does not allow?): {chain}");
        }
        if e.is_timeout() {
            // A connect timeout comes from the connector; the total one from the request's timer.
            if e.is_connect() {
                return format!(
                    "timed out connecting: no connection within outbound.connect_timeout ({} s) [{chain}]",
                    self.cfg.connect_timeout.as_secs_f64()
                );
            }
            return self.total_timeout_message(&chain);
        }
        let lower = chain.to_ascii_lowercase();
        if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            return format!(
                "TLS failed: the server's certificate is not trusted or does not match ({chain}); a private CA \
                 goes in outbound.ca_bundle"
            );
        }
        if e.is_dns() || lower.contains("failed to lookup") || lower.contains("name or service not known") {
            return format!("the host name does not resolve ({chain})");
        }
        if e.is_connect() {
            if lower.contains("refused") {
                return format!("connection refused: nothing listens at that address and port ({chain})");
            }
            return format!("could not connect ({chain})");
        }
        format!("the call failed ({chain})")
    }
}

fn env_proxy_set() -> bool {
    ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.contains(&t) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn find_policy(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = cur {
        if let Some(p) = s.downcast_ref::<PolicyError>() {
            return Some(p.0.clone());
        }
        cur = s.source();
    }
    None
}

/// `bytes` as text, cut at `max` bytes (on a character boundary); `true` when cut.
fn cut_text(bytes: &[u8], max: usize) -> (String, bool) {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= max {
        return (text.into_owned(), false);
    }
    (format!("{}… [cut at {max} bytes of {}]", crate::ops::audit::byte_prefix(&text, max), text.len()), true)
}

/// Port's webhook signature: `v1,` + base64(HMAC-SHA256(secret, "<timestamp>.<body>")).
pub fn port_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Check a signature as a receiver does: the `v1,` signature over `"<timestamp>.<body>"`, in
/// constant time, with the timestamp within `tolerance` of `now` (Unix seconds).
pub fn verify_port_signature(
    secret: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> bool {
    let Ok(ts) = timestamp.trim().parse::<i64>() else { return false };
    if now.abs_diff(ts) > tolerance.as_secs() {
        return false;
    }
    let Some(("v1", b64)) = signature.split_once(',') else { return false };
    let Ok(raw) = STANDARD.decode(b64.trim()) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&raw).is_ok()
}

#[cfg(test)]
mod tests;
