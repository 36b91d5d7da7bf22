//! Throughput of `JqEngine::first` on a cached filter.
//!
//! `cargo run --release -p portolan-jq --example bench [filter] [n]`
use portolan_jq::JqEngine;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let filter = args.next().unwrap_or_else(|| ".properties.a + 1".to_owned());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let engine = JqEngine::new();
    let input = serde_json::json!({
        "identifier": "svc-1", "title": "Service 1", "blueprint": "service", "team": ["a"],
        "properties": {"a": 41, "language": "rust", "url": "https://example.com", "tier": "gold"},
        "relations": {"domain": "payments"}, "createdAt": "2024-01-01T00:00:00Z"
    });
    match engine.first(&filter, &input) {
        Ok(v) => println!("result: {v}"),
        Err(e) => println!("error: {e}"),
    }
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(engine.first_or_null(&filter, &input));
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{n} evaluations of `{filter}` in {secs:.3} s: {:.0}/s (one caller thread)", n as f64 / secs);

    let threads = 4;
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..n / threads {
                    std::hint::black_box(engine.first_or_null(&filter, &input));
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    println!("{n} evaluations in {secs:.3} s: {:.0}/s ({threads} caller threads)", n as f64 / secs);
}
