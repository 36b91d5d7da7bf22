//! Phase 1: create the blueprints and load every entity through
//! `POST /v1/blueprints/{bp}/entities/bulk`, `concurrency` requests at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::api::{Api, short};
use crate::model::{Dataset, blueprints};

#[derive(Debug, Clone)]
pub struct LoadResult {
    pub entities: usize,
    pub requests: usize,
    pub elapsed: Duration,
    /// (blueprint, entities, seconds) per phase.
    pub phases: Vec<(String, usize, f64)>,
    /// The rate of each 10,000-entity slice of the whole load, in order: (entities loaded at
    /// the slice's end, entities/s over the slice). A rate that falls as the tables grow shows
    /// here (`--curve`).
    pub curve: Vec<(usize, f64)>,
}

/// Entities per slice of [`LoadResult::curve`].
pub const SLICE: usize = 10_000;

/// Entities loaded, entities at the current slice's start, when it started, closed slices.
type CurveState = (usize, usize, Instant, Vec<(usize, f64)>);

/// Counts entities over the whole load and closes a slice every [`SLICE`].
struct Curve {
    state: Mutex<CurveState>,
}

impl Curve {
    fn new() -> Curve {
        Curve { state: Mutex::new((0, 0, Instant::now(), Vec::new())) }
    }

    async fn add(&self, n: usize) {
        let mut st = self.state.lock().await;
        let (done, mark, at, slices) = &mut *st;
        *done += n;
        if *done - *mark >= SLICE {
            slices.push((*done, (*done - *mark) as f64 / at.elapsed().as_secs_f64()));
            (*mark, *at) = (*done, Instant::now());
        }
    }

    async fn finish(&self) -> Vec<(usize, f64)> {
        let mut st = self.state.lock().await;
        let (done, mark, at, slices) = &mut *st;
        if *done > *mark {
            slices.push((*done, (*done - *mark) as f64 / at.elapsed().as_secs_f64()));
        }
        std::mem::take(slices)
    }
}

impl LoadResult {
    pub fn per_sec(&self) -> f64 {
        self.entities as f64 / self.elapsed.as_secs_f64()
    }
}

pub async fn create_blueprints(api: &Api) -> anyhow::Result<()> {
    for bp in blueprints() {
        let r = api.post("/v1/blueprints", &bp).await?;
        if r.status != StatusCode::CREATED && r.status != StatusCode::OK {
            bail!("POST /v1/blueprints ({}) answered {}: {}", bp["identifier"], r.status, short(&r.body));
        }
    }
    Ok(())
}

/// The request bodies of one blueprint, serialized before the clock starts.
fn bodies(data: &Dataset, blueprint: &str, count: usize, batch: usize) -> Vec<(usize, String)> {
    (0..count)
        .step_by(batch)
        .map(|start| {
            let end = (start + batch).min(count);
            let entities: Vec<Value> = (start..end).map(|i| data.entity(blueprint, i)).collect();
            (end - start, json!({ "entities": entities }).to_string())
        })
        .collect()
}

/// Check one bulk response: 200, `ok: true`, no errors, one result per entity sent.
fn check(status: StatusCode, body: &Value, sent: usize) -> Result<(), String> {
    let errors = body.get("errors").and_then(Value::as_array).map_or(0, Vec::len);
    let created = body.get("entities").and_then(Value::as_array).map_or(0, Vec::len);
    if status == StatusCode::OK && errors == 0 && created == sent && body.get("ok") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    Err(format!("status {status}, {created}/{sent} entities written, {errors} errors: {}", short(body)))
}

/// Load every entity, blueprint after blueprint (relation targets first).
pub async fn load(api: &Api, data: &Dataset, batch: usize, concurrency: usize) -> anyhow::Result<LoadResult> {
    let plan: Vec<(&'static str, Vec<(usize, String)>)> =
        data.order().iter().map(|(bp, n)| (*bp, bodies(data, bp, *n, batch))).collect();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut requests = 0;
    let mut phases = Vec::new();
    let curve = Arc::new(Curve::new());
    let started = Instant::now();
    for (bp, batches) in plan {
        let phase_start = Instant::now();
        let entities: usize = batches.iter().map(|(n, _)| n).sum();
        requests += batches.len();
        let batches = Arc::new(batches);
        let next = Arc::new(AtomicUsize::new(0));
        let meter = Arc::new(Meter::new(bp, entities));
        let path = format!("/v1/blueprints/{bp}/entities/bulk");
        let mut workers = Vec::new();
        for _ in 0..concurrency.max(1) {
            let (api, batches, next, failures, path, meter, curve) = (
                api.clone(),
                batches.clone(),
                next.clone(),
                failures.clone(),
                path.clone(),
                meter.clone(),
                curve.clone(),
            );
            workers.push(tokio::spawn(async move {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some((sent, body)) = batches.get(k) else { break };
                    let outcome = match api.send(Method::POST, &path, Some(body.clone())).await {
                        Ok(r) => check(r.status, &r.body, *sent),
                        Err(e) => Err(format!("{e:#}")),
                    };
                    if let Err(msg) = outcome {
                        failures.lock().await.push(format!("{path} batch {k}: {msg}"));
                    }
                    meter.add(*sent).await;
                    curve.add(*sent).await;
                }
            }));
        }
        for w in workers {
            w.await.context("a load worker panicked")?;
        }
        phases.push((bp.to_string(), entities, phase_start.elapsed().as_secs_f64()));
        let failures = failures.lock().await;
        if !failures.is_empty() {
            let shown: Vec<&str> = failures.iter().take(5).map(String::as_str).collect();
            bail!("{} bulk request(s) of {bp} failed; first ones:\n  {}", failures.len(), shown.join("\n  "));
        }
    }
    let elapsed = started.elapsed();
    let curve = curve.finish().await;
    Ok(LoadResult { entities: data.total(), requests, elapsed, phases, curve })
}

/// Progress on stderr at every tenth of a phase, with the rate over that tenth, so that a rate
/// that falls as the tables grow is visible.
struct Meter {
    blueprint: &'static str,
    total: usize,
    state: Mutex<(usize, usize, Instant)>,
}

impl Meter {
    fn new(blueprint: &'static str, total: usize) -> Meter {
        Meter { blueprint, total, state: Mutex::new((0, 0, Instant::now())) }
    }

    async fn add(&self, n: usize) {
        let mut st = self.state.lock().await;
        let (done, mark, at) = &mut *st;
        *done += n;
        if self.total >= 10_000 && (*done - *mark) * 10 >= self.total {
            let rate = (*done - *mark) as f64 / at.elapsed().as_secs_f64();
            eprintln!("[portolan-bench]   {} {}/{}: {rate:.0} entities/s", self.blueprint, *done, self.total);
            (*mark, *at) = (*done, Instant::now());
        }
    }
}

/// Every blueprint must hold exactly the entities the run created.
pub async fn verify_counts(api: &Api, data: &Dataset) -> anyhow::Result<()> {
    let mut wrong = Vec::new();
    for (bp, expected) in data.order() {
        let got = api.count(bp).await?;
        if got != expected as u64 {
            wrong.push(format!("{bp}: {got} stored, {expected} expected"));
        }
    }
    if !wrong.is_empty() {
        bail!("entities are missing after the load: {}", wrong.join("; "));
    }
    Ok(())
}
