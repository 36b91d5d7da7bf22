//! Findings 7 and 8 of the 2026-12 security review, on the real binary: the data directory and
//! the database files are readable by their owner only, the token signing key is stored
//! encrypted (on b217287 it sat in clear in a 0644 `portolan.sqlite`), and a refused webhook
//! delivery or any traced request logs no ingest key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;

use serde_json::json;
use sqlx::{ConnectOptions, Row};
use support::{CLIENT_ID, CLIENT_SECRET, http, send, start, start_in, temp_dir, token};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn data_files_are_owner_only_and_the_signing_key_is_encrypted() {
    let dir = temp_dir("modes");
    let data = dir.join("data");
    let mut server = start_in(&data, &dir, &[]);
    let http = http();
    let t = token(&http, &server.base, CLIENT_ID, CLIENT_SECRET).await;
    // A write, so the WAL and shared-memory files exist.
    let bp = json!({"identifier": "svc", "title": "Service"});
    assert_eq!(send(&http, reqwest::Method::POST, format!("{}/v1/blueprints", server.base), &t, Some(bp)).await.0, 201);
    assert_eq!(mode(&data), 0o700);
    for f in ["portolan.sqlite", "portolan.sqlite-wal", "portolan.sqlite-shm", "secrets.key"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    let db = data.join("portolan.sqlite");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(&db).read_only(true).connect().await.unwrap();
    let stored: String = sqlx::query("SELECT value FROM settings WHERE key = 'token_signing_key'")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    drop(conn);
    assert!(stored.starts_with("v1:"), "the signing key is stored encrypted: {stored}");

    // After a restart the key decrypts: tokens issued before stay valid.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // An older install left world-readable files: the next start tightens them.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = start_in(&data, &dir, &[]);
    let (status, _) = send(&http, reqwest::Method::GET, format!("{}/v1/blueprints/svc", server.base), &t, None).await;
    assert_eq!(status, 200, "{}", server.log());
    assert_eq!((mode(&data), mode(&db)), (0o700, 0o600));
    assert!(server.log().contains("restricted a data file to its owner"), "{}", server.log());
}

#[tokio::test]
async fn ingest_keys_never_reach_the_log() {
    let dir = temp_dir("redact");
    let server = start(&dir, &[("PORTOLAN_LOG_LEVEL", "debug")]);
    let http = http();
    let t = token(&http, &server.base, CLIENT_ID, CLIENT_SECRET).await;
    let base = server.base.clone();
    let bp = json!({"identifier": "svc", "title": "Service"});
    assert_eq!(send(&http, reqwest::Method::POST, format!("{base}/v1/blueprints"), &t, Some(bp)).await.0, 201);
    let hook = json!({"identifier": "gh", "title": "GH", "mappings": [{"blueprint": "svc", "entity": {"identifier": ".body.id"}}],
                      "security": {"secret": "s3cret", "signatureHeaderName": "x-sig", "signatureAlgorithm": "sha256"}});
    let (status, created) = send(&http, reqwest::Method::POST, format!("{base}/v1/webhooks"), &t, Some(hook)).await;
    assert_eq!(status, 201, "{created}");
    let url = created["integration"]["url"].as_str().unwrap().to_string();
    let key = url.rsplit('/').next().unwrap().to_string();
    assert!(key.len() >= 16, "{url}");
    // Refused (no signature), accepted-looking paths with a wrong key, and the ingest of a valid one.
    let r = http.post(&url).json(&json!({"id": "a"})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http.post(format!("{url}/extra")).json(&json!({})).send().await.unwrap();
    assert!(r.status().is_client_error());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = server.log();
    assert!(log.contains("webhook delivery refused"), "the refusal is logged:\n{log}");
    assert!(log.contains("[redacted]"), "paths are logged redacted:\n{log}");
    assert!(!log.contains(&key), "the ingest key is in the log:\n{log}");
}
