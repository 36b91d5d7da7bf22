//! A `portolan serve` child process on a fresh data directory, for the real-binary tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub const CLIENT_ID: &str = "real-binary-client";
pub const CLIENT_SECRET: &str = "real-binary-secret-0123456789";

pub struct Server {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
    /// What the server wrote to stderr (its log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("portolan-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `portolan` with no `PORTOLAN_*` variable of the test's environment.
pub fn portolan() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portolan"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTOLAN_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Serve on 127.0.0.1:0 with its data in `data` and its log in `log_dir/server.log`.
pub fn start_in(data: &Path, log_dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut cmd = portolan();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("PORTOLAN_BOOTSTRAP_CLIENT_ID", CLIENT_ID)
        .env("PORTOLAN_BOOTSTRAP_CLIENT_SECRET", CLIENT_SECRET)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(log_dir.join("server.log")).unwrap()));
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let Some(base) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        panic!("server did not start: {}", std::fs::read_to_string(log_dir.join("server.log")).unwrap_or_default());
    };
    Server { base: base.to_string(), child, dir: log_dir.to_path_buf() }
}

/// Serve with data and log in `dir`.
pub fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
    start_in(dir, dir, env)
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().unwrap()
}

pub async fn token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let r = http
        .post(format!("{base}/v1/auth/access_token"))
        .json(&json!({"clientId": id, "clientSecret": secret}))
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["accessToken"].as_str().unwrap().to_string()
}

pub async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    t: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = http.request(method, url).bearer_auth(t);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}
