//! Webhooks: once the ingest URL answered 202, a crash loses nothing. A `portolan serve` with no
//! job workers (`PORTOLAN_JOB_WORKERS=0`) accepts a signed delivery and is killed with SIGKILL
//! before anything processed it; restarted with workers on the same data directory, it
//! processes the delivery (the master key file generated on first start still decrypts the
//! webhook's secret). A restart with a different `PORTOLAN_SECRETS_KEY` is refused, naming it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

const CLIENT_ID: &str = "webhook-restart-client";
const CLIENT_SECRET: &str = "webhook-restart-secret-0123456789";
const SECRET: &str = "restart-secret";

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portolan"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTOLAN_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("PORTOLAN_BOOTSTRAP_CLIENT_ID", CLIENT_ID)
        .env("PORTOLAN_BOOTSTRAP_CLIENT_SECRET", CLIENT_SECRET)
        .env("PORTOLAN_LOG_LEVEL", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(dir.join("server.log")).unwrap()));
    cmd
}

fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut child = command(dir, env).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let Some(base) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        panic!("server did not start: {}", std::fs::read_to_string(dir.join("server.log")).unwrap_or_default());
    };
    Server { base: base.to_string(), child }
}

async fn token(http: &reqwest::Client, base: &str) -> String {
    let r = http
        .post(format!("{base}/v1/auth/access_token"))
        .json(&json!({"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}))
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["accessToken"].as_str().unwrap().to_string()
}

fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("portolan-webhook-restart-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_delivery_answered_202_survives_sigkill_and_is_processed_after_restart() {
    let dir = temp_dir();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // 1. A node that runs no jobs: deliveries are stored, never processed.
    let mut server = start(&dir, &[("PORTOLAN_JOB_WORKERS", "0")]);
    assert!(dir.join("secrets.key").exists(), "the master key file is generated on first start");
    let t = token(&http, &server.base).await;
    let r = http
        .post(format!("{}/v1/blueprints", server.base))
        .bearer_auth(&t)
        .json(
            &json!({"identifier": "deploy", "title": "Deploy", "schema": {"properties": {"env": {"type": "string"}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let hook = json!({"identifier": "ci", "title": "CI", "mappings": [{"blueprint": "deploy",
        "entity": {"identifier": ".body.id", "properties": {"env": ".body.env"}}}],
        "security": {"secret": SECRET, "signatureHeaderName": "x-signature", "signatureAlgorithm": "sha256",
                     "requestIdentifierPath": ".headers.\"x-delivery\""}});
    let r = http.post(format!("{}/v1/webhooks", server.base)).bearer_auth(&t).json(&hook).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let url = r.json::<Value>().await.unwrap()["integration"]["url"].as_str().unwrap().to_string();
    let path = url.strip_prefix(&server.base).unwrap().to_string();
    let body = json!({"id": "deploy-42", "env": "prod"}).to_string();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let sig: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let deliver = |base: &str| {
        http.post(format!("{base}{path}"))
            .header("x-signature", &sig)
            .header("x-delivery", "once")
            .body(body.clone())
            .send()
    };
    let r = deliver(&server.base).await.unwrap();
    assert_eq!(r.status(), 202);
    let accepted: Value = r.json().await.unwrap();
    assert_eq!(accepted["duplicate"], json!(false), "{accepted}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = http
        .get(format!("{}/v1/blueprints/deploy/entities/deploy-42", server.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "nothing processes deliveries on a node without workers");
    // 2. SIGKILL: no graceful shutdown, nothing flushed on the way out.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    // 3. Restarted with workers on the same data: the delivery is processed.
    let server = start(&dir, &[("PORTOLAN_JOB_WORKERS", "2")]);
    let t = token(&http, &server.base).await;
    let mut entity = Value::Null;
    for _ in 0..100 {
        let r = http
            .get(format!("{}/v1/blueprints/deploy/entities/deploy-42", server.base))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            entity = r.json::<Value>().await.unwrap()["entity"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(entity["properties"]["env"], json!("prod"), "the delivery was lost across the restart");
    // The secret still verifies (the key file was read back), and the replay is recognised.
    let r = deliver(&server.base).await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["duplicate"], json!(true));
    let logs: Value = http
        .get(format!("{}/v1/webhooks/ci/logs?event=delivery_processed", server.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(logs["logs"].as_array().unwrap().len(), 1, "processed once: {logs}");
    drop(server);

    // 4. Another master key cannot read the stored secret: start-up is refused, naming the setting.
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let out = command(&dir, &[("PORTOLAN_SECRETS_KEY", other)]).stdout(Stdio::null()).output().unwrap();
    assert!(!out.status.success());
    let log =
        std::fs::read_to_string(dir.join("server.log")).unwrap_or_default() + &String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("PORTOLAN_SECRETS_KEY"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
