//! The real binary: configuration errors, `init`, bootstrap credentials, serving and graceful
//! shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_portolan"));
    // Keep the developer's own PORTOLAN_* settings out of the tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTOLAN_") {
            c.env_remove(k);
        }
    }
    c
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let d = std::env::temp_dir().join(format!("portolan-cli-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn invalid_configuration_is_reported_all_at_once() {
    let out = bin()
        .args(["serve"])
        .env("PORTOLAN_LISTEN", "not-an-address")
        .env("PORTOLAN_LOG_FORMAT", "xml")
        .env("PORTOLAN_MAX_BULK_ENTITIES", "5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 problems"), "{err}");
    assert!(err.contains("PORTOLAN_LISTEN") && err.contains("not-an-address"), "{err}");
    assert!(err.contains("PORTOLAN_LOG_FORMAT"), "{err}");
    assert!(err.contains("PORTOLAN_MAX_BULK_ENTITIES"), "{err}");
}

#[test]
fn precedence_is_defaults_file_env_flags() {
    let dir = temp_dir("prec");
    let file = dir.join("portolan.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:1111\"\nlog_level = \"debug\"\nmax_bulk_entities = 50\n").unwrap();
    let out = bin()
        .args(["--config", file.to_str().unwrap(), "config"])
        .env("PORTOLAN_MAX_BULK_ENTITIES", "60")
        .env("PORTOLAN_BOOTSTRAP_CLIENT_ID", "bootstrap-id")
        .env("PORTOLAN_BOOTSTRAP_CLIENT_SECRET", "a-very-secret-value-42")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("127.0.0.1:1111"), "file overrides default: {text}");
    assert!(text.contains("max_bulk_entities: 60"), "env overrides file: {text}");
    assert!(text.contains("\"debug\""), "{text}");
    assert!(!text.contains("a-very-secret-value-42"), "secret redacted: {text}");
    let out =
        bin().args(["--config", file.to_str().unwrap(), "--data-dir", "/tmp/flagdir", "config"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("/tmp/flagdir"), "flag overrides all");
}

