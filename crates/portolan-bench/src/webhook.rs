//! `--webhook-deliveries D`: the custom webhook path end to end. D deliveries of K items
//! (`--webhook-items`) are posted to a webhook's ingest URL, mapped with an 11-field app mapping
//! (`strptime`, `with_entries`, `@uri`, `unique`, …) and written; the time runs from the first
//! POST until all D × K entities are counted. The items and the mapping are those of
//! `crates/portolan-jq/examples/webhook_bench.rs` (the mapping alone and Ocean's libjq path on
//! the same items: `bench/webhook/run.sh`).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{Api, short};

// `MAPPING` and `item`, shared with the jq crate's `webhook_bench` (the mapping alone).
include!("../../../bench/webhook/data.rs");

/// The webhook: `MAPPING`'s fields, its blueprint field as the mapping's own `blueprint`.
fn webhook() -> Value {
    let (mut entity, mut properties) = (serde_json::Map::new(), serde_json::Map::new());
    for (k, f) in MAPPING {
        match *k {
            "blueprint" => {}
            "identifier" | "title" => {
                entity.insert((*k).to_owned(), json!(f));
            }
            _ => {
                properties.insert((*k).to_owned(), json!(f));
            }
        }
    }
    entity.insert("properties".to_owned(), Value::Object(properties));
    json!({
        "identifier": "bench-apps",
        "title": "Bench apps",
        "enabled": true,
        "mappings": [{"blueprint": "app", "filter": "true", "itemsToParse": ".body.items", "entity": entity}]
    })
}

fn blueprint() -> Value {
    let t = |t: &str| json!({"type": t});
    json!({"identifier": "app", "title": "App", "schema": {"properties": {
        "created": t("number"), "tags": t("array"), "labels": t("object"), "url": t("string"),
        "owner": t("string"), "env": t("string"), "size": t("number"), "lang": t("string"),
    }}})
}

pub struct Result {
    pub deliveries: usize,
    pub items: usize,
    /// Posting every delivery (each answered 202 once stored).
    pub posted: Duration,
    /// From the first POST until every entity was counted.
    pub searchable: Duration,
}

impl Result {
    pub fn per_sec(&self) -> f64 {
        (self.deliveries * self.items) as f64 / self.searchable.as_secs_f64()
    }
}

pub async fn run(api: &Api, deliveries: usize, items: usize) -> anyhow::Result<Result> {
    let r = api.post("/v1/blueprints", &blueprint()).await?;
    if r.status != StatusCode::CREATED {
        bail!("POST /v1/blueprints answered {}: {}", r.status, short(&r.body));
    }
    let r = api.post("/v1/webhooks", &webhook()).await?;
    if r.status != StatusCode::CREATED {
        bail!("POST /v1/webhooks answered {}: {}", r.status, short(&r.body));
    }
    let url = r.body["integration"]["url"].as_str().context("the webhook has no ingest url")?;
    let path = url.find("/v1/ingest/").map(|at| url[at..].to_owned()).context("unexpected ingest url")?;
    let bodies: Vec<String> = (0..deliveries)
        .map(|d| json!({"org": "acme", "items": (0..items).map(|i| item(d, i)).collect::<Vec<_>>()}).to_string())
        .collect();
    let want = (deliveries * items) as u64;
    let start = Instant::now();
    for (d, body) in bodies.into_iter().enumerate() {
        let r = api.send(Method::POST, &path, Some(body)).await?;
        if r.status != StatusCode::ACCEPTED {
            bail!("delivery {d} answered {}: {}", r.status, short(&r.body));
        }
    }
    let posted = start.elapsed();
    let mut seen = 0;
    let mut last_change = Instant::now();
    loop {
        let n = api.count("app").await?;
        if n >= want {
            break;
        }
        if n != seen {
            (seen, last_change) = (n, Instant::now());
        }
        if last_change.elapsed() > Duration::from_secs(60) {
            let logs = api.ok(Method::GET, "/v1/webhooks/bench-apps/logs", None).await.unwrap_or_default();
            bail!("{n} of {want} entities after a minute without progress; webhook log: {}", short(&logs));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Result { deliveries, items, posted, searchable: start.elapsed() })
}

pub fn markdown(r: &Result, database: &str) -> String {
    format!(
        "\n| Custom webhook, {} deliveries × {} items, 11-field app mapping, {database} | |\n|---|---:|\n\
         | First POST → all {} entities counted | **{:.0} items/s** ({:.2} s) |\n\
         | Posting the deliveries (202 each, once stored) | {:.2} s |\n",
        r.deliveries,
        r.items,
        r.deliveries * r.items,
        r.per_sec(),
        r.searchable.as_secs_f64(),
        r.posted.as_secs_f64(),
    )
}
