//! Action runs: once `POST /v1/actions/{id}/runs` answered 202, a crash loses nothing. A
//! `portolan serve` with no job workers accepts a run and is killed with SIGKILL before it
//! invoked anything; restarted with workers on the same data directory, it calls the backend
//! once, signed with the bootstrap credential's client secret (§5.8), and the run ends SUCCESS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use support::{CLIENT_ID, CLIENT_SECRET, http, send, start, temp_dir, token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request the stand-in backend received: headers (lower-case names) and body.
type Got = Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>;

/// A minimal HTTP/1.1 backend on 127.0.0.1:0 that records requests and answers 200 JSON.
async fn backend() -> (String, Got) {
    let got: Got = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/deploy", listener.local_addr().unwrap());
    let rec = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let rec = rec.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, len) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                            .unwrap_or(0usize);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let headers = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
                    .collect();
                rec.lock().unwrap().push((headers, buf[head_end..].to_vec()));
                let body = br#"{"ok":true}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.write_all(body).await;
            });
        }
    });
    (url, got)
}

#[tokio::test]
async fn a_run_accepted_before_a_crash_is_invoked_after_the_restart() {
    let dir = temp_dir("action-restart");
    let (url, got) = backend().await;
    let http = http();

    let mut server = start(&dir, &[("PORTOLAN_JOB_WORKERS", "0")]);
    let base = server.base.clone();
    let t = token(&http, &base, CLIENT_ID, CLIENT_SECRET).await;
    let (s, b) = send(
        &http,
        Method::POST,
        format!("{base}/v1/blueprints"),
        &t,
        Some(json!({"identifier": "service", "title": "Service"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = send(
        &http,
        Method::POST,
        format!("{base}/v1/blueprints/service/entities"),
        &t,
        Some(json!({"identifier": "svc"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let action = json!({"identifier": "deploy", "title": "Deploy",
        "trigger": {"type": "self-service", "operation": "DAY-2", "blueprintIdentifier": "service",
                    "userInputs": {"properties": {"version": {"type": "string"}}, "required": ["version"]}},
        "invocationMethod": {"type": "WEBHOOK", "url": url, "synchronized": true,
                             "body": {"version": "{{ .inputs.version }}", "run": "{{ .run.id }}"}}});
    let (s, b) = send(&http, Method::POST, format!("{base}/v1/actions"), &t, Some(action)).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = send(
        &http,
        Method::POST,
        format!("{base}/v1/actions/deploy/runs"),
        &t,
        Some(json!({"entity": "svc", "properties": {"version": "7"}})),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let run_id = b["run"]["id"].as_str().unwrap().to_string();

    // SIGKILL: no graceful shutdown, nothing invoked yet.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(got.lock().unwrap().is_empty(), "nothing was called before the crash");
    drop(server);

    let server = start(&dir, &[]);
    let base = server.base.clone();
    let t = token(&http, &base, CLIENT_ID, CLIENT_SECRET).await;
    let mut run = Value::Null;
    for _ in 0..200 {
        let (_, b) = send(&http, Method::GET, format!("{base}/v1/actions/runs/{run_id}"), &t, None).await;
        run = b["run"].clone();
        if run["status"] != json!("IN_PROGRESS") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(run["status"], json!("SUCCESS"), "{run}\n{}", server.log());
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "called exactly once");
    let (headers, body) = &got[0];
    let body_json: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body_json, json!({"version": "7", "run": run_id}));
    let h = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let sig = h("x-port-signature");
    let raw = base64::engine::general_purpose::STANDARD.decode(sig.trim_start_matches("v1,")).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(CLIENT_SECRET.as_bytes()).unwrap();
    mac.update(format!("{}.", h("x-port-timestamp")).as_bytes());
    mac.update(body);
    assert!(mac.verify_slice(&raw).is_ok(), "signed with the bootstrap client secret: {sig}");
    let _ = std::fs::remove_dir_all(&dir);
}
