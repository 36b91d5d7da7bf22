//! Layered configuration: defaults, then a TOML file, then `PORTOLAN_*` environment variables,
//! then command-line flags. Every bad or missing setting is reported at once, naming its
//! environment variable and what it expects.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde_json::{Map, Value};

#[derive(Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub log_level: String,
    pub bootstrap_client_id: Option<String>,
    /// Never printed: `Debug` redacts it.
    pub bootstrap_client_secret: Option<String>,
    pub max_bulk_entities: usize,
    pub rate_limit_per_minute: u32,
    /// `postgres://…` selects PostgreSQL; `None` keeps the embedded SQLite database under
    /// `data_dir`. Never printed with its password: `Debug` and logs use [`redact_url`].
    pub database_url: Option<String>,
    /// Connections in this node's PostgreSQL pool.
    pub database_pool_size: u32,
    /// Job worker tasks on this node (0: it runs no background jobs).
    pub job_workers: usize,
    /// Seconds a job stays leased to this node without a heartbeat.
    pub job_lease_seconds: u64,
    /// Most milliseconds a job worker waits for this node's entity writes in flight to end.
    pub job_yield_ms: u64,
    /// This node's name in job leases; `None`: hostname-pid-random.
    pub node_id: Option<String>,
    /// Entities per transaction of the delete-all job.
    pub delete_chunk_size: u32,
    /// Web UI: the first admin, created on start when no user has this e-mail.
    pub bootstrap_admin_email: Option<String>,
    /// Never printed: `Debug` redacts it.
    pub bootstrap_admin_password: Option<String>,
    /// Web UI: hours without activity after which a session ends (Port: 72).
    pub session_idle_hours: u64,
    /// Web UI: hours after sign-in after which a session ends in any case (Port: 168).
    pub session_absolute_hours: u64,
    /// Web UI: mark cookies Secure (the server is reached over TLS).
    pub secure_cookies: bool,
    /// The URL people reach this server at: links printed by `portolan init` (default
    /// `http://<listen>`) and the single sign-on redirect URI (default: the address each
    /// request came to).
    pub public_url: Option<String>,
    /// Webhooks: base64 of the 32-byte master key webhook secrets are encrypted with. Never
    /// printed: `Debug` redacts it.
    pub secrets_key: Option<String>,
    /// Webhooks: a file holding that key (Docker/Kubernetes secrets).
    pub secrets_key_file: Option<PathBuf>,
    /// TLS: the PEM certificate chain (server certificate first) and its private key; both or
    /// neither. With them the server speaks HTTPS only and cookies are `Secure`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// jq: evaluate in worker processes (`true`, default: a crash or a runaway filter ends only
    /// its worker) or in threads of the server process (`false`).
    pub jq_process_isolation: bool,
    /// jq: time budget of all evaluations of one webhook delivery, seconds.
    pub jq_delivery_budget_seconds: u64,
    /// Seconds one search statement may run before it is stopped (422 to the client).
    pub query_budget_seconds: u64,
    /// Seconds in-flight requests get after SIGTERM/Ctrl-C before they are stopped.
    pub shutdown_grace_seconds: u64,
    /// Most of this node's job workers one organization may hold (0: all but one).
    pub job_workers_per_org: u32,
    /// Most jobs of one organization running at once across the cluster.
    pub jobs_per_org_cluster: u32,
    /// `/metrics` answers only with this bearer token; unset: `/metrics` is off. Never
    /// printed: `Debug` redacts it.
    pub metrics_token: Option<String>,
    /// Approval e-mails: the SMTP server and the sender (`smtp_url`, `smtp_from`); the
    /// password in the URL is never printed.
    pub smtp: Option<portolan_server::smtp::SmtpConfig>,
    /// Outbound calls (action webhooks): the whole call, seconds.
    pub outbound_timeout_seconds: u64,
    /// Outbound calls: connecting, seconds.
    pub outbound_connect_timeout_seconds: u64,
    /// Outbound calls: answers are cut here (bytes).
    pub outbound_max_response_bytes: usize,
    /// Outbound calls: a PEM file of extra trusted CA certificates.
    pub outbound_ca_bundle: Option<PathBuf>,
    /// Outbound calls: allow cloud metadata and link-local targets.
    pub outbound_allow_metadata_addresses: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("bootstrap_client_id", &self.bootstrap_client_id)
            .field("bootstrap_client_secret", &self.bootstrap_client_secret.as_ref().map(|_| "[redacted]"))
            .field("max_bulk_entities", &self.max_bulk_entities)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("database_url", &self.database_url.as_deref().map(redact_url))
            .field("database_pool_size", &self.database_pool_size)
            .field("job_workers", &self.job_workers)
            .field("job_lease_seconds", &self.job_lease_seconds)
            .field("job_yield_ms", &self.job_yield_ms)
            .field("node_id", &self.node_id)
            .field("delete_chunk_size", &self.delete_chunk_size)
            .field("bootstrap_admin_email", &self.bootstrap_admin_email)
            .field("bootstrap_admin_password", &self.bootstrap_admin_password.as_ref().map(|_| "[redacted]"))
            .field("session_idle_hours", &self.session_idle_hours)
            .field("session_absolute_hours", &self.session_absolute_hours)
            .field("secure_cookies", &self.secure_cookies)
            .field("public_url", &self.public_url)
            .field("secrets_key", &self.secrets_key.as_ref().map(|_| "[redacted]"))
            .field("secrets_key_file", &self.secrets_key_file)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("jq_process_isolation", &self.jq_process_isolation)
            .field("jq_delivery_budget_seconds", &self.jq_delivery_budget_seconds)
            .field("query_budget_seconds", &self.query_budget_seconds)
            .field("shutdown_grace_seconds", &self.shutdown_grace_seconds)
            .field("job_workers_per_org", &self.job_workers_per_org)
            .field("jobs_per_org_cluster", &self.jobs_per_org_cluster)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "[redacted]"))
            .field("smtp", &self.smtp)
            .field("outbound_timeout_seconds", &self.outbound_timeout_seconds)
            .field("outbound_connect_timeout_seconds", &self.outbound_connect_timeout_seconds)
            .field("outbound_max_response_bytes", &self.outbound_max_response_bytes)
            .field("outbound_ca_bundle", &self.outbound_ca_bundle)
            .field("outbound_allow_metadata_addresses", &self.outbound_allow_metadata_addresses)
            .finish()
    }
}

