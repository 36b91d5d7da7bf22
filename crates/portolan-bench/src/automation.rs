//! `--automation-updates N`: the cost of an automation on entity writes (issue 14). N entities
//! are created, then updated in five rounds of bulk requests (`--batch` per request,
//! `--concurrency` in flight), alternating without and with one `ENTITY_UPDATED` automation whose
//! JQ condition holds for a tenth of the updates and calls a local webhook (alternating, so the
//! drift between rounds falls on both sides). Printed: each round's write throughput, and for each
//! matching update the time from just before its bulk request to the webhook call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::api::{Api, short};
use crate::latency::{Stats, stats};
use crate::runs::{Arrivals, await_arrivals, backend};

const BLUEPRINT: &str = "bench_auto";

/// Update rounds after the creation: odd ones without the automation, even ones with it.
const ROUNDS: u64 = 5;

/// What `--automation-updates` measured.
pub struct AutomationResult {
    pub entities: usize,
    pub batch: usize,
    pub concurrency: usize,
    /// Updates per second of each round without the automation, and of each with it.
    pub without: Vec<f64>,
    pub with: Vec<f64>,
    /// Write (request sent) → webhook received, for the matching tenth.
    pub latency: Stats,
    pub matched: usize,
}

/// Send `rounds`'s updates (`tick` = `round`) in bulk requests, `concurrency` at once; the
/// send time of each entity's request; updates per second.
async fn update_round(
    api: &Api,
    n: usize,
    batch: usize,
    concurrency: usize,
    round: u64,
) -> anyhow::Result<(HashMap<String, Instant>, f64)> {
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let chunks: Vec<Vec<usize>> = (0..n).collect::<Vec<_>>().chunks(batch).map(<[usize]>::to_vec).collect();
    let queue = Arc::new(Mutex::new(chunks.into_iter()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (api, queue, sent) = (api.clone(), queue.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(chunk) = queue.lock().map_err(|_| anyhow::anyhow!("queue lock"))?.next() else { break };
                let entities: Vec<Value> = chunk
                    .iter()
                    .map(|i| json!({"identifier": format!("e{i}"), "properties": {"n": i, "tick": round * 1000 + *i as u64 % 10}}))
                    .collect();
                let t0 = Instant::now();
                {
                    let mut s = sent.lock().map_err(|_| anyhow::anyhow!("sent lock"))?;
                    for i in &chunk {
                        s.insert(format!("e{i}"), t0);
                    }
                }
                let path = format!("/v1/blueprints/{BLUEPRINT}/entities/bulk?upsert=true");
                let r = api.post(&path, &json!({"entities": entities})).await?;
                if !r.status.is_success() || r.body["errors"].as_array().is_some_and(|e| !e.is_empty()) {
                    bail!("bulk update answered {}: {}", r.status, short(&r.body));
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await.context("an update task failed")??;
    }
    let per_sec = n as f64 / started.elapsed().as_secs_f64();
    let sent = Arc::try_unwrap(sent).map_err(|_| anyhow::anyhow!("tasks still hold the send times"))?;
    Ok((sent.into_inner().map_err(|_| anyhow::anyhow!("sent lock"))?, per_sec))
}

/// `wait`: wait for each automated round's webhook calls (the latency); without, each round
/// only deletes the automation as it ends (`--record-only`).
pub async fn run(
    api: &Api,
    n: usize,
    batch: usize,
    concurrency: usize,
    wait: bool,
) -> anyhow::Result<AutomationResult> {
    let bp = json!({"identifier": BLUEPRINT, "title": "Automation benchmark",
        "schema": {"properties": {"n": {"type": "number"}, "tick": {"type": "number"}}}});
    let r = api.post("/v1/blueprints", &bp).await?;
    if r.status.as_u16() != 200 && r.status.as_u16() != 201 {
        bail!("POST /v1/blueprints answered {}: {}", r.status, short(&r.body));
    }
    // Create the entities (round 0); then rounds alternate without and with the automation, so
    // drift between rounds (the tables and the log grow) falls on both sides alike.
    update_round(api, n, batch, concurrency, 0).await?;
    let arrivals: Arrivals = Arc::default();
    let url = backend(arrivals.clone()).await?;
    let automation = json!({
        "identifier": "bench_on_update", "title": "Benchmark automation",
        "trigger": {"type": "automation", "event": {"type": "ENTITY_UPDATED", "blueprintIdentifier": BLUEPRINT},
            "condition": {"type": "JQ", "combinator": "and",
                          "expressions": [".diff.after.properties.tick % 10 == 0"]}},
        "invocationMethod": {"type": "WEBHOOK", "url": url, "synchronized": true, "method": "POST",
            "body": {"run": "{{ .event.context.entityIdentifier }}-{{ .event.diff.after.properties.tick }}"}}
    });
    let (mut without, mut with, mut latencies) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let automated = round % 2 == 0;
        if automated {
            let r = api.post("/v1/actions", &automation).await?;
            if r.status.as_u16() != 201 {
                bail!("POST /v1/actions answered {}: {}", r.status, short(&r.body));
            }
        }
        let (sent, per_sec) = update_round(api, n, batch, concurrency, round).await?;
        if !automated {
            without.push(per_sec);
            continue;
        }
        with.push(per_sec);
        if wait {
            let tick = round * 1000;
            let matching: Vec<(String, String)> =
                (0..n).filter(|i| i % 10 == 0).map(|i| (format!("e{i}"), format!("e{i}-{tick}"))).collect();
            let keys: Vec<String> = matching.iter().map(|(_, k)| k.clone()).collect();
            await_arrivals(&arrivals, &keys).await?;
            {
                let a = arrivals.lock().map_err(|_| anyhow::anyhow!("arrivals lock"))?;
                latencies.extend(matching.iter().map(|(e, k)| a[k] - sent[e]));
            }
        }
        let r = api.send(reqwest::Method::DELETE, "/v1/actions/bench_on_update", None).await?;
        if !r.status.is_success() {
            bail!("DELETE /v1/actions/bench_on_update answered {}: {}", r.status, short(&r.body));
        }
    }
    let calls = arrivals.lock().map_err(|_| anyhow::anyhow!("arrivals lock"))?.len();
    if wait && calls != latencies.len() {
        bail!("the webhook was called {calls} times, {} expected", latencies.len());
    }
    let matched = latencies.len();
    Ok(AutomationResult {
        entities: n,
        batch,
        concurrency,
        without,
        with,
        latency: stats("bulk update sent → webhook received (the matching tenth)", latencies, String::new()),
        matched,
    })
}

/// The result as Markdown.
pub fn markdown(r: &AutomationResult, database: &str) -> String {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let list = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ");
    let cost = 100.0 * (1.0 - mean(&r.with) / mean(&r.without));
    let latency = if r.matched == 0 {
        "Write → webhook latency: not measured (`--record-only`: the webhook calls were not awaited).\n".to_string()
    } else {
        format!(
            "| Measure | p50 ms | p99 ms | mean ms | samples |\n|---|---|---|---|---|\n| {} | {:.1} | {:.1} | {:.1} | {} |\n",
            r.latency.name, r.latency.p50_ms, r.latency.p99_ms, r.latency.mean_ms, r.matched
        )
    };
    format!(
        "### Automation on entity updates: {} updates per round, {} per request, {} in flight, {database}\n\n\
         Rounds alternate: without, with, without, with, without.\n\n\
         | Rounds | updates/s, each round | mean |\n|---|---|---|\n\
         | no automation | {} | {:.0} |\n| one ENTITY_UPDATED automation, condition true for a tenth | {} | {:.0} |\n\n\
         Cost of the automation: **{cost:.1} %** of write throughput (mean with against mean without).\n\n{}",
        r.entities,
        r.batch,
        r.concurrency,
        list(&r.without),
        mean(&r.without),
        list(&r.with),
        mean(&r.with),
        latency
    )
}
