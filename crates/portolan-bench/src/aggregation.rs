//! `--aggregation`: what keeping aggregation properties current costs bulk writes (issue 15).
//!
//! After the load, in the same run and on the same server:
//! 1. **without**: every service is written again through the bulk API (`upsert=true`, `cpu`
//!    changed), while no blueprint has an aggregation property;
//! 2. `domain` gets two aggregation properties — the count of its services and the sum of their
//!    `cpu` — and the `aggregation_recompute` job the save enqueued is awaited (its own
//!    startedAt → finishedAt);
//! 3. **with**: every service is written again the same way (`cpu` changed again); each bulk
//!    request now enqueues an `aggregation_entities` job;
//! 4. the time from the last answer of pass 3 until no aggregation job is queued or running
//!    (the values are current);
//! 5. every domain's two values are checked against the generated data.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{Api, short};
use crate::model::{Dataset, domain_id};

#[derive(Debug, Clone)]
pub struct AggregationResult {
    pub services: usize,
    pub batch: usize,
    pub concurrency: usize,
    /// Pass 1: every service rewritten, no aggregation property.
    pub without: Duration,
    /// Pass 3: every service rewritten, `domain` aggregating them.
    pub with: Duration,
    /// The `aggregation_recompute` job of step 2 (startedAt → finishedAt).
    pub recompute: Duration,
    /// From the last answer of pass 3 until no aggregation job is queued or running.
    pub catch_up: Duration,
    /// `aggregation_entities` jobs pass 3 enqueued.
    pub jobs: usize,
    pub domains_checked: usize,
}

fn cpu(data: &Dataset, i: usize, pass: u32) -> u32 {
    (data.service_spec(i).cpu + pass) % 65
}

/// Write every service again (bulk, upsert), `cpu` shifted by `pass`.
async fn rewrite(api: &Api, data: &Dataset, batch: usize, concurrency: usize, pass: u32) -> anyhow::Result<Duration> {
    let bodies: Vec<(usize, String)> = (0..data.services)
        .step_by(batch)
        .map(|start| {
            let end = (start + batch).min(data.services);
            let entities: Vec<Value> = (start..end)
                .map(|i| {
                    let mut e = data.entity("service", i);
                    e["properties"]["cpu"] = json!(cpu(data, i, pass));
                    e
                })
                .collect();
            (end - start, json!({ "entities": entities }).to_string())
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (api, bodies, next) = (api.clone(), bodies.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some((sent, body)) = bodies.get(k) else { return Ok(()) };
                let r = api
                    .send(Method::POST, "/v1/blueprints/service/entities/bulk?upsert=true", Some(body.clone()))
                    .await?;
                let written = r.body["entities"].as_array().map_or(0, Vec::len);
                if r.status != StatusCode::OK || written != *sent {
                    bail!("bulk rewrite batch {k}: {} {}", r.status, short(&r.body));
                }
            }
        }));
    }
    for w in workers {
        w.await.context("a rewrite worker panicked")??;
    }
    Ok(started.elapsed())
}

fn millis(ts: &str) -> anyhow::Result<i64> {
    Ok(chrono::DateTime::parse_from_rfc3339(ts).with_context(|| format!("bad timestamp {ts:?}"))?.timestamp_millis())
}

/// Jobs of `kind`, newest first (at most 1,000).
async fn jobs(api: &Api, kind: &str) -> anyhow::Result<Vec<Value>> {
    let v = api.ok(Method::GET, &format!("/v1/jobs?kind={kind}&limit=1000"), None).await?;
    Ok(v["jobs"].as_array().cloned().unwrap_or_default())
}

