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
];

/// Values given on the command line (highest precedence).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<String>,
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
        };
        let s = format!("{c:?}");
        assert!(!s.contains("super-secret"), "{s}");
        assert!(s.contains("[redacted]"));
    }
}
