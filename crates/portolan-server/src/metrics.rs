//! `GET /metrics`: the node's metrics in Prometheus' text exposition format (version 0.0.4).
//! `docs/metrics.md` lists every series.
//!
//! - Requests: a count and a latency histogram per route *template* (axum's `MatchedPath`, so
//!   `/v1/blueprints/{id}`, never the raw URL: the label set is bounded by the route table),
//!   method and status. Unmatched paths share the route label `unmatched`.
//! - Jobs: queued and running per kind and the age of the oldest queued job, read at scrape time
//!   with one aggregate query ([`portolan_store::Jobs::queue_stats`]) — over every organization
//!   of the database, so every node reports the same queue.
//! - Counters of this node: webhook deliveries processed and mapping failures, Ocean resyncs
//!   started, jq evaluations ended by a limit ([`portolan_jq::JqEngine::limits_hit`]).
//! - The database pools: open, idle and maximum connections; entity write requests and the
//!   transactions they took (group commit).
//!
//! No label carries an organization, a user or an identifier. The endpoint is off unless
//! `PORTOLAN_METRICS_TOKEN` is set; then it needs `Authorization: Bearer <that token>` (what
//! Prometheus sends with `authorization: {credentials: …}` in its scrape config).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// One (route, method, status)'s requests.
#[derive(Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last is `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        let i = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.buckets[i] += 1;
        self.sum += secs;
        self.count += 1;
    }
}

/// The node's counters (shared by every request and job through [`AppState`]).
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    /// Webhook deliveries whose processing job ran (each attempt counts).
    pub webhook_deliveries: AtomicU64,
    /// Mapping failures of webhook deliveries: a mapping that failed as a whole (a jq error,
    /// no data) counts one, and so does every item whose transformation failed.
    pub webhook_mapping_failures: AtomicU64,
    /// Ocean resyncs started (`PATCH /v1/integration/{id}/resync-state` running).
    pub ocean_resyncs: AtomicU64,
}

impl Metrics {
    /// Count one answered request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, secs: f64) {
        if let Ok(mut m) = self.requests.lock() {
            m.entry((route.to_string(), method.to_string(), status)).or_default().observe(secs);
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Middleware: time every request and count it under its route template.
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string();
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    state.metrics.observe_request(&route, &method, res.status().as_u16(), started.elapsed().as_secs_f64());
    res
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(token) = state.config.metrics_token.as_deref() else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "metrics are off on this node: set PORTOLAN_METRICS_TOKEN (or metrics_token in the config file) and \
             scrape /metrics with that token as a bearer token",
        ));
    };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let allowed = given.is_some_and(|g| subtle::ConstantTimeEq::ct_eq(g.as_bytes(), token.as_bytes()).into());
    if !allowed {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "/metrics needs `Authorization: Bearer <PORTOLAN_METRICS_TOKEN>`",
        ));
    }
    let queue = state.store.queue_stats().await?;
    let body = render(&state, &queue, chrono::Utc::now());
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(res)
}

/// A label value with `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A copy of one (route, method, status)'s histogram: buckets, sum, count.
type Snapshot = ((String, String, u16), [u64; BUCKETS.len() + 1], f64, u64);

/// The exposition text.
fn render(state: &AppState, queue: &[portolan_store::QueueStat], now: chrono::DateTime<chrono::Utc>) -> String {
    let m = &state.metrics;
    let mut out = String::new();
    let requests: Vec<Snapshot> = m
        .requests
        .lock()
        .map(|r| r.iter().map(|(k, h)| (k.clone(), h.buckets, h.sum, h.count)).collect())
        .unwrap_or_default();
    head(
        &mut out,
        "portolan_http_requests_total",
        "counter",
        "HTTP requests answered, by route template, method and status.",
    );
    for ((route, method, status), _, _, count) in &requests {
        let _ = writeln!(
            out,
            "portolan_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {count}",
            label(route)
        );
    }
    head(
        &mut out,
        "portolan_http_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its answer, by route template, method and status.",
    );
    for ((route, method, status), buckets, sum, count) in &requests {
        let labels = format!("route=\"{}\",method=\"{method}\",status=\"{status}\"", label(route));
        let mut cumulative = 0;
        for (i, n) in buckets.iter().enumerate() {
            cumulative += n;
            let le = BUCKETS.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "portolan_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "portolan_http_request_duration_seconds_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "portolan_http_request_duration_seconds_count{{{labels}}} {count}");
    }
    head(
        &mut out,
        "portolan_jobs_queued",
        "gauge",
        "Jobs waiting in the durable queue, by kind (every node of the database).",
    );
    for q in queue {
        let _ = writeln!(out, "portolan_jobs_queued{{kind=\"{}\"}} {}", label(&q.kind), q.queued);
    }
    head(&mut out, "portolan_jobs_running", "gauge", "Jobs running on any node, by kind.");
    for q in queue {
        let _ = writeln!(out, "portolan_jobs_running{{kind=\"{}\"}} {}", label(&q.kind), q.running);
    }
    head(
        &mut out,
        "portolan_jobs_oldest_queued_age_seconds",
        "gauge",
        "Seconds since the oldest queued job of a kind became runnable (0 when none waits or it is not due yet).",
    );
    for q in queue {
        let age = q
            .oldest_queued
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(0.0, |t| ((now - t.with_timezone(&chrono::Utc)).num_milliseconds().max(0) as f64) / 1000.0);
        let _ = writeln!(out, "portolan_jobs_oldest_queued_age_seconds{{kind=\"{}\"}} {age}", label(&q.kind));
    }
    let writes = state.store.write_group_use();
    for (name, help, value) in [
        (
            "portolan_webhook_deliveries_total",
            "Webhook deliveries processed by this node (each attempt).",
            m.webhook_deliveries.load(Ordering::Relaxed),
        ),
        (
            "portolan_webhook_mapping_failures_total",
            "Webhook mapping failures on this node: whole mappings that failed, and items whose transformation failed.",
            m.webhook_mapping_failures.load(Ordering::Relaxed),
        ),
        (
            "portolan_ocean_resyncs_total",
            "Ocean resyncs started on this node.",
            m.ocean_resyncs.load(Ordering::Relaxed),
        ),
        (
            "portolan_jq_limits_hit_total",
            "jq evaluations on this node ended by a limit (time, steps, size, a spent budget, no free worker).",
            state.jq.limits_hit(),
        ),
        (
            "portolan_entity_write_requests_total",
            "Entity write requests (each bulk or single write) this node's store answered.",
            writes.requests,
        ),
        (
            "portolan_entity_write_transactions_total",
            "Transactions those requests took: concurrent requests of one organization share one (group commit).",
            writes.transactions,
        ),
    ] {
        head(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let pool = state.store.pool_use();
    head(&mut out, "portolan_db_pool_connections", "gauge", "Database connections of this node's pools, by state.");
    for (st, v) in
        [("open", pool.open), ("idle", pool.idle), ("in_use", pool.open.saturating_sub(pool.idle)), ("max", pool.max)]
    {
        let _ = writeln!(out, "portolan_db_pool_connections{{state=\"{st}\"}} {v}");
    }
    out
}
