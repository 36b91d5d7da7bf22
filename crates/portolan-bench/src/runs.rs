//! `--action-runs N`: runs of a synchronized WEBHOOK action against a local backend. For each
//! run, the time from just before `POST /v1/actions/{id}/runs` to the backend receiving the
//! call (the run's id is in the templated body), first one run at a time (the latency a person
//! pressing the button sees), then with `--concurrency` clients posting at once (throughput).
//! Baseline from the same run: the same POST sent by this process straight to the backend —
//! the cost of one local HTTP hop, which no invocation can beat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::{Api, short};
use crate::latency::{Stats, stats};

/// When the backend received each run (by run id).
pub type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// What `--action-runs` measured.
#[derive(Debug, Clone)]
pub struct RunsResult {
    pub runs: usize,
    pub concurrency: usize,
    /// One run at a time: creation → backend.
    pub sequential: Stats,
    /// Creation → 202 answer, one at a time.
    pub answered: Stats,
    /// `concurrency` clients at once: creation → backend.
    pub concurrent: Stats,
    /// Runs per second with `concurrency` clients, from the first POST to the last arrival.
    pub per_sec: f64,
    /// The baseline: the same request straight to the backend, one at a time.
    pub direct: Stats,
    /// Runs that ended SUCCESS (all of them, or the benchmark fails).
    pub succeeded: usize,
}

/// A keep-alive HTTP/1.1 backend that answers 200 `{"ok":true}` and records when each run's
/// call arrived (the body's `run`).
pub async fn backend(arrivals: Arrivals) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/deploy", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let mut buf: Vec<u8> = Vec::new();
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    // One request: head, then content-length bytes of body.
                    let (head_end, len) = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse().ok()))
                                .unwrap_or(0usize);
                            break (i + 4, len);
                        }
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    while buf.len() < head_end + len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let at = Instant::now();
                    let body: Value = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
                    if let Some(run) = body.get("run").and_then(Value::as_str)
                        && let Ok(mut a) = arrivals.lock()
                    {
                        a.insert(run.to_string(), at);
                    }
                    buf.drain(..head_end + len);
                    let answer =
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
                    if sock.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(url)
}

/// Wait until the backend has received every id in `ids` (at most 5 minutes).
pub async fn await_arrivals(arrivals: &Arrivals, ids: &[String]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let missing = {
            let a = arrivals.lock().map_err(|_| anyhow::anyhow!("arrivals lock poisoned"))?;
            ids.iter().filter(|id| !a.contains_key(*id)).count()
        };
        if missing == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{missing} of {} runs never reached the backend within 5 minutes", ids.len());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn start_run(api: &Api, n: usize) -> anyhow::Result<(String, Instant, Duration)> {
    let body = json!({"properties": {"version": format!("1.0.{n}")}});
    let t0 = Instant::now();
    let r = api.post("/v1/actions/bench_deploy/runs", &body).await?;
    let answered = t0.elapsed();
    if r.status.as_u16() != 202 {
        bail!("POST /v1/actions/bench_deploy/runs answered {}: {}", r.status, short(&r.body));
    }
    let id = r.body["run"]["id"].as_str().context("no run id in the answer")?.to_string();
    Ok((id, t0, answered))
}