#[test]
fn init_is_idempotent_and_prints_credentials() {
    let dir = temp_dir("init");
    let first = bin().args(["--data-dir", dir.to_str().unwrap(), "init", "--json"]).output().unwrap();
    assert!(first.status.success());
    let a: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(a["created"], json!(true));
    assert!(a["clientSecret"].as_str().unwrap().len() >= 32);
    let second = bin().args(["--data-dir", dir.to_str().unwrap(), "init", "--json"]).output().unwrap();
    let b: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(b["created"], json!(false));
    assert_eq!(b["clientId"], a["clientId"]);
    assert_eq!(b["clientSecret"], Value::Null);
    let org = bin().args(["--data-dir", dir.to_str().unwrap(), "org", "create", "team-b", "--json"]).output().unwrap();
    let o: Value = serde_json::from_slice(&org.stdout).unwrap();
    assert_eq!(o["organization"], json!("team-b"));
    assert_ne!(o["clientId"], a["clientId"]);
    let dup = bin().args(["--data-dir", dir.to_str().unwrap(), "org", "create", "team-b"]).output().unwrap();
    assert!(!dup.status.success());

    // Quotas: set by the operator, shown with the usage; `none` lifts one.
    let quota = |args: &[&str]| {
        let mut all = vec!["--data-dir", dir.to_str().unwrap(), "org", "quota", "team-b", "--json"];
        all.extend_from_slice(args);
        bin().args(all).output().unwrap()
    };
    let out = quota(&["--max-entities", "100", "--max-users", "5"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let q: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(q["quotas"], json!({"maxUsers": 5, "maxEntities": 100}));
    assert_eq!(q["usage"], json!({"users": 0, "entities": 0}));
    let q: Value = serde_json::from_slice(&quota(&["--max-users", "none"]).stdout).unwrap();
    assert_eq!(q["quotas"], json!({"maxUsers": null, "maxEntities": 100}), "the other quota is kept");
    let bad = quota(&["--max-users", "lots"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a number or `none`"));
    let missing = bin().args(["--data-dir", dir.to_str().unwrap(), "org", "quota", "nobody"]).output().unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no organization named \"nobody\""));
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The server's log goes to `dir/server.log` (appended across restarts), never to a pipe: a
/// pipe nobody reads while the server runs fills up and blocks the server.
fn log_file(dir: &std::path::Path) -> Stdio {
    let f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
    Stdio::from(f)
}

/// Everything the servers on `dir` logged so far.
fn logs_of(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

fn start(dir: &std::path::Path) -> Server {
    let mut child = bin()
        .args(["--data-dir", dir.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .env("PORTOLAN_BOOTSTRAP_CLIENT_ID", "bootstrap-client")
        .env("PORTOLAN_BOOTSTRAP_CLIENT_SECRET", "bootstrap-secret-0123456789")
        .env("PORTOLAN_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(log_file(dir))
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("listening on ").expect("listening line").to_string();
    Server { child, base }
}

/// A server on `dir` with extra environment.
fn start_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
    let mut cmd = bin();
    cmd.args(["--data-dir", dir.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .env("PORTOLAN_BOOTSTRAP_CLIENT_ID", "bootstrap-client")
        .env("PORTOLAN_BOOTSTRAP_CLIENT_SECRET", "bootstrap-secret-0123456789")
        .env("PORTOLAN_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(log_file(dir));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("listening on ").expect("listening line").to_string();
    Server { child, base }
}

/// SIGTERM while a search that would run for many seconds is in flight: the request gets the
/// shutdown grace period (1 s here), then the search is stopped and the process exits cleanly,
/// long before the search (and its 600-second budget) would have ended.
#[tokio::test]
async fn sigterm_during_a_slow_search_exits_within_the_grace_period() {
    let dir = temp_dir("grace");
    let env = [("PORTOLAN_SHUTDOWN_GRACE_SECONDS", "1"), ("PORTOLAN_QUERY_BUDGET_SECONDS", "600")];
    let mut server = start_with(&dir, &env);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http
        .post(format!("{}/v1/auth/access_token", server.base))
        .json(&json!({"clientId": "bootstrap-client", "clientSecret": "bootstrap-secret-0123456789"}))
        .send()
        .await
        .unwrap();
    let token = r.json::<Value>().await.unwrap()["accessToken"].as_str().unwrap().to_string();
    let bp = json!({"identifier": "node", "title": "Node", "schema": {"properties": {}},
        "relations": {"next": {"target": "node", "many": true, "required": false, "title": "Next"}}});
    let r = http.post(format!("{}/v1/blueprints", server.base)).bearer_auth(&token).json(&bp).send().await.unwrap();
    assert_eq!(r.status(), 201);
    // A ring of 1,000 nodes, each related to the next five: every walk reaches every node.
    let n = 1000;
    let entities: Vec<Value> = (0..n)
        .map(|i| {
            let next: Vec<String> = (1..=5).map(|k| format!("n{}", (i + k) % n)).collect();
            json!({"identifier": format!("n{i}"), "relations": {"next": next}})
        })
        .collect();
    let r = http
        .post(format!("{}/v1/blueprints/node/entities/bulk", server.base))
        .bearer_auth(&token)
        .json(&json!({"entities": entities}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // 900 transitive walks of 15 hops over all of them.
    let rules: Vec<Value> =
        (0..900).map(|i| json!({"operator": "relatedTo", "blueprint": "node", "value": format!("n{i}")})).collect();
    let search = {
        let (http, url, token) = (http.clone(), format!("{}/v1/entities/search", server.base), token.clone());
        tokio::spawn(async move {
            http.post(url).bearer_auth(token).json(&json!({"combinator": "or", "rules": rules})).send().await
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!search.is_finished(), "the search should still be running");
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    let code = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(8) {
            server.child.kill().unwrap();
            panic!("server still running 8 s after SIGTERM (grace 1 s); its log:\n{}", logs_of(&dir));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(code.success(), "clean exit: {code:?}");
    let logs = logs_of(&dir);
    assert!(logs.contains("shutdown grace period ended"), "{logs}");
    // The search's client saw its connection end, not an answer.
    let answer = search.await.unwrap();
    assert!(answer.is_err() || answer.as_ref().is_ok_and(|r| r.status() != 200), "{answer:?}");
}

#[tokio::test]
async fn serves_with_bootstrap_credentials_and_stops_on_sigterm() {
    let dir = temp_dir("serve");
    let mut server = start(&dir);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http.get(format!("{}/readyz", server.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{}/v1/auth/access_token", server.base))
        .json(&json!({"clientId": "bootstrap-client", "clientSecret": "bootstrap-secret-0123456789"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut waited = Duration::ZERO;
    let code = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(waited < Duration::from_secs(10), "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
        waited += Duration::from_millis(50);
    };
    assert!(code.success(), "clean exit: {code:?}");
    let logs = logs_of(&dir);
    assert!(!logs.contains("bootstrap-secret-0123456789"), "secret never logged");
    assert!(logs.lines().all(|l| l.trim().is_empty() || serde_json::from_str::<Value>(l).is_ok()), "JSON logs: {logs}");
    // The data survives a restart.
    let server = start(&dir);
    let r = http
        .post(format!("{}/v1/auth/access_token", server.base))
        .json(&json!({"clientId": "bootstrap-client", "clientSecret": "bootstrap-secret-0123456789"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn database_url_password_is_never_printed() {
    let url = "postgres://portolan:hunter2-db-secret@127.0.0.1:1/portolan";
    let out = bin().args(["--database-url", url, "config"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("postgres://portolan:***@127.0.0.1:1/portolan"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    // Not a PostgreSQL URL: a configuration error, also redacted.
    let out =
        bin().args(["serve"]).env("PORTOLAN_DATABASE_URL", "mysql://root:hunter2-db-secret@db/x").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PORTOLAN_DATABASE_URL") && err.contains("mysql://root:***@db/x"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// A fresh PostgreSQL database from `PORTOLAN_TEST_DATABASE_URL`, or `None` (said on stderr).
async fn fresh_postgres(tag: &str) -> Option<String> {
    use sqlx::Connection;
    let Ok(admin) = std::env::var("PORTOLAN_TEST_DATABASE_URL") else {
        eprintln!("skipped: PORTOLAN_TEST_DATABASE_URL not set (PostgreSQL half of the CLI tests not run)");
        return None;
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("portolan_cli_{tag}_{}_{nanos}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to PORTOLAN_TEST_DATABASE_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let (base, query) = admin.split_once('?').map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
    let base = &base[..base.rfind('/').unwrap()];
    Some(match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    })
}

#[test]
fn a_database_that_cannot_be_opened_is_named_without_its_password() {
    // A server that answers but has no such database fails at once (an unreachable one is
    // retried for 30 s, too slow for a test); without PostgreSQL this half is skipped.
    let Ok(admin) = std::env::var("PORTOLAN_TEST_DATABASE_URL") else {
        eprintln!("skipped: PORTOLAN_TEST_DATABASE_URL not set");
        return;
    };
    let url = admin.replacen("://postgres@", "://postgres:hunter2-db-secret@", 1);
    let url = format!("{}/portolan_no_such_database", &url[..url.rfind('/').unwrap()]);
    let out = bin().args(["--database-url", &url, "serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("postgres://postgres:***@") && err.contains("portolan_no_such_database"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn serves_from_postgres_with_database_url() {
    let Some(url) = fresh_postgres("serve").await else { return };
    // With a password in the URL (the local server trusts, so any password works).
    let url = url.replacen("://postgres@", "://postgres:pg-secret-pass-77@", 1);
    let dir = temp_dir("pg");
    let mut child = bin()
        .args(["--data-dir", dir.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .env("PORTOLAN_DATABASE_URL", &url)
        .env("PORTOLAN_BOOTSTRAP_CLIENT_ID", "bootstrap-client")
        .env("PORTOLAN_BOOTSTRAP_CLIENT_SECRET", "bootstrap-secret-0123456789")
        .env("PORTOLAN_LOG_LEVEL", "debug")
        .stdout(Stdio::piped())
        // A file, not a pipe: debug logging fills a pipe nobody reads and then blocks the server.
        .stderr(Stdio::from(std::fs::File::create(dir.join("server.log")).unwrap()))
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("listening on ").expect("listening line").to_string();
    let server = Server { child, base };
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http
        .post(format!("{}/v1/auth/access_token", server.base))
        .json(&json!({"clientId": "bootstrap-client", "clientSecret": "bootstrap-secret-0123456789"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["accessToken"].as_str().unwrap().to_string();
    let r = http
        .post(format!("{}/v1/blueprints", server.base))
        .bearer_auth(&token)
        .json(&json!({"identifier": "service", "title": "Service", "schema": {"properties": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    // Nothing went to the SQLite file: the data directory stays empty.
    assert!(!dir.join("portolan.sqlite").exists());
    let mut server = server;
    let _ = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status();
    let _ = server.child.wait();
    let logs = std::fs::read_to_string(dir.join("server.log")).unwrap();
    assert!(logs.contains("postgres://postgres:***@"), "the database is logged, redacted: {logs}");
    assert!(!logs.contains("pg-secret-pass-77"), "password never logged: {logs}");
}

#[tokio::test]
async fn migrate_data_moves_an_embedded_install_to_postgres() {
    let Some(url) = fresh_postgres("migrate").await else { return };
    let dir = temp_dir("migrate");
    let init = bin().args(["--data-dir", dir.to_str().unwrap(), "init", "--json"]).output().unwrap();
    let creds: Value = serde_json::from_slice(&init.stdout).unwrap();
    let (id, secret) = (creds["clientId"].as_str().unwrap(), creds["clientSecret"].as_str().unwrap());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = |base: String| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("{base}/v1/auth/access_token"))
                .json(&json!({"clientId": id, "clientSecret": secret}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "the credential works on {base}");
            r.json::<Value>().await.unwrap()["accessToken"].as_str().unwrap().to_string()
        }
    };
    {
        let server = start(&dir);
        let t = token(server.base.clone()).await;
        let bp = json!({"identifier": "service", "title": "Service", "schema": {"properties": {"tier": {"type": "string"}}}});
        let r = http.post(format!("{}/v1/blueprints", server.base)).bearer_auth(&t).json(&bp).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let e = json!({"identifier": "payments", "properties": {"tier": "gold"}});
        let r = http
            .post(format!("{}/v1/blueprints/service/entities", server.base))
            .bearer_auth(&t)
            .json(&e)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let mut server = server;
        let _ = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status();
        let _ = server.child.wait();
    }
    let out = bin().args(["migrate-data", "--from", dir.to_str().unwrap(), "--to", &url]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for table in ["credentials", "blueprints", "entities", "entity_relations", "audit_log"] {
        let line = text.lines().find(|l| l.starts_with(table)).unwrap_or_else(|| panic!("{table} row: {text}"));
        assert!(line.trim_end().ends_with("ok"), "{line}");
    }
    assert!(text.lines().any(|l| l.starts_with("entities ") && l.split_whitespace().nth(1) == Some("1")), "{text}");
    // Never into a non-empty target.
    let again = bin().args(["migrate-data", "--from", dir.to_str().unwrap(), "--to", &url]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"), "{}", String::from_utf8_lossy(&again.stderr));
    // The PostgreSQL install serves the same data to the same credentials.
    // The signing key (and any webhook secret) travels encrypted with the SQLite install's
    // secrets key: the PostgreSQL nodes are given that key.
    let mut child = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
        .env("PORTOLAN_SECRETS_KEY_FILE", dir.join("secrets.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let server = Server { child, base: line.trim().strip_prefix("listening on ").unwrap().to_string() };
    let t = token(server.base.clone()).await;
    let r = http
        .get(format!("{}/v1/blueprints/service/entities/payments", server.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["entity"]["properties"]["tier"], json!("gold"), "{body}");
}
