//! Phase 2: sequential request latencies (one request in flight, keep-alive connection), each
//! response checked against what the generator says it must contain.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{Api, short};
use crate::model::{Dataset, Rng, domain_id, service_id};

/// Latency summary of one kind of request.
#[derive(Debug, Clone)]
pub struct Stats {
    pub name: String,
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub note: String,
}

/// Nearest-rank percentiles and the mean of `times`.
pub fn stats(name: &str, mut times: Vec<Duration>, note: String) -> Stats {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let n = times.len();
    let rank = |q: f64| times.get(((q * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1).copied();
    let mean = if n == 0 { 0.0 } else { times.iter().map(|d| ms(*d)).sum::<f64>() / n as f64 };
    Stats {
        name: name.to_string(),
        samples: n,
        p50_ms: rank(0.50).map_or(0.0, ms),
        p99_ms: rank(0.99).map_or(0.0, ms),
        mean_ms: mean,
        note,
    }
}

/// The filtered search of the benchmark: two rules, one page of `limit`.
pub fn filtered_query(limit: u32) -> Value {
    json!({
        "query": {"combinator": "and", "rules": [
            {"property": "language", "operator": "=", "value": "go"},
            {"property": "cpu", "operator": ">", "value": 16}
        ]},
        "limit": limit
    })
}

/// `relatedTo` needs `blueprint` (the blueprint of the `value` entities) and `value`;
/// without `direction` it is upstream ∪ downstream, and `$blueprint = service` keeps only the
/// services whose `domain` relation points at the domain.
pub fn related_query(domain: &str) -> Value {
    json!({"combinator": "and", "rules": [
        {"property": "$blueprint", "operator": "=", "value": "service"},
        {"operator": "relatedTo", "blueprint": "domain", "value": domain}
    ]})
}

fn entities_len(body: &Value) -> usize {
    body.get("entities").and_then(Value::as_array).map_or(0, Vec::len)
}

/// Time one request; fail on any status other than 200.
async fn timed(api: &Api, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<(Duration, Value)> {
    let text = body.map(Value::to_string);
    let t = Instant::now();
    let r = api.send(method.clone(), path, text).await?;
    let elapsed = t.elapsed();
    if r.status != StatusCode::OK {
        bail!("{method} {path} answered {}: {}", r.status, short(&r.body));
    }
    Ok((elapsed, r.body))
}

#[derive(Default)]
pub struct LatencyResult {
    pub stats: Vec<Stats>,
    /// Services matching the filtered search, counted by walking `next`.
    pub filtered_total: usize,
    pub filtered_pages: usize,
}

pub async fn run(api: &Api, data: &Dataset, samples: usize) -> anyhow::Result<LatencyResult> {
    let mut rng = Rng::new(data.seed ^ 0x5EED);
    let mut out = Vec::new();

    // (a) GET one service.
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let id = service_id(rng.below(data.services));
        let (t, body) = timed(api, Method::GET, &format!("/v1/blueprints/service/entities/{id}"), None).await?;
        if body.pointer("/entity/identifier").and_then(Value::as_str) != Some(id.as_str()) {
            bail!("GET service {id} returned another entity: {}", short(&body));
        }
        times.push(t);
    }
    out.push(stats("GET /v1/blueprints/service/entities/{id}", times, "random service".into()));

    // (b) Filtered, paginated search, first page of 100.
    let expected = data.expected_filtered();
    let path = "/v1/blueprints/service/entities/search";
    let query = filtered_query(100);
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let (t, body) = timed(api, Method::POST, path, Some(&query)).await?;
        if entities_len(&body) != expected.min(100) {
            bail!("the filtered search returned {} entities on its first page, {} expected", entities_len(&body), {
                expected.min(100)
            });
        }
        times.push(t);
    }
    let (filtered_total, filtered_pages) = walk(api, path).await?;
    if filtered_total != expected {
        bail!("walking `next` of the filtered search found {filtered_total} services, {expected} expected");
    }
    let note = format!("language=go ∧ cpu>16, limit 100; {filtered_total} match in all");
    out.push(stats("POST /v1/blueprints/service/entities/search", times, note));

    // (c) relatedTo search over all blueprints.
    let per_domain = data.services_per_domain();
    let mut times = Vec::with_capacity(samples);
    let mut returned = 0;
    for _ in 0..samples {
        let d = rng.below(data.domains);
        let (t, body) = timed(api, Method::POST, "/v1/entities/search", Some(&related_query(&domain_id(d)))).await?;
        if entities_len(&body) != per_domain[d] {
            let got = entities_len(&body);
            bail!("relatedTo {} returned {got} services, {} expected", domain_id(d), per_domain[d]);
        }
        returned += per_domain[d];
        times.push(t);
    }
    let note = format!("$blueprint=service ∧ relatedTo random domain; {:.1} services/answer", {
        returned as f64 / samples.max(1) as f64
    });
    out.push(stats("POST /v1/entities/search", times, note));

    // (d) Count.
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let (t, body) = timed(api, Method::GET, "/v1/blueprints/service/entities-count", None).await?;
        if body.get("count").and_then(Value::as_u64) != Some(data.services as u64) {
            bail!("entities-count answered {}, {} expected", short(&body), data.services);
        }
        times.push(t);
    }
    out.push(stats("GET /v1/blueprints/service/entities-count", times, format!("{} services", data.services)));

    Ok(LatencyResult { stats: out, filtered_total, filtered_pages })
}

/// Count every match of the filtered search by following `next` (pages of 1000).
async fn walk(api: &Api, path: &str) -> anyhow::Result<(usize, usize)> {
    let (mut total, mut pages) = (0, 0);
    let mut body = filtered_query(1000);
    loop {
        let page = api.ok(Method::POST, path, Some(&body)).await?;
        total += entities_len(&page);
        pages += 1;
        match page.get("next").and_then(Value::as_str) {
            Some(next) => body["from"] = json!(next),
            None => return Ok((total, pages)),
        }
        if pages > 1_000_000 {
            return Err(anyhow::anyhow!("`next` never ends")).context("walking the filtered search");
        }
    }
}