pub async fn run(api: &Api, runs: usize, concurrency: usize) -> anyhow::Result<RunsResult> {
    let arrivals: Arrivals = Arc::default();
    let url = backend(arrivals.clone()).await?;
    let action = json!({
        "identifier": "bench_deploy", "title": "Deploy (benchmark)",
        "trigger": {"type": "self-service", "operation": "CREATE",
                    "userInputs": {"properties": {"version": {"type": "string"}}, "required": ["version"]}},
        "invocationMethod": {"type": "WEBHOOK", "url": url, "synchronized": true, "method": "POST",
                             "headers": {"RUN_ID": "{{ .run.id }}"},
                             "body": {"run": "{{ .run.id }}", "version": "{{ .inputs.version }}",
                                      "user": "{{ .trigger.by.user.email }}"}}
    });
    let created = api.post("/v1/actions", &action).await?;
    if created.status.as_u16() != 201 {
        bail!("POST /v1/actions answered {}: {}", created.status, short(&created.body));
    }

    // Baseline: this process posting the same kind of body straight to the backend.
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut direct = Vec::with_capacity(runs);
    for n in 0..runs {
        let body = json!({"run": format!("direct-{n}"), "version": "1.0", "user": "bench"}).to_string();
        let t0 = Instant::now();
        http.post(&url).header("content-type", "application/json").body(body).send().await?.bytes().await?;
        direct.push(t0.elapsed());
    }

    // One run at a time: each posted after the previous one reached the backend.
    let mut seq = Vec::with_capacity(runs);
    let mut answered = Vec::with_capacity(runs);
    let mut all_ids = Vec::with_capacity(2 * runs);
    for n in 0..runs {
        let (id, t0, a) = start_run(api, n).await?;
        await_arrivals(&arrivals, std::slice::from_ref(&id)).await?;
        let at = arrivals.lock().map_err(|_| anyhow::anyhow!("lock"))?[&id];
        seq.push(at - t0);
        answered.push(a);
        all_ids.push(id);
    }

    // `concurrency` clients, each posting its share back to back.
    let started = Instant::now();
    let per_client = runs.div_ceil(concurrency);
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let api = api.clone();
        let range = (c * per_client)..((c + 1) * per_client).min(runs);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for n in range {
                out.push(start_run(&api, runs + n).await?);
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut started_runs = Vec::with_capacity(runs);
    for t in tasks {
        started_runs.extend(t.await.context("a client task failed")??);
    }
    let ids: Vec<String> = started_runs.iter().map(|(id, _, _)| id.clone()).collect();
    await_arrivals(&arrivals, &ids).await?;
    let elapsed = started.elapsed();
    let conc: Vec<Duration> = {
        let a = arrivals.lock().map_err(|_| anyhow::anyhow!("lock"))?;
        started_runs.iter().map(|(id, t0, _)| a[id] - *t0).collect()
    };
    all_ids.extend(ids);

    // Every run must have ended SUCCESS (the backend answered 200).
    let mut succeeded = 0;
    for id in &all_ids {
        let mut status = String::new();
        for _ in 0..500 {
            let r = api.ok(Method::GET, &format!("/v1/actions/runs/{id}"), None).await?;
            status = r["run"]["status"].as_str().unwrap_or_default().to_string();
            if status != "IN_PROGRESS" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if status != "SUCCESS" {
            bail!("run {id} ended {status:?}, not SUCCESS");
        }
        succeeded += 1;
    }
    Ok(RunsResult {
        runs,
        concurrency,
        sequential: stats("run created → backend received, one at a time", seq, String::new()),
        answered: stats("POST …/runs → 202 answer, one at a time", answered, String::new()),
        concurrent: stats(&format!("run created → backend received, {concurrency} clients"), conc, String::new()),
        per_sec: runs as f64 / elapsed.as_secs_f64(),
        direct: stats("baseline: the same POST straight to the backend", direct, String::new()),
        succeeded,
    })
}

/// The result as Markdown.
pub fn markdown(r: &RunsResult, database: &str) -> String {
    let mut out = format!(
        "### Action runs: {} runs of a synchronized WEBHOOK action, {database}\n\n\
         | Measure | p50 ms | p99 ms | mean ms | samples |\n|---|---|---|---|---|\n",
        r.runs
    );
    for s in [&r.sequential, &r.answered, &r.concurrent, &r.direct] {
        out.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {} |\n",
            s.name, s.p50_ms, s.p99_ms, s.mean_ms, s.samples
        ));
    }
    out.push_str(&format!(
        "\nThroughput with {} clients: **{:.0} runs/s** (first POST to last arrival). {} runs ended SUCCESS.\n",
        r.concurrency, r.per_sec, r.succeeded
    ));
    out
}