/// Every setting: (key, env var, what it expects, default).
pub const SETTINGS: &[(&str, &str, &str, Option<&str>)] = &[
    ("listen", "PORTOLAN_LISTEN", "an address and port such as 127.0.0.1:7070", Some("127.0.0.1:7070")),
    ("data_dir", "PORTOLAN_DATA_DIR", "a directory path", Some("./portolan-data")),
    ("log_format", "PORTOLAN_LOG_FORMAT", "\"text\" or \"json\"", Some("text")),
    ("log_level", "PORTOLAN_LOG_LEVEL", "a tracing filter such as info or portolan=debug", Some("info")),
    ("bootstrap_client_id", "PORTOLAN_BOOTSTRAP_CLIENT_ID", "a client id (8 to 200 characters)", None),
    ("bootstrap_client_secret", "PORTOLAN_BOOTSTRAP_CLIENT_SECRET", "a client secret (at least 16 characters)", None),
    ("max_bulk_entities", "PORTOLAN_MAX_BULK_ENTITIES", "an integer from 20 to 10000", Some("1000")),
    ("rate_limit_per_minute", "PORTOLAN_RATE_LIMIT_PER_MINUTE", "a positive integer", Some("60000")),
    (
        "database_url",
        "PORTOLAN_DATABASE_URL",
        "a postgres:// or postgresql:// URL, or nothing for the embedded SQLite database",
        None,
    ),
    ("database_pool_size", "PORTOLAN_DATABASE_POOL_SIZE", "an integer from 1 to 1000", Some("10")),
    ("job_workers", "PORTOLAN_JOB_WORKERS", "an integer from 0 to 64 (0: this node runs no jobs)", Some("2")),
    ("job_lease_seconds", "PORTOLAN_JOB_LEASE_SECONDS", "an integer from 1 to 3600", Some("30")),
    (
        "job_yield_ms",
        "PORTOLAN_JOB_YIELD_MS",
        "an integer from 0 to 10000 (0: background work does not wait for entity writes)",
        Some("100"),
    ),
    ("node_id", "PORTOLAN_NODE_ID", "a node name of 1 to 100 characters (default: hostname-pid-random)", None),
    ("delete_chunk_size", "PORTOLAN_DELETE_CHUNK_SIZE", "an integer from 1 to 10000", Some("500")),
    ("bootstrap_admin_email", "PORTOLAN_BOOTSTRAP_ADMIN_EMAIL", "an e-mail address", None),
    ("bootstrap_admin_password", "PORTOLAN_BOOTSTRAP_ADMIN_PASSWORD", "a password of at least 12 characters", None),
    ("session_idle_hours", "PORTOLAN_SESSION_IDLE_HOURS", "an integer from 1 to 8760", Some("72")),
    ("session_absolute_hours", "PORTOLAN_SESSION_ABSOLUTE_HOURS", "an integer from 1 to 8760", Some("168")),
    ("secure_cookies", "PORTOLAN_SECURE_COOKIES", "true or false", Some("false")),
    ("public_url", "PORTOLAN_PUBLIC_URL", "an http:// or https:// URL such as https://portal.example.com", None),
    // Webhooks: the master key of secrets at rest.
    ("secrets_key", "PORTOLAN_SECRETS_KEY", "base64 of 32 random bytes (e.g. `openssl rand -base64 32`)", None),
    ("secrets_key_file", "PORTOLAN_SECRETS_KEY_FILE", "the path of a file holding the base64 of 32 random bytes", None),
    // TLS serving.
    ("tls_cert", "PORTOLAN_TLS_CERT", "the path of a PEM file: the server certificate, then its intermediates", None),
    ("tls_key", "PORTOLAN_TLS_KEY", "the path of the PEM private key of that certificate", None),
    // jq: where user filters run, and the budget of one webhook delivery.
    ("jq_isolation", "PORTOLAN_JQ_ISOLATION", "\"process\" (worker processes) or \"thread\"", Some("process")),
    ("jq_delivery_budget_seconds", "PORTOLAN_JQ_DELIVERY_BUDGET_SECONDS", "an integer from 1 to 600", Some("10")),
    // Query budgets and shutdown.
    ("query_budget_seconds", "PORTOLAN_QUERY_BUDGET_SECONDS", "an integer from 1 to 3600", Some("20")),
    ("shutdown_grace_seconds", "PORTOLAN_SHUTDOWN_GRACE_SECONDS", "an integer from 0 to 3600", Some("10")),
    // Each organization's share of the job workers.
    (
        "job_workers_per_org",
        "PORTOLAN_JOB_WORKERS_PER_ORG",
        "an integer from 0 to 64 (0: all of this node's job workers but one)",
        Some("0"),
    ),
    ("jobs_per_org_cluster", "PORTOLAN_JOBS_PER_ORG_CLUSTER", "an integer from 1 to 10000", Some("16")),
    // Prometheus metrics (docs/metrics.md).
    (
        "metrics_token",
        "PORTOLAN_METRICS_TOKEN",
        "a bearer token of at least 16 characters for GET /metrics (unset: /metrics is off)",
        None,
    ),
    // Approval e-mails (docs/actions.md "Approvals").
    (
        "smtp_url",
        "PORTOLAN_SMTP_URL",
        "smtp://[user:password@]host[:port][?tls=none|required] or smtps://… (unset: no e-mail is sent)",
        None,
    ),
    ("smtp_from", "PORTOLAN_SMTP_FROM", "the sender's e-mail address, such as portal@example.com", None),
    // Outbound HTTP (action webhooks; docs/actions.md "Outbound calls"). Proxies come from
    // HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY.
    ("outbound_timeout_seconds", "PORTOLAN_OUTBOUND_TIMEOUT_SECONDS", "an integer from 1 to 600", Some("30")),
    (
        "outbound_connect_timeout_seconds",
        "PORTOLAN_OUTBOUND_CONNECT_TIMEOUT_SECONDS",
        "an integer from 1 to 120",
        Some("10"),
    ),
    (
        "outbound_max_response_bytes",
        "PORTOLAN_OUTBOUND_MAX_RESPONSE_BYTES",
        "an integer from 1024 to 67108864",
        Some("1048576"),
    ),
    (
        "outbound_ca_bundle",
        "PORTOLAN_OUTBOUND_CA_BUNDLE",
        "the path of a PEM file of CA certificates trusted besides the system's",
        None,
    ),
    (
        "outbound_allow_metadata_addresses",
        "PORTOLAN_OUTBOUND_ALLOW_METADATA_ADDRESSES",
        "true or false (true: calls to cloud metadata and link-local addresses are allowed)",
        Some("false"),
    ),
];

