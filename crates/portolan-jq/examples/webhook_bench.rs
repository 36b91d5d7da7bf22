//! The webhook mapping path: D deliveries of K items each (a body `{org, items: [...]}` mapped
//! with `itemsToParse: .body.items`), an 11-field app mapping (strptime, with_entries, @uri,
//! unique, …), jq in worker processes as the server runs it. Two ways, same items:
//!
//! - per item: each item's input is the delivery with `.item` set (`bind_item`: a copy of the
//!   whole body) and one hand-off per item — the webhook job before issue 18;
//! - batched: `EntityTemplate::eval_items`, 256 items per hand-off (`--chunk`), the body converted once per
//!   hand-off — the webhook job now.
//!
//! `cargo build --release -p portolan-jq --bins --examples` then
//! `target/release/examples/webhook_bench --deliveries D --items K [--json FILE]`; with
//! `--json`, writes the mapping and each item's input as Ocean maps it (`{item, body: {org}}`,
//! without the other items: the cheapest input for the baseline) for
//! `bench/jq/libjq_bench.py FILE`. `bench/webhook/run.sh D K` runs both.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use portolan_jq::mapping::bind_item;
use portolan_jq::{CompiledMapping, Isolation, JqBudget, JqConfig, JqEngine};
use serde_json::{Value, json};

/// The allocator of the `portolan` binary (this side stands for the server's).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// `MAPPING` and `item`, shared with `portolan-bench --webhook-deliveries` (the whole path).
include!("../../../bench/webhook/data.rs");

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (deliveries, per) = (arg(&args, "--deliveries", 20), arg(&args, "--items", 500));
    let chunk = arg(&args, "--chunk", 256).max(1);
    let worker = std::env::current_exe()?
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("portolan-jq-worker"))
        .filter(|p| p.is_file())
        .ok_or("portolan-jq-worker not found beside target/…/examples: build with --bins")?;
    // Time limits out of the way: this measures throughput (the server's delivery budget is 10 s).
    let engine = JqEngine::with_config(JqConfig {
        timeout: Duration::from_secs(3600),
        isolation: Isolation::Process { program: PathBuf::from(&worker), args: vec![] },
        ..JqConfig::default()
    });
    let bodies: Vec<Value> = (0..deliveries)
        .map(|d| json!({"body": {"org": "acme", "items": (0..per).map(|i| item(d, i)).collect::<Vec<_>>()}, "headers": {}, "queryParams": {}}))
        .collect();
    if let Some(i) = args.iter().position(|a| a == "--json") {
        let path = args.get(i + 1).ok_or("--json needs a path")?;
        let inputs: Vec<Value> = (0..deliveries)
            .flat_map(|d| (0..per).map(move |i| json!({"item": item(d, i), "body": {"org": "acme"}})))
            .collect();
        std::fs::write(path, serde_json::to_string(&json!({"mapping": MAPPING, "items": inputs}))?)?;
    }
    let fields: serde_json::Map<String, Value> =
        MAPPING.iter().map(|(k, f)| ((*k).to_owned(), Value::String((*f).to_owned()))).collect();
    let mapping = CompiledMapping::from_parts(&engine, "true", Some(".body.items"), &Value::Object(fields));
    let entity = &mapping.entities()[0];
    let total = deliveries * per;
    let mut check = 0usize;

    // `--skip-before`: only the path as it is now (for a profiler).
    let skip_before = args.iter().any(|a| a == "--skip-before");
    let t = Instant::now();
    for body in bodies.iter().filter(|_| !skip_before) {
        let scope = engine.scope(JqBudget::new("bench", Duration::from_secs(3600)));
        let Some(Ok(items)) = mapping.items(&scope, body) else { return Err("itemsToParse failed".into()) };
        for it in items {
            for v in entity.eval(&scope, &bind_item(body, it))? {
                check += usize::from(v.result.is_ok_and(|v| !v.is_null()));
            }
        }
    }
    let per_item = total as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    for body in &bodies {
        let scope = engine.scope(JqBudget::new("bench", Duration::from_secs(3600)));
        let Some(Ok(items)) = mapping.items(&scope, body) else { return Err("itemsToParse failed".into()) };
        for chunk in items.chunks(chunk) {
            for values in entity.eval_items(&scope, body, "item", chunk)? {
                for v in values {
                    check += usize::from(v.result.is_ok_and(|v| !v.is_null()));
                }
            }
        }
    }
    let batched = total as f64 / t.elapsed().as_secs_f64();

    println!("{deliveries} deliveries x {per} items, {} fields, jq in worker processes", MAPPING.len());
    println!("portolan webhook path, one hand-off per item (before): {per_item:>10.0} items/s");
    println!("portolan webhook path, {chunk} items per hand-off (now): {batched:>10.0} items/s");
    println!("(non-null results: {check})");
    Ok(())
}
