//! `--scorecard`: after the load, one scorecard (a filter and four rules over the service
//! blueprint's properties and a relation) is created through the API and the time until its
//! `scorecard_recompute` job has scored every service is taken from the job's own start and finish
//! times (and, around it, the wall time from the POST to the job's end as this client saw it).
//! Baseline from the same run: reading every service once through the paginated search (1,000
//! per page) — the cost of touching each entity once through the API, without evaluating or
//! writing anything.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::api::{Api, short};

#[derive(Debug, Clone)]
pub struct ScorecardResult {
    pub services: usize,
    /// The job's own `startedAt` → `finishedAt`.
    pub job: Duration,
    /// `POST /v1/blueprints/service/scorecards` → the job seen `succeeded`.
    pub wall: Duration,
    /// Baseline: every service read once through the paginated search.
    pub read_all: Duration,
    /// Entities per level after the recompute (from the entity answers' `scorecards` map).
    pub levels: Vec<(String, usize)>,
}

fn millis(ts: &str) -> anyhow::Result<i64> {
    Ok(chrono::DateTime::parse_from_rfc3339(ts).with_context(|| format!("bad timestamp {ts:?}"))?.timestamp_millis())
}

/// Page through every service: (time, entities read, level counts of the `ready` scorecard).
async fn read_all(api: &Api) -> anyhow::Result<(Duration, usize, Vec<(String, usize)>)> {
    let started = Instant::now();
    let mut from: Option<String> = None;
    let mut n = 0;
    let mut levels: std::collections::BTreeMap<String, usize> = Default::default();
    loop {
        let mut body = json!({"limit": 1000});
        if let Some(f) = &from {
            body["from"] = json!(f);
        }
        let page = api.ok(Method::POST, "/v1/blueprints/service/entities/search", Some(&body)).await?;
        let entities = page["entities"].as_array().context("no entities in a search page")?;
        n += entities.len();
        for e in entities {
            if let Some(l) = e["scorecards"]["ready"]["level"].as_str() {
                *levels.entry(l.to_string()).or_default() += 1;
            }
        }
        match page["next"].as_str() {
            Some(next) => from = Some(next.to_string()),
            None => break,
        }
    }
    Ok((started.elapsed(), n, levels.into_iter().collect()))
}

pub async fn run(api: &Api, services: usize) -> anyhow::Result<ScorecardResult> {
    let (read_all_time, seen, _) = read_all(api).await?;
    if seen != services {
        bail!("the search read {seen} services, {services} were loaded");
    }
    let scorecard = json!({
        "identifier": "ready", "title": "Production readiness",
        "filter": {"combinator": "and", "conditions": [{"property": "language", "operator": "isNotEmpty"}]},
        "levels": [{"title": "Basic", "color": "paleBlue"}, {"title": "Bronze", "color": "bronze"},
                   {"title": "Silver", "color": "silver"}, {"title": "Gold", "color": "gold"}],
        "rules": [
            {"identifier": "hasTeam", "title": "Has a team", "level": "Bronze",
             "query": {"combinator": "and", "conditions": [{"relation": "team", "operator": "isNotEmpty"}]}},
            {"identifier": "enoughCpu", "title": "At least 4 CPUs", "level": "Silver",
             "query": {"combinator": "and", "conditions": [{"property": "cpu", "operator": ">=", "value": 4}]}},
            {"identifier": "private", "title": "Not public", "level": "Silver",
             "query": {"combinator": "and", "conditions": [{"property": "public", "operator": "=", "value": false}]}},
            {"identifier": "goOrRust", "title": "Go or Rust", "level": "Gold",
             "query": {"combinator": "or", "conditions": [{"property": "language", "operator": "=", "value": "go"},
                                                          {"property": "language", "operator": "=", "value": "rust"}]}}
        ]
    });
    let posted = Instant::now();
    let r = api.post("/v1/blueprints/service/scorecards", &scorecard).await?;
    if !r.status.is_success() {
        bail!("POST /v1/blueprints/service/scorecards answered {}: {}", r.status, short(&r.body));
    }
    let deadline = Instant::now() + Duration::from_secs(1800);
    let job = loop {
        let jobs = api.ok(Method::GET, "/v1/jobs?kind=scorecard_recompute&limit=1", None).await?;
        let job = jobs["jobs"].get(0).cloned().unwrap_or(Value::Null);
        match job["status"].as_str() {
            Some("succeeded") => break job,
            Some("failed" | "cancelled") => bail!("the recompute job ended {}: {}", job["status"], short(&job)),
            _ if Instant::now() > deadline => bail!("the recompute job did not finish in 30 minutes: {}", short(&job)),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let wall = posted.elapsed();
    let started = millis(job["startedAt"].as_str().context("job without startedAt")?)?;
    let finished = millis(job["finishedAt"].as_str().context("job without finishedAt")?)?;
    let (_, _, levels) = read_all(api).await?;
    let scored: usize = levels.iter().map(|(_, n)| n).sum();
    if scored != services {
        bail!("{scored} of {services} services have a level after the recompute");
    }
    Ok(ScorecardResult {
        services,
        job: Duration::from_millis(u64::try_from(finished - started).unwrap_or(0)),
        wall,
        read_all: read_all_time,
        levels,
    })
}

pub fn markdown(r: &ScorecardResult) -> String {
    let levels: Vec<String> = r.levels.iter().map(|(l, n)| format!("{l} {n}")).collect();
    format!(
        "\n### Scorecard recompute ({} services)\n\n| Measure | Seconds |\n|---|---|\n\
         | `scorecard_recompute` job (its startedAt → finishedAt) | {:.2} |\n\
         | POST scorecard → job seen succeeded (client wall time) | {:.2} |\n\
         | baseline: every service read once through the paginated search | {:.2} |\n\n\
         Levels after the recompute: {}.\n",
        r.services,
        r.job.as_secs_f64(),
        r.wall.as_secs_f64(),
        r.read_all.as_secs_f64(),
        levels.join(", ")
    )
}