/// `url` with its password replaced by `***` (for logs, `Debug` and error messages).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_string() };
    let rest = &url[scheme_end..];
    // The authority ends at the first '/', '?' or '#'; credentials end at its last '@'.
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..auth_end].rfind('@') else { return redact_query_password(url) };
    let userinfo = &rest[..at];
    let user = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => userinfo.to_string(),
    };
    redact_query_password(&format!("{}{user}{}", &url[..scheme_end], &rest[at..]))
}

/// A `password=` query parameter (libpq style) replaced by `***`.
fn redact_query_password(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else { return url.to_string() };
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// Values given on the command line (highest precedence).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<String>,
    pub database_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Load and check the configuration. `Err` holds one line per problem.
pub fn load(over: &Overrides) -> Result<Config, Vec<String>> {
    let mut defaults = Map::new();
    for (key, _, _, default) in SETTINGS {
        if let Some(d) = default {
            defaults.insert((*key).to_string(), Value::String((*d).to_string()));
        }
    }
    let mut fig = Figment::from(Serialized::defaults(Value::Object(defaults)));
    let mut problems = Vec::new();
    let file = over.config_file.clone().or_else(|| std::env::var_os("PORTOLAN_CONFIG").map(PathBuf::from));
    if let Some(path) = &file {
        if !path.exists() {
            problems.push(format!("config file {} (PORTOLAN_CONFIG / --config) does not exist", path.display()));
        }
        fig = fig.merge(Toml::file(path));
    }
    fig = fig.merge(Env::prefixed("PORTOLAN_").ignore(&["CONFIG"]).map(|k| k.as_str().to_lowercase().into()));
    let mut flags = Map::new();
    if let Some(l) = &over.listen {
        flags.insert("listen".into(), Value::String(l.clone()));
    }
    if let Some(d) = &over.data_dir {
        flags.insert("data_dir".into(), Value::String(d.display().to_string()));
    }
    if let Some(f) = &over.log_format {
        flags.insert("log_format".into(), Value::String(f.clone()));
    }
    if let Some(u) = &over.database_url {
        flags.insert("database_url".into(), Value::String(u.clone()));
    }
    for (key, path) in [("tls_cert", &over.tls_cert), ("tls_key", &over.tls_key)] {
        if let Some(p) = path {
            flags.insert(key.into(), Value::String(p.display().to_string()));
        }
    }
    fig = fig.merge(Serialized::defaults(Value::Object(flags)));
    let raw: Map<String, Value> = match fig.extract() {
        Ok(m) => m,
        Err(e) => {
            problems.push(format!("could not read the configuration: {e}"));
            return Err(problems);
        }
    };
    for key in raw.keys() {
        if !SETTINGS.iter().any(|(k, ..)| k == key) && !key.starts_with("test_") && !key.starts_with("bench") {
            eprintln!("warning: unknown setting {key:?} (PORTOLAN_{}) is ignored", key.to_uppercase());
        }
    }
    let get = |key: &str| raw.get(key).and_then(as_text);
    let mut bad_settings: Vec<String> = Vec::new();
    let mut bad = |key: &str, got: Option<String>| {
        let (_, env, expects, _) = SETTINGS.iter().find(|(k, ..)| *k == key).copied().unwrap_or(("", "", "", None));
        match got {
            Some(g) => bad_settings.push(format!("{key} ({env}) is {g:?}; expected {expects}")),
            None => bad_settings.push(format!("{key} ({env}) is missing; expected {expects}")),
        }
    };
    let listen = get("listen").and_then(|s| s.parse::<SocketAddr>().ok());
    if listen.is_none() {
        bad("listen", get("listen"));
    }
    let data_dir = get("data_dir").filter(|s| !s.is_empty()).map(PathBuf::from);
    if data_dir.is_none() {
        bad("data_dir", get("data_dir"));
    }
    let log_format = match get("log_format").as_deref() {
        Some("text") => Some(LogFormat::Text),
        Some("json") => Some(LogFormat::Json),
        _ => None,
    };
    if log_format.is_none() {
        bad("log_format", get("log_format"));
    }
    let log_level = get("log_level").unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        bad("log_level", Some(log_level.clone()));
    }
    let bootstrap_client_id = get("bootstrap_client_id");
    if bootstrap_client_id.as_ref().is_some_and(|s| !(8..=200).contains(&s.len())) {
        bad("bootstrap_client_id", bootstrap_client_id.clone());
    }
    let bootstrap_client_secret = get("bootstrap_client_secret");
    if bootstrap_client_secret.as_ref().is_some_and(|s| s.len() < 16) {
        bad("bootstrap_client_secret", Some("[redacted]".into()));
    }
    if bootstrap_client_id.is_some() != bootstrap_client_secret.is_some() {
        problems
            .push("PORTOLAN_BOOTSTRAP_CLIENT_ID and PORTOLAN_BOOTSTRAP_CLIENT_SECRET must be set together".to_string());
    }
    let max_bulk_entities =
        get("max_bulk_entities").and_then(|s| s.parse::<usize>().ok()).filter(|n| (20..=10_000).contains(n));
    if max_bulk_entities.is_none() {
        bad("max_bulk_entities", get("max_bulk_entities"));
    }
    let rate_limit_per_minute = get("rate_limit_per_minute").and_then(|s| s.parse::<u32>().ok()).filter(|n| *n > 0);
    if rate_limit_per_minute.is_none() {
        bad("rate_limit_per_minute", get("rate_limit_per_minute"));
    }
    let database_url = get("database_url").filter(|s| !s.is_empty());
    if let Some(url) = &database_url
        && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        bad("database_url", Some(redact_url(url)));
    }
    let database_pool_size =
        get("database_pool_size").and_then(|s| s.parse::<u32>().ok()).filter(|n| (1..=1000).contains(n));
    if database_pool_size.is_none() {
        bad("database_pool_size", get("database_pool_size"));
    }
    let job_workers = get("job_workers").and_then(|s| s.parse::<usize>().ok()).filter(|n| *n <= 64);
    if job_workers.is_none() {
        bad("job_workers", get("job_workers"));
    }
    let job_yield_ms = get("job_yield_ms").and_then(|s| s.parse::<u64>().ok()).filter(|n| *n <= 10_000);
    if job_yield_ms.is_none() {
        bad("job_yield_ms", get("job_yield_ms"));
    }
    let job_lease_seconds =
        get("job_lease_seconds").and_then(|s| s.parse::<u64>().ok()).filter(|n| (1..=3600).contains(n));
    if job_lease_seconds.is_none() {
        bad("job_lease_seconds", get("job_lease_seconds"));
    }
    let node_id = get("node_id").filter(|s| !s.is_empty());
    if node_id.as_ref().is_some_and(|s| s.len() > 100) {
        bad("node_id", node_id.clone());
    }
    let delete_chunk_size =
        get("delete_chunk_size").and_then(|s| s.parse::<u32>().ok()).filter(|n| (1..=10_000).contains(n));
    if delete_chunk_size.is_none() {
        bad("delete_chunk_size", get("delete_chunk_size"));
    }
    let bootstrap_admin_email = get("bootstrap_admin_email").map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty());
    if bootstrap_admin_email.as_ref().is_some_and(|e| !portolan_server::web::session::valid_email(e)) {
        bad("bootstrap_admin_email", bootstrap_admin_email.clone());
    }
    let bootstrap_admin_password = get("bootstrap_admin_password").filter(|p| !p.is_empty());
    if bootstrap_admin_password.as_ref().is_some_and(|p| portolan_server::web::session::check_password(p).is_err()) {
        bad("bootstrap_admin_password", Some("[redacted]".into()));
    }
    if bootstrap_admin_email.is_some() != bootstrap_admin_password.is_some() {
        problems.push(
            "PORTOLAN_BOOTSTRAP_ADMIN_EMAIL and PORTOLAN_BOOTSTRAP_ADMIN_PASSWORD must be set together".to_string(),
        );
    }
    let hours = |key: &str| get(key).and_then(|s| s.parse::<u64>().ok()).filter(|n| (1..=8760).contains(n));
    let session_idle_hours = hours("session_idle_hours");
    if session_idle_hours.is_none() {
        bad("session_idle_hours", get("session_idle_hours"));
    }
    let session_absolute_hours = hours("session_absolute_hours");
    if session_absolute_hours.is_none() {
        bad("session_absolute_hours", get("session_absolute_hours"));
    }
    let secure_cookies = match get("secure_cookies").as_deref() {
        Some("true") | Some("1") => Some(true),
        Some("false") | Some("0") => Some(false),
        _ => None,
    };
    if secure_cookies.is_none() {
        bad("secure_cookies", get("secure_cookies"));
    }
    let public_url = get("public_url").map(|u| u.trim_end_matches('/').to_string()).filter(|u| !u.is_empty());
    if public_url.as_ref().is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
        bad("public_url", public_url.clone());
    }
    // Webhooks: the master key of secrets at rest (the file is read on start).
    let secrets_key = get("secrets_key").filter(|k| !k.trim().is_empty());
    if let Some(k) = &secrets_key
        && portolan_server::secrets::SecretsKey::from_base64(k).is_err()
    {
        bad("secrets_key", Some("[redacted]".into()));
    }
    let secrets_key_file = get("secrets_key_file").filter(|f| !f.is_empty()).map(PathBuf::from);
    if secrets_key.is_some() && secrets_key_file.is_some() {
        problems.push("set PORTOLAN_SECRETS_KEY or PORTOLAN_SECRETS_KEY_FILE, not both".to_string());
    }
    let tls_cert = get("tls_cert").filter(|p| !p.is_empty()).map(PathBuf::from);
    let tls_key = get("tls_key").filter(|p| !p.is_empty()).map(PathBuf::from);
    if tls_cert.is_some() != tls_key.is_some() {
        problems.push("set the TLS certificate and key together (--tls-cert and --tls-key, or PORTOLAN_TLS_CERT and PORTOLAN_TLS_KEY)".to_string());
    }
    let jq_process_isolation = match get("jq_isolation").as_deref() {
        Some("process") => Some(true),
        Some("thread") => Some(false),
        _ => None,
    };
    if jq_process_isolation.is_none() {
        bad("jq_isolation", get("jq_isolation"));
    }
    let jq_delivery_budget_seconds =
        get("jq_delivery_budget_seconds").and_then(|s| s.parse::<u64>().ok()).filter(|n| (1..=600).contains(n));
    if jq_delivery_budget_seconds.is_none() {
        bad("jq_delivery_budget_seconds", get("jq_delivery_budget_seconds"));
    }
    let query_budget_seconds =
        get("query_budget_seconds").and_then(|s| s.parse::<u64>().ok()).filter(|n| (1..=3600).contains(n));
    if query_budget_seconds.is_none() {
        bad("query_budget_seconds", get("query_budget_seconds"));
    }
    let shutdown_grace_seconds =
        get("shutdown_grace_seconds").and_then(|s| s.parse::<u64>().ok()).filter(|n| *n <= 3600);
    if shutdown_grace_seconds.is_none() {
        bad("shutdown_grace_seconds", get("shutdown_grace_seconds"));
    }
    let job_workers_per_org = get("job_workers_per_org").and_then(|s| s.parse::<u32>().ok()).filter(|n| *n <= 64);
    if job_workers_per_org.is_none() {
        bad("job_workers_per_org", get("job_workers_per_org"));
    }
    let jobs_per_org_cluster =
        get("jobs_per_org_cluster").and_then(|s| s.parse::<u32>().ok()).filter(|n| (1..=10_000).contains(n));
    if jobs_per_org_cluster.is_none() {
        bad("jobs_per_org_cluster", get("jobs_per_org_cluster"));
    }
    let metrics_token = get("metrics_token").filter(|t| !t.is_empty());
    if metrics_token.as_ref().is_some_and(|t| t.chars().count() < 16 || t.chars().any(char::is_whitespace)) {
        problems.push(
            "metrics_token (PORTOLAN_METRICS_TOKEN): must be at least 16 characters without spaces (it is a bearer token)"
                .to_string(),
        );
    }
    let smtp = match (get("smtp_url").filter(|u| !u.is_empty()), get("smtp_from").filter(|f| !f.is_empty())) {
        (None, _) => None,
        (Some(_), None) => {
            problems.push("smtp_from (PORTOLAN_SMTP_FROM): is required with smtp_url: the sender's address".into());
            None
        }
        (Some(url), Some(from)) => match portolan_server::smtp::SmtpConfig::parse(&url, &from) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(format!("smtp_url (PORTOLAN_SMTP_URL): {e}"));
                None
            }
        },
    };
    let outbound_timeout_seconds =
        get("outbound_timeout_seconds").and_then(|s| s.parse::<u64>().ok()).filter(|n| (1..=600).contains(n));
    if outbound_timeout_seconds.is_none() {
        bad("outbound_timeout_seconds", get("outbound_timeout_seconds"));
    }
    let outbound_connect_timeout_seconds =
        get("outbound_connect_timeout_seconds").and_then(|s| s.parse::<u64>().ok()).filter(|n| (1..=120).contains(n));
    if outbound_connect_timeout_seconds.is_none() {
        bad("outbound_connect_timeout_seconds", get("outbound_connect_timeout_seconds"));
    }
    let outbound_max_response_bytes = get("outbound_max_response_bytes")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| (1024..=64 * 1024 * 1024).contains(n));
    if outbound_max_response_bytes.is_none() {
        bad("outbound_max_response_bytes", get("outbound_max_response_bytes"));
    }
    let outbound_ca_bundle = get("outbound_ca_bundle").filter(|p| !p.is_empty()).map(PathBuf::from);
    let outbound_allow_metadata_addresses = match get("outbound_allow_metadata_addresses").as_deref() {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    };
    if outbound_allow_metadata_addresses.is_none() {
        bad("outbound_allow_metadata_addresses", get("outbound_allow_metadata_addresses"));
    }
    problems.append(&mut bad_settings);
    match (listen, data_dir, log_format, max_bulk_entities, rate_limit_per_minute) {
        (Some(listen), Some(data_dir), Some(log_format), Some(max_bulk_entities), Some(rate_limit_per_minute))
            if problems.is_empty() =>
        {
            Ok(Config {
                listen,
                data_dir,
                log_format,
                log_level,
                bootstrap_client_id,
                bootstrap_client_secret,
                max_bulk_entities,
                rate_limit_per_minute,
                database_url,
                database_pool_size: database_pool_size.unwrap_or(10),
                job_workers: job_workers.unwrap_or(2),
                job_lease_seconds: job_lease_seconds.unwrap_or(30),
                job_yield_ms: job_yield_ms.unwrap_or(100),
                node_id,
                delete_chunk_size: delete_chunk_size.unwrap_or(500),
                bootstrap_admin_email,
                bootstrap_admin_password,
                session_idle_hours: session_idle_hours.unwrap_or(72),
                session_absolute_hours: session_absolute_hours.unwrap_or(168),
                secure_cookies: secure_cookies.unwrap_or(false),
                public_url,
                secrets_key,
                secrets_key_file,
                tls_cert,
                tls_key,
                jq_process_isolation: jq_process_isolation.unwrap_or(true),
                jq_delivery_budget_seconds: jq_delivery_budget_seconds.unwrap_or(10),
                query_budget_seconds: query_budget_seconds.unwrap_or(20),
                shutdown_grace_seconds: shutdown_grace_seconds.unwrap_or(10),
                job_workers_per_org: job_workers_per_org.unwrap_or(0),
                jobs_per_org_cluster: jobs_per_org_cluster.unwrap_or(16),
                metrics_token,
                smtp,
                outbound_timeout_seconds: outbound_timeout_seconds.unwrap_or(30),
                outbound_connect_timeout_seconds: outbound_connect_timeout_seconds.unwrap_or(10),
                outbound_max_response_bytes: outbound_max_response_bytes.unwrap_or(1024 * 1024),
                outbound_ca_bundle,
                outbound_allow_metadata_addresses: outbound_allow_metadata_addresses.unwrap_or(false),
            })
        }
        _ => Err(problems),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_secret() {
        let c = Config {
            listen: "127.0.0.1:1".parse().unwrap(),
            data_dir: "d".into(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            bootstrap_client_id: Some("client-id".into()),
            bootstrap_client_secret: Some("super-secret-value-123".into()),
            max_bulk_entities: 20,
            rate_limit_per_minute: 1,
            database_url: Some("postgres://portolan:db-pass-42@db.internal:5432/portolan".into()),
            database_pool_size: 10,
            job_workers: 2,
            job_lease_seconds: 30,
            job_yield_ms: 100,
            node_id: None,
            delete_chunk_size: 500,
            bootstrap_admin_email: Some("admin@example.com".into()),
            bootstrap_admin_password: Some("admin-password-secret".into()),
            session_idle_hours: 72,
            session_absolute_hours: 168,
            secure_cookies: false,
            public_url: None,
            secrets_key: Some("c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcy14eHg=".into()),
            secrets_key_file: None,
            tls_cert: None,
            tls_key: None,
            jq_process_isolation: true,
            jq_delivery_budget_seconds: 10,
            query_budget_seconds: 20,
            shutdown_grace_seconds: 10,
            job_workers_per_org: 0,
            jobs_per_org_cluster: 16,
            metrics_token: Some("metrics-token-secret-123".into()),
            smtp: Some(
                portolan_server::smtp::SmtpConfig::parse("smtp://u:smtp-pass-77@mail:587", "portal@example.com")
                    .unwrap(),
            ),
            outbound_timeout_seconds: 30,
            outbound_connect_timeout_seconds: 10,
            outbound_max_response_bytes: 1024,
            outbound_ca_bundle: None,
            outbound_allow_metadata_addresses: false,
        };
        let s = format!("{c:?}");
        assert!(!s.contains("metrics-token-secret-123"), "{s}");
        assert!(!s.contains("c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcy14eHg"), "{s}");
        assert!(!s.contains("super-secret"), "{s}");
        assert!(!s.contains("db-pass-42"), "{s}");
        assert!(!s.contains("smtp-pass-77") && s.contains("mail"), "{s}");
        assert!(!s.contains("admin-password-secret"), "{s}");
        assert!(s.contains("[redacted]"));
        assert!(s.contains("postgres://portolan:***@db.internal:5432/portolan"), "{s}");
    }

    #[test]
    fn redact_url_hides_every_password_form() {
        let cases = [
            ("postgres://u:p%40ss@h/db", "postgres://u:***@h/db"),
            ("postgres://u:pa@ss@h:5432/db?sslmode=require", "postgres://u:***@h:5432/db?sslmode=require"),
            ("postgresql://u@h/db", "postgresql://u@h/db"),
            ("postgres://h/db?user=u&password=secret1", "postgres://h/db?user=u&password=***"),
            ("postgres://:onlypass@h/db", "postgres://:***@h/db"),
            ("not a url", "not a url"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }
}