/// Wait until every job of `kind` has finished; fail on a failed one.
async fn drain(api: &Api, kind: &str) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let js = jobs(api, kind).await?;
        if let Some(f) = js.iter().find(|j| j["status"] == "failed") {
            bail!("a {kind} job failed: {}", short(f));
        }
        if js.iter().all(|j| j["status"] == "succeeded" || j["status"] == "cancelled") {
            return Ok(js);
        }
        if Instant::now() > deadline {
            bail!("{kind} jobs did not finish in an hour");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run(api: &Api, data: &Dataset, batch: usize, concurrency: usize) -> anyhow::Result<AggregationResult> {
    crate::progress("pass 1: rewriting every service, no aggregation property");
    let without = rewrite(api, data, batch, concurrency, 1).await?;
    crate::progress(&format!("pass 1: {:.1} s; adding aggregation properties to domain", without.as_secs_f64()));
    let aggs = json!({"aggregationProperties": {
        "services": {"title": "Services", "target": "service",
                     "calculationSpec": {"calculationBy": "entities", "func": "count"}},
        "cpuSum": {"title": "CPU", "target": "service",
                   "calculationSpec": {"calculationBy": "property", "func": "sum", "property": "cpu"}}}});
    api.ok(Method::PATCH, "/v1/blueprints/domain", Some(&aggs)).await?;
    let recomputes = drain(api, "aggregation_recompute").await?;
    let job = recomputes.first().context("no aggregation_recompute job")?;
    let started = millis(job["startedAt"].as_str().context("job without startedAt")?)?;
    let finished = millis(job["finishedAt"].as_str().context("job without finishedAt")?)?;
    let recompute = Duration::from_millis(u64::try_from(finished - started).unwrap_or(0));
    crate::progress(&format!("recompute: {:.1} s; pass 3: rewriting every service", recompute.as_secs_f64()));
    let with = rewrite(api, data, batch, concurrency, 2).await?;
    let ended = Instant::now();
    crate::progress(&format!("pass 3: {:.1} s; waiting for the aggregation jobs", with.as_secs_f64()));
    let entity_jobs = drain(api, "aggregation_entities").await?;
    let catch_up = ended.elapsed();

    // Every domain's values against the data.
    let mut count = vec![0u64; data.domains];
    let mut sum = vec![0u64; data.domains];
    for i in 0..data.services {
        let d = data.service_spec(i).domain;
        count[d] += 1;
        sum[d] += u64::from(cpu(data, i, 2));
    }
    let mut from: Option<String> = None;
    let mut checked = 0;
    loop {
        let mut body = json!({"limit": 1000});
        if let Some(f) = &from {
            body["from"] = json!(f);
        }
        let page = api.ok(Method::POST, "/v1/blueprints/domain/entities/search", Some(&body)).await?;
        for e in page["entities"].as_array().context("no entities")? {
            let id = e["identifier"].as_str().unwrap_or_default();
            let d: usize = id.strip_prefix("dom-").and_then(|n| n.parse().ok()).context("unknown domain")?;
            if d >= data.domains || domain_id(d) != id {
                bail!("unknown domain {id}");
            }
            let (c, s) = (&e["properties"]["services"], &e["properties"]["cpuSum"]);
            if c.as_u64() != Some(count[d]) || s.as_u64() != Some(sum[d]) {
                bail!("domain {id}: services {c} cpuSum {s}, expected {} and {}", count[d], sum[d]);
            }
            checked += 1;
        }
        match page["next"].as_str() {
            Some(n) => from = Some(n.to_string()),
            None => break,
        }
    }
    if checked != data.domains {
        bail!("checked {checked} domains of {}", data.domains);
    }
    Ok(AggregationResult {
        services: data.services,
        batch,
        concurrency,
        without,
        with,
        recompute,
        catch_up,
        jobs: entity_jobs.len(),
        domains_checked: checked,
    })
}

pub fn markdown(r: &AggregationResult) -> String {
    let rate = |d: Duration| r.services as f64 / d.as_secs_f64();
    let cost = 100.0 * (1.0 - rate(r.with) / rate(r.without));
    format!(
        "\n### Aggregation upkeep ({} services rewritten per pass, batch {}, {} in flight)\n\n\
         | Measure | Seconds | Services/s |\n|---|---|---|\n\
         | pass 1: rewrite, no aggregation property (baseline) | {:.2} | {:.0} |\n\
         | pass 3: rewrite, `domain` aggregating services (count, sum) | {:.2} | {:.0} |\n\
         | `aggregation_recompute` of every domain (job startedAt → finishedAt) | {:.2} | — |\n\
         | last answer of pass 3 → every `aggregation_entities` job finished ({} jobs) | {:.2} | — |\n\
         | pass 3 start → values current | {:.2} | {:.0} |\n\n\
         Write throughput lost to upkeep: {:.1} % (target ≤ 25 %). Values checked on all {} domains.\n",
        r.services,
        r.batch,
        r.concurrency,
        r.without.as_secs_f64(),
        rate(r.without),
        r.with.as_secs_f64(),
        rate(r.with),
        r.recompute.as_secs_f64(),
        r.jobs,
        r.catch_up.as_secs_f64(),
        (r.with + r.catch_up).as_secs_f64(),
        rate(r.with + r.catch_up),
        cost,
        r.domains_checked
    )
}
